// Package kured is REBOOT_STRATEGY=kured: the node does not reboot by
// itself but writes kured's reboot sentinel, and kured (the Kubernetes
// reboot daemon) takes its cluster lock, drains the node and reboots it.
// Acquire writes the sentinel, Release removes it once the new slot is in
// steady state (on most hosts /run is a tmpfs and the reboot removed it
// already). It implements coord.Lock.
package kured

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path"

	"golang.org/x/sys/unix"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/rootfs"
)

// DefaultSentinel is kured's --reboot-sentinel default (Ubuntu's
// update-notifier file; kured only tests that it exists).
const DefaultSentinel = "/var/run/reboot-required"

// content is what Ubuntu writes there; people reading it recognise it.
const content = "*** System restart required ***\n"

// Sentinel is kured's sentinel file inside a root. It implements
// coord.Lock.
type Sentinel struct {
	root rootfs.Root
	path string // absolute, inside root
}

var _ coord.Lock = (*Sentinel)(nil)

// New returns the sentinel at p ("" for DefaultSentinel) inside root.
// Symbolic links on the way (/var/run → /run) are followed only within
// root.
func New(root rootfs.Root, p string) (*Sentinel, error) {
	if p == "" {
		p = DefaultSentinel
	}
	if !path.IsAbs(p) {
		return nil, fmt.Errorf("kured sentinel %q: want an absolute path such as %s (kured's --reboot-sentinel)", p, DefaultSentinel)
	}
	p = path.Clean(p)
	if p == "/" {
		return nil, fmt.Errorf("kured sentinel %q: want a file path such as %s", p, DefaultSentinel)
	}
	return &Sentinel{root: root, path: p}, nil
}

// Path is the sentinel's host path (unresolved, for messages).
func (s *Sentinel) Path() string { return s.root.Join(s.path) }

// Acquire writes the sentinel atomically (temp file in the same
// directory, fsync, rename, fsync of the directory): from here on kured
// owns the reboot. Writing it again is harmless.
func (s *Sentinel) Acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := rootfs.MkdirAll(s.root.Path(), path.Dir(s.path), 0o755)
	if err != nil {
		return fmt.Errorf("write kured sentinel %s: %w", s.Path(), err)
	}
	defer dir.Close()
	if err := writeAt(dir, path.Base(s.path), []byte(content)); err != nil {
		return fmt.Errorf("write kured sentinel %s: %w", s.Path(), err)
	}
	return nil
}

// Release removes the sentinel if it is there, so kured does not reboot
// the node again; a missing sentinel (or directory) is success.
func (s *Sentinel) Release(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir, err := rootfs.Open(s.root.Path(), path.Dir(s.path), unix.O_RDONLY|unix.O_DIRECTORY)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove kured sentinel %s: %w", s.Path(), err)
	}
	defer dir.Close()
	err = unix.Unlinkat(int(dir.Fd()), path.Base(s.path), 0)
	if err == unix.ENOENT {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove kured sentinel %s: %w", s.Path(), err)
	}
	if err := dir.Sync(); err != nil {
		return fmt.Errorf("remove kured sentinel %s: sync directory: %w", s.Path(), err)
	}
	return nil
}

// Present reports whether the sentinel exists (a reboot is pending for
// kured).
func (s *Sentinel) Present() (bool, error) {
	f, err := rootfs.Open(s.root.Path(), s.path, unix.O_PATH)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("kured sentinel %s: %w", s.Path(), err)
	}
	f.Close()
	return true, nil
}

// writeAt writes name in dir atomically.
func writeAt(dir *os.File, name string, data []byte) error {
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	tmp := "." + name + ".tmp-" + hex.EncodeToString(rnd[:])
	dfd := int(dir.Fd())
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return err
	}
	return dir.Sync()
}
