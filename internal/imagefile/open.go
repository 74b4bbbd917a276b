package imagefile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stratalinux/strata/internal/fsmagic"
	"github.com/stratalinux/strata/internal/fsread"
)

// Open opens an image file (or a directory image) as a file system: with
// the pure-Go readers, falling back to extracting it with the
// filesystem's own tools into a scratch directory. close releases it.
func Open(ctx context.Context, p, arch string) (fsys fsread.FS, format string, close func(), err error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", nil, err
	}
	if fi.IsDir() {
		return os.DirFS(p).(fsread.FS), "dir", func() {}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, "", nil, err
	}
	img, rerr := fsread.Open(f, fi.Size(), arch)
	if rerr == nil {
		format = string(img.Format)
		if img.Format == fsread.GPT {
			format = "gpt+" + string(img.FSFormat)
		}
		return img.FS, format, func() { f.Close() }, nil
	}
	kind, derr := fsmagic.Detect(f, fi.Size())
	f.Close()
	if derr != nil {
		return nil, "", nil, rerr
	}
	format = string(kind)
	tmp, err := os.MkdirTemp("", "strata-image-")
	if err != nil {
		return nil, "", nil, err
	}
	dir := filepath.Join(tmp, "root")
	if err := Extract(ctx, p, format, dir); err != nil {
		os.RemoveAll(tmp)
		return nil, "", nil, fmt.Errorf("%v; extracting with the %s tools also failed: %w", rerr, format, err)
	}
	return os.DirFS(dir).(fsread.FS), format, func() { os.RemoveAll(tmp) }, nil
}
