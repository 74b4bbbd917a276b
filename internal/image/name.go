// Package image finds extension images in systemd's search directories and
// names them exactly as systemd-sysext does: which file or directory is an
// image, what it is called, which entry wins when several share a name,
// and which versioned entry a NAME.v/ directory picks.
package image

import (
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/stratalinux/strata/internal/imageclass"
)

// NameIsValid reports whether s is a valid image name (systemd's
// image_name_is_valid): a valid file name of at most 255 bytes, valid
// UTF-8 without control characters, not starting with ".#".
func NameIsValid(s string) bool {
	if s == "" || s == "." || s == ".." || len(s) > 255 {
		return false
	}
	if strings.ContainsRune(s, '/') || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return !strings.HasPrefix(s, ".#")
}

// classSuffix is the optional class suffix in image file names.
func classSuffix(c imageclass.Class) string { return "." + c.String() }

// NameOfRaw derives the image name of a regular file found in a search
// directory: it must end in ".raw"; that and an optional ".sysext" or
// ".confext" (of the class being merged) are removed.
func NameOfRaw(filename string, c imageclass.Class) (string, bool) {
	base, ok := strings.CutSuffix(filename, ".raw")
	if !ok {
		return "", false
	}
	base = strings.TrimSuffix(base, classSuffix(c))
	return base, NameIsValid(base)
}

// NameOfDir derives the image name of a directory: an optional class
// suffix is removed.
func NameOfDir(dirname string, c imageclass.Class) (string, bool) {
	base := strings.TrimSuffix(dirname, classSuffix(c))
	return base, NameIsValid(base)
}

// NameOfVersioned derives the image name of a "NAME.v" or "NAME.raw.v"
// directory. suffix is what each versioned entry inside must end with
// (".raw", ".sysext.raw" or "" for directories).
func NameOfVersioned(dirname string, c imageclass.Class) (name, suffix string, ok bool) {
	nov, ok := strings.CutSuffix(dirname, ".v")
	if !ok {
		return "", "", false
	}
	if b, found := strings.CutSuffix(nov, ".raw"); found {
		nov, suffix = b, ".raw"
	}
	if b, found := strings.CutSuffix(nov, classSuffix(c)); found {
		nov, suffix = b, classSuffix(c)+suffix
	}
	return nov, suffix, NameIsValid(nov)
}

// ExtractImageName is the name an extension-release file must carry for
// image name n (systemd's path_extract_image_name): n without a ".raw",
// ".sysext.raw" or ".confext.raw" suffix, cut at the first '_' or '+', so
// that image "foo_1.2" accepts "extension-release.foo".
func ExtractImageName(n string) string {
	for _, s := range []string{".sysext.raw", ".confext.raw", ".raw"} {
		if b, ok := strings.CutSuffix(n, s); ok {
			n = b
			break
		}
	}
	if i := strings.IndexAny(n, "_+"); i >= 0 {
		n = n[:i]
	}
	return n
}

// VersionedEntry is one candidate inside a NAME.v/ directory, named
// NAME_VERSION[_ARCH][+LEFT[-DONE]]SUFFIX.
type VersionedEntry struct {
	Filename     string
	Version      string
	Architecture string // empty when the name carries none
	TriesLeft    int    // -1 when the name carries no counter
	TriesDone    int
}

// ParseVersionedEntry parses filename as an entry of a versioned
// directory for image name with the given suffix. knownArch tells which
// words are architecture names.
func ParseVersionedEntry(filename, name, suffix string, knownArch func(string) bool) (VersionedEntry, bool) {
	e := VersionedEntry{Filename: filename, TriesLeft: -1}
	rest, ok := strings.CutPrefix(filename, name+"_")
	if !ok {
		return e, false
	}
	if rest, ok = strings.CutSuffix(rest, suffix); !ok || rest == "" {
		return e, false
	}
	if i := strings.LastIndexByte(rest, '+'); i >= 0 {
		counter := rest[i+1:]
		left, done, hasDone := strings.Cut(counter, "-")
		l, err := strconv.Atoi(left)
		if err != nil || l < 0 {
			return e, false
		}
		e.TriesLeft = l
		if hasDone {
			d, err := strconv.Atoi(done)
			if err != nil || d < 0 {
				return e, false
			}
			e.TriesDone = d
		}
		rest = rest[:i]
	}
	if i := strings.LastIndexByte(rest, '_'); i >= 0 && knownArch != nil && knownArch(rest[i+1:]) {
		e.Architecture = rest[i+1:]
		rest = rest[:i]
	}
	if rest == "" {
		return e, false
	}
	e.Version = rest
	return e, true
}

// BakedName returns X when the file name base (without .raw) is
// X-VERSION or X-VERSION-ARCH, as strata bake names images, and X is the
// only one of names (the X of an image's extension-release.X files) that
// fits. systemd matches no such name; Strata uses it only for a file
// given explicitly to test, check, inspect or lint.
func BakedName(base string, names []string) (string, bool) {
	found, n := "", 0
	for _, x := range names {
		rest, ok := strings.CutPrefix(base, x+"-")
		if !ok {
			continue
		}
		ver, arch, hasArch := strings.Cut(rest, "-")
		if ver == "" || hasArch && !IsArchitectureName(arch) {
			continue
		}
		found, n = x, n+1
	}
	return found, n == 1
}

// NameForFile picks the name systemd would give the image file (an
// opened tree fsys of class c): the file name without .raw when the image
// has that extension-release, else the name strata bake gave it
// (NAME-VERSION-ARCH.raw carrying extension-release.NAME, linked as
// NAME.raw; BakedName), else "".
func NameForFile(fsys fs.FS, c imageclass.Class, file string) string {
	base := strings.TrimSuffix(filepath.Base(file), ".raw")
	if _, err := fs.Stat(fsys, c.ReleasePath(base)); err == nil {
		return base
	}
	ents, _ := fs.ReadDir(fsys, c.ReleaseDir())
	var names []string
	for _, e := range ents {
		if n, ok := strings.CutPrefix(e.Name(), "extension-release."); ok {
			names = append(names, n)
		}
	}
	n, _ := BakedName(base, names)
	return n
}
