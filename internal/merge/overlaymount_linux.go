package merge

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is what mount(2) copies of its data argument: one page.
// A longer option string (many layers under a long --root) is cut by the
// kernel, so such overlays go through the new mount API instead.
const maxMountData = 4095

// mountOverlay mounts an overlay with mount(2) when its options fit in a
// page, and otherwise with fsopen/fsconfig, giving each layer as its own
// "lowerdir+" (Linux 6.8), as systemd does, so the layer count is not
// bounded by the option string's length.
func mountOverlay(source, target string, flags uintptr, data string) error {
	if len(data) <= maxMountData {
		return unix.Mount(source, target, "overlay", flags, data)
	}
	fd, err := unix.Fsopen("overlay", unix.FSOPEN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("%d bytes of options need the new mount API (fsopen): %w", len(data), err)
	}
	defer unix.Close(fd)
	if err := unix.FsconfigSetString(fd, "source", source); err != nil {
		return fmt.Errorf("fsconfig source: %w", err)
	}
	for _, o := range splitEscaped(data, ',') {
		key, val, hasVal := strings.Cut(o, "=")
		switch {
		case key == "lowerdir":
			for _, l := range splitLayers(val) {
				if err := unix.FsconfigSetString(fd, "lowerdir+", l); err != nil {
					return fmt.Errorf("fsconfig lowerdir+ %s: %w (the kernel needs Linux 6.8 for more layers than fit in one page of options)", l, err)
				}
			}
		case hasVal:
			if err := unix.FsconfigSetString(fd, key, unescapeLayer(val)); err != nil {
				return fmt.Errorf("fsconfig %s: %w", key, err)
			}
		default:
			if err := unix.FsconfigSetFlag(fd, key); err != nil {
				return fmt.Errorf("fsconfig %s: %w", key, err)
			}
		}
	}
	if err := unix.FsconfigCreate(fd); err != nil {
		return fmt.Errorf("fsconfig create: %w", err)
	}
	var attr int
	for _, f := range []struct {
		ms   uintptr
		attr int
	}{{unix.MS_RDONLY, unix.MOUNT_ATTR_RDONLY}, {unix.MS_NODEV, unix.MOUNT_ATTR_NODEV}, {unix.MS_NOSUID, unix.MOUNT_ATTR_NOSUID}, {unix.MS_NOEXEC, unix.MOUNT_ATTR_NOEXEC}} {
		if flags&f.ms != 0 {
			attr |= f.attr
		}
	}
	mfd, err := unix.Fsmount(fd, unix.FSMOUNT_CLOEXEC, attr)
	if err != nil {
		return fmt.Errorf("fsmount: %w", err)
	}
	defer unix.Close(mfd)
	if err := unix.MoveMount(mfd, "", unix.AT_FDCWD, target, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
		return fmt.Errorf("move_mount to %s: %w", target, err)
	}
	return nil
}

// splitLayers splits a lowerdir list on unescaped colons and removes the
// escapes: fsconfig takes each layer's path as it is.
func splitLayers(s string) []string {
	out := splitEscaped(s, ':')
	for i, l := range out {
		out[i] = unescapeLayer(l)
	}
	return out
}

func unescapeLayer(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
