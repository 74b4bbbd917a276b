package merge

import (
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/version"
	"golang.org/x/sys/unix"
)

// Extension is an image chosen for merging.
type Extension struct {
	Name string
	// Entry is the image's path inside the root (for the origin record).
	Entry string
	// Provides lists the hierarchies the image holds as non-empty
	// directories.
	Provides []string
	// Reload is EXTENSION_RELOAD_MANAGER=1 in its release data.
	Reload bool
	// Dev, Ino and Mtime identify the image file or directory, so a
	// refresh can tell a replaced image from an unchanged one.
	Dev, Ino uint64
	Mtime    int64
}

// Hierarchy is the state of one hierarchy on the host before merging.
type Hierarchy struct {
	Path    string // as configured, e.g. "/usr"
	Host    string // host path (root prefixed)
	Exists  bool
	Empty   bool
	Mode    fs.FileMode // permission bits; 0755 when missing
	Mutable MutableDir
	// Dev is the device the hierarchy lives on (st_dev), for the
	// "backing" marker.
	Dev uint64
}

// MutableDir describes /var/lib/extensions.mutable/<hierarchy> in the root.
type MutableDir struct {
	Path string // host path before resolving symlinks
	// Resolved is the host path after following symlinks; empty when it
	// does not exist (or is a dangling link).
	Resolved    string
	Mode        fs.FileMode
	ReadOnly    bool // on a read-only filesystem
	IsHierarchy bool // resolves to the hierarchy itself
}

// Input is everything MakePlan decides from.
type Input struct {
	Class imageclass.Class
	// Root is the --root directory ("/" for the host).
	Root string
	// Staging is the private directory where the executor mounts images,
	// meta layers and ephemeral upper directories.
	Staging     string
	Extensions  []Extension
	Hierarchies []Hierarchy
	Mode        Mode
	// Noexec forces MS_NOEXEC on or off when not nil.
	Noexec *bool
	// OverlayOptions is the SYSTEMD_*_OVERLAYFS_MOUNT_OPTIONS value when
	// the variable is set (even empty).
	OverlayOptions *string
}

// LayerKind says where an overlay layer comes from.
type LayerKind string

const (
	LayerMeta          LayerKind = "meta"
	LayerMutableImport LayerKind = "mutable-import"
	LayerExtension     LayerKind = "extension"
	LayerHost          LayerKind = "host"
)

// Layer is one lower directory of an overlay.
type Layer struct {
	Kind LayerKind
	Name string // extension name, for LayerExtension
	Path string
}

// HierarchyPlan is the overlay to mount on one hierarchy.
type HierarchyPlan struct {
	Hierarchy string
	Target    string
	Meta      string  // the meta layer directory (top lower layer)
	Layers    []Layer // top first, the meta layer included
	// Upper and Work are set for writable overlays.
	Upper, Work string
	// CreateUpper asks for the persistent mutable directory to be made.
	CreateUpper bool
	Ephemeral   bool
	Mode        fs.FileMode // the hierarchy's mode, given to the top layer
	Extensions  []string    // extensions used here, ascending
	Flags       uintptr     // mount(2) flags
	Options     string      // overlay mount options
	// WorkDirMarker is the work directory relative to the root, recorded
	// so unmerge can remove it; empty for read-only and ephemeral modes.
	WorkDirMarker string
	// BackingDev is the block device under the host layer (0 when the
	// host is not a layer or lives on a virtual filesystem).
	BackingDev uint64
}

// Plan is the whole merge: what gets mounted where.
type Plan struct {
	Class       imageclass.Class
	Mode        Mode
	Extensions  []string // all extensions merged, ascending
	Hierarchies []HierarchyPlan
	Origin      Origin
	Reload      bool
}

// Empty reports whether the plan mounts nothing.
func (p Plan) Empty() bool { return len(p.Hierarchies) == 0 }

// MutableComponent turns a hierarchy into its directory name below
// /var/lib/extensions.mutable ("/usr" → "usr", "/foo/bar" → "foo.bar").
func MutableComponent(h string) string {
	return strings.ReplaceAll(strings.Trim(h, "/"), "/", ".")
}

// MutableBase is where persistent writable layers live, inside the root.
const MutableBase = "/var/lib/extensions.mutable"

// DefaultMutableOptions are the overlay options systemd uses for writable
// overlays unless the environment overrides them.
const DefaultMutableOptions = "redirect_dir=on,noatime,metacopy=off,index=off"

// ExtensionDir is where the executor mounts extension name.
func ExtensionDir(staging, name string) string {
	return filepath.Join(staging, "extensions", name)
}

