package bench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// BakeTitle and BakeNotes head the bake section of the report.
const BakeTitle = "Bake: `strata bake DIR` against the bakery's bare mkfs commands"

// BakeNotes explain the bake table.
const BakeNotes = `Two generated trees (deterministic, not copies of /usr): "small" is ~40 MB
in 8 files (binary-like data, the baseline's gosmall shape); "large" is
~400 MB in ~17,000 files across ~900 directories (the golarge shape). The
peer is the exact command the sysext-bakery's generate_sysext runs, on the
same tree, with SOURCE_DATE_EPOCH=0: mksquashfs DIR OUT -all-root -noappend
(gzip), and mkfs.erofs -zlz4hc,12 -C65536 -Efragments,ztailpacking
-U00000000-0000-0000-0000-000000000000 --all-root. "release in tree": the
tree already holds extension-release (as the bakery writes it before mkfs),
so Strata validates it and feeds the tree to the tool as is; "generated":
Strata writes extension-release itself (squashfs: a pseudo file, nothing
copied; erofs: a hard-link farm). Strata's time includes lint (in parallel
with mkfs), fsync, sha256 and the .sha256 file; the peer's is the bare
command without fsync. The floor is mksquashfs with compression off
(-noI -noD -noF -noX) or mkfs.erofs without -z. Medians of 3, runs
interleaved, outputs deleted and sync(1) between runs. The note gives the
median CPU time (user+sys of the process and its children), which stays
meaningful when the machine is busy and wall times are not.`

// Bake times strata bake against the bare mkfs commands the bakery runs,
// on a ~40 MB and a ~400 MB tree (quick: the small tree only).
func Bake(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	trees := []struct {
		name  string
		files int
		size  int64
	}{{"small", 8, 40 << 20}, {"large", 17000, 400 << 20}}
	if quick {
		trees = trees[:1]
	}
	var rows []Row
	for _, tr := range trees {
		base := filepath.Join(workDir, "bake-"+tr.name)
		if err := os.RemoveAll(base); err != nil {
			return rows, err
		}
		withRel := filepath.Join(base, "tree-rel")
		bare := filepath.Join(base, "tree")
		logf("bake bench: generating %s tree (%d MB, %d files)", tr.name, tr.size>>20, tr.files)
		if err := GenerateTree(bare, tr.files, tr.size, 1); err != nil {
			return rows, err
		}
		if err := GenerateTree(withRel, tr.files, tr.size, 1); err != nil {
			return rows, err
		}
		rel := filepath.Join(withRel, "usr/lib/extension-release.d/extension-release.bench")
		if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
			return rows, err
		}
		if err := os.WriteFile(rel, []byte("ID=_any\nARCHITECTURE=x86-64\n"), 0o644); err != nil {
			return rows, err
		}
		for _, d := range []string{bare, withRel} {
			if err := warm(d); err != nil {
				return rows, err
			}
		}
		out := filepath.Join(base, "out")
		for _, format := range []string{"squashfs", "erofs"} {
			r, err := bakeCase(ctx, strataBin, tr.name, format, withRel, bare, out, logf)
			if err != nil {
				return rows, fmt.Errorf("bake bench %s %s: %w", tr.name, format, err)
			}
			rows = append(rows, r...)
		}
		os.RemoveAll(base)
	}
	return rows, nil
}

func peerCmd(ctx context.Context, format, tree, img string, floor bool) *exec.Cmd {
	var cmd *exec.Cmd
	if format == "squashfs" {
		args := []string{tree, img, "-all-root", "-noappend", "-quiet", "-no-progress"}
		if floor {
			args = append(args, "-noI", "-noD", "-noF", "-noX")
		}
		cmd = exec.CommandContext(ctx, "mksquashfs", args...)
	} else {
		args := []string{"-zlz4hc,12", "-C65536", "-Efragments,ztailpacking"}
		if floor {
			args = nil
		}
		args = append(args, "-U00000000-0000-0000-0000-000000000000", "--all-root", "--quiet", img, tree)
		cmd = exec.CommandContext(ctx, "mkfs.erofs", args...)
	}
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
	return cmd
}

