// Package imageclass holds what differs between the two kinds of extension
// images, system extensions (sysext: /usr, /opt) and configuration
// extensions (confext: /etc), exactly as systemd names them. Like
// systemd's image_class_info[] in sysext.c, every difference is one row
// of one table, so the two columns can be read side by side and a
// missing field shows.
package imageclass

import "fmt"

// Class is sysext or confext.
type Class int

const (
	Sysext Class = iota
	Confext
)

// info is one class's column of the table.
type info struct {
	short              string // "sysext"
	plural             string // workspace directory and marker list: "extensions"
	levelKey           string // os-release key compared between host and image
	scopeKey           string // extension-release key listing where it applies
	hierarchiesEnv     string
	defaultHierarchies []string
	mutableEnv         string
	overlayOptionsEnv  string
	releaseDir         string // relative to the image root
	configSection      string
	searchDirs         []string // highest precedence first
	initrdSearchDirs   []string // replaces searchDirs in the initrd
	defaultImagePolicy string
}

var table = [...]info{
	Sysext: {
		short:              "sysext",
		plural:             "extensions",
		levelKey:           "SYSEXT_LEVEL",
		scopeKey:           "SYSEXT_SCOPE",
		hierarchiesEnv:     "SYSTEMD_SYSEXT_HIERARCHIES",
		defaultHierarchies: []string{"/usr", "/opt"},
		mutableEnv:         "SYSTEMD_SYSEXT_MUTABLE_MODE",
		overlayOptionsEnv:  "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS",
		releaseDir:         "usr/lib/extension-release.d",
		configSection:      "SysExt",
		searchDirs:         []string{"/etc/extensions", "/run/extensions", "/var/lib/extensions"},
		initrdSearchDirs:   []string{"/etc/extensions", "/run/extensions", "/var/lib/extensions", "/.extra/sysext", "/.extra/global_sysext"},
		defaultImagePolicy: "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent",
	},
	Confext: {
		short:              "confext",
		plural:             "confexts",
		levelKey:           "CONFEXT_LEVEL",
		scopeKey:           "CONFEXT_SCOPE",
		hierarchiesEnv:     "SYSTEMD_CONFEXT_HIERARCHIES",
		defaultHierarchies: []string{"/etc"},
		mutableEnv:         "SYSTEMD_CONFEXT_MUTABLE_MODE",
		overlayOptionsEnv:  "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS",
		releaseDir:         "etc/extension-release.d",
		configSection:      "ConfExt",
		searchDirs:         []string{"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"},
		initrdSearchDirs:   []string{"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/.extra/confext", "/.extra/global_confext"},
		defaultImagePolicy: "root=verity+signed+encrypted+unprotected+absent",
	},
}

// All lists the classes in table order.
func All() []Class { return []Class{Sysext, Confext} }

func (c Class) row() *info {
	if c == Confext {
		return &table[Confext]
	}
	return &table[Sysext]
}

// Parse accepts "sysext" or "confext" (or the systemd tool names).
func Parse(s string) (Class, error) {
	for _, c := range All() {
		if s == c.String() || s == c.FullName() {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown extension class %q (want sysext or confext)", s)
}

// Other is the class an image of c is mistaken for when it carries the
// other class's release file.
func (c Class) Other() Class {
	if c == Confext {
		return Sysext
	}
	return Confext
}

// String is the short name: "sysext" or "confext".
func (c Class) String() string { return c.row().short }

// FullName is the systemd tool name: systemd-sysext or systemd-confext.
func (c Class) FullName() string { return "systemd-" + c.String() }

// Plural names the workspace directory and the marker file listing merged
// images: "extensions" or "confexts".
func (c Class) Plural() string { return c.row().plural }

// MarkerDir is the directory Strata and systemd place at the top of every
// merged hierarchy: ".systemd-sysext" or ".systemd-confext".
func (c Class) MarkerDir() string { return ".systemd-" + c.String() }

// LevelKey is the os-release key compared between host and image.
func (c Class) LevelKey() string { return c.row().levelKey }

// ScopeKey is the extension-release key listing where the image applies.
func (c Class) ScopeKey() string { return c.row().scopeKey }

// HierarchiesEnv names the environment variable that overrides the
// hierarchies; DefaultHierarchies is what applies without it.
func (c Class) HierarchiesEnv() string { return c.row().hierarchiesEnv }

// DefaultHierarchies are the trees an extension of this class overlays.
func (c Class) DefaultHierarchies() []string { return clone(c.row().defaultHierarchies) }

// MutableEnv names the environment variable selecting the mutable mode.
func (c Class) MutableEnv() string { return c.row().mutableEnv }

// OverlayOptionsEnv names the environment variable with extra overlayfs
// mount options.
func (c Class) OverlayOptionsEnv() string { return c.row().overlayOptionsEnv }

// ReleaseDir is where an image of this class keeps its extension-release
// file, relative to the image root.
func (c Class) ReleaseDir() string { return c.row().releaseDir }

// ReleasePath is the strict extension-release path for image name.
func (c Class) ReleasePath(name string) string {
	return c.ReleaseDir() + "/extension-release." + name
}

// ConfigName is the configuration file name below /etc/systemd and the
// other configuration directories: "sysext.conf" or "confext.conf".
func (c Class) ConfigName() string { return c.String() + ".conf" }

// ConfigSection is the section of the configuration file.
func (c Class) ConfigSection() string { return c.row().configSection }

// SearchDirs are the directories searched for images, highest precedence
// first; initrd adds the /.extra directories.
func (c Class) SearchDirs(initrd bool) []string {
	if initrd {
		return clone(c.row().initrdSearchDirs)
	}
	return clone(c.row().searchDirs)
}

// MountSource is the source name shown for the overlay in /proc/mounts.
func (c Class) MountSource() string { return c.String() }

// DefaultImagePolicy is systemd's default image policy for the class.
func (c Class) DefaultImagePolicy() string { return c.row().defaultImagePolicy }

// clone keeps callers from editing the table through a returned slice.
func clone(s []string) []string { return append([]string(nil), s...) }
