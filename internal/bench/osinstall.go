package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/stratalinux/strata/internal/osimage"
)

// OSInstallTitle heads the OS install section.
const OSInstallTitle = "OS install: `strata os install` of a 1 GiB /usr payload against dd + sha256sum"

// OSInstallNotes explain the row.
const OSInstallNotes = `The payload is a 1 GiB /usr image (random bytes behind an erofs magic, so nothing compresses)
with its verity tree and record, installed from a local file into slot B of a sparse disk image
file. Strata: zero B's record, write the body (hashing as it goes), fsync, read it back for SHA-256
and verity.Verify of every block, write the record, fsync, arm B in the GPT. Peer: dd bs=1M
conv=notrunc,fsync of the same payload to the same offset, then sha256sum of the bytes read back
(dd + sha256sum, no verity). Medians of the runs, interleaved, sync(1) between runs.`

// OSInstall is the bench group of os install (quick: 128 MiB, one run).
func OSInstall(ctx context.Context, strataBin, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	size, reps := int64(1<<30), 3
	if quick {
		size, reps = 128<<20, 1
	}
	dir := filepath.Join(workDir, "osinstall")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	logf("os install bench: generating a %d MiB payload", size>>20)
	img := filepath.Join(dir, "usr.img")
	if err := fakeErofs(img, size); err != nil {
		return nil, "", "", err
	}
	payload := filepath.Join(dir, "usr.payload")
	pf, err := os.Create(payload)
	if err != nil {
		return nil, "", "", err
	}
	rec, err := osimage.WritePayload(ctx, img, osimage.PayloadInfo{Version: "2.0.0", Arch: "x86-64"}, pf)
	pf.Close()
	if err != nil {
		return nil, "", "", err
	}
	os.Remove(img)
	table, diskSize := osimage.Layout(osimage.Sizes{USR: rec.PayloadSize() + 8<<20}, "bench")
	disk := filepath.Join(dir, "disk.img")
	newDisk := func() error {
		f, err := os.Create(disk)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Truncate(diskSize); err != nil {
			return err
		}
		return table.Write(f, diskSize)
	}
	bStart := table.ByIndex(osimage.IndexUSRB).Start()
	var ours, peer []time.Duration
	for i := 0; i < reps; i++ {
		for _, side := range []string{"strata", "peer"} {
			if err := newDisk(); err != nil {
				return nil, "", "", err
			}
			_ = exec.Command("sync").Run()
			start := time.Now()
			if side == "strata" {
				if out, err := exec.CommandContext(ctx, strataBin, "os", "install", payload, "--disk", disk).CombinedOutput(); err != nil {
					return nil, "", "", fmt.Errorf("strata os install: %v: %s", err, out)
				}
				ours = append(ours, time.Since(start))
				continue
			}
			dd := exec.CommandContext(ctx, "dd", "if="+payload, "of="+disk, "bs=1M", "oflag=seek_bytes", "seek="+strconv.FormatInt(bStart, 10), "conv=notrunc,fsync", "status=none")
			if out, err := dd.CombinedOutput(); err != nil {
				return nil, "", "", fmt.Errorf("dd: %v: %s", err, out)
			}
			sum := exec.CommandContext(ctx, "sh", "-c", fmt.Sprintf("dd if=%s bs=1M iflag=skip_bytes,count_bytes skip=%d count=%d status=none | sha256sum", disk, bStart, rec.PayloadSize()))
			if out, err := sum.CombinedOutput(); err != nil {
				return nil, "", "", fmt.Errorf("sha256sum: %v: %s", err, out)
			}
			peer = append(peer, time.Since(start))
		}
	}
	r := Row{Group: "os install", Case: fmt.Sprintf("%d MiB payload", size>>20), Peer: Median(peer), Strata: Median(ours), PeerName: "dd + sha256sum"}
	r.Note = "ratio " + Ratio(r.Strata, r.Peer)
	logf("os install bench: strata %s, dd + sha256sum %s (%s)", Fmt(r.Strata), Fmt(r.Peer), r.Note)
	return []Row{r}, OSInstallTitle, OSInstallNotes, nil
}

// fakeErofs writes size random bytes with the erofs magic at 1024.
func fakeErofs(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	r := rand.New(rand.NewPCG(12, 0))
	buf := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(buf)) {
		for i := 0; i < len(buf); i += 8 {
			v := r.Uint64()
			for j := 0; j < 8; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		if off == 0 {
			copy(buf[1024:], []byte{0xe2, 0xe1, 0xf5, 0xe0})
		}
		if _, err := f.Write(buf); err != nil {
			return err
		}
	}
	return f.Sync()
}
