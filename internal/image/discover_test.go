package image

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
)

func mk(t *testing.T, root, p string, dir bool) {
	t.Helper()
	full := filepath.Join(root, p)
	if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
		t.Fatal(err)
	}
	if dir {
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDiscoverPrecedenceMaskingAndSkips(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "var/lib/extensions/foo.raw", false)
	mk(t, root, "var/lib/extensions/bar.raw", false)
	mk(t, root, "var/lib/extensions/baz", true)
	mk(t, root, "var/lib/extensions/notes.txt", false)
	mk(t, root, "etc/extensions/foo", true) // empty dir masks foo.raw
	mk(t, root, "run/extensions/bar.sysext.raw", false)
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_1.0.raw", false)
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_1.10.raw", false)
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_1.9_arm64.raw", false)
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_2+0.raw", false)
	// Architectures systemd knows but an x86-64 host cannot use.
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_1.11_arm64-be.raw", false)
	mk(t, root, "var/lib/extensions/vv.raw.v/vv_1.12_parisc64.raw", false)
	mk(t, root, "var/lib/extensions/dd.v/dd_1/usr", true)
	mk(t, root, "var/lib/extensions/dd.v/dd_3/usr", true)
	mk(t, root, "var/lib/extensions/dd.v/dd_2.raw", false)
	mk(t, root, "usr/lib/extensions/old.raw", false) // not searched since v253
	mk(t, root, "var/lib/extensions/bad\xffname.raw", false)
	mk(t, root, "var/lib/extensions/.#partial.raw", false)
	if err := os.Symlink("/var/lib/extensions/baz", filepath.Join(root, "etc/extensions/qux")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent.raw", filepath.Join(root, "etc/extensions/dangling.raw")); err != nil {
		t.Fatal(err)
	}
	d, err := Discover(root, imageclass.Sysext, false, "x86-64")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Image{}
	for _, img := range d.Images {
		got[img.Name] = img
	}
	want := map[string]string{
		"foo": "/etc/extensions/foo",
		"bar": "/run/extensions/bar.sysext.raw",
		"baz": "/var/lib/extensions/baz",
		"qux": "/etc/extensions/qux",
		"vv":  "/var/lib/extensions/vv.raw.v/vv_1.10.raw",
		"dd":  "/var/lib/extensions/dd.v/dd_3",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d images %v, want %v", len(got), d.Images, want)
	}
	for n, entry := range want {
		if got[n].Entry != entry {
			t.Errorf("%s: entry %q, want %q", n, got[n].Entry, entry)
		}
	}
	if got["qux"].Path != filepath.Join(root, "var/lib/extensions/baz") || got["qux"].Kind != KindDirectory {
		t.Errorf("symlink not resolved inside root: %+v", got["qux"])
	}
	if got["foo"].Kind != KindDirectory {
		t.Errorf("masking entry kind %s", got["foo"].Kind)
	}
	shadowed := map[string]string{}
	for _, s := range d.Shadowed {
		shadowed[s.Entry] = s.By
	}
	if shadowed["/var/lib/extensions/foo.raw"] != "/etc/extensions/foo" || shadowed["/var/lib/extensions/bar.raw"] != "/run/extensions/bar.sysext.raw" {
		t.Errorf("shadowed = %v", shadowed)
	}
	skipped := map[string]bool{}
	for _, s := range d.Skipped {
		skipped[s.Entry] = true
	}
	if !skipped["/var/lib/extensions/notes.txt"] || !skipped["/etc/extensions/dangling.raw"] ||
		!skipped["/var/lib/extensions/bad\xffname.raw"] || !skipped["/var/lib/extensions/.#partial.raw"] {
		t.Errorf("skipped = %v", d.Skipped)
	}
	// Sorted by version order.
	var names []string
	for _, img := range d.Images {
		names = append(names, img.Name)
	}
	if names[0] != "bar" || names[1] != "baz" || names[len(names)-1] != "vv" {
		t.Errorf("order %v", names)
	}
}

func TestDiscoverConfextDirsAndInitrd(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "etc/extensions/a.raw", false) // sysext dir, not confext
	mk(t, root, "usr/lib/confexts/b.raw", false)
	mk(t, root, "run/confexts/c.confext.raw", false)
	d, err := Discover(root, imageclass.Confext, false, "x86-64")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != 2 || d.Images[0].Name != "b" || d.Images[1].Name != "c" {
		t.Fatalf("confext images %+v", d.Images)
	}
	mk(t, root, "etc/initrd-release", false)
	if !InInitrd(root) {
		t.Fatal("initrd not detected")
	}
	d, err = Discover(root, imageclass.Confext, true, "x86-64")
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Images) != 1 || d.Images[0].Name != "c" {
		t.Fatalf("initrd confext images %+v (usr/lib/confexts is not searched in the initrd)", d.Images)
	}
}

func TestDiscoverUnreadableSearchDir(t *testing.T) {
	root := t.TempDir()
	mk(t, root, "etc/extensions", false) // a file where a directory belongs
	if _, err := Discover(root, imageclass.Sysext, false, "x86-64"); err == nil {
		t.Fatal("want an error for a search path that is not a directory")
	}
}
