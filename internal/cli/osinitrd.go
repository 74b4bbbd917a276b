package cli

import (
	"bytes"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/repo"
)

// maxInitBinary bounds the --strata binary read into the initrd.
const maxInitBinary = 512 << 20

// newOSInitrdCommand is `strata os initrd`: Strata's initrd, the static strata binary as /init plus the
// kernel modules the boot needs.
func newOSInitrdCommand(env *Env) *cobra.Command {
	var kver, modDir, strata, output string
	var modules []string
	cmd := &cobra.Command{
		Use:   "initrd --kernel-version V --output FILE",
		Short: "Build Strata's initrd: the static strata as /init and the kernel modules it needs",
		Long: `Build an initrd (uncompressed cpio newc) whose /init is the static strata binary,
which picks the /usr slot, opens it through dm-verity, mounts ROOT and /usr,
merges the extensions and switches root. The modules (default: virtio block,
device-mapper with verity, erofs, squashfs, ext4) and their dependencies come
from MODULES-DIR/VERSION. The same inputs give the same bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if kver == "" || output == "" {
				return fmt.Errorf("os initrd: --kernel-version V and --output FILE are required")
			}
			if strata == "" {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("os initrd: find my own executable: %w (pass --strata PATH)", err)
				}
				strata = exe
			}
			bin, err := readStaticBinary(strata)
			if err != nil {
				return fmt.Errorf("os initrd: %w", err)
			}
			tree := filepath.Join(modDir, kver)
			if _, err := os.Stat(filepath.Join(tree, "modules.dep")); err != nil {
				return fmt.Errorf("os initrd: no module tree for kernel %s: %w (check --kernel-version and --modules-dir)", kver, err)
			}
			var buf bytes.Buffer
			if err := initrd.Write(&buf, initrd.Spec{Init: bin, Modules: os.DirFS(tree), Wanted: modules}); err != nil {
				return fmt.Errorf("os initrd: %w", err)
			}
			if err := repo.WriteAtomic(output, buf.Bytes(), 0o644); err != nil {
				return fmt.Errorf("os initrd: %w", err)
			}
			fmt.Fprintf(env.Stdout, "wrote %s (%d KiB, kernel %s)\n", output, buf.Len()>>10, kver)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&kver, "kernel-version", "", "kernel release whose modules go in (uname -r of the target)")
	f.StringVar(&modDir, "modules-dir", "/lib/modules", "directory holding VERSION/modules.dep")
	f.StringArrayVar(&modules, "module", nil, "kernel module to include with its dependencies (repeatable; default: what a virtio disk with verity needs)")
	f.StringVar(&strata, "strata", "", "the static strata binary to install as /init (default: this executable)")
	f.StringVar(&output, "output", "", "the initrd file to write")
	return cmd
}

// readStaticBinary reads an ELF executable and refuses a dynamically linked one: the initrd holds
// no libraries.
func readStaticBinary(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("--strata: %w", err)
	}
	if fi.Size() > maxInitBinary {
		return nil, fmt.Errorf("--strata %s is %d MiB, more than %d MiB", path, fi.Size()>>20, maxInitBinary>>20)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--strata: %w", err)
	}
	ef, err := elf.NewFile(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("--strata %s is not an ELF executable: %w", path, err)
	}
	defer ef.Close()
	for _, p := range ef.Progs {
		if p.Type == elf.PT_INTERP {
			return nil, fmt.Errorf("--strata %s is dynamically linked; build it with CGO_ENABLED=0 go build ./cmd/strata", path)
		}
	}
	return b, nil
}
