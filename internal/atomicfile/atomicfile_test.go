package atomicfile

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteReplacesWholeFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.WriteFile(p, []byte("old contents, longer than the new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(p, []byte("new"), 0o640); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	st, _ := os.Stat(p)
	if err != nil || string(b) != "new" || st.Mode().Perm() != 0o640 {
		t.Fatalf("got %q mode %v, %v", b, st.Mode(), err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, errors.New("disk gone")
	}
	r.n--
	return copy(p, "partial"), nil
}

func TestFailedWriteKeepsOldFileAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.raw")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := WriteFrom(p, &failingReader{n: 3}, 0o644)
	if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "disk gone") {
		t.Fatalf("error %v, want one naming %s and the cause", err, p)
	}
	if b, _ := os.ReadFile(p); string(b) != "old" {
		t.Fatalf("old file damaged: %q", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
	if err := Write(filepath.Join(dir, "missing-dir", "x"), nil, 0o644); err == nil {
		t.Fatal("write into a missing directory succeeded")
	}
}

func TestWriteNewNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "signing.key")
	if err := WriteNew(p, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := WriteNew(p, []byte("second"), 0o600)
	if !errors.Is(err, os.ErrExist) || !strings.Contains(err.Error(), p) {
		t.Fatalf("second WriteNew: %v, want fs.ErrExist naming %s", err, p)
	}
	st, _ := os.Stat(p)
	if b, _ := os.ReadFile(p); string(b) != "first" || st.Mode().Perm() != 0o600 {
		t.Fatalf("file now %q mode %v", b, st.Mode())
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}
