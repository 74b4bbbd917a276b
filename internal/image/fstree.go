package image

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/rootfs"
)

// FSTree adapts a filesystem read in user space (internal/fsread) to
// Tree, so that unmounted images are judged by the same code as mounted
// ones.
type FSTree struct {
	FS interface {
		fs.ReadDirFS
		Lstat(name string) (fs.FileInfo, error)
		Getxattr(name, attr string) ([]byte, error)
	}
}

func (t FSTree) ReadFile(name string, limit int64) ([]byte, error) {
	data, err := limitread.ReadFile(t.FS, cleanName(name), limit)
	if errors.Is(err, limitread.ErrTooLarge) {
		return nil, fmt.Errorf("%s: %w (limit %d bytes)", name, rootfs.ErrTooLarge, limit)
	}
	return data, err
}

func (t FSTree) ReadDir(name string) ([]fs.DirEntry, error) { return t.FS.ReadDir(cleanName(name)) }
func (t FSTree) Lstat(name string) (fs.FileInfo, error)     { return t.FS.Lstat(cleanName(name)) }
func (t FSTree) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(t.FS, cleanName(name)) }
func (t FSTree) Getxattr(name, attr string) ([]byte, error) {
	return t.FS.Getxattr(cleanName(name), attr)
}

func cleanName(name string) string {
	p := path.Clean("/" + name)[1:]
	if p == "" {
		return "."
	}
	return p
}
