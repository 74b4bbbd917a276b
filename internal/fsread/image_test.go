package fsread

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// sharedTree builds the full test tree once per test binary run; the
// image builders only read it.
var (
	treeOnce sync.Once
	treeDir  string
	treeErr  error
)

func testTree(t *testing.T) string {
	t.Helper()
	treeOnce.Do(func() {
		treeDir, treeErr = os.MkdirTemp("", "fsread-tree-")
		if treeErr != nil {
			return
		}
		src := filepath.Join(treeDir, "src")
		must(t, os.Mkdir(src, 0o755))
		buildTree(t, src, treeOpts{})
	})
	must(t, treeErr)
	return filepath.Join(treeDir, "src")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if treeDir != "" {
		os.RemoveAll(treeDir)
	}
	os.Exit(code)
}

type variant struct {
	name string
	args []string
	opts compareOpts
}

func mkSquashfs(t testing.TB, src, img string, args ...string) {
	t.Helper()
	run(t, "mksquashfs", append([]string{src, img, "-noappend", "-quiet", "-no-progress"}, args...)...)
}

func mkErofs(t testing.TB, src, img string, args ...string) {
	t.Helper()
	run(t, "mkfs.erofs", append(append([]string{"--quiet"}, args...), img, src)...)
}

func mkExt4(t testing.TB, src, img, size string, args ...string) {
	t.Helper()
	run(t, "mke2fs", append(append([]string{"-q", "-F", "-d", src}, args...), img, size)...)
	// e2fsck -D indexes directories: large ones become htrees.
	out, err := exec.Command("e2fsck", "-f", "-y", "-D", img).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		t.Fatalf("e2fsck -fyD %s: %v\n%s", img, err, out)
	}
}

func checkImage(t *testing.T, src, path string, want Format, o compareOpts) *Image {
	t.Helper()
	img := openImage(t, path)
	if img.Format != want || img.FSFormat != want || img.Partition != nil {
		t.Fatalf("Open: format %s/%s partition %v, want %s", img.Format, img.FSFormat, img.Partition, want)
	}
	compareTree(t, src, img.FS, o)
	checkLinks(t, src, img.FS)
	// io/fs conformance, on subtrees without dangling links and
	// special files (which TestFS expects to be openable and readable).
	for _, dir := range []string{"usr/bin", "usr/share/sizes", "usr/share/nested"} {
		sub, err := fs.Sub(img.FS, dir)
		must(t, err)
		ents, err := os.ReadDir(filepath.Join(src, dir))
		must(t, err)
		var expect []string
		for _, e := range ents {
			expect = append(expect, e.Name())
		}
		if err := fstest.TestFS(sub, expect...); err != nil {
			t.Errorf("fstest.TestFS(%s): %v", dir, err)
		}
	}
	return img
}

// checkLinks checks link following: inside the image, never out of it.
func checkLinks(t *testing.T, src string, fsys XattrFS) {
	t.Helper()
	want, err := os.ReadFile(filepath.Join(src, "usr/bin/tool"))
	must(t, err)
	for _, p := range []string{"usr/lib/abs-link", "usr/lib/escape/tool", "usr/share/dirlink/abs-link", "usr/lib/self/self/abs-link"} {
		got, err := fs.ReadFile(fsys, p)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("ReadFile(%q): %d bytes, %v; want the tool's %d bytes", p, len(got), err, len(want))
		}
	}
	if fi, err := fs.Stat(fsys, "usr/lib/rel-link"); err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
		t.Errorf("Stat(rel-link) = %v, %v", fi, err)
	}
	if fi, err := fsys.Lstat("usr/lib/rel-link"); err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(rel-link) = %v, %v", fi, err)
	}
	if _, err := fsys.Open("usr/lib/loop-a"); err == nil || !strings.Contains(err.Error(), "too many levels of symbolic links") {
		t.Errorf("Open(loop-a) = %v, want too many links", err)
	}
	if _, err := fsys.Open("usr/lib/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(dangling) = %v, want not exist", err)
	}
	if _, err := fsys.Open("../etc"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open(../etc) = %v, want invalid", err)
	}
	if _, err := fsys.ReadLink("usr/bin/tool"); err == nil {
		t.Error("ReadLink on a regular file succeeded")
	}
	if ents, err := fsys.ReadDir("usr/share/dirlink"); err != nil || len(ents) == 0 {
		t.Errorf("ReadDir through a symlink: %d entries, %v", len(ents), err)
	}
	rel, err := fs.ReadFile(fsys, "usr/lib/extension-release.d/extension-release.test")
	if err != nil || !strings.HasPrefix(string(rel), "ID=_any") {
		t.Errorf("extension-release: %q, %v", rel, err)
	}
	v, err := fsys.Getxattr("usr/lib/extension-release.d/extension-release.test", "user.extension-release.strict")
	if err != nil || string(v) != "0" {
		t.Errorf("user.extension-release.strict = %q, %v", v, err)
	}
	f, err := fsys.Open("usr/share/fifo")
	if err != nil {
		t.Errorf("Open(fifo): %v", err)
	} else {
		if _, err := f.Read(make([]byte, 1)); err == nil {
			t.Error("reading a fifo in an image succeeded")
		}
		f.Close()
	}
	// Directory reads in pieces.
	d, err := fsys.Open("usr/share/many")
	must(t, err)
	total := 0
	for {
		ents, err := d.(fs.ReadDirFile).ReadDir(100)
		total += len(ents)
		if err == io.EOF {
			break
		}
		must(t, err)
	}
	if total != 1500 {
		t.Errorf("ReadDir(100) loop saw %d entries, want 1500", total)
	}
}

