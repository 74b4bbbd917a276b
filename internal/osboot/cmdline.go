// Package osboot is Strata's initrd /init: it picks the /usr slot as Flatcar's GRUB does (or takes the
// one the kernel command line pins), opens it through dm-verity, mounts ROOT and /usr, merges the
// extensions found on ROOT and switches root. ParseCmdline and Plan decide; Boot (Linux) carries the
// plan out and reboots on any failure after the slot was chosen, so the tries counter makes the next
// boot take the other slot.
package osboot

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxCmdline bounds the command line read from /proc/cmdline (the kernel's COMMAND_LINE_SIZE on
// x86 is 2048; some architectures allow more).
const MaxCmdline = 64 << 10

// Options are what /init reads from the kernel command line.
type Options struct {
	// UsrDevice is verity.usr= (also usr= and mount.usr= when it names a partition), e.g.
	// "PARTUUID=7130c94a-…". With UsrHash it pins the slot (trust mode "cmdline").
	UsrDevice string
	// UsrHash is verity.usrhash= or usrhash=: the dm-verity root hash, hex.
	UsrHash string
	// UsrFSType is mount.usrfstype=; empty takes the slot record's.
	UsrFSType string
	// Root is root=; default LABEL=ROOT.
	Root string
	// RootFSType is rootfstype=; default ext4.
	RootFSType string
	// ReadOnly is "ro" (and not a later "rw"): ROOT is mounted read-only.
	ReadOnly bool
	// Init is init=; default /sbin/init.
	Init string
	// Debug (strata.debug=1) prints every step with its time since the kernel started.
	Debug bool
	// DiskTimeout (strata.disktimeout=SECONDS) bounds the wait for the disk; default 20 s.
	DiskTimeout time.Duration
	// NoMerge (strata.nomerge=1) skips merging extensions.
	NoMerge bool
}

// Defaults of the options the command line may leave out.
const (
	DefaultRoot        = "LABEL=ROOT"
	DefaultRootFSType  = "ext4"
	DefaultInit        = "/sbin/init"
	DefaultDiskTimeout = 20 * time.Second
)

// Pinned says whether the command line names the slot and its root hash (trust mode "cmdline").
func (o Options) Pinned() bool { return o.UsrDevice != "" && o.UsrHash != "" }

// ParseCmdline reads the kernel command line (the text of /proc/cmdline). Words it does not know
// are left to the kernel and the real init; a known option with a bad value is an error naming it.
func ParseCmdline(s string) (Options, error) {
	o := Options{Root: DefaultRoot, RootFSType: DefaultRootFSType, Init: DefaultInit, DiskTimeout: DefaultDiskTimeout}
	if len(s) > MaxCmdline {
		return o, fmt.Errorf("kernel command line of %d bytes is longer than %d", len(s), MaxCmdline)
	}
	words := splitCmdline(s)
	for _, w := range words {
		if w == "--" {
			break // everything after "--" is for init
		}
		key, val, hasVal := strings.Cut(w, "=")
		switch key {
		case "ro":
			o.ReadOnly = true
		case "rw":
			o.ReadOnly = false
		case "root":
			if val == "" {
				return o, fmt.Errorf("kernel command line: root= is empty; use root=LABEL=ROOT or root=PARTUUID=…")
			}
			o.Root = val
		case "rootfstype":
			o.RootFSType = val
		case "init":
			if !strings.HasPrefix(val, "/") {
				return o, fmt.Errorf("kernel command line: init=%q is not an absolute path", val)
			}
			o.Init = val
		case "verity.usr", "usr":
			o.UsrDevice = val
		case "mount.usr":
			// systemd's mount.usr= names the mounted device; it is /dev/mapper/usr when verity.usr=
			// names the partition, and the partition otherwise.
			if !strings.HasPrefix(val, "/dev/mapper/") && o.UsrDevice == "" {
				o.UsrDevice = val
			}
		case "verity.usrhash", "usrhash":
			if err := checkHex(val); err != nil {
				return o, fmt.Errorf("kernel command line: %s=%q: %w", key, val, err)
			}
			o.UsrHash = strings.ToLower(val)
		case "mount.usrfstype":
			if val != "erofs" && val != "squashfs" {
				return o, fmt.Errorf("kernel command line: mount.usrfstype=%q: want erofs or squashfs", val)
			}
			o.UsrFSType = val
		case "strata.debug":
			o.Debug = !hasVal || truthy(val)
		case "strata.nomerge":
			o.NoMerge = !hasVal || truthy(val)
		case "strata.disktimeout":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 || n > 3600 {
				return o, fmt.Errorf("kernel command line: strata.disktimeout=%q: want seconds between 1 and 3600", val)
			}
			o.DiskTimeout = time.Duration(n) * time.Second
		}
	}
	if o.UsrHash != "" && o.UsrDevice == "" {
		return o, fmt.Errorf("kernel command line: verity.usrhash= without verity.usr=PARTUUID=…: name the slot the hash is for")
	}
	return o, nil
}

func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "yes", "y", "true", "on":
		return true
	}
	return false
}

func checkHex(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("want 64 hex digits (a SHA-256 root hash), got %d characters", len(s))
	}
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return fmt.Errorf("%q is not a hex digit", c)
		}
	}
	return nil
}

// splitCmdline splits at spaces outside double quotes and drops the quotes, as the kernel does
// (next_arg in lib/cmdline.c).
func splitCmdline(s string) []string {
	var out []string
	var cur strings.Builder
	inQuote, have := false, false
	for _, c := range s {
		switch {
		case c == '"':
			inQuote = !inQuote
			have = true
		case !inQuote && (c == ' ' || c == '\t' || c == '\n'):
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(c)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
