package fsimage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// stage builds a scratch tree in a new directory below parent that looks
// like src plus the extra files: directories are created, everything else
// is hard-linked (falling back to a copy across filesystems), or copied
// when copyFiles is set. Copies and directories get root ownership (when
// permitted) and the epoch as timestamps. It returns the scratch root; the
// caller removes it.
func stage(ctx context.Context, src, parent string, extra []File, epoch int64, copyFiles bool) (string, error) {
	root, err := os.MkdirTemp(parent, ".strata-stage-")
	if err != nil {
		return "", err
	}
	if err := populate(ctx, src, root, extra, epoch, copyFiles); err != nil {
		os.RemoveAll(root)
		return "", err
	}
	return root, nil
}

type inodeKey struct{ dev, ino uint64 }

func populate(ctx context.Context, src, root string, extra []File, epoch int64, copyFiles bool) error {
	t := time.Unix(epoch, 0)
	links := map[inodeKey]string{}
	var dirs []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		dst := filepath.Join(root, rel)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if d.IsDir() {
			if rel != "." {
				if err := os.Mkdir(dst, 0o700); err != nil {
					return err
				}
			}
			dirs = append(dirs, dst)
			return os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
		}
		if !copyFiles {
			err := os.Link(p, dst)
			if err == nil {
				return nil
			}
			if !errors.Is(err, syscall.EXDEV) && !errors.Is(err, syscall.EPERM) {
				return err
			}
			copyFiles = true
		}
		return copyEntry(p, dst, fi, links, t)
	})
	if err != nil {
		return err
	}
	for _, f := range extra {
		dst := filepath.Join(root, filepath.FromSlash(f.Path))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(dst, f.Data, fileMode(f.Mode)); err != nil {
			return err
		}
		if err := os.Chmod(dst, fileMode(f.Mode)); err != nil {
			return err
		}
		_ = os.Lchown(dst, 0, 0)
		if err := os.Chtimes(dst, t, t); err != nil {
			return err
		}
		for d := filepath.Dir(dst); len(d) > len(root); d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	// Directory times last, deepest first, since adding entries moves them.
	for i := len(dirs) - 1; i >= 0; i-- {
		_ = os.Lchown(dirs[i], 0, 0)
		if err := os.Chtimes(dirs[i], t, t); err != nil {
			return err
		}
	}
	return nil
}

// copyEntry copies one non-directory entry, keeping hard links within the
// tree as hard links.
func copyEntry(p, dst string, fi fs.FileInfo, links map[inodeKey]string, t time.Time) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if ok && st.Nlink > 1 {
		key := inodeKey{uint64(st.Dev), st.Ino}
		if first, seen := links[key]; seen {
			return os.Link(first, dst)
		}
		links[key] = dst
	}
	mode := fi.Mode()
	switch {
	case mode.IsRegular():
		if err := copyFile(p, dst, mode); err != nil {
			return err
		}
	case mode&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, dst); err != nil {
			return err
		}
	case mode&(fs.ModeDevice|fs.ModeNamedPipe|fs.ModeSocket) != 0 && ok:
		if err := unix.Mknod(dst, st.Mode, int(st.Rdev)); err != nil {
			return fmt.Errorf("copy %s: %w", p, err)
		}
	default:
		return fmt.Errorf("copy %s: unsupported file type %v", p, mode.Type())
	}
	_ = os.Lchown(dst, 0, 0)
	if mode&fs.ModeSymlink == 0 {
		// chown clears setuid bits; put the mode back.
		if err := os.Chmod(dst, mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky)); err != nil {
			return err
		}
	}
	ts := unix.NsecToTimespec(t.UnixNano())
	return unix.UtimesNanoAt(unix.AT_FDCWD, dst, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW)
}

func copyFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode.Perm()|0o200)
	if err != nil {
		return err
	}
	// Try a reflink first; fall back to copy_file_range via io.Copy.
	if err := unix.IoctlFileClone(int(out.Fd()), int(in.Fd())); err != nil {
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return fmt.Errorf("copy %s: %w", src, err)
		}
	}
	return out.Close()
}
