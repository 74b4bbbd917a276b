package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/imagefile"
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
			limit, err := parseSize(maxSize)
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

// lintPath lints a directory or an image file (read without mounting).
func lintPath(ctx context.Context, env *Env, p string, opt lint.Options) (lint.Findings, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return lint.Run(ctx, os.DirFS(p).(fsread.FS), opt)
	}
	fsys, format, closeFS, err := imagefile.Open(ctx, p, "")
	if err != nil {
		return nil, err
	}
	defer closeFS()
	opt.ImageSize = fi.Size()
	if opt.Name == "" {
		opt.Name = imageNameFor(fsys, opt.Class, p)
		if base := strings.TrimSuffix(filepath.Base(p), ".raw"); opt.Name != "" && opt.Name != base {
			noteBakedName(env, p, opt.Name)
		}
	}
	findings, err := lint.Run(ctx, fsys, opt)
	if err != nil {
		return nil, fmt.Errorf("lint %s (%s): %w", p, format, err)
	}
	return findings, nil
}

// imageNameFor picks the image name systemd would use: the file name
// without .raw when the image has that extension-release, else the name
// strata bake gave it (NAME-VERSION-ARCH.raw carrying
// extension-release.NAME, linked as NAME.raw; image.BakedName).
func imageNameFor(fsys fs.FS, class imageclass.Class, file string) string {
	base := strings.TrimSuffix(filepath.Base(file), ".raw")
	if _, err := fs.Stat(fsys, class.ReleasePath(base)); err == nil {
		return base
	}
	ents, _ := fs.ReadDir(fsys, class.ReleaseDir())
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "extension-release."); ok {
			names = append(names, n)
		}
	}
	n, _ := image.BakedName(base, names)
	return n
}
