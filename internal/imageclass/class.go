// Package imageclass holds what differs between the two kinds of extension
// images, system extensions (sysext: /usr, /opt) and configuration
// extensions (confext: /etc), exactly as systemd names them.
package imageclass

import "fmt"

// Class is sysext or confext.
type Class int

const (
	Sysext Class = iota
	Confext
)

// Parse accepts "sysext" or "confext".
func Parse(s string) (Class, error) {
	switch s {
	case "sysext", "systemd-sysext":
		return Sysext, nil
	case "confext", "systemd-confext":
		return Confext, nil
	}
	return 0, fmt.Errorf("unknown extension class %q (want sysext or confext)", s)
}

// String is the short name: "sysext" or "confext".
func (c Class) String() string {
	if c == Confext {
		return "confext"
	}
	return "sysext"
}

// FullName is the systemd tool name: systemd-sysext or systemd-confext.
func (c Class) FullName() string { return "systemd-" + c.String() }

// Plural names the workspace directory and the marker file listing merged
// images: "extensions" or "confexts".
func (c Class) Plural() string {
	if c == Confext {
		return "confexts"
	}
	return "extensions"
}

// MarkerDir is the directory Strata and systemd place at the top of every
// merged hierarchy: ".systemd-sysext" or ".systemd-confext".
func (c Class) MarkerDir() string { return ".systemd-" + c.String() }

// LevelKey is the os-release key compared between host and image.
func (c Class) LevelKey() string {
	if c == Confext {
		return "CONFEXT_LEVEL"
	}
	return "SYSEXT_LEVEL"
}

// ScopeKey is the extension-release key listing where the image applies.
func (c Class) ScopeKey() string {
	if c == Confext {
		return "CONFEXT_SCOPE"
	}
	return "SYSEXT_SCOPE"
}

// HierarchiesEnv names the environment variable that overrides the
// hierarchies; DefaultHierarchies is what applies without it.
func (c Class) HierarchiesEnv() string {
	if c == Confext {
		return "SYSTEMD_CONFEXT_HIERARCHIES"
	}
	return "SYSTEMD_SYSEXT_HIERARCHIES"
}

// DefaultHierarchies are the trees an extension of this class overlays.
func (c Class) DefaultHierarchies() []string {
	if c == Confext {
		return []string{"/etc"}
	}
	return []string{"/usr", "/opt"}
}

// MutableEnv names the environment variable selecting the mutable mode.
func (c Class) MutableEnv() string {
	if c == Confext {
		return "SYSTEMD_CONFEXT_MUTABLE_MODE"
	}
	return "SYSTEMD_SYSEXT_MUTABLE_MODE"
}

// OverlayOptionsEnv names the environment variable with extra overlayfs
// mount options.
func (c Class) OverlayOptionsEnv() string {
	if c == Confext {
		return "SYSTEMD_CONFEXT_OVERLAYFS_MOUNT_OPTIONS"
	}
	return "SYSTEMD_SYSEXT_OVERLAYFS_MOUNT_OPTIONS"
}

// ReleaseDir is where an image of this class keeps its extension-release
// file, relative to the image root.
func (c Class) ReleaseDir() string {
	if c == Confext {
		return "etc/extension-release.d"
	}
	return "usr/lib/extension-release.d"
}

// ReleasePath is the strict extension-release path for image name.
func (c Class) ReleasePath(name string) string {
	return c.ReleaseDir() + "/extension-release." + name
}

// ConfigName is the configuration file name below /etc/systemd and the
// other configuration directories ("sysext.conf"), and ConfigSection its
// section ("SysExt").
func (c Class) ConfigName() string { return c.String() + ".conf" }

// ConfigSection is the section of the configuration file.
func (c Class) ConfigSection() string {
	if c == Confext {
		return "ConfExt"
	}
	return "SysExt"
}

// SearchDirs are the directories searched for images, highest precedence
// first; initrd adds the /.extra directories.
func (c Class) SearchDirs(initrd bool) []string {
	if c == Confext {
		if initrd {
			return []string{"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/.extra/confext", "/.extra/global_confext"}
		}
		return []string{"/run/confexts", "/var/lib/confexts", "/usr/local/lib/confexts", "/usr/lib/confexts"}
	}
	dirs := []string{"/etc/extensions", "/run/extensions", "/var/lib/extensions"}
	if initrd {
		dirs = append(dirs, "/.extra/sysext", "/.extra/global_sysext")
	}
	return dirs
}

// MountSource is the source name shown for the overlay in /proc/mounts.
func (c Class) MountSource() string { return c.String() }

// DefaultImagePolicy is systemd's default image policy for the class.
func (c Class) DefaultImagePolicy() string {
	if c == Confext {
		return "root=verity+signed+encrypted+unprotected+absent"
	}
	return "root=verity+signed+encrypted+unprotected+absent:usr=verity+signed+encrypted+unprotected+absent"
}
