package sysupdate

import (
	"bytes"
	"os"
	"strings"

	"github.com/stratalinux/strata/internal/osrelease"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"golang.org/x/sys/unix"
)

// OSRelease reads the os-release of the tree at root (/etc/os-release,
// then /usr/lib/os-release); missing files give an empty release.
func OSRelease(root string) osrelease.Release {
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := rootfs.ReadFile(root, p, 1<<20)
		if err != nil {
			continue
		}
		r, _, err := osrelease.Parse(bytes.NewReader(data))
		if err == nil {
			return r
		}
	}
	return osrelease.Release{}
}

// HostSpecifiers returns the values of the specifiers sysupdate.d(5)
// allows, for the tree at root (os-release, machine-id inside the root;
// hostname, kernel and boot ID from the running system).
func HostSpecifiers(root string) Specifiers {
	rel := OSRelease(root)
	s := Specifiers{
		'a': sdparse.NativeArchitecture(),
		'A': rel["IMAGE_VERSION"],
		'B': rel["BUILD_ID"],
		'M': rel["IMAGE_ID"],
		'o': rel["ID"],
		'w': rel["VERSION_ID"],
		'W': rel["VARIANT_ID"],
		'T': "/tmp",
		'V': "/var/tmp",
	}
	if h, err := os.Hostname(); err == nil {
		s['H'] = h
		s['l'], _, _ = strings.Cut(h, ".")
	}
	if id, err := rootfs.ReadFile(root, "/etc/machine-id", 64); err == nil {
		s['m'] = strings.TrimSpace(string(id))
	}
	if id, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil {
		s['b'] = strings.ReplaceAll(strings.TrimSpace(string(id)), "-", "")
	}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		s['v'] = unix.ByteSliceToString(u.Release[:])
	}
	return s
}
