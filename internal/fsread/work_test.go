package fsread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// dagLevels is how deep sharedDirImage nests: 2^40 paths.
const dagLevels = 40

// sharedDirImage builds an image of format f holding a chain of
// directories d/a/a/…/a, each with an empty sibling b, and then points
// every b entry at its sibling a's inode. No tool writes such an image,
// but a hostile one can: dagLevels small directories then describe a
// tree with 2^dagLevels paths.
func sharedDirImage(t *testing.T, f Format) []byte {
	t.Helper()
	src := filepath.Join(t.TempDir(), "src")
	p := filepath.Join(src, "d")
	for range dagLevels {
		must(t, os.MkdirAll(filepath.Join(p, "b"), 0o755))
		p = filepath.Join(p, "a")
	}
	must(t, os.MkdirAll(p, 0o755))
	img := filepath.Join(t.TempDir(), "img")
	var (
		re    *regexp.Regexp
		patch func(b []byte, m []int)
	)
	switch f {
	case Squashfs:
		needTools(t, "mksquashfs")
		// Uncompressed tables, so the directory entries can be patched:
		// offset, inode number delta, type 1 (dir), name size-1, name.
		mkSquashfs(t, src, img, "-noI", "-noD", "-noF", "-noX")
		re = regexp.MustCompile(`(?s)(....)\x01\x00\x00\x00a(....)\x01\x00\x00\x00b`)
		patch = func(b []byte, m []int) { copy(b[m[4]:m[5]], b[m[2]:m[3]]) }
	case Erofs:
		needTools(t, "mkfs.erofs")
		mkErofs(t, src, img)
		// A directory block: 12-byte dirents (nid, name offset, type)
		// for ".", "..", "a", "b", then the names.
		re = regexp.MustCompile(`(?s).{24}(.{8})....(.{8})....\.\.\.ab`)
		patch = func(b []byte, m []int) { copy(b[m[4]:m[5]], b[m[2]:m[3]]) }
	case Ext4:
		needTools(t, "mke2fs")
		run(t, "mke2fs", "-q", "-F", "-d", src, "-b", "1024", "-N", "256", "-O", "^has_journal,^resize_inode,^metadata_csum,^dir_index", "-t", "ext4", img, "512K")
		// Linear entries: inode, rec_len, name_len 1, type 2 (dir),
		// name padded to 4 bytes; a and b in either order.
		re = regexp.MustCompile(`(?s)(....)..\x01\x02([ab])\x00\x00\x00(....)..\x01\x02([ab])`)
		patch = func(b []byte, m []int) {
			if b[m[4]] == 'a' {
				copy(b[m[6]:m[7]], b[m[2]:m[3]])
			} else {
				copy(b[m[2]:m[3]], b[m[6]:m[7]])
			}
		}
	}
	b, err := os.ReadFile(img)
	must(t, err)
	ms := re.FindAllSubmatchIndex(b, -1)
	for _, m := range ms {
		patch(b, m)
	}
	if len(ms) != dagLevels {
		t.Fatalf("patched %d directories, want %d", len(ms), dagLevels)
	}
	return b
}

// TestSharedDirectoriesBounded walks images whose directories appear under
// several parents, as inspect and check do: the walk must end with an
// error after a bounded amount of work, not enumerate 2^40 paths.
func TestSharedDirectoriesBounded(t *testing.T) {
	for _, f := range []Format{Squashfs, Erofs, Ext4} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			img := sharedDirImage(t, f)
			lim := workLimits{inodes: 50000, entries: 50000, blocks: 50000}
			if os.Getenv("FSREAD_DEFAULT_LIMITS") != "" {
				lim = defaultWorkLimits // to time the worst case by hand
			}
			start := time.Now()
			fsys, err := openFSLimits(f, bytes.NewReader(img), int64(len(img)), lim)
			must(t, err)
			// The patch took: a and b are one directory.
			ents, err := fsys.ReadDir("d")
			must(t, err)
			if len(ents) != 2 {
				t.Fatalf("d has %d entries, want 2", len(ents))
			}
			ia, _ := ents[0].Info()
			ib, _ := ents[1].Info()
			if !ents[1].IsDir() || ia.Sys().(*Stat).Ino != ib.Sys().(*Stat).Ino {
				t.Fatalf("d/a and d/b are inodes %d and %d, want one directory", ia.Sys().(*Stat).Ino, ib.Sys().(*Stat).Ino)
			}
			visited := 0
			errUnbounded := errors.New("walk not cut short")
			err = fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if visited++; visited > 1_000_000 {
					return errUnbounded
				}
				return nil
			})
			if err == nil || errors.Is(err, errUnbounded) || !strings.Contains(err.Error(), "not a sane extension image") {
				t.Fatalf("walk of %d paths ended with %v, want a work limit error", visited, err)
			}
			w := workOf(fsys)
			got := workLimits{inodes: w.inodes.Load(), entries: w.entries.Load(), blocks: w.blocks.Load()}
			if got.inodes > lim.inodes+1 || got.entries > lim.entries+1 || got.blocks > lim.blocks+1 {
				t.Errorf("work %+v exceeds the limits %+v", got, lim)
			}
			t.Logf("%s: %v after %d paths in %v, work %+v", f, err, visited, time.Since(start), got)
		})
	}
}

