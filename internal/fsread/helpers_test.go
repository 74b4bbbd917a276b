package fsread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// treeOpts selects optional parts of the test tree.
type treeOpts struct {
	devices bool // block and character devices (needs root)
	small   bool // a small tree for fuzz seeds
}

// pseudoRandom returns n deterministic incompressible bytes.
func pseudoRandom(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// compressible returns n bytes of text that compresses well but not
// trivially.
func compressible(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	words := []string{"system", "extension", "image", "squashfs", "erofs", "ext4", "strata", "usr", "lib", "\n"}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	must(t, os.WriteFile(path, data, mode))
	must(t, os.Chmod(path, mode))
}

// buildTree makes the source tree the image tests compare against.
func buildTree(t testing.TB, root string, o treeOpts) {
	t.Helper()
	p := func(s string) string { return filepath.Join(root, s) }
	rel := p("usr/lib/extension-release.d/extension-release.test")
	writeFile(t, rel, []byte("ID=_any\nSYSEXT_LEVEL=1.0\n"), 0o644)
	must(t, unix.Setxattr(rel, "user.extension-release.strict", []byte("0"), 0))
	writeFile(t, p("usr/bin/tool"), compressible(1, 3000), 0o755)
	must(t, os.Link(p("usr/bin/tool"), p("usr/bin/tool-hardlink")))
	writeFile(t, p("usr/bin/suid"), []byte("#!/bin/sh\necho hi\n"), 0o755|os.ModeSetuid)
	must(t, os.Chmod(p("usr/bin/suid"), 0o4755|os.ModeSetuid))
	writeFile(t, p("usr/share/empty"), nil, 0o644)
	must(t, os.Symlink("/usr/bin/tool", p("usr/lib/abs-link")))
	must(t, os.Symlink("../share/empty", p("usr/lib/rel-link")))
	must(t, os.Symlink("/nonexistent/target", p("usr/lib/dangling")))
	must(t, os.Symlink(strings.Repeat("long-target-component/", 9)+"end", p("usr/lib/long-link")))
	must(t, os.Symlink("../../usr/lib", p("usr/share/dirlink")))
	must(t, unix.Mkfifo(p("usr/share/fifo"), 0o600))
	must(t, unix.Setxattr(p("usr/share"), "user.dir-attr", []byte("directory value"), 0))
	must(t, unix.Setxattr(p("usr/bin/tool"), "user.big", bytes.Repeat([]byte("x"), 700), 0))
	must(t, unix.Setxattr(p("usr/bin/tool"), "user.small", []byte("v"), 0))
	must(t, os.MkdirAll(p("usr/share/sticky"), 0o755))
	must(t, os.Chmod(p("usr/share/sticky"), 0o1777|os.ModeSticky))
	if os.Geteuid() == 0 {
		must(t, os.Lchown(p("usr/bin/tool"), 1234, 5678))
		must(t, os.Lchown(p("usr/lib/abs-link"), 4321, 8765))
	}
	if o.devices {
		must(t, os.MkdirAll(p("dev"), 0o755))
		must(t, unix.Mknod(p("dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mknod(p("dev/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
		must(t, unix.Mknod(p("dev/bigminor"), unix.S_IFCHR|0o600, int(unix.Mkdev(240, 70000))))
	}
	must(t, makeSocket(p("usr/share/socket")))
	// Links that try to leave the image or loop.
	must(t, os.Symlink("../../../../../../../usr/bin", p("usr/lib/escape")))
	must(t, os.Symlink("loop-b", p("usr/lib/loop-a")))
	must(t, os.Symlink("loop-a", p("usr/lib/loop-b")))
	must(t, os.Symlink(".", p("usr/lib/self")))
	if o.small {
		writeFile(t, p("usr/share/data"), pseudoRandom(2, 5000), 0o644)
		return
	}
	for i, n := range []int{1, 4095, 4096, 4097, 65536, 131071, 131072, 131073, 300000} {
		writeFile(t, p(fmt.Sprintf("usr/share/sizes/s%d", n)), pseudoRandom(uint64(10+i), n), 0o644)
		writeFile(t, p(fmt.Sprintf("usr/share/sizes/c%d", n)), compressible(uint64(10+i), n), 0o644)
	}
	big := append(pseudoRandom(3, 1<<20), compressible(4, 1<<20+12345)...)
	writeFile(t, p("usr/lib/big"), big, 0o644)
	// A sparse file: data, a 3 MiB hole, data, and a trailing hole.
	sp, err := os.Create(p("usr/lib/sparse"))
	must(t, err)
	_, err = sp.WriteAt(pseudoRandom(5, 10000), 0)
	must(t, err)
	_, err = sp.WriteAt(compressible(6, 5000), 3<<20+10000)
	must(t, err)
	must(t, sp.Truncate(5<<20))
	must(t, sp.Close())
	for i := range 1500 {
		name := fmt.Sprintf("usr/share/many/entry-with-a-longer-name-%04d", i)
		var data []byte
		if i%7 != 0 {
			data = []byte(fmt.Sprintf("file %d\n", i))
		}
		writeFile(t, p(name), data, 0o644)
	}
	writeFile(t, p("usr/share/nested/a/b/c/d/e/file"), []byte("deep\n"), 0o600)
	must(t, os.MkdirAll(p("usr/share/emptydir"), 0o700))
}

// makeSocket creates a unix socket file at path (the file stays after
// the socket is closed).
func makeSocket(path string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Bind(fd, &unix.SockaddrUnix{Name: path})
}

// run runs a tool, failing the test with its output on error.
func run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// openImage opens an image file with Open.
func openImage(t testing.TB, path string) *Image {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	must(t, err)
	img, err := Open(f, st.Size(), "x86-64")
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	return img
}

// compareOpts describes what a format legitimately does differently.
type compareOpts struct {
	extraRoot []string // entries the tool adds at the root (lost+found)
	noMtime   bool     // the format variant keeps no per-file mtime
	// skip lists paths whose source the image tool is known to get
	// wrong, so the image cannot match.
	skip []string
}

// compareTree checks every file of src against the image: type, mode,
// owner, link count, mtime, contents, symlink targets, xattrs, device
// numbers, and directory listings.
func compareTree(t *testing.T, src string, fsys XattrFS, o compareOpts) {
	t.Helper()
	inodes := map[uint64]string{} // source ino -> path
	imgIno := map[string]uint64{}
	err := filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, path)
		name := filepath.ToSlash(rel)
		if slices.Contains(o.skip, name) {
			return nil
		}
		var want unix.Stat_t
		if err := unix.Lstat(path, &want); err != nil {
			return err
		}
		fi, err := fsys.Lstat(name)
		if err != nil {
			t.Errorf("Lstat(%q): %v", name, err)
			return nil
		}
		st := fi.Sys().(*Stat)
		if st.Mode != want.Mode {
			t.Errorf("%s: mode %#o, want %#o", name, st.Mode, want.Mode)
		}
		if fm := fi.Mode(); fm.Type() != d.Type() {
			t.Errorf("%s: fs.FileMode type %v, want %v", name, fm.Type(), d.Type())
		}
		if st.Uid != want.Uid || st.Gid != want.Gid {
			t.Errorf("%s: owner %d:%d, want %d:%d", name, st.Uid, st.Gid, want.Uid, want.Gid)
		}
		if !o.noMtime && name != "." && st.Mtime.Unix() != want.Mtim.Sec {
			t.Errorf("%s: mtime %v, want %d", name, st.Mtime, want.Mtim.Sec)
		}
		if want.Mode&unix.S_IFMT != unix.S_IFDIR && st.Nlink != uint32(want.Nlink) {
			t.Errorf("%s: nlink %d, want %d", name, st.Nlink, want.Nlink)
		}
		if prev, ok := inodes[want.Ino]; ok {
			if imgIno[prev] != st.Ino {
				t.Errorf("%s: hard link to %s has inode %d, want %d", name, prev, st.Ino, imgIno[prev])
			}
		}
		inodes[want.Ino] = name
		imgIno[name] = st.Ino
		if fi.Name() != filepath.Base(path) && name != "." {
			t.Errorf("%s: Name() %q", name, fi.Name())
		}
		switch want.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			compareFile(t, path, name, fsys, fi)
		case unix.S_IFLNK:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			got, err := fsys.ReadLink(name)
			if err != nil || got != target {
				t.Errorf("ReadLink(%q) = %q, %v; want %q", name, got, err, target)
			}
			if fi.Size() != int64(len(target)) {
				t.Errorf("%s: symlink size %d, want %d", name, fi.Size(), len(target))
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if st.Rdev != want.Rdev || st.Major() != unix.Major(want.Rdev) || st.Minor() != unix.Minor(want.Rdev) {
				t.Errorf("%s: rdev %#x (%d:%d), want %#x", name, st.Rdev, st.Major(), st.Minor(), want.Rdev)
			}
		case unix.S_IFDIR:
			compareDir(t, path, name, fsys, o)
		}
		compareXattrs(t, path, name, fsys)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func compareFile(t *testing.T, path, name string, fsys XattrFS, fi fs.FileInfo) {
	t.Helper()
	want, err := os.ReadFile(path)
	must(t, err)
	if fi.Size() != int64(len(want)) {
		t.Errorf("%s: size %d, want %d", name, fi.Size(), len(want))
	}
	got, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Errorf("ReadFile(%q): %v", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		i := 0
		for i < len(got) && i < len(want) && got[i] == want[i] {
			i++
		}
		t.Errorf("%s: contents differ at byte %d (got %d bytes, want %d)", name, i, len(got), len(want))
		return
	}
	// Random-access reads through the opened file.
	f, err := fsys.Open(name)
	must(t, err)
	defer f.Close()
	ra := f.(io.ReaderAt)
	for _, off := range []int64{0, 1, 4095, 4096, 131071, 131072, int64(len(want)) / 2, int64(len(want)) - 1} {
		if off < 0 || off >= int64(len(want)) {
			continue
		}
		buf := make([]byte, min(70000, len(want)-int(off)))
		if n, err := ra.ReadAt(buf, off); err != nil && !(err == io.EOF && n == len(buf)) {
			t.Errorf("%s: ReadAt(%d): %v", name, off, err)
		} else if !bytes.Equal(buf, want[off:off+int64(len(buf))]) {
			t.Errorf("%s: ReadAt(%d) differs", name, off)
		}
	}
}

func compareDir(t *testing.T, path, name string, fsys XattrFS, o compareOpts) {
	t.Helper()
	want, err := os.ReadDir(path)
	must(t, err)
	got, err := fsys.ReadDir(name)
	if err != nil {
		t.Errorf("ReadDir(%q): %v", name, err)
		return
	}
	var wn, gn []string
	for _, e := range want {
		wn = append(wn, e.Name())
	}
	if name == "." {
		wn = append(wn, o.extraRoot...)
		slices.Sort(wn)
	}
	for _, e := range got {
		gn = append(gn, e.Name())
		if wfi, err := os.Lstat(filepath.Join(path, e.Name())); err == nil && wfi.Mode().Type() != e.Type() {
			t.Errorf("%s/%s: entry type %v, want %v", name, e.Name(), e.Type(), wfi.Mode().Type())
		}
	}
	if !slices.Equal(gn, wn) {
		t.Errorf("ReadDir(%q): %d entries, want %d\n got %.300q\nwant %.300q", name, len(gn), len(wn), gn, wn)
	}
}

func compareXattrs(t *testing.T, path, name string, fsys XattrFS) {
	t.Helper()
	want := map[string]string{}
	sz, err := unix.Llistxattr(path, nil)
	if err == nil && sz > 0 {
		buf := make([]byte, sz)
		sz, err = unix.Llistxattr(path, buf)
		must(t, err)
		for _, a := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
			if !strings.HasPrefix(a, "user.") {
				continue // security.* labels of the build host are not ours
			}
			v := make([]byte, 70000)
			n, err := unix.Lgetxattr(path, a, v)
			must(t, err)
			want[a] = string(v[:n])
		}
	}
	names, err := fsys.(XattrLister).Listxattr(name)
	if err != nil {
		t.Errorf("Listxattr(%q): %v", name, err)
		return
	}
	got := map[string]string{}
	for _, a := range names {
		if !strings.HasPrefix(a, "user.") {
			continue
		}
		v, err := fsys.Getxattr(name, a)
		if err != nil {
			t.Errorf("Getxattr(%q, %q): %v", name, a, err)
		}
		got[a] = string(v)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("%s: xattrs %.200q, want %.200q", name, got, want)
	}
	if _, err := fsys.Getxattr(name, "user.no-such-attribute"); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrNoXattr) {
		t.Errorf("Getxattr(%q, missing) = %v, want ErrNoXattr", name, err)
	}
}

// needTools stops the test unless the named programs are installed.
func needTools(t testing.TB, names ...string) {
	t.Helper()
	privtest.RequireTools(t, names...)
}
