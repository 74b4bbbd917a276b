package image

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/limitread"
)

func TestDirTree(t *testing.T) {
	root := t.TempDir()
	rel := filepath.Join(root, "usr/lib/extension-release.d")
	if err := os.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]string{
		"usr/lib/extension-release.d/extension-release.hello": "ID=_any\n",
		"usr/bin/b": "b", "usr/bin/a": "a", "usr/bin/c": "c",
	} {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// An absolute link and one climbing out both stay inside the tree.
	if err := os.Symlink("/usr/bin/a", filepath.Join(root, "usr/abs")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../../../../../usr/bin/b", filepath.Join(root, "usr/up")); err != nil {
		t.Fatal(err)
	}
	d := DirTree{Root: root}
	if err := fstest.TestFS(d, "usr/bin/a", "usr/abs", "usr/lib/extension-release.d/extension-release.hello"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"usr/abs": "a", "usr/up": "b"} {
		got, err := limitread.ReadFile(d, name, 16)
		if err != nil || string(got) != want {
			t.Errorf("ReadFile(%s) = %q, %v; want %q (inside the tree)", name, got, err, want)
		}
	}
	if target, err := d.ReadLink("usr/abs"); err != nil || target != "/usr/bin/a" {
		t.Errorf("ReadLink = %q, %v", target, err)
	}
	if fi, err := d.Lstat("usr/abs"); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Lstat followed the link: %v, %v", fi, err)
	}
	ents, err := d.ReadDir("usr/bin")
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if err != nil || strings.Join(names, " ") != "a b c" {
		t.Errorf("ReadDir = %v, %v; want a b c, sorted", names, err)
	}
	if _, err := d.Open("/usr/bin/a"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("Open of an absolute name: %v", err)
	}
	if _, err := d.Getxattr("usr/bin/a", "user.no-such"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Getxattr of a missing attribute: %v", err)
	}
	r, err := ReadRelease(d, imageclass.Sysext, "hello")
	if err != nil || r.Fields["ID"] != "_any" || r.File != "usr/lib/extension-release.d/extension-release.hello" {
		t.Errorf("ReadRelease = %+v, %v", r, err)
	}
	if _, err := ReadRelease(d, imageclass.Sysext, "other"); !errors.Is(err, ErrNoReleaseData) || !strings.Contains(err.Error(), "it has extension-release.hello") {
		t.Errorf("ReadRelease(other) = %v", err)
	}
	// A release file too big is refused in the release's words.
	big := filepath.Join(rel, "extension-release.big")
	if err := os.WriteFile(big, make([]byte, 65<<10), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadRelease(d, imageclass.Sysext, "big"); !errors.Is(err, ErrReleaseTooLarge) {
		t.Errorf("ReadRelease(big) = %v", err)
	}
}
