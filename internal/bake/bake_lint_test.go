package bake

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/lint"
	"github.com/stratalinux/strata/internal/testutil/exttest"
)

func writeFiles(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	exttest.Write(t, dir, files)
	return dir
}

// TestBakeLints checks that Bake lints the tree itself: an error stops the
// bake and leaves nothing, NoLint skips it, and the lint sees the release
// Bake generates.
func TestBakeLints(t *testing.T) {
	bad := writeFiles(t, map[string]string{"usr/bin/x": "x", "etc/passwd": "root:x:0:0::/root:/bin/sh\n"})
	out := t.TempDir()
	req := Request{Dir: bad, Name: "x", Version: "1", Arch: "x86-64", Format: "dir", OutDir: out}
	res, err := Bake(context.Background(), req)
	if err == nil || !strings.Contains(err.Error(), lint.RuleOutside) {
		t.Fatalf("Bake of a tree with etc/ in a sysext: %v", err)
	}
	if len(res.Findings) == 0 || res.Findings[0].Rule != lint.RuleOutside {
		t.Errorf("findings %v", res.Findings)
	}
	if ents, _ := os.ReadDir(out); len(ents) != 0 {
		t.Errorf("failed bake left %v", ents)
	}

	req.NoLint = true
	res, err = Bake(context.Background(), req)
	if err != nil || res.Findings != nil {
		t.Fatalf("Bake with NoLint: %v, findings %v", err, res.Findings)
	}
	if _, err := os.Stat(filepath.Join(out, "x-1-x86-64", "etc/passwd")); err != nil {
		t.Errorf("NoLint bake: %v", err)
	}

	// Units without EXTENSION_RELOAD_MANAGER: a warning only when the
	// generated release leaves it out.
	units := writeFiles(t, map[string]string{"usr/lib/systemd/system/x.service": "[Service]\n"})
	off := false
	res, err = Bake(context.Background(), Request{Dir: units, Name: "x", Version: "1", Arch: "x86-64", Format: "dir", OutDir: t.TempDir(), Reload: &off})
	if err != nil || len(res.Findings) != 1 || res.Findings[0].Rule != lint.RuleUnitReload {
		t.Fatalf("Reload off: %v, findings %v", err, res.Findings)
	}
	res, err = Bake(context.Background(), Request{Dir: units, Name: "x", Version: "1", Arch: "x86-64", Format: "dir", OutDir: t.TempDir()})
	if err != nil || len(res.Findings) != 0 {
		t.Fatalf("Reload auto: %v, findings %v", err, res.Findings)
	}
	if _, err := os.Stat(res.Path); err != nil {
		t.Errorf("bake result: %v", err)
	}
}
