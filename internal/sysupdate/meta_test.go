package sysupdate

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// What a source's name says (@t mtime, @m mode) is applied to the
// installed target, for local and for URL sources, as systemd does.
func TestPatternMetadataAppliedToTarget(t *testing.T) {
	root := t.TempDir()
	const mtimeUS = 1700000000123456 // 2023-11-14T22:13:20.123456Z
	payload := "url payload"
	sum := sha256.Sum256([]byte(payload))
	writeFiles(t, root, map[string]string{
		"etc/sysupdate.d/a.transfer": "[Source]\nType=regular-file\nPath=/src\nMatchPattern=a_@v_@t_@m.raw\n" +
			"[Target]\nType=regular-file\nPath=/dst\nMatchPattern=a_@v.raw\n",
		"etc/sysupdate.d/b.transfer": "[Transfer]\nVerify=no\n[Source]\nType=url-file\nPath=file://" + root + "/web\nMatchPattern=b_@v_@t_@m.raw\n" +
			"[Target]\nType=regular-file\nPath=/dst\nMatchPattern=b_@v_@t.raw\n",
		"src/a_1.0_1700000000123456_640.raw": "local payload",
		"web/b_1.0_1700000000123456_600.raw": payload,
		"web/SHA256SUMS":                     hex.EncodeToString(sum[:]) + "  b_1.0_1700000000123456_600.raw\n",
	})
	// The local source's own mtime differs from what its name says.
	old := time.Unix(1000000000, 0)
	os.Chtimes(filepath.Join(root, "src/a_1.0_1700000000123456_640.raw"), old, old)
	d, err := Load(root, DefinitionDirs(""), testSpec)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := (&Engine{Root: root, Defs: d}).Update(context.Background(), ""); err != nil || res.Version != "1.0" {
		t.Fatalf("update: %+v %v", res, err)
	}
	for name, mode := range map[string]os.FileMode{"a_1.0.raw": 0o640, "b_1.0_1700000000123456.raw": 0o600} {
		fi, err := os.Stat(filepath.Join(root, "dst", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.ModTime().UnixMicro(); got != mtimeUS {
			t.Errorf("%s: mtime %d µs, want %d (the source name's @t)", name, got, mtimeUS)
		}
		if fi.Mode().Perm() != mode {
			t.Errorf("%s: mode %o, want %o (the source name's @m)", name, fi.Mode().Perm(), mode)
		}
	}
}
