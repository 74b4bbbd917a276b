package merge

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/rootfs"
	"golang.org/x/sys/unix"
)

// StagingDir is the directory inside the root where staging directories
// are made: the root's own /run, so --root never writes to the host's.
const StagingDir = "/run/strata"

// makeStaging creates the (empty) directory where the private namespace
// mounts its tmpfs, below the root's /run/strata, and removes the staging
// directories that interrupted runs left there. Each staging directory is
// flock()ed by its user for as long as it exists, so one that can be
// locked is stale; the parent is flock()ed while it is scanned and while
// a directory is made and locked, so no run removes another's directory
// before it is locked.
func (e *Engine) makeStaging() (string, func(), error) {
	parent, err := e.openStagingParent()
	if err != nil {
		return "", nil, err
	}
	defer parent.Close()
	parentPath, err := rootfs.FdPath(parent)
	if err != nil {
		return "", nil, err
	}
	if err := flockRetry(int(parent.Fd()), unix.LOCK_EX); err != nil {
		return "", nil, fmt.Errorf("lock staging directory %s: %w", parentPath, err)
	}
	defer unix.Flock(int(parent.Fd()), unix.LOCK_UN)
	e.removeStaleStaging(parent, parentPath)

	dir, err := os.MkdirTemp(parentPath, e.Class.String()+".")
	if err != nil {
		return "", nil, fmt.Errorf("create staging directory in %s: %w", parentPath, err)
	}
	fd, err := unix.Openat(int(parent.Fd()), filepath.Base(dir), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err == nil {
		if err = unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd)
		}
	}
	if err != nil {
		_ = os.Remove(dir)
		return "", nil, fmt.Errorf("lock staging directory %s: %w", dir, err)
	}
	return dir, func() {
		_ = os.Remove(dir)
		unix.Close(fd)
	}, nil
}

// openStagingParent opens (creating it) the directory that holds the
// staging directories: StagingParent when set, else <root>/run/strata
// resolved inside the root.
func (e *Engine) openStagingParent() (*os.File, error) {
	if e.StagingParent != "" {
		if err := os.MkdirAll(e.StagingParent, 0o700); err != nil {
			return nil, fmt.Errorf("create staging directory %s: %w", e.StagingParent, err)
		}
		f, err := os.Open(e.StagingParent)
		if err != nil {
			return nil, fmt.Errorf("open staging directory %s: %w", e.StagingParent, err)
		}
		return f, nil
	}
	f, err := rootfs.MkdirAll(e.Root, StagingDir, 0o700)
	if err != nil {
		return nil, fmt.Errorf("create staging directory %s (the root needs a writable /run): %w", rootfs.Join(e.Root, StagingDir), err)
	}
	return f, nil
}

// isStagingName tells staging directories (of any class) from anything
// else that may live in the staging parent.
func isStagingName(name string) bool {
	for _, c := range []imageclass.Class{imageclass.Sysext, imageclass.Confext} {
		if strings.HasPrefix(name, c.String()+".") && len(name) > len(c.String())+1 {
			return true
		}
	}
	return false
}

// removeStaleStaging removes every staging directory below parent that no
// running merge holds. A stale directory normally holds nothing (its tmpfs
// lived in the dead run's private namespace), but whatever is still
// mounted on or below it here is detached first. Symbolic links are
// removed, never followed. Failures are logged: they must not stop the
// merge.
func (e *Engine) removeStaleStaging(parent *os.File, parentPath string) {
	names, err := parent.Readdirnames(-1)
	if err != nil {
		e.log().Warn(fmt.Sprintf("Could not list %s to remove stale staging directories: %v", parentPath, err))
		return
	}
	pfd := int(parent.Fd())
	for _, name := range names {
		if !isStagingName(name) {
			continue
		}
		full := filepath.Join(parentPath, name)
		var st unix.Stat_t
		if err := unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			// Not made by a run of ours: a link is removed, not followed.
			if err := unix.Unlinkat(pfd, name, 0); err != nil {
				e.log().Warn(fmt.Sprintf("Could not remove %s from the staging directory: %v", full, err))
			}
			continue
		}
		// Mounts visible here are detached before the directory is
		// opened: otherwise the open would land on the mounted tree.
		if err := detachMountsBelow(full); err != nil {
			e.log().Warn(fmt.Sprintf("Could not detach the mounts left on stale staging directory %s: %v", full, err))
			continue
		}
		fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
			unix.Close(fd) // in use by a running merge
			continue
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			continue
		}
		err = removeAllAt(pfd, name, st.Dev, 0)
		unix.Close(fd)
		if err != nil {
			e.log().Warn(fmt.Sprintf("Could not remove stale staging directory %s: %v", full, err))
			continue
		}
		e.log().Info(fmt.Sprintf("Removed stale staging directory '%s' left by an interrupted run.", full))
	}
}

// detachMountsBelow lazily unmounts every mount on or below dir in this
// mount namespace, innermost first.
func detachMountsBelow(dir string) error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	var points []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMountinfo(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			points = append(points, mp)
		}
	}
	sort.Slice(points, func(i, j int) bool { return len(points[i]) > len(points[j]) })
	for _, mp := range points {
		// A mount point listed twice (stacked mounts) is gone after
		// the first detach of its top: EINVAL is expected then.
		for i := 0; i < 16; i++ {
			if err := unix.Unmount(mp, unix.MNT_DETACH|unix.UMOUNT_NOFOLLOW); err != nil {
				if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOENT) {
					break
				}
				return fmt.Errorf("detach %s: %w", mp, err)
			}
		}
	}
	return nil
}

// maxStagingDepth bounds the walk of a stale staging directory.
const maxStagingDepth = 64

// removeAllAt removes name below dirfd and everything in it, without
// following symbolic links and without crossing into another filesystem
// (dev is the device name must be on).
func removeAllAt(dirfd int, name string, dev uint64, depth int) error {
	if depth > maxStagingDepth {
		return fmt.Errorf("%s: nested deeper than %d levels", name, maxStagingDepth)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	d := os.NewFile(uintptr(fd), name)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return fmt.Errorf("list %s: %w", name, err)
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			continue
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if st.Dev != dev {
				d.Close()
				return fmt.Errorf("%s/%s is a mount point", name, n)
			}
			if err := removeAllAt(fd, n, dev, depth+1); err != nil {
				d.Close()
				return fmt.Errorf("%s/%w", name, err)
			}
			continue
		}
		if err := unix.Unlinkat(fd, n, 0); err != nil {
			d.Close()
			return fmt.Errorf("remove %s/%s: %w", name, n, err)
		}
	}
	d.Close()
	if err := unix.Unlinkat(dirfd, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}

func flockRetry(fd, how int) error {
	for {
		err := unix.Flock(fd, how)
		if err != unix.EINTR {
			return err
		}
	}
}
