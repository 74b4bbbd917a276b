package rootfs

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMkdirAllStaysInRoot(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()

	// A relative link inside the root is followed within it.
	if err := os.MkdirAll(filepath.Join(root, "var/run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("var/run", filepath.Join(root, "run")); err != nil {
		t.Fatal(err)
	}
	f, err := MkdirAll(root, "/run/strata/x", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := FdPath(f)
	f.Close()
	if want := filepath.Join(root, "var/run/strata/x"); got != want {
		t.Fatalf("made %s, want %s", got, want)
	}
	if fi, err := os.Stat(got); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("mode of %s: %v %v", got, fi, err)
	}

	// An absolute link pointing out of the root resolves inside it, so
	// nothing is created outside.
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if f, err := MkdirAll(root, "/escape/strata", 0o700); err == nil {
		p, _ := FdPath(f)
		f.Close()
		if filepath.Dir(p) == outside {
			t.Fatalf("MkdirAll created %s outside the root", p)
		}
	}
	if _, err := os.Lstat(filepath.Join(outside, "strata")); err == nil {
		t.Fatal("MkdirAll followed a link out of the root")
	}
	// ".." cannot climb out either.
	f, err = MkdirAll(root, "/../../up", 0o700)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = FdPath(f)
	f.Close()
	if got != filepath.Join(root, "up") {
		t.Fatalf("made %s, want it inside the root", got)
	}
}
