package sysupdate

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func dirNames(t *testing.T, dir string) string {
	t.Helper()
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, de := range entries {
		names = append(names, de.Name())
	}
	return strings.Join(names, " ")
}

// With InstancesMax=2 and the protected version installed, installing a
// third version removes the older unprotected one: the protected instance
// counts toward the limit, as in systemd's transfer_vacuum().
func TestProtectVersionCountsTowardInstancesMax(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/a.transfer": "[Transfer]\nProtectVersion=1.0\n[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v.raw\n" +
			"[Target]\nType=regular-file\nPath=/dst\nInstancesMax=2\nCurrentSymlink=/etc/a.raw\n",
		"src/a_1.0.raw": "1.0",
	})
	update := func(v string) {
		t.Helper()
		writeFiles(t, root, map[string]string{"src/a_" + v + ".raw": v})
		d, err := Load(root, DefinitionDirs(""), testSpec)
		if err != nil {
			t.Fatal(err)
		}
		if res, err := (&Engine{Root: root, Defs: d}).Update(context.Background(), ""); err != nil || res.Version != v {
			t.Fatalf("update to %s: %+v %v", v, res, err)
		}
	}
	update("1.0")
	update("2.0")
	if got := dirNames(t, filepath.Join(root, "dst")); got != "a_1.0.raw a_2.0.raw" {
		t.Fatalf("after 2.0: %s", got)
	}
	update("3.0")
	if got := dirNames(t, filepath.Join(root, "dst")); got != "a_1.0.raw a_3.0.raw" {
		t.Fatalf("after 3.0: %s (want the protected 1.0 and the new 3.0)", got)
	}
	if l, _ := os.Readlink(filepath.Join(root, "etc/a.raw")); l != "../dst/a_3.0.raw" {
		t.Fatalf("symlink %q", l)
	}
	update("4.0")
	if got := dirNames(t, filepath.Join(root, "dst")); got != "a_1.0.raw a_4.0.raw" {
		t.Fatalf("after 4.0: %s", got)
	}
}