func TestSquashfs(t *testing.T) {
	needTools(t, "mksquashfs")
	src := testTree(t)
	for _, v := range []variant{
		{name: "gzip", args: []string{"-comp", "gzip"}},
		{name: "xz", args: []string{"-comp", "xz"}},
		{name: "zstd", args: []string{"-comp", "zstd"}},
		{name: "lz4", args: []string{"-comp", "lz4"}},
		{name: "lz4hc", args: []string{"-comp", "lz4", "-Xhc"}},
		{name: "gzip-tailends-4k", args: []string{"-comp", "gzip", "-tailends", "-b", "4096"}},
		{name: "xz-1m-nofragments", args: []string{"-comp", "xz", "-b", "1M", "-no-fragments"}},
		{name: "uncompressed", args: []string{"-noI", "-noD", "-noF", "-noX"}},
		{name: "zstd-always-fragments", args: []string{"-comp", "zstd", "-always-use-fragments", "-no-duplicates"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "img.raw")
			mkSquashfs(t, src, img, v.args...)
			im := checkImage(t, src, img, Squashfs, v.opts)
			checkSquashfsIndex(t, im)
		})
	}
}

// checkSquashfsIndex looks every entry of the large directory up through
// the directory index, which the name cache otherwise makes unnecessary
// for directories of this size.
func checkSquashfsIndex(t *testing.T, im *Image) {
	t.Helper()
	fsys := im.FS.(*fsys)
	s := fsys.b.(*squashfs)
	d, err := fsys.walk("usr/share/many", true)
	must(t, err)
	dn := d.(*sqNode)
	if dn.idxCount == 0 {
		t.Fatalf("usr/share/many has no directory index")
	}
	ents, err := s.readDir(dn)
	must(t, err)
	for _, e := range ents {
		ref, ok, err := s.findIndexed(dn, e.name)
		if err != nil || !ok || ref != e.n.key() {
			t.Fatalf("findIndexed(%q) = %#x, %v, %v; want %#x", e.name, ref, ok, err, e.n.key())
		}
	}
	for _, name := range []string{"", "a", "entry-with-a-longer-name-0750x", "zzz"} {
		if _, ok, err := s.findIndexed(dn, name); ok || err != nil {
			t.Errorf("findIndexed(%q) = %v, %v; want not found", name, ok, err)
		}
	}
}

func TestErofs(t *testing.T) {
	needTools(t, "mkfs.erofs")
	src := testTree(t)
	for _, v := range []variant{
		{name: "plain"},
		{name: "noinline", args: []string{"-Enoinline_data"}},
		{name: "extended-inodes", args: []string{"-Eforce-inode-extended"}},
		{name: "compact-inodes", args: []string{"-Eforce-inode-compact"}, opts: compareOpts{noMtime: true}},
		{name: "chunks-blockmap", args: []string{"--chunksize=4096", "-Eforce-inode-blockmap"}},
		{name: "chunks-indexes", args: []string{"--chunksize=8192", "-Eforce-chunk-indexes"}},
		{name: "lz4", args: []string{"-zlz4"}},
		{name: "lz4hc", args: []string{"-zlz4hc"}},
		{name: "lz4hc-9", args: []string{"-zlz4hc,9"}},
		{name: "lz4-legacy", args: []string{"-zlz4", "-Elegacy-compress"}},
		{name: "lz4hc-legacy-bigpcluster", args: []string{"-zlz4hc", "-Elegacy-compress", "-C32768"}},
		{name: "lz4hc-ztailpacking", args: []string{"-zlz4hc", "-Eztailpacking"}},
		{name: "lz4hc-bigpcluster", args: []string{"-zlz4hc", "-C65536"}},
		{name: "lz4-bigpcluster-ztailpacking", args: []string{"-zlz4", "-C16384", "-Eztailpacking"}},
		{name: "lz4-shared-xattrs", args: []string{"-zlz4", "-x1"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "img.raw")
			mkErofs(t, src, img, v.args...)
			checkImage(t, src, img, Erofs, v.opts)
		})
	}
}

