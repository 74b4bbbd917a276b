package fleet

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
)

func TestReadPayload(t *testing.T) {
	// sha1sum (as base64) and sha256sum of "hello\n".
	fsys := fstest.MapFS{"p.raw": {Data: []byte("hello\n")}}
	got, err := ReadPayload(fsys, "p.raw")
	want := Payload{Size: 6, SHA1: "9XLTlvrpIGYocU+yzgD3LpTyJY8=", SHA256: "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"}
	if err != nil || got != want {
		t.Fatalf("ReadPayload = %+v, %v; want %+v", got, err, want)
	}
	if _, err := ReadPayload(fsys, "missing.raw"); err == nil {
		t.Fatal("a missing file read")
	}
}

// Through an *os.Root a link cannot lead out of the repository.
func TestReadPayloadRootRefusesEscape(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(dir, "os-1-x86-64.raw")); err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	if _, err := ReadPayload(root.FS(), "os-1-x86-64.raw"); err == nil || !strings.Contains(err.Error(), "os-1-x86-64.raw") {
		t.Fatalf("link out of the root: %v, want an error naming the file", err)
	}
}
