package fsimage

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// makeTree writes a small tree; reverse creates the entries in the
// opposite order, so directory order on disk differs.
func makeTree(t *testing.T, dir string, reverse bool) {
	t.Helper()
	names := []string{"usr/bin/zeta", "usr/bin/alpha", "usr/lib/systemd/system/x.service", "usr/share/doc/x/README", "opt/x/data.bin"}
	for i := 0; i < 40; i++ {
		names = append(names, fmt.Sprintf("usr/share/x/f%03d", i))
	}
	if reverse {
		for i, j := 0, len(names)-1; i < j; i, j = i+1, j-1 {
			names[i], names[j] = names[j], names[i]
		}
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(n+"\n", 100)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "usr/bin/alpha"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("alpha", filepath.Join(dir, "usr/bin/beta")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "usr/bin/alpha"), filepath.Join(dir, "usr/bin/gamma")); err != nil {
		t.Fatal(err)
	}
	// Different mtimes in each tree.
	now := time.Now().Add(time.Duration(len(dir)) * time.Hour)
	_ = os.Chtimes(filepath.Join(dir, "usr/bin/zeta"), now, now)
}

func sum(t *testing.T, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

var tools = map[string][]string{
	"squashfs": {"mksquashfs", "unsquashfs"},
	"erofs":    {"mkfs.erofs", "fsck.erofs"},
	"ext4":     {"mkfs.ext4", "resize2fs", "e2fsck", "debugfs"},
}

func TestReproducibleAcrossTrees(t *testing.T) {
	extra := []File{{Path: "usr/lib/extension-release.d/extension-release.x", Data: []byte("ID=_any\n")}}
	for _, format := range []string{"squashfs", "erofs", "ext4"} {
		t.Run(format, func(t *testing.T) {
			privtest.RequireTools(t, tools[format]...)
			w, err := New(format)
			if err != nil {
				t.Fatal(err)
			}
			var sums, imgs []string
			for i, rev := range []bool{false, true} {
				if i > 0 {
					// Cross a second boundary: any leaked clock time shows.
					time.Sleep(1100 * time.Millisecond)
				}
				base := t.TempDir()
				src := filepath.Join(base, fmt.Sprintf("tree-%d", i))
				makeTree(t, src, rev)
				dst := filepath.Join(base, "out.raw")
				opt := Options{Epoch: 1700000000, Seed: "x-1.0-x86-64", Extra: extra}
				if err := w.Write(context.Background(), src, dst, opt); err != nil {
					t.Fatal(err)
				}
				sums = append(sums, sum(t, dst))
				imgs = append(imgs, dst)
				checkImage(t, format, dst)
				// Only the output is left behind.
				ents, _ := os.ReadDir(base)
				if len(ents) != 2 {
					t.Errorf("left behind in %s: %v", base, ents)
				}
			}
			if sums[0] != sums[1] {
				t.Errorf("%s not reproducible: %s != %s; first differing bytes: %s", format, sums[0], sums[1], firstDiffs(t, imgs[0], imgs[1]))
				if d := os.Getenv("STRATA_KEEP_IMAGES"); d != "" {
					for i, img := range imgs {
						b, _ := os.ReadFile(img)
						os.WriteFile(filepath.Join(d, fmt.Sprintf("%s-%d.raw", format, i)), b, 0o644)
					}
				}
			}
		})
	}
}

// checkImage reads the image back with the filesystem's own tools.
func checkImage(t *testing.T, format, img string) {
	t.Helper()
	var out []byte
	var err error
	switch format {
	case "squashfs":
		out, err = exec.Command("unsquashfs", "-lls", img).CombinedOutput()
	case "erofs":
		out, err = exec.Command("fsck.erofs", img).CombinedOutput()
		if err == nil {
			d := t.TempDir()
			out, err = exec.Command("fsck.erofs", "--extract="+d+"/x", img).CombinedOutput()
			if err == nil {
				b, rerr := os.ReadFile(d + "/x/usr/lib/extension-release.d/extension-release.x")
				out = b
				err = rerr
			}
		}
	case "ext4":
		out, err = exec.Command("e2fsck", "-fn", img).CombinedOutput()
		if err == nil {
			out, err = exec.Command("debugfs", "-R", "stat /usr/bin/alpha", img).CombinedOutput()
			if err == nil && (!strings.Contains(string(out), "User:     0") || !strings.Contains(string(out), "0x6553f100")) {
				t.Errorf("ext4 inode not normalised:\n%s", out)
			}
			out2, err2 := exec.Command("debugfs", "-R", "cat /usr/lib/extension-release.d/extension-release.x", img).CombinedOutput()
			if err2 != nil || !strings.Contains(string(out2), "ID=_any") {
				t.Errorf("ext4 extension-release missing: %s", out2)
			}
		}
	}
	if err != nil {
		t.Fatalf("%s check of %s: %v\n%s", format, img, err, out)
	}
	if format == "squashfs" && !strings.Contains(string(out), "usr/lib/extension-release.d/extension-release.x") {
		t.Errorf("extension-release missing:\n%s", out)
	}
	if format == "squashfs" && strings.Contains(string(out), time.Now().Format("2006-01-02")) {
		t.Errorf("timestamps not normalised:\n%s", out)
	}
}

func firstDiffs(t *testing.T, a, b string) string {
	t.Helper()
	x, _ := os.ReadFile(a)
	y, _ := os.ReadFile(b)
	if len(x) != len(y) {
		return fmt.Sprintf("sizes %d and %d", len(x), len(y))
	}
	var offs []string
	for i := range x {
		if x[i] != y[i] {
			offs = append(offs, fmt.Sprintf("%#x", i))
			if len(offs) == 8 {
				break
			}
		}
	}
	return strings.Join(offs, " ")
}
