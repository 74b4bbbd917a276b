package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// UpdateTitle and UpdateNotes head the publish/update section.
const UpdateTitle = "Publish and update: `strata publish`, `strata sysupdate`"

// UpdateNotes explain the update table.
const UpdateNotes = `All over 127.0.0.1 from one ` + "`strata serve`" + ` process, files in the page cache.
"download + verify + install": ` + "`strata sysupdate --root R -C big update`" + ` of one
image (fetch SHA256SUMS and its OpenPGP signature, verify, download while
hashing, fsync, rename, symlink) against ` + "`curl -s -o FILE URL`" + ` followed by
` + "`sha256sum FILE`" + ` (no signature, no fsync); the floor is the bare curl.
"check-new": 20 components (one transfer each, Verify=yes) with their
current version installed; once as 20 ` + "`strata sysupdate -C NAME check-new`" + `
processes, once as one ` + "`strata ext list`" + ` process. "publish": 100 images
into an empty repository (copy while hashing, fsync, SHA256SUMS, signature,
transfer files, index.json) against the floor ` + "`sha256sum`" + ` over the same
files. Medians of the repetitions, peer and Strata interleaved.`

// Update measures publish, check-new and download+install.
func Update(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	base := filepath.Join(workDir, "update")
	if err := os.RemoveAll(base); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	reps := 5
	bigSize := int64(200 << 20)
	pubSize := int64(2 << 20)
	if quick {
		reps, bigSize, pubSize = 3, 32<<20, 256<<10
	}
	run := func(name string, args ...string) error {
		c := exec.CommandContext(ctx, name, args...)
		if out, err := c.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	timed := func(name string, args ...string) (time.Duration, error) {
		start := time.Now()
		err := run(name, args...)
		return time.Since(start), err
	}
	keyPrefix := filepath.Join(base, "key")
	if err := run(strataBin, "key", "generate", "--out", keyPrefix); err != nil {
		return nil, err
	}
	arch := nativeArch()
	var rows []Row

	// Publish 100 images.
	src := filepath.Join(base, "pubsrc")
	os.MkdirAll(src, 0o755)
	var files []string
	for i := range 100 {
		p := filepath.Join(src, fmt.Sprintf("pub%03d-1.0-%s.raw", i, arch))
		if err := writeRandom(p, pubSize, uint64(i)); err != nil {
			return nil, err
		}
		files = append(files, p)
	}
	var strataT, floorT []time.Duration
	for r := range reps {
		repo := filepath.Join(base, fmt.Sprintf("pubrepo%d", r))
		d, err := timed(strataBin, append([]string{"publish", "--repo", repo, "--sign-key", keyPrefix + ".key"}, files...)...)
		if err != nil {
			return nil, err
		}
		strataT = append(strataT, d)
		os.RemoveAll(repo)
		d, err = timed("sha256sum", files...)
		if err != nil {
			return nil, err
		}
		floorT = append(floorT, d)
	}
	rows = append(rows, Row{Group: "update", Case: fmt.Sprintf("publish 100 images × %d MiB", pubSize>>20), Strata: Median(strataT), Floor: Median(floorT), PeerName: "peer", FloorName: "floor", Note: "floor: sha256sum of the files; target < 2× floor"})
	if pubSize < 1<<20 {
		rows[len(rows)-1].Case = fmt.Sprintf("publish 100 images × %d KiB", pubSize>>10)
	}
	logf("update bench: publish %s (floor %s)", Fmt(Median(strataT)), Fmt(Median(floorT)))
	os.RemoveAll(src)

	// One repository holding the big image and 20 small components.
	repo := filepath.Join(base, "repo")
	big := filepath.Join(base, "big-1-"+arch+".raw")
	if err := writeRandom(big, bigSize, 99); err != nil {
		return nil, err
	}
	imgs := []string{big}
	for i := range 20 {
		p := filepath.Join(base, fmt.Sprintf("comp%02d-1.0-%s.raw", i, arch))
		if err := writeRandom(p, 64<<10, uint64(1000+i)); err != nil {
			return nil, err
		}
		imgs = append(imgs, p)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	url := "http://127.0.0.1:" + port
	if err := run(strataBin, append([]string{"publish", "--repo", repo, "--sign-key", keyPrefix + ".key", "--url", url}, imgs...)...); err != nil {
		return nil, err
	}
	srv := exec.CommandContext(ctx, strataBin, "serve", "--repo", repo, "--listen", "127.0.0.1:"+port)
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	if err := waitHTTP(url + "/SHA256SUMS"); err != nil {
		return nil, err
	}
	pub, err := os.ReadFile(keyPrefix + ".pgp")
	if err != nil {
		return nil, err
	}
	mkRoot := func(dir string, names ...string) error {
		if err := os.MkdirAll(filepath.Join(dir, "etc/systemd"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, "etc/systemd/import-pubring.pgp"), pub, 0o644); err != nil {
			return err
		}
		for _, n := range names {
			tr, err := os.ReadFile(filepath.Join(repo, n+".transfer"))
			if err != nil {
				return err
			}
			d := filepath.Join(dir, "etc/sysupdate."+n+".d")
			os.MkdirAll(d, 0o755)
			if err := os.WriteFile(filepath.Join(d, n+".transfer"), tr, 0o644); err != nil {
				return err
			}
		}
		return nil
	}

	// Download + verify + install of the big image.
	var peerT []time.Duration
	strataT, floorT = nil, nil
	for r := range reps {
		root := filepath.Join(base, fmt.Sprintf("root%d", r))
		if err := mkRoot(root, "big"); err != nil {
			return nil, err
		}
		d, err := timed(strataBin, "sysupdate", "--root", root, "-C", "big", "update")
		if err != nil {
			return nil, err
		}
		strataT = append(strataT, d)
		os.RemoveAll(root)
		out := filepath.Join(base, "curl.raw")
		start := time.Now()
		if err := run("curl", "-s", "-f", "-o", out, url+"/"+filepath.Base(big)); err != nil {
			return nil, err
		}
		curlOnly := time.Since(start)
		if err := run("sha256sum", out); err != nil {
			return nil, err
		}
		peerT = append(peerT, time.Since(start))
		floorT = append(floorT, curlOnly)
		os.Remove(out)
	}
	rows = append(rows, Row{Group: "update", Case: fmt.Sprintf("download + verify + install %d MiB", bigSize>>20), Peer: Median(peerT), PeerName: "peer", Strata: Median(strataT), Floor: Median(floorT), FloorName: "floor", Note: "peer: curl -o, then sha256sum; floor: curl -o alone; Strata also verifies the signature and fsyncs; target ≤ 1.0× peer"})
	logf("update bench: install %s (curl+sha256sum %s)", Fmt(Median(strataT)), Fmt(Median(peerT)))

	// check-new across 20 components.
	root := filepath.Join(base, "root-comp")
	var comps []string
	for i := range 20 {
		comps = append(comps, fmt.Sprintf("comp%02d", i))
	}
	if err := mkRoot(root, comps...); err != nil {
		return nil, err
	}
	for _, c := range comps {
		// Install the current version so check-new finds nothing new.
		if err := run(strataBin, "sysupdate", "--root", root, "-C", c, "update"); err != nil {
			return nil, err
		}
	}
	var procT, listT []time.Duration
	for range reps {
		start := time.Now()
		for _, c := range comps {
			c := exec.CommandContext(ctx, strataBin, "sysupdate", "--root", root, "-C", c, "check-new")
			if err := c.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
					return nil, fmt.Errorf("check-new: %v", err)
				}
			}
		}
		procT = append(procT, time.Since(start))
		d, err := timed(strataBin, "ext", "list", "--root", root)
		if err != nil {
			return nil, err
		}
		listT = append(listT, d)
	}
	rows = append(rows,
		Row{Group: "update", Case: "check-new, 20 components, 20 processes", Strata: Median(procT), Note: "target < 100 ms total"},
		Row{Group: "update", Case: "check-new, 20 components, one `ext list`", Strata: Median(listT), Note: "target < 100 ms total"})
	logf("update bench: check-new ×20 %s, ext list %s", Fmt(Median(procT)), Fmt(Median(listT)))
	return rows, nil
}

func nativeArch() string {
	out, err := exec.Command("uname", "-m").Output()
	if err == nil && strings.TrimSpace(string(out)) == "aarch64" {
		return "arm64"
	}
	return "x86-64"
}

// writeRandom writes size pseudo-random (incompressible) bytes.
func writeRandom(p string, size int64, seed uint64) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	r := rand.New(rand.NewPCG(seed, 7))
	buf := make([]byte, 1<<20)
	for size > 0 {
		for i := 0; i+8 <= len(buf); i += 8 {
			v := r.Uint64()
			for k := range 8 {
				buf[i+k] = byte(v >> (8 * k))
			}
		}
		n := int64(len(buf))
		if n > size {
			n = size
		}
		if _, err := f.Write(buf[:n]); err != nil {
			f.Close()
			return err
		}
		size -= n
	}
	return f.Close()
}

func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

func waitHTTP(url string) error {
	for range 100 {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server at %s did not come up", url)
}
