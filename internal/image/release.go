package image

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"

	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/limitread"
	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"golang.org/x/sys/unix"
)

// ErrNoReleaseData means the image carries no extension-release file for
// its name; systemd ignores such images.
var ErrNoReleaseData = errors.New("carries no extension-release data")

// NoReleaseError is ErrNoReleaseData saying which file was looked for
// and which extension-release files the image has instead, so that the
// message can tell what to do.
type NoReleaseError struct {
	Want  string   // the path looked for, inside the image
	Found []string // X of each other extension-release.X file
}

func (e *NoReleaseError) Error() string {
	msg := "no " + e.Want + " in the image"
	switch len(e.Found) {
	case 0:
		return msg + ": add it (strata bake writes it)"
	case 1:
		return fmt.Sprintf("%s (it has extension-release.%s): name the image %s.raw (or %s_VERSION.raw), or add %s",
			msg, e.Found[0], e.Found[0], e.Found[0], path.Base(e.Want))
	}
	return fmt.Sprintf("%s (it has extension-release.%s): name the image after one of them, or add %s",
		msg, strings.Join(e.Found, ", extension-release."), path.Base(e.Want))
}

func (e *NoReleaseError) Is(target error) bool { return target == ErrNoReleaseData }

// ErrReleaseTooLarge means the extension-release file exceeds what is
// read of it.
var ErrReleaseTooLarge = errors.New("is larger than 64 KiB")

// ErrReleaseNotUnique means several extension-release files qualify.
var ErrReleaseNotUnique = errors.New("more than one extension-release file qualifies")

const maxReleaseSize = 64 << 10

// Release is the extension-release file found in an image.
type Release struct {
	Fields   osrelease.Release
	File     string // path inside the image
	Warnings []osrelease.Warning
}

// ReadRelease finds and parses the extension-release file of image name
// in t with systemd's rules: the exact file first; otherwise the one
// regular file whose name matches the image name cut at '_' or '+', or
// whose user.extension-release.strict xattr is false.
func ReadRelease(t fsread.FS, c imageclass.Class, name string) (Release, error) {
	dir := c.ReleaseDir()
	exact := c.ReleasePath(name)
	data, err := limitread.ReadFile(t, exact, maxReleaseSize)
	file := exact
	if errors.Is(err, fs.ErrNotExist) {
		file, err = findRelaxed(t, dir, name, exact)
		if err != nil {
			return Release{}, err
		}
		data, err = limitread.ReadFile(t, file, maxReleaseSize)
	}
	if errors.Is(err, limitread.ErrTooLarge) {
		return Release{}, fmt.Errorf("%s %w", file, ErrReleaseTooLarge)
	}
	if err != nil {
		return Release{}, fmt.Errorf("read %s: %w", file, err)
	}
	fields, warns, err := osrelease.Parse(bytes.NewReader(data))
	if err != nil {
		return Release{}, fmt.Errorf("parse %s: %w", file, err)
	}
	return Release{Fields: fields, File: file, Warnings: warns}, nil
}

func findRelaxed(t fsread.FS, dir, name, exact string) (string, error) {
	entries, err := t.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return "", &NoReleaseError{Want: exact}
	}
	if err != nil {
		return "", fmt.Errorf("read %s: %w", dir, err)
	}
	want := ExtractImageName(name)
	var found, others []string
	for _, e := range entries {
		x, ok := strings.CutPrefix(e.Name(), "extension-release.")
		if !ok || !NameIsValid(x) {
			continue
		}
		p := path.Join(dir, e.Name())
		fi, err := t.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		if x == want || strictXattrFalse(t, p) {
			found = append(found, p)
		} else {
			others = append(others, x)
		}
	}
	switch len(found) {
	case 0:
		return "", &NoReleaseError{Want: exact, Found: others}
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("%w: %s", ErrReleaseNotUnique, strings.Join(found, ", "))
}

func strictXattrFalse(t fsread.FS, p string) bool {
	v, err := fsread.Getxattr(t, p, "user.extension-release.strict")
	if err != nil {
		return false
	}
	b, err := sdparse.Boolean(strings.TrimRight(string(v), "\x00\n"))
	return err == nil && !b
}

// DirTree is the image tree (fsread.XattrFS) of a directory on the host:
// a directory image, or an image mounted in the staging area. Every lookup
// is confined to Root, symbolic links included (openat2 RESOLVE_IN_ROOT),
// which os.DirFS does not do.
type DirTree struct{ Root string }

var _ fsread.XattrFS = DirTree{}

// Open implements fs.FS.
func (d DirTree) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	f, err := rootfs.Open(d.Root, name, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	return dirFile{f}, nil
}

// dirFile is an opened file of a DirTree; a read error names the file's
// host path, as rootfs.ReadFile's do.
type dirFile struct{ *os.File }

func (f dirFile) Read(p []byte) (int, error) {
	n, err := f.File.Read(p)
	if err != nil && err != io.EOF {
		err = fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return n, err
}

// ReadDir implements fs.ReadDirFS: the entries sorted by name.
func (d DirTree) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := rootfs.Open(d.Root, name, unix.O_RDONLY|unix.O_DIRECTORY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ents, err := f.ReadDir(-1)
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return ents, err
}

// Stat implements fs.StatFS, following symbolic links inside Root.
func (d DirTree) Stat(name string) (fs.FileInfo, error) {
	f, err := rootfs.Open(d.Root, name, unix.O_PATH)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Stat()
}

// Lstat implements fs.ReadLinkFS.
func (d DirTree) Lstat(name string) (fs.FileInfo, error) {
	p, err := d.parent(name)
	if err != nil {
		return nil, err
	}
	return os.Lstat(p)
}

// ReadLink implements fs.ReadLinkFS.
func (d DirTree) ReadLink(name string) (string, error) {
	p, err := d.parent(name)
	if err != nil {
		return "", err
	}
	return os.Readlink(p)
}

// Getxattr implements fsread.XattrFS.
func (d DirTree) Getxattr(name, attr string) ([]byte, error) {
	p, err := d.parent(name)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, attr, buf)
	if err != nil {
		if err == unix.ENODATA {
			return nil, fmt.Errorf("xattr %s of %s: %w", attr, name, fs.ErrNotExist)
		}
		return nil, &os.PathError{Op: "getxattr", Path: name, Err: err}
	}
	return buf[:n], nil
}

// parent is the host path of name with its directory resolved inside
// Root and its last component not followed.
func (d DirTree) parent(name string) (string, error) {
	dir, base := path.Split(path.Clean("/" + name))
	p, err := rootfs.Chase(d.Root, dir)
	if err != nil {
		return "", err
	}
	return path.Join(p, base), nil
}

// BakedReleaseName is the extension name of an image named as strata bake
// names it (NAME-VERSION-ARCH.raw) that has no extension-release for its
// own name: the NAME of its one extension-release.NAME (see BakedName).
func BakedReleaseName(t fsread.FS, c imageclass.Class, name string) (string, bool) {
	_, err := ReadRelease(t, c, name)
	var nr *NoReleaseError
	if !errors.As(err, &nr) {
		return "", false
	}
	return BakedName(ExtractImageName(name), nr.Found)
}
