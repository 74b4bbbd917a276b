package fsimage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// dirWriter "writes" a plain directory image: a copy of the tree with root
// owners (when run as root) and the epoch as every timestamp.
type dirWriter struct{}

func (dirWriter) Format() string { return "dir" }
func (dirWriter) IsDir() bool    { return true }

func (dirWriter) Write(ctx context.Context, src, dst string, opt Options) error {
	if opt.Compression != "" && opt.Compression != "none" {
		return fmt.Errorf("dir: format has no compression (got %q)", opt.Compression)
	}
	extra, err := checkExtra(src, opt.Extra)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(dst); err == nil {
		return fmt.Errorf("%s already exists", dst)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Mkdir(dst, 0o755); err != nil {
		return err
	}
	if err := populate(ctx, src, dst, extra, opt.Epoch, true); err != nil {
		os.RemoveAll(dst)
		return err
	}
	return nil
}
