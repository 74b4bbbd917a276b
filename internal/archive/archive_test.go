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
	"testing"

	"github.com/klauspost/compress/zstd"
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
	base := f.TempDir()
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
				if linkEscapes(filepath.ToSlash(rel), l) {
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
	base := f.TempDir()
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
