// Package rootfs resolves paths inside an alternative root directory the
// way systemd's chase() with CHASE_PREFIX_ROOT does: symbolic links are
// followed, but absolute targets and ".." never leave the root. It relies
// on openat2(RESOLVE_IN_ROOT), so the kernel enforces the boundary.
package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/limitread"
)

// Clean returns root in canonical form ("/" when empty).
func Clean(root string) string {
	if root == "" {
		return "/"
	}
	return filepath.Clean(root)
}

// Join returns the host path of p (an absolute path inside root) without
// resolving anything.
func Join(root, p string) string {
	return filepath.Join(Clean(root), path.Clean("/"+p))
}

// Open opens p inside root, following symlinks within root. flags are
// open(2) flags; O_CLOEXEC is added.
func Open(root, p string, flags int) (*os.File, error) {
	rfd, err := unix.Open(Clean(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: Clean(root), Err: err}
	}
	defer unix.Close(rfd)
	return OpenAt(rfd, Join("/", p), flags, Clean(root))
}

// OpenAt opens p below the directory dirfd, confined to it. name is used
// in error messages and as the file's name.
func OpenAt(dirfd int, p string, flags int, name string) (*os.File, error) {
	rel := path.Clean("/" + p)[1:]
	if rel == "" {
		rel = "."
	}
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return nil, &os.PathError{Op: "open", Path: filepath.Join(name, rel), Err: err}
		}
		return os.NewFile(uintptr(fd), filepath.Join(name, rel)), nil
	}
}

// Chase resolves p inside root and returns the resulting host path.
func Chase(root, p string) (string, error) {
	f, err := Open(root, p, unix.O_PATH)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return FdPath(f)
}

// FdPath returns the path the kernel reports for an open file.
func FdPath(f *os.File) (string, error) {
	target, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return "", fmt.Errorf("resolve path of %s: %w", f.Name(), err)
	}
	return target, nil
}

// Stat resolves p inside root and stats the result.
func Stat(root, p string) (os.FileInfo, string, error) {
	f, err := Open(root, p, unix.O_PATH)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	resolved, err := FdPath(f)
	if err != nil {
		return nil, "", err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return nil, "", &os.PathError{Op: "stat", Path: resolved, Err: err}
	}
	fi, err := os.Lstat(resolved)
	if err != nil {
		return nil, "", err
	}
	return fi, resolved, nil
}

// ErrTooLarge is returned by ReadFile for files over the limit.
var ErrTooLarge = limitread.ErrTooLarge

// ReadFile reads p inside root, at most limit bytes.
func ReadFile(root, p string, limit int64) ([]byte, error) {
	f, err := Open(root, p, unix.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readLimited(f, limit)
}

func readLimited(f *os.File, limit int64) ([]byte, error) {
	data, err := limitread.ReadAll(f, limit)
	if errors.Is(err, limitread.ErrTooLarge) {
		return nil, fmt.Errorf("read %s: %w (limit %d bytes)", f.Name(), ErrTooLarge, limit)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return data, nil
}

// MkdirAll creates the directory p inside root and any missing parents
// (with mode perm), resolving every component inside root, and returns
// the directory opened read-only. A symbolic link on the way is followed
// only within root.
func MkdirAll(root, p string, perm os.FileMode) (*os.File, error) {
	rfd, err := unix.Open(Clean(root), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: Clean(root), Err: err}
	}
	defer unix.Close(rfd)
	clean := path.Clean("/" + p)
	done := "/"
	for _, comp := range splitPath(clean) {
		parent, err := OpenAt(rfd, done, unix.O_PATH|unix.O_DIRECTORY, Clean(root))
		if err != nil {
			return nil, err
		}
		err = unix.Mkdirat(int(parent.Fd()), comp, uint32(perm.Perm()))
		parent.Close()
		if err != nil && err != unix.EEXIST {
			return nil, &os.PathError{Op: "mkdir", Path: Join(root, path.Join(done, comp)), Err: err}
		}
		done = path.Join(done, comp)
	}
	return OpenAt(rfd, clean, unix.O_RDONLY|unix.O_DIRECTORY, Clean(root))
}

func splitPath(clean string) []string {
	var out []string
	for rest := clean; rest != "/" && rest != "."; rest = path.Dir(rest) {
		out = append([]string{path.Base(rest)}, out...)
	}
	return out
}
