package sysupdate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/stratalinux/strata/internal/rootfs"
)

// DefinitionDirs returns the directories systemd-sysupdate reads, highest
// precedence first: sysupdate.d, or sysupdate.COMPONENT.d with -C.
func DefinitionDirs(component string) []string {
	name := "sysupdate.d"
	if component != "" {
		name = "sysupdate." + component + ".d"
	}
	return []string{"/etc/" + name, "/run/" + name, "/usr/local/lib/" + name, "/usr/lib/" + name}
}

// ValidComponent reports whether name may be used with -C.
func ValidComponent(name string) bool {
	if name == "" || !utf8.ValidString(name) || strings.ContainsAny(name, "/\x00") {
		return false
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return len("sysupdate."+name+".d") <= 255
}

// Definitions are the transfers and features read for one component.
type Definitions struct {
	Transfers []*Transfer // in basename order: the order of acquire and install
	Features  []*Feature
	// Legacy is true when transfers came from *.conf (no *.transfer found).
	Legacy bool
}

// Enabled reports whether a transfer takes part, by its Features= and
// RequisiteFeatures= and the features' Enabled=.
func (d *Definitions) Enabled(t *Transfer) bool {
	on := map[string]bool{}
	for _, f := range d.Features {
		on[f.ID] = f.Enabled
	}
	for _, f := range t.RequisiteFeatures {
		if !on[f] {
			return false
		}
	}
	if len(t.Features) == 0 {
		return true
	}
	for _, f := range t.Features {
		if on[f] {
			return true
		}
	}
	return false
}

// EnabledTransfers returns the transfers that take part.
func (d *Definitions) EnabledTransfers() []*Transfer {
	var out []*Transfer
	for _, t := range d.Transfers {
		if d.Enabled(t) {
			out = append(out, t)
		}
	}
	return out
}

// ErrNoDefinitions is returned when no transfer definition exists.
var ErrNoDefinitions = errors.New("no transfer definitions found")

// Load reads features and transfers from dirs (paths inside root, highest
// precedence first), with drop-ins, masking and the *.conf fallback.
func Load(root string, dirs []string, spec Specifiers) (*Definitions, error) {
	d := &Definitions{}
	feats, err := collect(root, dirs, ".feature")
	if err != nil {
		return nil, err
	}
	for _, c := range feats {
		entries, err := readWithDropins(root, dirs, c)
		if err != nil {
			return nil, err
		}
		f, err := ParseFeature(strings.TrimSuffix(c.base, ".feature"), c.path, entries, spec)
		if err != nil {
			return nil, err
		}
		d.Features = append(d.Features, f)
	}
	suffix := ".transfer"
	files, err := collect(root, dirs, suffix)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		suffix = ".conf"
		if files, err = collect(root, dirs, suffix); err != nil {
			return nil, err
		}
		d.Legacy = len(files) > 0
	}
	for _, c := range files {
		entries, err := readWithDropins(root, dirs, c)
		if err != nil {
			return nil, err
		}
		t, err := ParseTransfer(strings.TrimSuffix(c.base, suffix), c.path, entries, spec)
		if err != nil {
			return nil, err
		}
		d.Transfers = append(d.Transfers, t)
	}
	return d, nil
}

type confFile struct {
	base string
	path string // inside root
	data []byte
}

// collect lists NAME+suffix files across dirs; a higher directory's file
// overrides a lower one of the same name; empty files and links to
// /dev/null mask. Result sorted by basename.
func collect(root string, dirs []string, suffix string) ([]confFile, error) {
	seen := map[string]bool{}
	var out []confFile
	for _, dir := range dirs {
		entries, err := readDirIn(root, dir)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			name := e.Name()
			if !strings.HasSuffix(name, suffix) || name == suffix || strings.HasPrefix(name, ".") || seen[name] {
				continue
			}
			seen[name] = true
			p := path.Join(dir, name)
			if masked(root, p) {
				continue
			}
			data, err := rootfs.ReadFile(root, p, maxDefinitionSize)
			if err != nil {
				if errors.Is(err, rootfs.ErrTooLarge) {
					return nil, fmt.Errorf("%s: larger than %d bytes", p, maxDefinitionSize)
				}
				if errors.Is(err, fs.ErrNotExist) || isDirErr(err) {
					continue
				}
				return nil, fmt.Errorf("read %s: %w", p, err)
			}
			if len(strings.TrimSpace(string(data))) == 0 {
				continue // an empty file masks
			}
			out = append(out, confFile{base: name, path: p, data: data})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].base < out[j].base })
	return out, nil
}

func isDirErr(err error) bool {
	var pe *os.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "directory")
}

func masked(root, p string) bool {
	host := rootfs.Join(root, p)
	if target, err := os.Readlink(host); err == nil && target == "/dev/null" {
		return true
	}
	return false
}

func readDirIn(root, dir string) ([]fs.DirEntry, error) {
	resolved, err := rootfs.Chase(root, dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("resolve %s: %w", dir, err)
	}
	entries, err := os.ReadDir(resolved)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, nil
		}
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	return entries, nil
}

// readWithDropins parses the main file and then NAME.d/*.conf from every
// directory (a drop-in name in a higher directory overrides a lower one),
// in drop-in basename order.
func readWithDropins(root string, dirs []string, c confFile) ([]entry, error) {
	entries, err := parseINI(c.path, c.data)
	if err != nil {
		return nil, err
	}
	drop, err := collect(root, dropinDirs(dirs, c.base), ".conf")
	if err != nil {
		return nil, err
	}
	for _, dc := range drop {
		more, err := parseINI(dc.path, dc.data)
		if err != nil {
			return nil, err
		}
		entries = append(entries, more...)
	}
	return entries, nil
}

func dropinDirs(dirs []string, base string) []string {
	out := make([]string, len(dirs))
	for i, d := range dirs {
		out[i] = path.Join(d, base+".d")
	}
	return out
}

// Components lists the names of sysupdate.NAME.d directories in the
// standard locations, and whether the default sysupdate.d exists.
func Components(root string) (hasDefault bool, names []string, err error) {
	seen := map[string]bool{}
	for _, base := range []string{"/etc", "/run", "/usr/local/lib", "/usr/lib"} {
		entries, err := readDirIn(root, base)
		if err != nil {
			return false, nil, err
		}
		for _, e := range entries {
			n := e.Name()
			if n == "sysupdate.d" {
				hasDefault = true
				continue
			}
			if !strings.HasPrefix(n, "sysupdate.") || !strings.HasSuffix(n, ".d") {
				continue
			}
			c := strings.TrimSuffix(strings.TrimPrefix(n, "sysupdate."), ".d")
			if ValidComponent(c) && !seen[c] {
				seen[c] = true
				names = append(names, c)
			}
		}
	}
	sort.Strings(names)
	return hasDefault, names, nil
}