// MakePlan decides the overlay of every hierarchy. It touches nothing.
func MakePlan(in Input) (Plan, error) {
	exts := append([]Extension(nil), in.Extensions...)
	sort.SliceStable(exts, func(i, j int) bool { return version.Compare(exts[i].Name, exts[j].Name) < 0 })
	p := Plan{Class: in.Class, Mode: in.Mode}
	for _, e := range exts {
		p.Extensions = append(p.Extensions, e.Name)
		p.Reload = p.Reload || e.Reload
	}
	if len(exts) == 0 && in.Mode == MutableNo {
		return p, nil
	}
	for _, h := range in.Hierarchies {
		hp, ok, err := planHierarchy(in, h, exts)
		if err != nil {
			return Plan{}, err
		}
		if ok {
			p.Hierarchies = append(p.Hierarchies, hp)
		}
	}
	p.Origin = makeOrigin(in, exts)
	return p, nil
}

func planHierarchy(in Input, h Hierarchy, exts []Extension) (HierarchyPlan, bool, error) {
	comp := MutableComponent(h.Path)
	hp := HierarchyPlan{
		Hierarchy: h.Path,
		Target:    h.Host,
		Meta:      filepath.Join(in.Staging, "meta", comp),
		Mode:      h.Mode,
	}
	if hp.Mode == 0 {
		hp.Mode = 0o755
	}
	// Highest-sorting extension on top.
	var extLayers []Layer
	for i := len(exts) - 1; i >= 0; i-- {
		if !contains(exts[i].Provides, h.Path) {
			continue
		}
		extLayers = append(extLayers, Layer{Kind: LayerExtension, Name: exts[i].Name, Path: filepath.Join(ExtensionDir(in.Staging, exts[i].Name), h.Path)})
	}
	for i := len(extLayers) - 1; i >= 0; i-- {
		hp.Extensions = append(hp.Extensions, extLayers[i].Name)
	}
	if len(extLayers) == 0 && in.Mode == MutableNo {
		return hp, false, nil
	}

	hostIsUpper := false
	var importLayer *Layer
	md := h.Mutable
	switch in.Mode {
	case MutableAuto, MutableYes:
		if md.Resolved == "" {
			if in.Mode == MutableAuto {
				break // no mutable directory: read-only
			}
			hp.CreateUpper = true
			hp.Upper = md.Path
		} else {
			if md.Mode.Perm() != hp.Mode.Perm() {
				return hp, false, fmt.Errorf("mutable directory %s has mode %04o, ought to have mode %04o (chmod it to match %s)", md.Path, md.Mode.Perm(), hp.Mode.Perm(), h.Path)
			}
			if md.ReadOnly {
				return hp, false, fmt.Errorf("can't use %s as an upperdir as it is read-only", md.Resolved)
			}
			hp.Upper = md.Resolved
			hostIsUpper = md.IsHierarchy
		}
	case MutableImport, MutableEphemeralImport:
		if md.Resolved != "" {
			if md.IsHierarchy {
				return hp, false, fmt.Errorf("not importing mutable directory %s for hierarchy %s as a lower dir, because it points to the hierarchy itself", md.Path, h.Path)
			}
			importLayer = &Layer{Kind: LayerMutableImport, Path: md.Resolved}
		}
	}
	if in.Mode.ephemeral() {
		hp.Ephemeral = true
		hp.Upper = filepath.Join(in.Staging, "mutable", comp, "upper")
		hp.Work = filepath.Join(in.Staging, "mutable", comp, "work")
	} else if hp.Upper != "" {
		hp.Work = filepath.Join(filepath.Dir(hp.Upper), ".systemd-"+comp+"-workdir")
		rel, err := filepath.Rel(cleanRoot(in.Root), hp.Work)
		if err != nil || strings.HasPrefix(rel, "..") {
			return hp, false, fmt.Errorf("work directory %s for %s is outside the root %s", hp.Work, h.Path, in.Root)
		}
		hp.WorkDirMarker = rel
	}

	hp.Layers = append(hp.Layers, Layer{Kind: LayerMeta, Path: hp.Meta})
	if importLayer != nil {
		hp.Layers = append(hp.Layers, *importLayer)
	}
	hp.Layers = append(hp.Layers, extLayers...)
	if h.Exists && !h.Empty && !hostIsUpper {
		hp.Layers = append(hp.Layers, Layer{Kind: LayerHost, Path: h.Host})
		if unix.Major(h.Dev) != 0 {
			hp.BackingDev = h.Dev
		}
	}

	hp.Flags = unix.MS_RDONLY | unix.MS_NODEV
	if in.Class == imageclass.Confext {
		hp.Flags |= unix.MS_NOSUID | unix.MS_NOEXEC
	}
	if in.Noexec != nil {
		if *in.Noexec {
			hp.Flags |= unix.MS_NOEXEC
		} else {
			hp.Flags &^= unix.MS_NOEXEC
		}
	}
	if hp.Upper != "" {
		hp.Flags &^= unix.MS_RDONLY
	}
	hp.Options = overlayOptions(hp, in.OverlayOptions)
	return hp, true, nil
}

