package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// scratch makes a root holding /etc/os-release and an outside file that
// every escape attempt below aims at.
func scratch(t *testing.T) (root, outside string) {
	t.Helper()
	base := t.TempDir()
	root = filepath.Join(base, "root")
	outside = filepath.Join(base, "secret")
	must(t, os.MkdirAll(filepath.Join(root, "etc"), 0o755))
	must(t, os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=inside\n"), 0o644))
	must(t, os.WriteFile(outside, []byte("ID=outside\n"), 0o644))
	return root, outside
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestCleanJoin(t *testing.T) {
	for _, tc := range []struct{ root, p, want string }{
		{"", "/etc/os-release", "/etc/os-release"},
		{"/", "etc", "/etc"},
		{"/srv/root/", "/etc/../../x", "/srv/root/x"},
		{"/srv/root", "../../../etc/passwd", "/srv/root/etc/passwd"},
		{"/srv//root", "/", "/srv/root"},
	} {
		if got := Join(tc.root, tc.p); got != tc.want {
			t.Errorf("Join(%q, %q) = %q, want %q", tc.root, tc.p, got, tc.want)
		}
	}
	if Clean("") != "/" || Clean("/a/b/") != "/a/b" {
		t.Errorf("Clean: %q %q", Clean(""), Clean("/a/b/"))
	}
}

// Every link, absolute or relative, resolves inside the root the way
// chase(CHASE_PREFIX_ROOT) resolves it: the host file outside is never
// reached.
func TestSymlinksStayInRoot(t *testing.T) {
	root, outside := scratch(t)
	rel, err := filepath.Rel(filepath.Join(root, "etc"), outside)
	must(t, err)
	links := map[string]string{
		"etc/os-release": "../usr/lib/os-release", // the usual relative link
		"etc/abs":        "/usr/lib/os-release",   // absolute: taken inside root
		"etc/escape-rel": rel,                     // ../../secret from etc/
		"etc/escape-abs": outside,                 // the host path, absolute
		"etc/dotdot":     "../../../../../../../../usr/lib/os-release",
	}
	for name, target := range links {
		must(t, os.Symlink(target, filepath.Join(root, name)))
	}
	for _, name := range []string{"etc/os-release", "etc/abs", "etc/dotdot"} {
		b, err := ReadFile(root, "/"+name, 1024)
		if err != nil || string(b) != "ID=inside\n" {
			t.Errorf("ReadFile(%s) = %q, %v; want the file inside the root", name, b, err)
		}
		p, err := Chase(root, name)
		if err != nil || p != filepath.Join(root, "usr/lib/os-release") {
			t.Errorf("Chase(%s) = %q, %v", name, p, err)
		}
	}
	for _, name := range []string{"etc/escape-rel", "etc/escape-abs"} {
		b, err := ReadFile(root, name, 1024)
		if strings.Contains(string(b), "outside") {
			t.Fatalf("ReadFile(%s) read the host file outside the root", name)
		}
		if !errors.Is(err, os.ErrNotExist) {
			t.Errorf("ReadFile(%s) error = %v, want not-exist inside the root", name, err)
		}
	}
	// ".." in the path itself is clamped at the root too.
	b, err := ReadFile(root, "../../../../usr/lib/os-release", 1024)
	if err != nil || string(b) != "ID=inside\n" {
		t.Errorf("ReadFile with leading .. = %q, %v", b, err)
	}
}

// Magic links (/proc/self/root and friends) would jump out of any root;
// RESOLVE_NO_MAGICLINKS refuses them.
func TestMagicLinksRefused(t *testing.T) {
	root, _ := scratch(t)
	must(t, os.Symlink("/proc/self/root/etc/hostname", filepath.Join(root, "etc/magic")))
	// With the host's / as the root, /proc/self/root is reachable as a
	// path; the magic link in it must still not be followed.
	host, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY, 0)
	must(t, err)
	defer unix.Close(host)
	f, err := OpenAt(host, "/proc/self/root/etc/os-release", unix.O_RDONLY, "/")
	if err == nil {
		f.Close()
		t.Fatal("OpenAt followed the /proc/self/root magic link")
	}
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.EXDEV) {
		t.Errorf("magic link error = %v, want ELOOP or EXDEV", err)
	}
	if _, err := ReadFile(root, "etc/magic", 1024); err == nil {
		t.Error("a link to /proc/self/root inside the root was followed")
	}
}

func TestReadFileLimit(t *testing.T) {
	root, _ := scratch(t)
	must(t, os.WriteFile(filepath.Join(root, "etc/big"), make([]byte, 4097), 0o644))
	_, err := ReadFile(root, "etc/big", 4096)
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "limit 4096 bytes") {
		t.Errorf("ReadFile over the limit: %v", err)
	}
	b, err := ReadFile(root, "etc/big", 4097)
	if err != nil || len(b) != 4097 {
		t.Errorf("ReadFile at the limit: %d bytes, %v", len(b), err)
	}
}

func TestStat(t *testing.T) {
	root, _ := scratch(t)
	must(t, os.Symlink("/usr/lib", filepath.Join(root, "lib")))
	fi, resolved, err := Stat(root, "/lib/os-release")
	if err != nil {
		t.Fatal(err)
	}
	if resolved != filepath.Join(root, "usr/lib/os-release") || fi.Size() != int64(len("ID=inside\n")) || !fi.Mode().IsRegular() {
		t.Errorf("Stat = %q size %d mode %v", resolved, fi.Size(), fi.Mode())
	}
	if _, _, err := Stat(root, "/nope"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Stat of a missing path: %v", err)
	}
	if _, err := Open(filepath.Join(root, "missing-root"), "/etc", unix.O_PATH); err == nil || !strings.Contains(err.Error(), "missing-root") {
		t.Errorf("Open under a missing root: %v", err)
	}
}
