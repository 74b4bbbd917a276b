package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stratalinux/strata/internal/testutil/fuzztest"
	"github.com/ulikunitz/xz"
)

type ent struct {
	name, body, link string
	typ              byte
	mode             int64
}

func mkTar(t testing.TB, ents []ent) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: e.mode, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	tw.Close()
	return b.Bytes()
}

func compress(t testing.TB, typ string, raw []byte) []byte {
	var b bytes.Buffer
	switch typ {
	case "tar":
		return raw
	case "tar.gz":
		w := gzip.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "tar.xz":
		w, _ := xz.NewWriter(&b)
		w.Write(raw)
		w.Close()
	case "tar.zst":
		w, _ := zstd.NewWriter(&b)
		w.Write(raw)
		w.Close()
	}
	return b.Bytes()
}

var good = []ent{
	{name: "pkg/", typ: tar.TypeDir},
	{name: "pkg/bin/tool", body: "#!/bin/sh\n", typ: tar.TypeReg, mode: 0o755},
	{name: "pkg/bin/alias", link: "tool", typ: tar.TypeSymlink},
	{name: "pkg/bin/hard", link: "pkg/bin/tool", typ: tar.TypeLink},
	{name: "./pkg/README", body: "hi", typ: tar.TypeReg},
}

func TestExtractFormats(t *testing.T) {
	for _, typ := range []string{"tar", "tar.gz", "tar.xz", "tar.zst"} {
		t.Run(typ, func(t *testing.T) {
			dst := t.TempDir()
			if err := ExtractTar(context.Background(), bytes.NewReader(compress(t, typ, mkTar(t, good))), typ, dst, Options{Strip: 1}); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(filepath.Join(dst, "bin/tool"))
			if err != nil || fi.Mode().Perm() != 0o755 {
				t.Fatalf("bin/tool: %v %v", err, fi)
			}
			if l, _ := os.Readlink(filepath.Join(dst, "bin/alias")); l != "tool" {
				t.Errorf("alias -> %q", l)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "bin/hard")); string(b) != "#!/bin/sh\n" {
				t.Errorf("hard link content %q", b)
			}
			if b, _ := os.ReadFile(filepath.Join(dst, "README")); string(b) != "hi" {
				t.Errorf("README %q", b)
			}
		})
	}
}

func TestZip(t *testing.T) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("dir/file")
	w.Write([]byte("zip!"))
	h := &zip.FileHeader{Name: "dir/link"}
	h.SetMode(os.ModeSymlink | 0o777)
	w, _ = zw.CreateHeader(h)
	w.Write([]byte("file"))
	zw.Close()
	dst := t.TempDir()
	if err := ExtractZip(context.Background(), bytes.NewReader(b.Bytes()), int64(b.Len()), dst, Options{}); err != nil {
		t.Fatal(err)
	}
	if c, _ := os.ReadFile(filepath.Join(dst, "dir/link")); string(c) != "zip!" {
		t.Errorf("via link: %q", c)
	}
	// An escaping zip symlink is refused.
	b.Reset()
	zw = zip.NewWriter(&b)
	h = &zip.FileHeader{Name: "evil"}
	h.SetMode(os.ModeSymlink | 0o777)
	w, _ = zw.CreateHeader(h)
	w.Write([]byte("../../etc"))
	zw.Close()
	err := ExtractZip(context.Background(), bytes.NewReader(b.Bytes()), int64(b.Len()), t.TempDir(), Options{})
	var ue *UnsafeError
	if !errors.As(err, &ue) {
		t.Errorf("escaping zip symlink: %v", err)
	}
}

func TestRefused(t *testing.T) {
	for name, ents := range map[string][]ent{
		"dotdot":        {{name: "a/../../x", body: "x", typ: tar.TypeReg}},
		"absolute":      {{name: "/etc/passwd", body: "x", typ: tar.TypeReg}},
		"device":        {{name: "dev/sda", typ: tar.TypeBlock}},
		"chardev":       {{name: "null", typ: tar.TypeChar}},
		"fifo":          {{name: "f", typ: tar.TypeFifo}},
		"abs symlink":   {{name: "l", link: "/etc/shadow", typ: tar.TypeSymlink}},
		"esc symlink":   {{name: "a/l", link: "../../x", typ: tar.TypeSymlink}},
		"esc hardlink":  {{name: "h", link: "../x", typ: tar.TypeLink}},
		"dup":           {{name: "d", body: "1", typ: tar.TypeReg}, {name: "d", body: "2", typ: tar.TypeReg}},
		"through link":  {{name: "l", link: ".", typ: tar.TypeSymlink}, {name: "l/../../x", body: "x", typ: tar.TypeReg}},
		"hardlink miss": {{name: "h", link: "nothere", typ: tar.TypeLink}},
	} {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dst := filepath.Join(parent, "dst")
			os.Mkdir(dst, 0o755)
			err := ExtractTar(context.Background(), bytes.NewReader(mkTar(t, ents)), "tar", dst, Options{})
			if err == nil {
				t.Fatal("accepted")
			}
			if ents, _ := os.ReadDir(parent); len(ents) != 1 {
				t.Errorf("wrote outside: %v", ents)
			}
		})
	}
}

