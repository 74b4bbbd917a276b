package osimage

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/stratalinux/strata/internal/fsimage"
	"github.com/stratalinux/strata/internal/fsread"
	"github.com/stratalinux/strata/internal/gpt"
)

// maxRootCarry bounds what AddExtensions copies out of an existing ROOT (an untrusted image).
const maxRootCarry = 4 << 30

// AddExtensions adds extension images to ROOT on an existing OS disk image, placed as PlaceExtension
// says ("NAME:FILE" as bake_flatcar_image.sh, or a bare FILE in /var/lib/extensions/).
//
// ROOT is rebuilt rather than edited: Strata has no in-place ext4 writer, and a freshly baked ROOT
// holds only the files Bake put there, so reading them back (internal/fsread), adding the images and
// writing a new ext4 with internal/fsimage gives the same bytes as baking with all the extensions at
// once. The disk is rewritten through a temp copy and a rename, so a failure leaves it as it was.
// Regular files, directories and symbolic links are carried over; anything else in ROOT is an error.
func AddExtensions(ctx context.Context, disk string, images []string, epoch int64) error {
	src, err := os.Open(disk)
	if err != nil {
		return fmt.Errorf("add extensions: %w", err)
	}
	defer src.Close()
	size, err := src.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	t, err := gpt.Read(src, size)
	if err != nil {
		return fmt.Errorf("add extensions to %s: %w", disk, err)
	}
	root := t.ByIndex(IndexRoot)
	if root == nil || root.Type != TypeRoot {
		return fmt.Errorf("add extensions to %s: no ROOT partition %d of type %s", disk, IndexRoot, TypeRoot)
	}
	sr := io.NewSectionReader(src, root.Start(), root.Size())
	img, err := fsread.Open(sr, root.Size(), "")
	if err != nil {
		return fmt.Errorf("add extensions to %s: ROOT: %w", disk, err)
	}
	var c rootContent
	var total int64
	err = fs.WalkDir(img.FS, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == "." || p == "lost+found" {
			if p == "lost+found" {
				return fs.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return nil
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			if total += info.Size(); total > maxRootCarry {
				return fmt.Errorf("ROOT holds more than %d bytes", int64(maxRootCarry))
			}
			b, err := fs.ReadFile(img.FS, p)
			if err != nil {
				return err
			}
			c.files = append(c.files, fsimage.File{Path: p, Data: b, Mode: info.Mode().Perm()})
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(img.FS, p)
			if err != nil {
				return err
			}
			if c.links == nil {
				c.links = map[string]string{}
			}
			c.links[p] = target
			return nil
		}
		return fmt.Errorf("ROOT holds %s, neither a file, a directory nor a link (only Strata-baked ROOTs can be rebuilt)", p)
	})
	if err != nil {
		return fmt.Errorf("add extensions to %s: %w", disk, err)
	}
	if err := c.placeAll(images); err != nil {
		return fmt.Errorf("add extensions to %s: %w", disk, err)
	}
	dir, err := os.MkdirTemp(filepath.Dir(disk), ".strata-os-ext-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rootImg, err := buildExt4(ctx, dir, "root", c, epoch, root.Size())
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "disk")
	out, err := os.Create(tmp)
	if err != nil {
		return err
	}
	defer out.Close()
	if err := out.Truncate(size); err != nil {
		return err
	}
	if _, err := copySparseReader(out, 0, io.NewSectionReader(src, 0, size)); err != nil {
		return fmt.Errorf("add extensions: copy %s: %w", disk, err)
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	// Clear the old ROOT so the new one is the only thing in the partition (same bytes as a bake).
	if err := punchZero(out, root.Start(), root.Size()); err != nil {
		return err
	}
	if _, err := copySparse(out, root.Start(), root.Size(), rootImg); err != nil {
		return fmt.Errorf("add extensions: ROOT: %w", err)
	}
	if err := setExt4Label(out, root.Start(), "ROOT"); err != nil {
		return err
	}
	if err := out.Sync(); err != nil {
		return err
	}
	if err := os.Rename(tmp, disk); err != nil {
		return fmt.Errorf("add extensions: %w", err)
	}
	return syncDir(filepath.Dir(disk))
}

func punchZero(w io.WriterAt, off, n int64) error {
	buf := make([]byte, 1<<20)
	for done := int64(0); done < n; done += int64(len(buf)) {
		m := min(int64(len(buf)), n-done)
		if err := writeAt(w, buf[:m], off+done, "zeros"); err != nil {
			return err
		}
	}
	return nil
}
