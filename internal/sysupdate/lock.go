package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll is how often a waiting update retries a busy target lock.
const lockPoll = 100 * time.Millisecond

// lockTargets takes an exclusive BSD lock (flock) on the target directory
// of every given transfer, in path order so two runs never deadlock, and
// returns the function that releases them. systemd-sysupdate serialises
// on the target the same way (a BSD lock on the block device for
// partitions); here it keeps two updates (strata sysupdate, strata ext
// add, the timer) from writing the same partial file and from vacuuming
// what the other installs. A busy lock is waited for, saying so once;
// ctx ends the wait. With create, missing directories are made first
// (update creates them anyway); without, they are skipped.
func (e *Engine) lockTargets(ctx context.Context, ts []*Transfer, create bool) (func(), error) {
	var dirs []string
	for _, t := range ts {
		d := e.hostPath(t.Target.Path)
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	slices.Sort(dirs)
	var held []*os.File
	unlock := func() {
		for _, f := range held {
			f.Close() // closing the last descriptor drops the lock
		}
	}
	for _, d := range dirs {
		if create {
			if err := os.MkdirAll(d, 0o755); err != nil {
				unlock()
				return nil, fmt.Errorf("create %s: %w", d, err)
			}
		}
		f, err := os.Open(d)
		if errors.Is(err, fs.ErrNotExist) && !create {
			continue
		}
		if err != nil {
			unlock()
			return nil, fmt.Errorf("lock %s: %w", d, err)
		}
		if err := e.flock(ctx, f, d); err != nil {
			f.Close()
			unlock()
			return nil, err
		}
		held = append(held, f)
	}
	return unlock, nil
}

func (e *Engine) flock(ctx context.Context, f *os.File, dir string) error {
	said := false
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EWOULDBLOCK):
		case errors.Is(err, syscall.EINTR):
			continue
		default:
			return fmt.Errorf("lock %s: %w", dir, err)
		}
		if !said {
			e.log().Info(fmt.Sprintf("Another update is running on %s, waiting…", dir))
			said = true
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the update running on %s: %w", dir, ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}