func TestLimits(t *testing.T) {
	raw := mkTar(t, []ent{{name: "big", body: string(make([]byte, 2000)), typ: tar.TypeReg}})
	err := ExtractTar(context.Background(), bytes.NewReader(raw), "tar", t.TempDir(), Options{Limits: Limits{MaxBytes: 1000, MaxEntries: 10}})
	if err == nil {
		t.Error("size limit not enforced")
	}
}

func FuzzExtractTar(f *testing.F) {
	f.Add(mkTar(f, good), 0)
	f.Add(mkTar(f, []ent{{name: "a/../../x", body: "x", typ: tar.TypeReg}}), 1)
	f.Add(mkTar(f, []ent{{name: "l", link: "../x", typ: tar.TypeSymlink}, {name: "l/y", body: "y", typ: tar.TypeReg}}), 0)
	base := fuzztest.Scratch(f)
	f.Fuzz(func(t *testing.T, data []byte, strip int) {
		if strip < 0 || strip > 4 {
			strip = 0
		}
		parent, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dst := filepath.Join(parent, "dst")
		os.Mkdir(dst, 0o755)
		_ = ExtractTar(context.Background(), bytes.NewReader(data), "tar", dst, Options{Strip: strip, Limits: Limits{MaxBytes: 1 << 20, MaxEntries: 1000}})
		// Nothing may appear beside dst, and nothing inside may escape.
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("wrote outside the destination: %v", ents)
		}
		filepath.WalkDir(dst, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if d.Type()&os.ModeSymlink != 0 {
				l, _ := os.Readlink(p)
				rel, _ := filepath.Rel(dst, p)
				if LinkEscapes(filepath.ToSlash(rel), l) {
					t.Fatalf("escaping symlink %s -> %s", rel, l)
				}
			}
			if d.Type()&(os.ModeDevice|os.ModeNamedPipe|os.ModeCharDevice) != 0 {
				t.Fatalf("device %s", p)
			}
			return nil
		})
	})
}

func FuzzExtractZip(f *testing.F) {
	var b bytes.Buffer
	zw := zip.NewWriter(&b)
	w, _ := zw.Create("x/y")
	w.Write([]byte("z"))
	zw.Close()
	f.Add(b.Bytes())
	base := fuzztest.Scratch(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp(base, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dst := filepath.Join(parent, "dst")
		os.Mkdir(dst, 0o755)
		_ = ExtractZip(context.Background(), bytes.NewReader(data), int64(len(data)), dst, Options{Limits: Limits{MaxBytes: 1 << 20, MaxEntries: 1000}})
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Fatalf("wrote outside the destination: %v", ents)
		}
	})
}

// bomb returns a tar.gz stream of files entries of size bytes each, all
// zeros, made of concatenated gzip members (one compressed MiB of zeros
// repeated), so gigabytes of content cost kilobytes and no compression
// time. Also its compressed size.
func bomb(t testing.TB, files int, size int64) ([]byte, int64) {
	gz := func(p []byte) []byte {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		w.Write(p)
		w.Close()
		return b.Bytes()
	}
	const mib = 1 << 20
	if size%mib != 0 {
		t.Fatal("size must be whole MiB")
	}
	zeros := gz(make([]byte, mib))
	var out bytes.Buffer
	for i := 0; i < files; i++ {
		var hb bytes.Buffer
		tw := tar.NewWriter(&hb)
		if err := tw.WriteHeader(&tar.Header{Name: "f" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Typeflag: tar.TypeReg, Mode: 0o644, Size: size}); err != nil {
			t.Fatal(err)
		}
		tw.Flush()
		out.Write(gz(hb.Bytes()))
		for n := int64(0); n < size; n += mib {
			out.Write(zeros)
		}
	}
	out.Write(gz(make([]byte, 1024))) // end of archive
	return out.Bytes(), int64(out.Len())
}

// diskBytes sums the sizes of the regular files under dir.
func diskBytes(t *testing.T, dir string) (size, blocks int64) {
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			var st syscall.Stat_t
			if syscall.Lstat(p, &st) == nil {
				size += st.Size
				blocks += st.Blocks * 512
			}
		}
		return nil
	})
	return size, blocks
}

func TestGzipBombRatio(t *testing.T) {
	// 16 files of 64 MiB: 1 GiB of zeros in about 1 MB of gzip, unpacked
	// from a file as bake does, with the default limits.
	data, n := bomb(t, 16, 64<<20)
	if n > 2<<20 {
		t.Fatalf("bomb is %d bytes", n)
	}
	src := filepath.Join(t.TempDir(), "bomb.tar.gz")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	err := ExtractFile(context.Background(), src, "tar.gz", dst, Options{Hint: "raise --max-unpack-ratio"})
	if err == nil {
		t.Fatal("a 1 GiB bomb in 1 MB unpacked without error")
	}
	const budget = MinBudget // 50 × 1 MB is less than the floor
	size, blocks := diskBytes(t, dst)
	if size > budget || blocks > budget+1<<20 {
		t.Errorf("wrote %d bytes (%d on disk), budget %d", size, blocks, budget)
	}
	var le *LimitError
	if !errors.As(err, &le) || le.What != "bytes" || le.Limit != budget {
		t.Fatalf("bomb: %v", err)
	}
	if !strings.Contains(err.Error(), "50 times the") || !strings.Contains(err.Error(), "--max-unpack-ratio") {
		t.Errorf("error does not say what was exceeded and how to raise it: %v", err)
	}
	t.Logf("%d-byte bomb stopped after %d bytes: %v", n, size, err)
}

