package image

import (
	"fmt"
	"io"
	"io/fs"
	"path"

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
	f, err := t.FS.Open(cleanName(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w (limit %d bytes)", name, rootfs.ErrTooLarge, limit)
	}
	return data, nil
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
