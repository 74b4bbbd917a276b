package bench

import (
	"bytes"
	"context"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"time"

	"github.com/stratalinux/strata/internal/verity"
)

// VerityTitle heads the verity section.
const VerityTitle = "Verity: hash tree of a 1 GiB /usr image, verity.Format against `veritysetup format`"

// VerityNotes explain the row.
const VerityNotes = `The image is 1 GiB of random bytes (nothing compresses, no zero blocks), hot in the page cache.
Both sides write the superblock and the tree of SHA-256 over 4 KiB blocks to a separate hash file
with the same 32-byte salt and uuid; the run checks that both hash files and root hashes are
byte-identical. Strata: verity.Format in the benchmark's own process (leaves hashed on every core,
GOMAXPROCS = nproc), the hash file written and fsynced. Peer: veritysetup format (cryptsetup 2.6),
one process, which also fsyncs its hash file. Medians of the runs, interleaved.`

// veritySalt and verityUUID are fixed so both sides make the same bytes.
var (
	veritySalt = bytes.Repeat([]byte{0x5a, 0xa5}, 16)
	verityUUID = [16]byte{0x5e, 0x8a, 0x1b, 0x2c, 0x3d, 0x4e, 0x4f, 0x50, 0x81, 0x92, 0xa3, 0xb4, 0xc5, 0xd6, 0xe7, 0xf8}
)

// Verity is the bench group of the verity tree (quick: 128 MiB, one run).
func Verity(ctx context.Context, _, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	vs, err := exec.LookPath("veritysetup")
	if err != nil {
		return nil, "", "", fmt.Errorf("verity bench needs veritysetup (run ./scripts/deps test: cryptsetup-bin): %w", err)
	}
	size, reps := int64(1<<30), 5
	if quick {
		size, reps = 128<<20, 1
	}
	dir := filepath.Join(workDir, "verity")
	if err := os.RemoveAll(dir); err != nil {
		return nil, "", "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	logf("verity bench: generating a %d MiB image", size>>20)
	img := filepath.Join(dir, "usr.img")
	if err := fakeErofs(img, size); err != nil {
		return nil, "", "", err
	}
	ourHash, peerHash := filepath.Join(dir, "strata.hash"), filepath.Join(dir, "veritysetup.hash")
	uuid := fmt.Sprintf("%x-%x-%x-%x-%x", verityUUID[0:4], verityUUID[4:6], verityUUID[6:8], verityUUID[8:10], verityUUID[10:16])
	var ours, peer []time.Duration
	var ourRoot, peerRoot string
	for i := 0; i < reps; i++ {
		for _, side := range []string{"strata", "peer"} {
			if side == "strata" {
				d, root, err := timeFormat(ctx, img, ourHash, size)
				if err != nil {
					return nil, "", "", err
				}
				ours, ourRoot = append(ours, d), root
				continue
			}
			os.Remove(peerHash)
			start := time.Now()
			out, err := exec.CommandContext(ctx, vs, "format", "--salt="+hex.EncodeToString(veritySalt), "--uuid="+uuid, img, peerHash).CombinedOutput()
			if err != nil {
				return nil, "", "", fmt.Errorf("veritysetup format: %v: %s", err, out)
			}
			peer = append(peer, time.Since(start))
			m := regexp.MustCompile(`Root hash:\s+([0-9a-f]+)`).FindSubmatch(out)
			if m == nil {
				return nil, "", "", fmt.Errorf("veritysetup format printed no root hash: %s", out)
			}
			peerRoot = string(m[1])
		}
	}
	if ourRoot != peerRoot {
		return nil, "", "", fmt.Errorf("verity bench: root hashes differ: strata %s, veritysetup %s", ourRoot, peerRoot)
	}
	a, err := os.ReadFile(ourHash)
	if err != nil {
		return nil, "", "", err
	}
	b, err := os.ReadFile(peerHash)
	if err != nil {
		return nil, "", "", err
	}
	if !bytes.Equal(a, b) {
		return nil, "", "", fmt.Errorf("verity bench: hash files differ (strata %d bytes, veritysetup %d bytes)", len(a), len(b))
	}
	r := Row{Group: "verity", Case: fmt.Sprintf("%d MiB image, %d cores", size>>20, runtime.GOMAXPROCS(0)), Peer: Median(peer), Strata: Median(ours), PeerName: "veritysetup format"}
	r.Note = "ratio " + Ratio(r.Strata, r.Peer) + ", identical bytes"
	logf("verity bench: strata %s, veritysetup format %s (%s)", Fmt(r.Strata), Fmt(r.Peer), r.Note)
	return []Row{r}, VerityTitle, VerityNotes, nil
}

// timeFormat times verity.Format of img into a fresh hash file, fsync
// included, and returns the root hash in hex.
func timeFormat(ctx context.Context, img, hashPath string, size int64) (time.Duration, string, error) {
	os.Remove(hashPath)
	start := time.Now()
	data, err := os.Open(img)
	if err != nil {
		return 0, "", err
	}
	defer data.Close()
	hf, err := os.Create(hashPath)
	if err != nil {
		return 0, "", err
	}
	defer hf.Close()
	root, _, err := verity.Format(ctx, data, size, hf, 0, verity.Params{Salt: veritySalt, UUID: verityUUID})
	if err != nil {
		return 0, "", fmt.Errorf("verity.Format of %s: %w", img, err)
	}
	if err := hf.Sync(); err != nil {
		return 0, "", err
	}
	return time.Since(start), hex.EncodeToString(root), nil
}