func TestHugeDeclaredSize(t *testing.T) {
	// One 10 GiB entry (and a sparse-style lie: a 1 TiB header on a
	// short body) is refused before a byte is written.
	data, n := bomb(t, 1, 10<<30)
	dst := t.TempDir()
	err := ExtractTar(context.Background(), bytes.NewReader(data), "tar.gz", dst, Options{InputSize: n})
	var le *LimitError
	if !errors.As(err, &le) {
		t.Fatalf("10 GiB entry: %v", err)
	}
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	tw.WriteHeader(&tar.Header{Name: "small", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "sparse", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1 << 40, PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "sparse", "GNU.sparse.realsize": "1099511627776"}})
	raw := hb.Bytes()
	err = ExtractTar(context.Background(), bytes.NewReader(raw), "tar", dst, Options{InputSize: int64(len(raw))})
	if !errors.As(err, &le) {
		t.Fatalf("1 TiB sparse entry: %v", err)
	}
	if size, _ := diskBytes(t, dst); size > 1 {
		t.Errorf("wrote %d bytes", size)
	}
	// Overflow: a second entry of MaxInt64 bytes after a first one.
	hb.Reset()
	tw = tar.NewWriter(&hb)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	tw.Flush()
	raw = append(hb.Bytes(), mkHeader(t, "b", 1<<63-1)...)
	if err := ExtractTar(context.Background(), bytes.NewReader(raw), "tar", t.TempDir(), Options{}); !errors.As(err, &le) {
		t.Errorf("MaxInt64 entry after a first: %v", err)
	}
}

// mkHeader returns a raw tar header block for a regular file of size
// bytes (base-256 encoded when large) with no body.
func mkHeader(t *testing.T, name string, size int64) []byte {
	var hb bytes.Buffer
	tw := tar.NewWriter(&hb)
	if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: size, Format: tar.FormatGNU}); err != nil {
		t.Fatal(err)
	}
	return hb.Bytes()[:512]
}

func TestBudget(t *testing.T) {
	const gib = 1 << 30
	for _, c := range []struct {
		name string
		l    Limits
		in   int64
		fs   FreeSpace
		want int64
		why  string
	}{
		{"ratio", DefaultLimits, 100 << 20, FreeSpace{Avail: 100 * gib, Total: 200 * gib, Dir: "/w"}, 5000 << 20, "50 times"},
		{"small input gets the floor", DefaultLimits, 1 << 10, FreeSpace{Avail: 100 * gib, Total: 200 * gib}, MinBudget, "50 times"},
		{"unknown input", DefaultLimits, 0, FreeSpace{Avail: 100 * gib, Total: 200 * gib}, 16 * gib, "maximum"},
		{"free space less 1 GiB", DefaultLimits, 0, FreeSpace{Avail: 3 * gib, Total: 200 * gib, Dir: "/w"}, 2 * gib, "free space on /w"},
		{"small fs: 5% reserve", DefaultLimits, 0, FreeSpace{Avail: 10 << 20, Total: 100 << 20}, 5 << 20, "free space"},
		{"full fs", DefaultLimits, 0, FreeSpace{Avail: 1 << 20, Total: 200 * gib}, 0, "free space"},
		{"no ratio", Limits{MaxBytes: 4 * gib, MaxRatio: -1}, 1, FreeSpace{Avail: 100 * gib, Total: 200 * gib}, 4 * gib, "configured"},
		{"huge input", DefaultLimits, 1 << 62, FreeSpace{}, 16 * gib, "maximum"},
	} {
		got, why := Budget(c.l, c.in, c.fs)
		if got != c.want || !strings.Contains(why, c.why) {
			t.Errorf("%s: budget %d (%s), want %d (%s)", c.name, got, why, c.want, c.why)
		}
	}
}

func TestEntryLimit(t *testing.T) {
	var ents []ent
	for i := 0; i < 20; i++ {
		ents = append(ents, ent{name: "d" + string(rune('a'+i)) + "/", typ: tar.TypeDir})
	}
	err := ExtractTar(context.Background(), bytes.NewReader(mkTar(t, ents)), "tar", t.TempDir(), Options{Limits: Limits{MaxBytes: 1 << 20, MaxEntries: 10}, Hint: "raise --max-entries"})
	var le *LimitError
	if !errors.As(err, &le) || le.What != "entries" || !strings.Contains(err.Error(), "more than 10 entries") {
		t.Errorf("entry limit: %v", err)
	}
}
