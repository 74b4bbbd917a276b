package fsmagic

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// realImages builds one image of each file system with fsimage (the
// bakery's writers) from a small tree, and returns their bytes by kind.
func realImages(t *testing.T) map[Kind][]byte {
	t.Helper()
	privtest.RequireTools(t, "mksquashfs", "mkfs.erofs", "mkfs.ext4")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(filepath.Join(src, "usr", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Incompressible, so that every image is well over 64 KiB.
	noise := make([]byte, 256<<10)
	_, _ = rand.NewChaCha8([32]byte{1}).Read(noise)
	if err := os.WriteFile(filepath.Join(src, "usr", "lib", "noise"), noise, 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[Kind][]byte{}
	for _, k := range []Kind{Squashfs, Erofs, Ext4} {
		w, err := fsimage.New(string(k))
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, string(k)+".raw")
		if err := w.Write(context.Background(), src, dst, fsimage.Options{Epoch: 1, Seed: "fsmagic"}); err != nil {
			t.Fatalf("write %s: %v", k, err)
		}
		b, err := os.ReadFile(dst)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// gptDisk writes a GPT disk with internal/gpt holding fsys in one
// partition.
func gptDisk(t *testing.T, fsys []byte) []byte {
	t.Helper()
	const size = 4 << 20
	first, _, err := gpt.UsableRange(size)
	if err != nil {
		t.Fatal(err)
	}
	sectors := (uint64(len(fsys)) + gpt.SectorSize - 1) / gpt.SectorSize
	tb := &gpt.Table{Partitions: []gpt.Partition{{
		Index: 1, Type: gpt.MustParseGUID("4f68bce3-e8cd-4db1-96e7-fbcaf984b709"),
		UUID: gpt.MustParseGUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"), Name: "root-x86-64",
		FirstLBA: first, LastLBA: first + sectors - 1,
	}}}
	disk := make(wbuf, size)
	if err := tb.Write(disk, size); err != nil {
		t.Fatal(err)
	}
	copy(disk[first*gpt.SectorSize:], fsys)
	return disk
}

type wbuf []byte

func (w wbuf) WriteAt(p []byte, off int64) (int, error) { return copy(w[off:], p), nil }

func TestDetectRealImages(t *testing.T) {
	imgs := realImages(t)
	imgs[GPT] = gptDisk(t, imgs[Squashfs])
	for _, k := range []Kind{Squashfs, Erofs, Ext4, GPT} {
		data := imgs[k]
		got, err := Detect(bytes.NewReader(data), int64(len(data)))
		if err != nil || got != k {
			t.Errorf("%s image: Detect = %q, %v", k, got, err)
		}
		if err := CheckComplete(bytes.NewReader(data), got, int64(len(data))); err != nil {
			t.Errorf("%s image: CheckComplete: %v", k, err)
		}
		if got.IsFilesystem() != (k != GPT) {
			t.Errorf("%s: IsFilesystem = %v", k, got.IsFilesystem())
		}
	}
}

func TestCheckCompleteTruncated(t *testing.T) {
	for k, data := range realImages(t) {
		short := data[:64<<10]
		err := CheckComplete(bytes.NewReader(short), k, int64(len(short)))
		if err == nil || !strings.Contains(err.Error(), "image is truncated: its "+string(k)+" superblock needs") {
			t.Errorf("%s cut to 64 KiB: CheckComplete = %v", k, err)
		}
	}
}

func TestDetectTable(t *testing.T) {
	at := func(size, off int, b ...byte) []byte {
		d := make([]byte, size)
		copy(d[off:], b)
		return d
	}
	for _, c := range []struct {
		name string
		data []byte
		want Kind
	}{
		{"squashfs", append([]byte("hsqs"), make([]byte, 100)...), Squashfs},
		{"erofs", at(2048, 1024, 0xE2, 0xE1, 0xF5, 0xE0), Erofs},
		{"ext4", at(2048, 1024+56, 0x53, 0xEF), Ext4},
		{"gpt-512", at(4096, 512, []byte("EFI PART")...), GPT},
		{"gpt-4096", at(8192, 4096, []byte("EFI PART")...), GPT},
		// LBA 1 of 4096-byte sectors must be whole to count.
		{"gpt-4096-short", at(8000, 4096, []byte("EFI PART")...), Unknown},
		{"erofs-cut", at(1027, 1024, 0xE2, 0xE1, 0xF5), Unknown},
		{"zeros", make([]byte, 5000), Unknown},
		{"text", []byte("hello world, not an image"), Unknown},
		{"empty", nil, Unknown},
	} {
		got, err := Detect(bytes.NewReader(c.data), int64(len(c.data)))
		if got != c.want {
			t.Errorf("%s: Detect = %q, %v; want %q", c.name, got, err, c.want)
		}
		var ue *UnknownError
		if (c.want == Unknown) != errors.As(err, &ue) {
			t.Errorf("%s: error %v", c.name, err)
		}
	}
	_, err := Detect(bytes.NewReader([]byte("hello")), 5)
	if want := `unknown image format: 5 bytes starting with "hello" (68 65 6c 6c 6f); expected squashfs, erofs, ext4 or a GPT disk image`; err == nil || err.Error() != want {
		t.Errorf("Detect error = %v, want %s", err, want)
	}
	if _, err := Detect(bytes.NewReader(nil), -1); err == nil {
		t.Error("negative size accepted")
	}
	// A reader shorter than the size it claims is a read error, not a kind.
	if _, err := Detect(bytes.NewReader([]byte("hs")), 4096); err == nil || errors.As(err, new(*UnknownError)) {
		t.Errorf("short reader: %v", err)
	}
}

func FuzzDetect(f *testing.F) {
	f.Add([]byte("hsqs"))
	f.Add(make([]byte, 4096))
	f.Fuzz(func(t *testing.T, data []byte) {
		k, err := Detect(bytes.NewReader(data), int64(len(data)))
		if (k == Unknown) != (err != nil) {
			t.Fatalf("Detect = %q, %v", k, err)
		}
		_ = CheckComplete(bytes.NewReader(data), k, int64(len(data)))
	})
}
