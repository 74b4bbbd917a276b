package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/bytesize"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/lint"
)

func newLintCommand(env *Env) *cobra.Command {
	var class, name, maxSize string
	var jsonOut bool
	cmd := &cobra.Command{
		Use:   "lint IMAGE|DIR",
		Short: "Check an extension image or tree for problems",
		Long: `Check an extension image or tree: files outside the class's hierarchies,
os-release in a sysext, a missing or misnamed extension-release, dynamically
linked binaries whose libraries are missing, units without
EXTENSION_RELOAD_MANAGER=1, setuid/setgid and world-writable files, escaping
symlinks, invalid file names and oversized images.

Exit status 0: no errors (warnings allowed); 1: errors found.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := imageclass.Parse(class)
			if err != nil {
				return err
			}
			limit, err := bytesize.Parse(maxSize, bytesize.Strata)
			if err != nil {
				return fmt.Errorf("--max-size: %w", err)
			}
			findings, err := lintPath(cmdContext(cmd), env, args[0], lint.Options{Class: c, Name: name, MaxSize: limit})
			if err != nil {
				return err
			}
			if jsonOut {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(nonNil(findings)); err != nil {
					return err
				}
			} else {
				for _, f := range findings {
					fmt.Fprintln(env.Stdout, f.String())
				}
			}
			if n := findings.Errors(); n > 0 {
				return &ExitError{Code: 1, Err: fmt.Errorf("%s: %d error(s), %d warning(s)", args[0], n, len(findings)-n)}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&class, "class", "sysext", "extension class: sysext or confext")
	cmd.Flags().StringVar(&name, "name", "", "image name (default: from the extension-release file)")
	cmd.Flags().StringVar(&maxSize, "max-size", "4G", "largest allowed image size (0 = no limit)")
	cmd.Flags().BoolVar(&jsonOut, "json", false, "print findings as JSON")
	return cmd
}

// lintPath lints p and says when the image's name came from its
// extension-release rather than its file name.
func lintPath(ctx context.Context, env *Env, p string, opt lint.Options) (lint.Findings, error) {
	findings, name, err := lint.Path(ctx, p, opt)
	if base := strings.TrimSuffix(filepath.Base(p), ".raw"); name != "" && name != base {
		noteBakedName(env, p, name)
	}
	return findings, err
}
