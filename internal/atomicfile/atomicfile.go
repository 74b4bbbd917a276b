// Package atomicfile replaces files so that a crash or power cut leaves
// either the old file or the new one, never half of either: a temporary
// file in the same directory, fsync, rename, fsync of the directory.
// It is the one such writer of the module (journal, registry, repository
// files, pulled images all go through it).
package atomicfile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Write replaces path with data, mode applied before the rename.
func Write(path string, data []byte, mode fs.FileMode) error {
	return WriteFrom(path, bytes.NewReader(data), mode)
}

// WriteFrom replaces path with what r yields.
func WriteFrom(path string, r io.Reader, mode fs.FileMode) error {
	tmp, err := Temp(filepath.Dir(path), filepath.Base(path), r, mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Temp writes r to a new hidden temporary file in dir (named after base),
// applies mode and fsyncs it, for a caller that renames it itself (e.g.
// without replacing). On error nothing is left behind.
func Temp(dir, base string, r io.Reader, mode fs.FileMode) (string, error) {
	f, err := os.CreateTemp(dir, ".#"+base+".*")
	if err != nil {
		return "", err
	}
	name := f.Name()
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return "", err
	}
	return name, nil
}

// SyncDir makes a rename in dir durable. File systems that cannot fsync
// a directory (EINVAL) have nothing more to do.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// WriteNew creates path with data, atomically and only if path does not
// exist yet: the temporary file is hard-linked into place, which fails
// with fs.ErrExist rather than replacing what another writer put there.
func WriteNew(path string, data []byte, mode fs.FileMode) error {
	tmp, err := Temp(filepath.Dir(path), filepath.Base(path), bytes.NewReader(data), mode)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := SyncDir(filepath.Dir(path)); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
