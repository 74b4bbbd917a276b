package osimage

import (
	"context"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// TestVerityMatchesVeritysetup checks the stand-in tree against veritysetup format for tree shapes
// with zero, one, two and three levels.
func TestVerityMatchesVeritysetup(t *testing.T) {
	privtest.RequireTools(t, "veritysetup")
	for _, blocks := range []int{1, 2, 128, 129, 16500} {
		t.Run(strconv.Itoa(blocks), func(t *testing.T) {
			dir := t.TempDir()
			data := make([]byte, blocks*blockSize)
			r := rand.New(rand.NewPCG(uint64(blocks), 1))
			for i := range data {
				data[i] = byte(r.Uint32())
			}
			dp := filepath.Join(dir, "data")
			if err := os.WriteFile(dp, data, 0o644); err != nil {
				t.Fatal(err)
			}
			salt := []byte{0, 0x11, 0x22, 0x33}
			out := run(t, "veritysetup", "format", dp, filepath.Join(dir, "ref"), "--salt="+hex.EncodeToString(salt), "--uuid=00000000-0000-0000-0000-000000000000")
			f, err := os.Create(filepath.Join(dir, "ours"))
			if err != nil {
				t.Fatal(err)
			}
			root, size, err := verityFormat(context.Background(), readerOf(data), int64(len(data)), f, 0, salt, [16]byte{})
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(out, hex.EncodeToString(root)) {
				t.Fatalf("root %x not in veritysetup's output:\n%s", root, out)
			}
			ref, _ := os.ReadFile(filepath.Join(dir, "ref"))
			ours, _ := os.ReadFile(filepath.Join(dir, "ours"))
			if size != verityHashSize(int64(len(data))) || string(ref) != string(ours) {
				t.Fatalf("hash area differs: ours %d bytes (HashSize %d), veritysetup %d", len(ours), verityHashSize(int64(len(data))), len(ref))
			}
			if err := verityVerify(context.Background(), readerOf(data), int64(len(data)), readerOf(ours), 0, salt, root); err != nil {
				t.Fatal(err)
			}
			data[len(data)-1] ^= 1
			if err := verityVerify(context.Background(), readerOf(data), int64(len(data)), readerOf(ours), 0, salt, root); err == nil {
				t.Fatal("flipped byte verified")
			}
		})
	}
}

type readerOf []byte

func (b readerOf) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(b)) {
		return 0, os.ErrClosed
	}
	return copy(p, b[off:]), nil
}
