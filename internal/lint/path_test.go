package lint

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/imageclass"
)

func TestPathDirectoryAndImage(t *testing.T) {
	ctx := context.Background()
	root := tree(t, map[string]string{
		"usr/bin/hello": "x",
		"usr/lib/extension-release.d/extension-release.hello": "ID=_any\nARCHITECTURE=x86-64\n",
	})
	f, name, err := Path(ctx, root, Options{Class: imageclass.Sysext})
	if err != nil || name != "" || len(f) != 0 {
		t.Fatalf("directory: %v, name %q, %v", f, name, err)
	}
	if _, _, err := Path(ctx, filepath.Join(root, "missing"), Options{}); err == nil {
		t.Error("Path accepted a missing path")
	}
	junk := filepath.Join(t.TempDir(), "junk.raw")
	if err := os.WriteFile(junk, []byte(strings.Repeat("not an image ", 400)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Path(ctx, junk, Options{}); err == nil {
		t.Error("Path accepted a file that is no image")
	}

	mk, err := exec.LookPath("mksquashfs")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("mksquashfs is needed (squashfs-tools)")
		}
		t.Skip("no mksquashfs")
	}
	img := filepath.Join(t.TempDir(), "hello-1.0-x86-64.raw")
	if out, err := exec.Command(mk, root, img, "-quiet", "-noappend", "-all-root").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, out)
	}
	f, name, err = Path(ctx, img, Options{Class: imageclass.Sysext})
	if err != nil || name != "hello" {
		t.Fatalf("baked image: name %q, %v", name, err)
	}
	if f.Errors() != 0 {
		t.Errorf("baked image judged by its release name has errors: %v", f)
	}
	// A name given is used as is: the release is then misnamed.
	f, name, err = Path(ctx, img, Options{Class: imageclass.Sysext, Name: "other"})
	if err != nil || name != "" || !has(f, Error, RuleMisnamed, "") && !has(f, Error, RuleNoRelease, "") {
		t.Errorf("explicit name: %v, name %q, %v", f, name, err)
	}
}
