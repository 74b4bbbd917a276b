package initrd

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/testutil/elftest"
)

// elfWithProg is an x86-64 ELF header with one program header of type typ.
var elfWithProg = elftest.WithProg

func TestReadStaticBinary(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	static := write("static", elfWithProg(1 /* PT_LOAD */))
	if b, err := ReadStaticBinary(static); err != nil || !bytes.Equal(b, elfWithProg(1)) {
		t.Fatalf("static ELF: %d bytes, %v", len(b), err)
	}
	dyn := write("dyn", elfWithProg(3 /* PT_INTERP */))
	if _, err := ReadStaticBinary(dyn); err == nil || err.Error() != dyn+" is dynamically linked; build it with CGO_ENABLED=0 go build ./cmd/strata" {
		t.Errorf("dynamic ELF: %v", err)
	}
	text := write("script", []byte("#!/bin/sh\n"))
	if _, err := ReadStaticBinary(text); err == nil || !strings.HasPrefix(err.Error(), text+" is not an ELF executable: ") {
		t.Errorf("script: %v", err)
	}
	var pe *fs.PathError
	if _, err := ReadStaticBinary(filepath.Join(dir, "missing")); !errors.As(err, &pe) {
		t.Errorf("missing file: %v, want an *fs.PathError", err)
	}
}

func TestModuleTree(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "6.1", "kernel"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "6.1", "modules.dep"), []byte("kernel/a.ko:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tree, err := ModuleTree(dir, "6.1")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(tree, "modules.dep"); err != nil || string(b) != "kernel/a.ko:\n" {
		t.Errorf("tree's modules.dep: %q, %v", b, err)
	}
	_, err = ModuleTree(dir, "6.2")
	var nt *NoModuleTreeError
	if !errors.As(err, &nt) || nt.Kernel != "6.2" || !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "no module tree for kernel 6.2: ") {
		t.Errorf("missing tree: %v", err)
	}
}
