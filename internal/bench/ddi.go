package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/bake"
	"github.com/stratalinux/strata/internal/pkcs7"
)

// DDITitle heads the DDI bake section.
const DDITitle = "DDI bake: `strata bake --format ddi --verity --sign-key --sign-cert` against `--format ddi` unsigned"

// DDINotes explain the rows.
const DDINotes = `The tree: 256 MiB of incompressible bytes in 16 files plus ~40 MB in 4,000 small files
(the bake bench's generator; quick: 32 MiB + 4 MB in 400 files). Each variant is bake.Bake of that
tree into a DDI (squashfs gzip in a GPT usr partition, lint on, fsync and sha256 included):
"plain" has no verity and no signature, "verity" adds the dm-verity hash partition, "signed" adds
the verity-signature partition too (RSA-2048 PKCS#7 over the root hash). The ratio is signed
against plain (target <= 1.15x); "verity share" is the part of the signed bake spent beyond the
plain one (hashing the data partition with SHA-256 and writing the tree), which no signed image
can avoid. Medians of the runs, variants interleaved; the notes add the median CPU time (user+sys
of the process and mksquashfs), which stays meaningful when the machine is busy.`

// DDI times baking one tree as a DDI unsigned, with verity, and with verity
// and a signature (quick: a small tree, one run).
func DDI(ctx context.Context, _, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	big, smallFiles, small, reps := int64(256<<20), 4000, int64(40<<20), 5
	if quick {
		big, smallFiles, small, reps = 32<<20, 400, 4<<20, 1
	}
	dir := filepath.Join(workDir, "ddi")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	tree := filepath.Join(dir, "tree")
	logf("ddi bench: generating a tree of %d MiB incompressible + %d MB in %d files", big>>20, small>>20, smallFiles)
	if err := GenerateTree(tree, smallFiles, small, 2); err != nil {
		return nil, "", "", err
	}
	if err := incompressible(filepath.Join(tree, "usr/lib/bench/blobs"), 16, big); err != nil {
		return nil, "", "", err
	}
	if err := warm(tree); err != nil {
		return nil, "", "", err
	}
	keyPEM, certPEM, err := pkcs7.Generate("rsa", "strata bench", time.Unix(0, 0), 36500)
	if err != nil {
		return nil, "", "", err
	}
	key, err := pkcs7.ParsePrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, "", "", err
	}
	certs, err := pkcs7.ParseCertificatesPEM(certPEM)
	if err != nil {
		return nil, "", "", err
	}
	variants := []struct {
		name   string
		verity bool
		sign   bool
	}{{"plain", false, false}, {"verity", true, false}, {"signed", true, true}}
	times := make([][]time.Duration, len(variants))
	cpus := make([][]time.Duration, len(variants))
	var imgSize [3]int64
	for i := 0; i < reps; i++ {
		for j, v := range variants {
			if err := ctx.Err(); err != nil {
				return nil, "", "", err
			}
			out := filepath.Join(dir, "out-"+v.name)
			if err := os.RemoveAll(out); err != nil {
				return nil, "", "", err
			}
			req := bake.Request{Dir: tree, Name: "bench", Version: "1", Arch: "x86-64", Format: bake.FormatDDI, OutDir: out, Verity: v.verity}
			if v.sign {
				req.SignKey, req.SignCert = key, certs[0]
			}
			start, cpu0 := time.Now(), cpuTime()
			res, err := bake.Bake(ctx, req)
			if err != nil {
				return nil, "", "", fmt.Errorf("ddi bench %s: %w", v.name, err)
			}
			times[j] = append(times[j], time.Since(start))
			cpus[j] = append(cpus[j], cpuTime()-cpu0)
			imgSize[j] = res.Size
			os.RemoveAll(out)
		}
		logf("ddi bench rep %d: plain %v (cpu %v), verity %v (cpu %v), signed %v (cpu %v)", i+1, times[0][i], cpus[0][i], times[1][i], cpus[1][i], times[2][i], cpus[2][i])
	}
	plain, ver, signed := Median(times[0]), Median(times[1]), Median(times[2])
	share := "–"
	if signed > 0 {
		share = fmt.Sprintf("%.0f%%", 100*float64(signed-plain)/float64(signed))
	}
	cp, cv, cs := Median(cpus[0]), Median(cpus[1]), Median(cpus[2])
	cpuShare := "–"
	if cs > 0 {
		cpuShare = fmt.Sprintf("%.0f%%", 100*float64(cs-cp)/float64(cs))
	}
	tc := fmt.Sprintf("%d MiB tree, %d cores", (big+small)>>20, runtime.GOMAXPROCS(0))
	rows := []Row{
		{Group: "ddi", Case: "verity, " + tc, Peer: plain, Strata: ver, PeerName: "ddi unsigned, no verity",
			Note: fmt.Sprintf("ratio %s; CPU (user+sys, median) plain %s, verity %s (%s); image %d MiB (plain %d MiB)", Ratio(ver, plain), Fmt(cp), Fmt(cv), Ratio(cv, cp), imgSize[1]>>20, imgSize[0]>>20)},
		{Group: "ddi", Case: "verity + signature, " + tc, Peer: plain, Strata: signed, PeerName: "ddi unsigned, no verity",
			Note: fmt.Sprintf("ratio %s (target <= 1.15x); verity share of the signed bake %s (of its CPU %s); CPU (user+sys, median) plain %s, signed %s (%s)", Ratio(signed, plain), share, cpuShare, Fmt(cp), Fmt(cs), Ratio(cs, cp))},
	}
	logf("ddi bench: plain %s, verity %s, signed %s (%s)", Fmt(plain), Fmt(ver), Fmt(signed), rows[1].Note)
	return rows, DDITitle, DDINotes, nil
}

// cpuTime is the user+system time of this process and its waited-for
// children (mksquashfs) so far: it stays meaningful when the machine is
// shared and wall times are not.
func cpuTime() time.Duration {
	var self, kids syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &kids) != nil {
		return 0
	}
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(kids.Utime) + tv(kids.Stime)
}

// incompressible writes files random files of size bytes in all below dir
// (deterministic: the same arguments give the same bytes).
func incompressible(dir string, files int, size int64) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(3, 0xb10b))
	buf := make([]byte, size/int64(files))
	for i := 0; i < files; i++ {
		for j := 0; j+8 <= len(buf); j += 8 {
			u := rng.Uint64()
			for k := 0; k < 8; k++ {
				buf[j+k] = byte(u >> (8 * k))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("blob%02d.bin", i)), buf, 0o644); err != nil {
			return err
		}
	}
	return nil
}
