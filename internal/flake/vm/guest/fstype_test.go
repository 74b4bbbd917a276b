package guest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// The guest picks the root's file system (and the one module group it
// needs) from the superblock; images made by the real tools.
func TestFsType(t *testing.T) {
	privtest.RequireTools(t, "mksquashfs", "mkfs.ext4", "mkfs.erofs")
	dir := t.TempDir()
	tree := filepath.Join(dir, "tree")
	os.MkdirAll(filepath.Join(tree, "etc"), 0o755)
	os.WriteFile(filepath.Join(tree, "etc", "os-release"), []byte("ID=test\n"), 0o644)
	img := func(name string, args ...string) string {
		t.Helper()
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			t.Fatalf("%v: %v %s", args, err, out)
		}
		return filepath.Join(dir, name)
	}
	ext4 := filepath.Join(dir, "x.ext4")
	os.WriteFile(ext4, nil, 0o644)
	os.Truncate(ext4, 8<<20)
	for path, want := range map[string]string{
		img("x.sqfs", "mksquashfs", tree, filepath.Join(dir, "x.sqfs"), "-noappend", "-quiet"): "squashfs",
		img("x.erofs", "mkfs.erofs", "-d0", filepath.Join(dir, "x.erofs"), tree):               "erofs",
		img("x.ext4", "mkfs.ext4", "-q", "-F", "-d", tree, ext4):                               "ext4",
	} {
		if got := fsType(path); got != want {
			t.Errorf("%s: %q, want %q", filepath.Base(path), got, want)
		}
	}
	junk := filepath.Join(dir, "junk")
	os.WriteFile(junk, make([]byte, 4096), 0o644)
	if got := fsType(junk); got != "" {
		t.Errorf("zeros: %q", got)
	}
	if got := fsType(filepath.Join(dir, "missing")); got != "" {
		t.Errorf("missing: %q", got)
	}
}
