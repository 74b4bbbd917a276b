package image

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/version"
)

// Kind is how an image is stored.
type Kind string

const (
	KindDirectory Kind = "directory"
	KindRaw       Kind = "raw"
	KindBlock     Kind = "block"
)

// Image is one discovered extension image.
type Image struct {
	Name string
	Kind Kind
	// Entry is the search directory entry as found, inside the root
	// (e.g. /var/lib/extensions/foo.raw or /etc/extensions/foo.v/foo_2.raw).
	Entry string
	// SearchDir is the search directory the entry is in, inside the root.
	SearchDir string
	// Path is the host path of the image after following symlinks within
	// the root.
	Path     string
	ReadOnly bool
	Mtime    time.Time
	Dev, Ino uint64
	Size     int64
}

// Shadowed is an entry whose name an earlier entry already claimed.
type Shadowed struct {
	Image
	By string // Entry of the image that won the name
}

// Skipped is a search directory entry that is not an image.
type Skipped struct {
	Entry  string
	Reason string
}

// Discovery is everything found in the search directories.
type Discovery struct {
	Images   []Image // winners, sorted by name (version order)
	Shadowed []Shadowed
	Skipped  []Skipped
}

// InInitrd reports whether root is an initrd (it has /etc/initrd-release).
func InInitrd(root string) bool {
	_, err := os.Lstat(rootfs.Join(root, "/etc/initrd-release"))
	return err == nil
}

// Discover walks the class's search directories below root in precedence
// order. The first entry providing a name wins; later ones are shadowed.
// arch is the systemd architecture name used to pick versioned entries.
func Discover(root string, c imageclass.Class, initrd bool, arch string) (Discovery, error) {
	var d Discovery
	claimed := map[string]string{}
	for _, dir := range c.SearchDirs(initrd) {
		if err := discoverDir(root, dir, c, arch, claimed, &d); err != nil {
			return d, err
		}
	}
	sort.Slice(d.Images, func(i, j int) bool { return version.Compare(d.Images[i].Name, d.Images[j].Name) < 0 })
	return d, nil
}

func discoverDir(root, dir string, c imageclass.Class, arch string, claimed map[string]string, d *Discovery) error {
	f, err := rootfs.Open(root, dir, syscall.O_RDONLY|syscall.O_DIRECTORY)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("open search directory %s: %w", dir, unwrapPath(err))
	}
	resolvedDir, err := rootfs.FdPath(f)
	if err != nil {
		f.Close()
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("read search directory %s: %w", dir, unwrapPath(err))
	}
	sort.Strings(names)
	for _, fname := range names {
		entry := path.Join(dir, fname)
		fi, resolved, err := rootfs.Stat(root, entry)
		if err != nil {
			// Dangling links and entries that vanished claim no name.
			d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "cannot be resolved: " + describe(err)})
			continue
		}
		img := Image{Entry: entry, SearchDir: dir, Path: resolved}
		var name string
		var ok bool
		switch m := fi.Mode(); {
		case m.IsRegular():
			if name, ok = NameOfRaw(fname, c); !ok {
				d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "not an image: a regular file must be named NAME.raw with a valid NAME"})
				continue
			}
			img.Kind = KindRaw
		case m.IsDir():
			if vname, suffix, isV := NameOfVersioned(fname, c); isV || path.Ext(fname) == ".v" {
				if !isV {
					d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "not a versioned image directory: invalid name"})
					continue
				}
				picked, pfi, why := pickVersioned(root, entry, vname, suffix, arch)
				if picked == "" {
					d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: why})
					continue
				}
				pentry := path.Join(entry, picked)
				_, presolved, err := rootfs.Stat(root, pentry)
				if err != nil {
					d.Skipped = append(d.Skipped, Skipped{Entry: pentry, Reason: "cannot be resolved: " + describe(err)})
					continue
				}
				img.Entry, img.Path, fi, name = pentry, presolved, pfi, vname
				if fi.IsDir() {
					img.Kind = KindDirectory
				} else if fi.Mode()&fs.ModeDevice != 0 {
					img.Kind = KindBlock
				} else {
					img.Kind = KindRaw
				}
				break
			}
			if name, ok = NameOfDir(fname, c); !ok {
				d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "not an image: invalid directory name"})
				continue
			}
			img.Kind = KindDirectory
		case m&fs.ModeDevice != 0 && m&fs.ModeCharDevice == 0:
			if !NameIsValid(fname) {
				d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "not an image: invalid block device name"})
				continue
			}
			name, img.Kind = fname, KindBlock
		default:
			d.Skipped = append(d.Skipped, Skipped{Entry: entry, Reason: "not an image: neither a regular file, a directory nor a block device"})
			continue
		}
		img.Name = name
		fillStat(&img, fi)
		img.ReadOnly = img.ReadOnly || isUnder(resolvedDir, "/usr")
		if by, taken := claimed[name]; taken {
			d.Shadowed = append(d.Shadowed, Shadowed{Image: img, By: by})
			continue
		}
		claimed[name] = img.Entry
		d.Images = append(d.Images, img)
	}
	return nil
}

