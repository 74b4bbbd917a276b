package lint

import (
	"context"
	"fmt"
	"os"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imagefile"
)

// Path lints a directory or an image file at p (read without mounting).
// For an image file without opt.Name it judges by the name systemd
// would give the file (image.NameForFile) and returns that name, also
// when linting fails, so that the caller can say where it came from.
func Path(ctx context.Context, p string, opt Options) (Findings, string, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", err
	}
	if fi.IsDir() {
		f, err := Run(ctx, os.DirFS(p).(fsread.FS), opt)
		return f, "", err
	}
	fsys, format, closeFS, err := imagefile.Open(ctx, p, "")
	if err != nil {
		return nil, "", err
	}
	defer closeFS()
	opt.ImageSize = fi.Size()
	name := ""
	if opt.Name == "" {
		name = image.NameForFile(fsys, opt.Class, p)
		opt.Name = name
	}
	findings, err := Run(ctx, fsys, opt)
	if err != nil {
		return nil, name, fmt.Errorf("lint %s (%s): %w", p, format, err)
	}
	return findings, name, nil
}
