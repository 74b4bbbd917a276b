package merge

import (
	"context"
	"fmt"
	"path"
	"time"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/rootfs"
	"golang.org/x/sys/unix"
)

// LockDir is the directory inside the root that holds the merge locks.
const LockDir = "/run/systemd"

// LockPath is the lock file, inside the root, that a merge, refresh or
// unmerge of class c holds from start to end. Sysext and confext merge
// different hierarchy sets, so each has its own.
func LockPath(c imageclass.Class) string { return path.Join(LockDir, c.String()+".lock") }

// lock takes the class's lock inside the root. While another process
// holds it, it says once that it waits, and waits until the lock is free
// or ctx ends.
func (e *Engine) lock(ctx context.Context) (func(), error) {
	dir, err := rootfs.MkdirAll(e.Root, LockDir, 0o755)
	if err != nil {
		return nil, fmt.Errorf("create lock directory %s: %w", rootfs.Join(e.Root, LockDir), err)
	}
	defer dir.Close()
	name := path.Base(LockPath(e.Class))
	where := rootfs.Join(e.Root, LockPath(e.Class))
	fd, err := unix.Openat(int(dir.Fd()), name, unix.O_RDWR|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock file %s: %w", where, err)
	}
	release := func() { unix.Close(fd) }
	wait := 10 * time.Millisecond
	for said := false; ; {
		err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return release, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			release()
			return nil, fmt.Errorf("lock %s: %w", where, err)
		}
		if !said {
			e.log().Info(fmt.Sprintf("Waiting for another %s merge, refresh or unmerge of %s to finish (%s is locked)...", e.Class, rootfs.Clean(e.Root), where))
			said = true
		}
		select {
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("waiting for %s: %w", where, ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, 200*time.Millisecond)
	}
}
