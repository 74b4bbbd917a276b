package initrd

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// MaxInitBinary bounds the /init binary read into the initrd.
const MaxInitBinary = 512 << 20

// ReadStaticBinary reads the ELF executable at path that becomes /init
// and refuses a dynamically linked one: the initrd holds no libraries.
// A failure to read it is returned as the *fs.PathError it is; a refusal
// names the file.
func ReadStaticBinary(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.Size() > MaxInitBinary {
		return nil, fmt.Errorf("%s is %d MiB, more than %d MiB", path, fi.Size()>>20, MaxInitBinary>>20)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if err := checkStatic(b); err != nil {
		return nil, fmt.Errorf("%s %w", path, err)
	}
	return b, nil
}

// checkStatic refuses what is not an ELF executable and an ELF that asks
// for a program interpreter (the dynamic loader).
func checkStatic(b []byte) error {
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("is not an ELF executable: %w", err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("is dynamically linked; build it with CGO_ENABLED=0 go build ./cmd/strata")
		}
	}
	return nil
}

// NoModuleTreeError says that modules-dir holds no module tree for the
// kernel: no VERSION/modules.dep.
type NoModuleTreeError struct {
	Kernel string
	Err    error
}

func (e *NoModuleTreeError) Error() string {
	return fmt.Sprintf("no module tree for kernel %s: %v", e.Kernel, e.Err)
}

func (e *NoModuleTreeError) Unwrap() error { return e.Err }

// ModuleTree opens the module tree of kernel kver below modulesDir
// (/lib/modules), checking that it has a modules.dep.
func ModuleTree(modulesDir, kver string) (fs.FS, error) {
	tree := filepath.Join(modulesDir, kver)
	if _, err := os.Stat(filepath.Join(tree, "modules.dep")); err != nil {
		return nil, &NoModuleTreeError{Kernel: kver, Err: err}
	}
	return os.DirFS(tree), nil
}
