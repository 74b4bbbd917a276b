package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// ErrNotDirectory says a root given on the command line is missing or not
// a directory.
var ErrNotDirectory = errors.New("not a directory")

// Root is a validated root directory: absolute, cleaned and, when parsed,
// an existing directory. The zero value is the host's "/". Parse --root
// once into a Root and hand the value down; nothing below turns it back
// into flag text.
type Root struct {
	path string // "" means "/"
}

// Host is the machine's own root directory.
func Host() Root { return Root{} }

// ParseRoot validates s, the value of --root: "" is the host, anything
// else is made absolute and cleaned and must name an existing directory.
// Symbolic links are not resolved, so messages name the path as given.
func ParseRoot(s string) (Root, error) {
	if s == "" {
		return Root{}, nil
	}
	abs, err := filepath.Abs(s)
	if err != nil {
		return Root{}, fmt.Errorf("root %s: %w", s, err)
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return Root{}, fmt.Errorf("root %s: %w: %w", s, ErrNotDirectory, err)
	}
	if !fi.IsDir() {
		return Root{}, fmt.Errorf("root %s: %w", s, ErrNotDirectory)
	}
	if abs == "/" {
		return Root{}, nil
	}
	return Root{path: abs}, nil
}

// Path is the root's host path, "/" for the host.
func (r Root) Path() string {
	if r.path == "" {
		return "/"
	}
	return r.path
}

// IsHost reports whether r is the machine's own "/".
func (r Root) IsHost() bool { return r.path == "" }

// Join returns the host path of p, an absolute path inside r, without
// resolving anything; ".." in p never climbs above r.
func (r Root) Join(p string) string { return Join(r.Path(), p) }

// String is Path, for messages.
func (r Root) String() string { return r.Path() }
