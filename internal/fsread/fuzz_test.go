package fsread

import (
	"bytes"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/stratalinux/strata/internal/fsmagic"
)

// walkLimits keep one fuzz input's walk short: a hostile image may
// legitimately describe huge (sparse) files or directories.
const (
	walkMaxEntries = 500
	walkMaxRead    = 1 << 20
	walkMaxDepth   = 12
)

// walkImage opens data as format f (or by detection when f is empty) and
// exercises every read path; it only checks that nothing panics or hangs.
func walkImage(t testing.TB, data []byte, f Format) {
	r := bytes.NewReader(data)
	var fsys XattrFS
	if f == "" || f == GPT {
		_, _ = fsmagic.Detect(r, int64(len(data)))
		img, err := Open(r, int64(len(data)), "x86-64")
		if err != nil {
			return
		}
		fsys = img.FS
	} else {
		var err error
		if fsys, err = openFS(f, r, int64(len(data))); err != nil {
			return
		}
	}
	walkFS(fsys)
}

func walkFS(fsys XattrFS) {
	budget := walkMaxEntries
	buf := make([]byte, 32<<10)
	var walk func(dir string, depth int)
	walk = func(dir string, depth int) {
		ents, err := fsys.ReadDir(dir)
		if err != nil || depth > walkMaxDepth {
			return
		}
		for _, e := range ents {
			if budget--; budget < 0 {
				return
			}
			p := path.Join(dir, e.Name())
			_, _ = e.Info()
			_, _ = fsys.Lstat(p)
			_, _ = fs.Stat(fsys, p)
			if names, err := fsys.(XattrLister).Listxattr(p); err == nil {
				for _, n := range names {
					_, _ = fsys.Getxattr(p, n)
				}
			}
			_, _ = fsys.Getxattr(p, "user.extension-release.strict")
			switch {
			case e.IsDir():
				walk(p, depth+1)
			case e.Type() == fs.ModeSymlink:
				_, _ = fsys.ReadLink(p)
			}
			file, err := fsys.Open(p)
			if err != nil {
				continue
			}
			_, _ = file.Stat()
			if e.Type().IsRegular() {
				_, _ = io.CopyBuffer(io.Discard, io.LimitReader(file, walkMaxRead), buf)
				if ra, ok := file.(io.ReaderAt); ok {
					fi, _ := file.Stat()
					if fi != nil && fi.Size() > 0 {
						_, _ = ra.ReadAt(buf[:100], fi.Size()/2)
						_, _ = ra.ReadAt(buf[:1], fi.Size()-1)
					}
				}
			} else {
				_, _ = file.Read(buf[:1])
			}
			file.Close()
		}
	}
	walk(".", 0)
	if f, err := fsys.Open("usr/lib/extension-release.d/extension-release.test"); err == nil {
		_, _ = io.Copy(io.Discard, io.LimitReader(f, 4096))
		f.Close()
	}
}

// seedImages builds small images of one format from the small tree.
func seedImages(t testing.TB, f Format) [][]byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src, treeOpts{small: true})
	dir := t.TempDir()
	var out [][]byte
	add := func(build func(img string)) {
		img := filepath.Join(dir, "img")
		os.Remove(img)
		build(img)
		b, err := os.ReadFile(img)
		must(t, err)
		out = append(out, b)
	}
	switch f {
	case Squashfs:
		needTools(t, "mksquashfs")
		for _, args := range [][]string{
			{"-comp", "gzip"}, {"-comp", "xz"}, {"-comp", "zstd"}, {"-comp", "lz4"},
			{"-comp", "gzip", "-b", "4096", "-tailends"}, {"-noI", "-noD", "-noF", "-noX"},
		} {
			add(func(img string) { mkSquashfs(t, src, img, args...) })
		}
	case Erofs:
		needTools(t, "mkfs.erofs")
		for _, args := range [][]string{
			nil, {"-Eforce-inode-extended"}, {"--chunksize=4096"}, {"-zlz4"}, {"-zlz4hc", "-Eztailpacking"},
			{"-zlz4", "-Elegacy-compress"}, {"-zlz4hc", "-C16384"},
		} {
			add(func(img string) { mkErofs(t, src, img, args...) })
		}
	case Ext4:
		needTools(t, "mke2fs")
		for _, args := range [][]string{
			{"-t", "ext4"}, {"-t", "ext4", "-O", "inline_data"}, {"-t", "ext4", "-O", "^extent,^64bit"}, {"-t", "ext4", "-I", "128"},
		} {
			add(func(img string) {
				run(t, "mke2fs", append(append([]string{"-q", "-F", "-d", src, "-b", "1024", "-N", "64", "-O", "^has_journal,^resize_inode"}, args...), img, "160K")...)
			})
		}
	}
	return out
}

func FuzzOpenSquashfs(f *testing.F) {
	for _, s := range seedImages(f, Squashfs) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { walkImage(t, data, Squashfs) })
}

func FuzzOpenErofs(f *testing.F) {
	for _, s := range seedImages(f, Erofs) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { walkImage(t, data, Erofs) })
}

func FuzzOpenExt4(f *testing.F) {
	for _, s := range seedImages(f, Ext4) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) { walkImage(t, data, Ext4) })
}

func FuzzReadGPT(f *testing.F) {
	sq := seedImages(f, Squashfs)[0]
	f.Add(writeGPT(512, 34, []gptPart{{typ: rootX64, uuid: rootX64, label: "root", data: sq}}))
	f.Add(writeGPT(512, 34, []gptPart{{typ: espType, uuid: rootX64, data: []byte("esp")}, {typ: LinuxGenericType, uuid: espType, data: sq}}))
	f.Add(writeGPT(4096, 6, []gptPart{{typ: usrArm64, uuid: rootX64, data: sq}, {typ: rootX64, uuid: espType, flags: GPTFlagNoAuto, data: sq}}))
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, err := ReadGPT(bytes.NewReader(data), int64(len(data)))
		if err == nil {
			for _, p := range parts {
				if p.Offset < 0 || p.Size <= 0 || p.Offset+p.Size > int64(len(data)) {
					t.Fatalf("partition %+v outside the %d-byte disk", p, len(data))
				}
			}
		}
		walkImage(t, data, GPT)
	})
}

// TestCorruptImages runs truncated and randomly damaged copies of small
// real images through the walk, as a quick deterministic complement to
// the fuzz targets.
func TestCorruptImages(t *testing.T) {
	for _, f := range []Format{Squashfs, Erofs, Ext4} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			seeds := seedImages(t, f)
			rng := rand.New(rand.NewPCG(1, 2))
			for _, seed := range seeds {
				walkImage(t, seed, f)
				for i := 1; i < 24; i++ {
					walkImage(t, seed[:len(seed)*i/24], f)
				}
				for range 150 {
					b := bytes.Clone(seed)
					for range 1 + rng.IntN(8) {
						b[rng.IntN(len(b))] = byte(rng.Uint32())
					}
					walkImage(t, b, f)
				}
			}
		})
	}
}