func fillStat(img *Image, fi fs.FileInfo) {
	img.Mtime = fi.ModTime()
	img.Size = fi.Size()
	if img.Kind == KindRaw && fi.Mode().Perm()&0o222 == 0 {
		img.ReadOnly = true
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		img.Dev, img.Ino = uint64(st.Dev), st.Ino
	}
}

// pickVersioned chooses the newest usable entry of a NAME.v directory.
func pickVersioned(root, dir, name, suffix, arch string) (string, fs.FileInfo, string) {
	f, err := rootfs.Open(root, dir, syscall.O_RDONLY|syscall.O_DIRECTORY)
	if err != nil {
		return "", nil, "cannot read versioned directory: " + describe(err)
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return "", nil, "cannot read versioned directory: " + describe(err)
	}
	wantDir := suffix == "" || suffix == ".sysext" || suffix == ".confext"
	var best *VersionedEntry
	var bestFI fs.FileInfo
	for _, n := range names {
		e, ok := ParseVersionedEntry(n, name, suffix, IsArchitectureName)
		if !ok || (e.Architecture != "" && e.Architecture != arch) || e.TriesLeft == 0 {
			continue
		}
		fi, _, err := rootfs.Stat(root, path.Join(dir, n))
		if err != nil {
			continue
		}
		if wantDir != fi.IsDir() {
			continue
		}
		if !wantDir && !fi.Mode().IsRegular() && fi.Mode()&fs.ModeDevice == 0 {
			continue
		}
		if best == nil || version.Compare(e.Version, best.Version) > 0 ||
			(version.Compare(e.Version, best.Version) == 0 && e.Architecture != "" && best.Architecture == "") {
			e := e
			best, bestFI = &e, fi
		}
	}
	if best == nil {
		return "", nil, fmt.Sprintf("versioned directory has no usable %s_VERSION%s entry for %s", name, suffix, arch)
	}
	return best.Filename, bestFI, ""
}

// IsArchitectureName reports whether s is one of systemd's architecture
// names, as they appear in versioned file names (sdparse's table: a
// shorter list here once let "foo_2_arm64-be.raw" pass as version
// "2_arm64-be" on any host).
func IsArchitectureName(s string) bool { return sdparse.KnownArchitecture(s) }

func isUnder(p, prefix string) bool {
	return p == prefix || len(p) > len(prefix) && p[:len(prefix)] == prefix && p[len(prefix)] == '/'
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func describe(err error) string { return unwrapPath(err).Error() }

// FromPath makes an Image of a file, directory or block device given
// directly (strata sysext check, strata test), named as discovery would
// name it. A regular file without ".raw" is accepted and named after its
// base name without extension.
func FromPath(p string, c imageclass.Class) (Image, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return Image{}, err
	}
	img := Image{Path: p, Entry: p, Mtime: fi.ModTime(), Size: fi.Size()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		img.Dev, img.Ino = uint64(st.Dev), st.Ino
	}
	base := path.Base(path.Clean(p))
	ok := false
	switch {
	case fi.IsDir():
		img.Kind = KindDirectory
		img.Name, ok = NameOfDir(base, c)
	case fi.Mode().IsRegular():
		img.Kind = KindRaw
		if img.Name, ok = NameOfRaw(base, c); !ok {
			img.Name = strings.TrimSuffix(base, path.Ext(base))
			ok = NameIsValid(img.Name)
		}
	case fi.Mode()&fs.ModeDevice != 0 && fi.Mode()&fs.ModeCharDevice == 0:
		img.Kind, img.Name, ok = KindBlock, base, NameIsValid(base)
	default:
		return Image{}, fmt.Errorf("%s is neither a directory, a regular file nor a block device", p)
	}
	if !ok {
		return Image{}, fmt.Errorf("%q is not a valid image name", base)
	}
	return img, nil
}