func TestExt4(t *testing.T) {
	needTools(t, "mke2fs", "e2fsck")
	src := testTree(t)
	lf := compareOpts{extraRoot: []string{"lost+found"}}
	for _, v := range []variant{
		{name: "ext4-4k", args: []string{"-t", "ext4", "-b", "4096"}, opts: lf},
		{name: "ext4-1k", args: []string{"-t", "ext4", "-b", "1024"}, opts: lf},
		{name: "ext4-64bit-flexbg", args: []string{"-t", "ext4", "-O", "64bit,flex_bg", "-G", "4"}, opts: lf},
		{name: "ext4-no-extents", args: []string{"-t", "ext4", "-O", "^extent,^64bit"}, opts: lf},
		// mke2fs 1.47.0 -d with inline_data drops a sparse file's
		// trailing hole from its size (debugfs shows the same size).
		{name: "ext4-inline-data", args: []string{"-t", "ext4", "-O", "inline_data"},
			opts: compareOpts{extraRoot: lf.extraRoot, skip: []string{"usr/lib/sparse"}}},
		{name: "ext4-128-byte-inodes", args: []string{"-t", "ext4", "-I", "128"}, opts: lf},
		{name: "ext4-no-dir-index", args: []string{"-t", "ext4", "-O", "^dir_index"}, opts: lf},
		{name: "ext2", args: []string{"-t", "ext2"}, opts: lf},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			img := filepath.Join(t.TempDir(), "img.raw")
			mkExt4(t, src, img, "64M", v.args...)
			checkImage(t, src, img, Ext4, v.opts)
		})
	}
}

// TestDeviceNodes covers block and character devices, which only root
// can create.
func TestDeviceNodes(t *testing.T) {
	privtest.RequireRoot(t)
	needTools(t, "mksquashfs", "mkfs.erofs", "mke2fs", "e2fsck")
	src := filepath.Join(t.TempDir(), "src")
	buildTree(t, src, treeOpts{devices: true, small: true})
	dir := t.TempDir()
	sq, er, ex := filepath.Join(dir, "sq"), filepath.Join(dir, "er"), filepath.Join(dir, "ex")
	mkSquashfs(t, src, sq, "-comp", "zstd")
	mkErofs(t, src, er, "-zlz4hc")
	mkExt4(t, src, ex, "8M")
	for _, c := range []struct {
		path string
		f    Format
		o    compareOpts
	}{{sq, Squashfs, compareOpts{}}, {er, Erofs, compareOpts{}}, {ex, Ext4, compareOpts{extraRoot: []string{"lost+found"}}}} {
		t.Run(string(c.f), func(t *testing.T) {
			img := openImage(t, c.path)
			compareTree(t, src, img.FS, c.o)
			fi, err := img.FS.Lstat("dev/bigminor")
			must(t, err)
			st := fi.Sys().(*Stat)
			if st.Major() != 240 || st.Minor() != 70000 || fi.Mode()&fs.ModeCharDevice == 0 {
				t.Errorf("dev/bigminor: %d:%d %v", st.Major(), st.Minor(), fi.Mode())
			}
		})
	}
}

func TestSquashfsLZO(t *testing.T) {
	needTools(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	img := filepath.Join(t.TempDir(), "img")
	if out, err := exec.Command("mksquashfs", src, img, "-comp", "lzo", "-quiet", "-no-progress").CombinedOutput(); err != nil {
		t.Skipf("mksquashfs cannot write lzo: %v\n%s", err, out)
	}
	f, err := os.Open(img)
	must(t, err)
	defer f.Close()
	st, _ := f.Stat()
	_, err = Open(f, st.Size(), "x86-64")
	if err == nil || !strings.Contains(err.Error(), "lzo-compressed squashfs is not supported") || !strings.Contains(err.Error(), img) {
		t.Errorf("Open(lzo) = %v", err)
	}
}

// TestSquashfsReadSpeed reads a 50 MB squashfs; it must take well under
// a second (without the race detector, which slows everything down).
func TestSquashfsReadSpeed(t *testing.T) {
	needTools(t, "mksquashfs")
	src := filepath.Join(t.TempDir(), "src")
	for i := range 46 {
		writeFile(t, filepath.Join(src, "random", string(rune('a'+i%26))+string(rune('a'+i/26))), pseudoRandom(uint64(100+i), 1<<20), 0o644)
	}
	for i := range 14 {
		writeFile(t, filepath.Join(src, "text", string(rune('a'+i))), compressible(uint64(200+i), 1<<20), 0o644)
	}
	img := filepath.Join(t.TempDir(), "img")
	mkSquashfs(t, src, img, "-comp", "gzip")
	st, err := os.Stat(img)
	must(t, err)
	if st.Size() < 45<<20 {
		t.Fatalf("image is only %d bytes", st.Size())
	}
	data, err := os.ReadFile(img)
	must(t, err)
	start := time.Now()
	im, err := Open(bytes.NewReader(data), int64(len(data)), "x86-64")
	must(t, err)
	var total int64
	err = fs.WalkDir(im.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := im.FS.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		n, err := io.Copy(io.Discard, f)
		total += n
		return err
	})
	must(t, err)
	elapsed := time.Since(start)
	t.Logf("read %d bytes of file data from a %d-byte squashfs in %v", total, st.Size(), elapsed)
	if total != 60<<20 {
		t.Errorf("read %d bytes, want %d", total, 60<<20)
	}
	if !raceEnabled && elapsed > 700*time.Millisecond {
		t.Errorf("reading took %v, want well under a second", elapsed)
	}
}