// overlayOptions renders the mount data: lowerdir (escaped), upper and
// work directories, then systemd's defaults for writable overlays unless
// the environment supplied options (which are appended instead).
func overlayOptions(hp HierarchyPlan, env *string) string {
	lowers := make([]string, len(hp.Layers))
	for i, l := range hp.Layers {
		lowers[i] = escapeLayer(l.Path)
	}
	opts := "lowerdir=" + strings.Join(lowers, ":")
	if hp.Upper != "" {
		opts += ",upperdir=" + escapeLayer(hp.Upper) + ",workdir=" + escapeLayer(hp.Work)
		if env == nil {
			opts += "," + DefaultMutableOptions
		}
	}
	if env != nil && *env != "" {
		opts += "," + *env
	}
	return opts
}

// escapeLayer escapes the characters overlayfs treats specially in layer
// lists.
func escapeLayer(p string) string {
	var b strings.Builder
	for _, r := range p {
		if r == '\\' || r == ',' || r == ':' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func cleanRoot(root string) string {
	if root == "" {
		return "/"
	}
	return path.Clean(root)
}

// FlagNames renders mount flags as mount(8) option names.
func FlagNames(flags uintptr) []string {
	out := []string{"rw"}
	if flags&unix.MS_RDONLY != 0 {
		out[0] = "ro"
	}
	for _, f := range []struct {
		bit  uintptr
		name string
	}{{unix.MS_NODEV, "nodev"}, {unix.MS_NOSUID, "nosuid"}, {unix.MS_NOEXEC, "noexec"}} {
		if flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// vfsOptions are generic mount options that mount(8) and systemd turn
// into mount(2) flags rather than passing them to the filesystem.
var vfsOptions = map[string]struct {
	set, clear uintptr
}{
	"ro": {unix.MS_RDONLY, 0}, "rw": {0, unix.MS_RDONLY},
	"nosuid": {unix.MS_NOSUID, 0}, "suid": {0, unix.MS_NOSUID},
	"nodev": {unix.MS_NODEV, 0}, "dev": {0, unix.MS_NODEV},
	"noexec": {unix.MS_NOEXEC, 0}, "exec": {0, unix.MS_NOEXEC},
	"sync": {unix.MS_SYNCHRONOUS, 0}, "async": {0, unix.MS_SYNCHRONOUS},
	"dirsync":  {unix.MS_DIRSYNC, 0},
	"noatime":  {unix.MS_NOATIME, unix.MS_RELATIME | unix.MS_STRICTATIME},
	"atime":    {0, unix.MS_NOATIME},
	"relatime": {unix.MS_RELATIME, unix.MS_NOATIME | unix.MS_STRICTATIME}, "norelatime": {0, unix.MS_RELATIME},
	"strictatime": {unix.MS_STRICTATIME, unix.MS_NOATIME | unix.MS_RELATIME},
	"nodiratime":  {unix.MS_NODIRATIME, 0}, "diratime": {0, unix.MS_NODIRATIME},
	"lazytime": {unix.MS_LAZYTIME, 0}, "nolazytime": {0, unix.MS_LAZYTIME},
	"silent": {unix.MS_SILENT, 0}, "loud": {0, unix.MS_SILENT},
}

// SplitOptions separates generic mount options (noatime, nodev, …) from
// the filesystem's own, as mount(8) does, applying them to flags.
func SplitOptions(flags uintptr, opts string) (uintptr, string) {
	var rest []string
	for _, o := range splitEscaped(opts, ',') {
		if v, ok := vfsOptions[o]; ok {
			flags = flags&^v.clear | v.set
			continue
		}
		if o != "" {
			rest = append(rest, o)
		}
	}
	return flags, strings.Join(rest, ",")
}

// splitEscaped splits s on each sep not escaped by a backslash, keeping
// the escapes: mount options split on ',' and a lowerdir list on ':' follow
// the same rule, so both use this one.
func splitEscaped(s string, sep byte) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
