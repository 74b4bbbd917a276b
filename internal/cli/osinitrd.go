package cli

import (
	"bytes"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/repo"
)

// newOSInitrdCommand is `strata os initrd`: Strata's initrd, the static strata binary as /init plus the
// kernel modules the boot needs.
func newOSInitrdCommand(env *Env) *cobra.Command {
	var kver, modDir, strata, output string
	var modules, trust []string
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
			bin, err := initrd.ReadStaticBinary(strata)
			if err != nil {
				return fmt.Errorf("os initrd: --strata: %w", err)
			}
			tree, err := initrd.ModuleTree(modDir, kver)
			if err != nil {
				return fmt.Errorf("os initrd: %w (check --kernel-version and --modules-dir)", err)
			}
			certs, err := initrd.ReadTrust(trust)
			if err != nil {
				return fmt.Errorf("os initrd: --trust %w", err)
			}
			var buf bytes.Buffer
			if err := initrd.Write(&buf, initrd.Spec{Init: bin, Modules: tree, Wanted: modules, Trust: certs}); err != nil {
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
	f.StringArrayVar(&trust, "trust", nil, "PEM certificate the boot requires slot root hashes to be signed by (repeatable; os bake/payload --sign-cert)")
	return cmd
}
