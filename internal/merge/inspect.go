package merge

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/imageclass"
)

// ReadCandidate reads what Evaluate needs from an image without mounting
// it: directories directly, raw images and block devices through Strata's
// user-space filesystem readers. It needs no privileges.
func ReadCandidate(img image.Image, c imageclass.Class, hierarchies []string, arch string) Candidate {
	cand := Candidate{Image: img}
	switch img.Kind {
	case image.KindDirectory:
		fillFromTree(&cand, image.DirTree{Root: img.Path}, c, hierarchies)
	default:
		if _, err := probeRaw(img, arch); err != nil {
			cand.OpenErr = err
			return cand
		}
		f, err := os.Open(img.Path)
		if err != nil {
			cand.OpenErr = err
			return cand
		}
		defer f.Close()
		size, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			cand.OpenErr = err
			return cand
		}
		im, err := fsread.Open(f, size, arch)
		if err != nil {
			cand.OpenErr = fmt.Errorf("read image: %w", err)
			return cand
		}
		fillFromTree(&cand, fsTree{im.FS}, c, hierarchies)
	}
	return cand
}

// fsTree adapts an fsread filesystem to image.Tree.
type fsTree struct{ fsys fsread.FS }

func (t fsTree) ReadFile(name string, limit int64) ([]byte, error) {
	f, err := t.fsys.Open(clean(name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, limit)
	}
	return data, nil
}

func (t fsTree) ReadDir(name string) ([]fs.DirEntry, error) { return t.fsys.ReadDir(clean(name)) }
func (t fsTree) Lstat(name string) (fs.FileInfo, error)     { return t.fsys.Lstat(clean(name)) }
func (t fsTree) Stat(name string) (fs.FileInfo, error)      { return fs.Stat(t.fsys, clean(name)) }
func (t fsTree) Getxattr(name, attr string) ([]byte, error) {
	return t.fsys.Getxattr(clean(name), attr)
}

func clean(name string) string {
	p := path.Clean("/" + name)[1:]
	if p == "" {
		return "."
	}
	return p
}