func bakeCase(ctx context.Context, strataBin, treeName, format, withRel, bare, out string, logf func(string, ...any)) ([]Row, error) {
	const reps = 3
	var peer, floor, same, gen []time.Duration
	var peerCPU, sameCPU, genCPU []time.Duration
	var peerSum, strataSum string
	var lastCPU time.Duration
	runOnce := func(cmd *exec.Cmd, img string) (time.Duration, string, error) {
		os.RemoveAll(out)
		if err := os.MkdirAll(out, 0o755); err != nil {
			return 0, "", err
		}
		exec.Command("sync").Run()
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		start := time.Now()
		err := cmd.Run()
		d := time.Since(start)
		if cmd.ProcessState != nil {
			lastCPU = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil {
			return 0, "", fmt.Errorf("%s: %v: %s", strings.Join(cmd.Args, " "), err, stderr.String())
		}
		sum := ""
		if img != "" {
			sum, _ = fileSum(img)
		}
		return d, sum, nil
	}
	strata := func(tree string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, strataBin, "bake", tree, "--name", "bench", "--version", "1", "--arch", "x86-64", "--format", format, "-o", out)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=0")
		return cmd
	}
	img := filepath.Join(out, "bench-1-x86-64.raw")
	for i := 0; i < reps; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		d, s, err := runOnce(peerCmd(ctx, format, withRel, img, false), img)
		if err != nil {
			return nil, err
		}
		peer, peerSum = append(peer, d), s
		peerCPU = append(peerCPU, lastCPU)
		d, s, err = runOnce(strata(withRel), img)
		if err != nil {
			return nil, err
		}
		same, strataSum = append(same, d), s
		sameCPU = append(sameCPU, lastCPU)
		d, _, err = runOnce(strata(bare), "")
		if err != nil {
			return nil, err
		}
		gen = append(gen, d)
		genCPU = append(genCPU, lastCPU)
		d, _, err = runOnce(peerCmd(ctx, format, withRel, img, true), "")
		if err != nil {
			return nil, err
		}
		floor = append(floor, d)
		logf("bake bench %s %s rep %d: peer %v (cpu %v), strata %v (cpu %v), strata generated release %v (cpu %v), floor %v", treeName, format, i+1, peer[i], peerCPU[i], same[i], sameCPU[i], gen[i], genCPU[i], floor[i])
	}
	os.RemoveAll(out)
	note := "byte-identical to the bare tool's image"
	if peerSum == "" || peerSum != strataSum {
		note = "image differs from the bare tool's"
		if format == "erofs" {
			note += " by design (Strata passes -T: every inode time is the epoch, not the file's mtime)"
		}
	}
	floorName := "no compression"
	cpu := func(s []time.Duration) string {
		return fmt.Sprintf("CPU (user+sys, median) bare %s, Strata %s (%s)", Fmt(Median(peerCPU)), Fmt(Median(s)), Ratio(Median(s), Median(peerCPU)))
	}
	return []Row{
		{Group: "bake", Case: fmt.Sprintf("%s %s, release in tree", treeName, format), Peer: Median(peer), Strata: Median(same), Floor: Median(floor),
			PeerName: "bakery's bare mkfs", FloorName: floorName, Note: note + "; " + cpu(sameCPU)},
		{Group: "bake", Case: fmt.Sprintf("%s %s, release generated", treeName, format), Peer: Median(peer), Strata: Median(gen), Floor: Median(floor),
			PeerName: "bakery's bare mkfs", FloorName: floorName, Note: cpu(genCPU)},
	}, nil
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// warm reads every file once so both tools start from a warm page cache.
func warm(dir string) error {
	return filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(io.Discard, f)
		return err
	})
}

// GenerateTree writes a deterministic tree of about size bytes in files
// regular files below dir/usr (and a few in dir/opt): content compresses
// roughly like binaries and text do (about 3:1 with gzip), with directory
// fan-out like a /usr/lib tree. The same arguments give the same bytes.
func GenerateTree(dir string, files int, size int64, seed uint64) error {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	words := make([][]byte, 512)
	for i := range words {
		w := make([]byte, 3+rng.IntN(9))
		for j := range w {
			w[j] = byte('a' + rng.IntN(26))
		}
		words[i] = w
	}
	per := size / int64(files)
	buf := make([]byte, 0, per*2+4096)
	for i := 0; i < files; i++ {
		var rel string
		switch {
		case files <= 16:
			rel = fmt.Sprintf("usr/bin/tool%02d", i)
		case i%50 == 0:
			rel = fmt.Sprintf("opt/bench/share/d%03d/f%05d", i/500, i)
		default:
			rel = fmt.Sprintf("usr/lib/bench/m%02d/d%03d/f%05d.dat", i%20, (i/20)%45, i)
		}
		// Sizes vary from a quarter to 1.75× the mean, deterministic.
		n := per/4 + rng.Int64N(per*3/2+1)
		buf = buf[:0]
		for int64(len(buf)) < n {
			if rng.IntN(3) == 0 {
				// incompressible run
				k := 16 + rng.IntN(48)
				for j := 0; j < k; j++ {
					buf = append(buf, byte(rng.Uint32()))
				}
			} else {
				buf = append(buf, words[rng.IntN(len(words))]...)
				buf = append(buf, ' ')
			}
		}
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if strings.HasPrefix(rel, "usr/bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(p, buf[:n], mode); err != nil {
			return err
		}
	}
	return nil
}

// BakeSection runs Bake and returns its rows with the section's title and
// notes, in the shape strata-bench's extraBenches hook takes.
func BakeSection(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	rows, err := Bake(ctx, strataBin, workDir, quick, logf)
	return rows, BakeTitle, BakeNotes, err
}