// workOfWalk walks fsys the way inspect and check do – list every
// directory, look every entry up again, read symlinks and the first bytes
// of files – and returns the work counted and the number of files.
func workOfWalk(t *testing.T, fsys FS) (workLimits, int) {
	t.Helper()
	files := 0
	buf := make([]byte, 64)
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		files++
		if _, err := fsys.Lstat(p); err != nil {
			return err
		}
		switch {
		case d.Type() == fs.ModeSymlink:
			_, err = fsys.ReadLink(p)
		case d.Type().IsRegular():
			var f fs.File
			if f, err = fsys.Open(p); err == nil {
				_, err = f.Read(buf)
				if err == io.EOF {
					err = nil
				}
				f.Close()
			}
		}
		return err
	})
	must(t, err)
	w := workOf(fsys)
	return workLimits{inodes: w.inodes.Load(), entries: w.entries.Load(), blocks: w.blocks.Load()}, files
}

// TestWorkLimitsFarAboveRealImages checks that walking real images costs a
// small, bounded amount of work per file, so that the default limits
// leave room for images of well over 100,000 files.
func TestWorkLimitsFarAboveRealImages(t *testing.T) {
	const perDir, dirs = 250, 20
	src := filepath.Join(t.TempDir(), "src")
	for d := range dirs {
		for i := range perDir {
			p := filepath.Join(src, fmt.Sprintf("usr/lib/pkg%02d/sub/file-with-a-name-%04d", d, i))
			if i%10 == 0 {
				must(t, os.MkdirAll(filepath.Dir(p), 0o755))
				must(t, os.Symlink("../../pkg00/sub/file-with-a-name-0001", p))
				continue
			}
			writeFile(t, p, []byte(fmt.Sprintf("file %d %d\n", d, i)), 0o644)
		}
	}
	dir := t.TempDir()
	for _, f := range []Format{Squashfs, Erofs, Ext4} {
		t.Run(string(f), func(t *testing.T) {
			img := filepath.Join(dir, string(f))
			switch f {
			case Squashfs:
				needTools(t, "mksquashfs")
				mkSquashfs(t, src, img)
			case Erofs:
				needTools(t, "mkfs.erofs")
				mkErofs(t, src, img, "-zlz4")
			case Ext4:
				needTools(t, "mke2fs")
				run(t, "mke2fs", "-q", "-F", "-d", src, "-b", "4096", "-t", "ext4", img, "64M")
			}
			start := time.Now()
			got, files := workOfWalk(t, openImage(t, img).FS)
			t.Logf("walk took %v", time.Since(start))
			// 100,000 files at this cost per file must stay well within
			// the limits.
			scale := func(n int64) int64 { return n * 100_000 / int64(files) }
			t.Logf("%s: %d files, work %+v (per 100,000 files: %d inodes, %d entries, %d blocks)",
				f, files, got, scale(got.inodes), scale(got.entries), scale(got.blocks))
			lim := defaultWorkLimits
			if scale(got.inodes) > lim.inodes/5 || scale(got.entries) > lim.entries/5 || scale(got.blocks) > lim.blocks/5 {
				t.Errorf("walking %d files cost %+v: 100,000 files would come within 5x of the limits %+v", files, got, lim)
			}
		})
	}
}

// workOf returns the work counter of an FS this package opened.
func workOf(f FS) *work { return f.(*fsys).w }
