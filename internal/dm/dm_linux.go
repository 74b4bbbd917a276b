package dm

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ControlPath is the device-mapper control node.
const ControlPath = "/dev/mapper/control"

// control is an open control node; dir is where device nodes are made.
type control struct {
	f   *os.File
	dir string
}

// openControl opens the control node at path. Without udev a devtmpfs
// normally has it; when it does not but the kernel lists device-mapper in
// /proc/misc, the node is made from the minor found there.
func openControl(path string) (*control, error) {
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if errors.Is(err, os.ErrNotExist) {
		if minor, ok := miscMinor("/proc/misc", "device-mapper"); ok {
			if merr := os.MkdirAll(filepath.Dir(path), 0o755); merr == nil {
				if merr := unix.Mknod(path, unix.S_IFCHR|0o600, int(unix.Mkdev(10, minor))); merr == nil || errors.Is(merr, unix.EEXIST) {
					f, err = os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
				}
			}
		}
	}
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("device-mapper is not available in this kernel (no %s): load the dm_mod and dm_verity modules, or use a kernel built with CONFIG_BLK_DEV_DM: %w", path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open device-mapper control %s: %w", path, err)
	}
	c := &control{f: f, dir: filepath.Dir(path)}
	if _, err := c.ioctl(unix.DM_VERSION, header{}, nil, 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("device-mapper at %s does not speak interface version 4: %w", path, err)
	}
	return c, nil
}

func miscMinor(path, name string) (uint32, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fs := strings.Fields(s.Text())
		if len(fs) == 2 && fs[1] == name {
			n, err := strconv.ParseUint(fs[0], 10, 32)
			return uint32(n), err == nil
		}
	}
	return 0, false
}

func (c *control) Close() error { return c.f.Close() }

// ioctl issues cmd with h and payload in a buffer of at least size bytes
// and returns the reply buffer.
func (c *control) ioctl(cmd uint, h header, payload []byte, size int) ([]byte, error) {
	h.Version = ioctlVersion
	b := encode(h, payload, max(size, headerSize))
	_, _, e := unix.Syscall(unix.SYS_IOCTL, c.f.Fd(), uintptr(cmd), uintptr(unsafe.Pointer(&b[0])))
	if e != 0 {
		return nil, e
	}
	return b, nil
}

// CreateVerity creates device name with uuid, loads table read-only,
// resumes it, and returns /dev/mapper/NAME, making that node when udev is
// not there to do it. On failure nothing is left behind.
func CreateVerity(name, uuid, table string) (devPath string, err error) {
	return create(ControlPath, name, uuid, table, true)
}

func create(ctlPath, name, uuid, table string, readOnly bool) (string, error) {
	if err := checkName(name, uuid); err != nil {
		return "", err
	}
	targets, err := ParseTable(table)
	if err != nil {
		return "", err
	}
	c, err := openControl(ctlPath)
	if err != nil {
		return "", err
	}
	defer c.Close()
	reply, err := c.ioctl(unix.DM_DEV_CREATE, header{Name: name, UUID: uuid}, nil, 0)
	if err != nil {
		if errors.Is(err, unix.EBUSY) {
			return "", fmt.Errorf("create device-mapper device %s: a device of that name (or uuid %q) exists already: remove it first: %w", name, uuid, err)
		}
		return "", fmt.Errorf("create device-mapper device %s: %w", name, err)
	}
	h, err := decode(reply)
	if err != nil {
		return "", err
	}
	undo := func(err error) (string, error) {
		_, rerr := c.ioctl(unix.DM_DEV_REMOVE, header{Name: name}, nil, 0)
		return "", errors.Join(err, rerr)
	}
	flags := uint32(0)
	if readOnly {
		flags = flagReadOnly
	}
	if _, err := c.ioctl(unix.DM_TABLE_LOAD, header{Name: name, Flags: flags, TargetCount: uint32(len(targets))}, encodeTargets(targets), 0); err != nil {
		return undo(fmt.Errorf("load table into device-mapper device %s (%s): %w", name, firstLine(table), err))
	}
	// DM_DEV_SUSPEND without the suspend flag resumes: it swaps the loaded table in.
	if _, err := c.ioctl(unix.DM_DEV_SUSPEND, header{Name: name}, nil, 0); err != nil {
		return undo(fmt.Errorf("resume device-mapper device %s: %w", name, err))
	}
	path := filepath.Join(c.dir, name)
	if err := ensureNode(path, h.Dev); err != nil {
		return undo(err)
	}
	return path, nil
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// ensureNode makes the block node path for dev unless the right one is
// there (udev may have made it).
func ensureNode(path string, dev uint64) error {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err == nil {
		if st.Mode&unix.S_IFMT == unix.S_IFBLK && st.Rdev == dev {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("replace stale %s: %w", path, err)
		}
	}
	if err := unix.Mknod(path, unix.S_IFBLK|0o600, int(dev)); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("create device node %s (%d:%d): %w", path, unix.Major(dev), unix.Minor(dev), err)
	}
	return nil
}

// Status returns the status string of name's first target
// (DM_TABLE_STATUS): for verity "V" when verified so far, "C" once a
// corrupt block was seen.
func Status(name string) (string, error) {
	ts, err := status(ControlPath, name, false)
	if err != nil {
		return "", err
	}
	if len(ts) == 0 {
		return "", fmt.Errorf("device-mapper device %s has no active table", name)
	}
	return ts[0].Params, nil
}

// LoadedTable returns name's active table lines (DM_TABLE_STATUS with the
// table flag), as `dmsetup table` prints them.
func LoadedTable(name string) ([]Target, error) {
	return status(ControlPath, name, true)
}

func status(ctlPath, name string, table bool) ([]Target, error) {
	if err := checkName(name, ""); err != nil {
		return nil, err
	}
	c, err := openControl(ctlPath)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var flags uint32
	if table {
		flags = flagStatusTbl
	}
	for size := 16 << 10; size <= 16<<20; size *= 4 {
		reply, err := c.ioctl(unix.DM_TABLE_STATUS, header{Name: name, Flags: flags}, nil, size)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				return nil, fmt.Errorf("device-mapper device %s does not exist: %w", name, err)
			}
			return nil, fmt.Errorf("status of device-mapper device %s: %w", name, err)
		}
		h, err := decode(reply)
		if err != nil {
			return nil, err
		}
		if h.Flags&flagBufferFull != 0 {
			continue
		}
		return decodeTargets(reply, h)
	}
	return nil, fmt.Errorf("status of device-mapper device %s does not fit in 16 MiB", name)
}

// Remove removes device name and the node CreateVerity made for it.
func Remove(name string) error {
	return remove(ControlPath, name, 0)
}

// RemoveDeferred removes device name once its last user closes it (the
// kernel's deferred remove): called right after mounting it, the device
// goes away with the unmount and is never left behind.
func RemoveDeferred(name string) error {
	return remove(ControlPath, name, unix.DM_DEFERRED_REMOVE)
}

// Available returns nil if the kernel offers device-mapper here, else the
// reason (one line naming the missing control device).
func Available() error {
	c, err := openControl(ControlPath)
	if err != nil {
		return err
	}
	return c.Close()
}

func remove(ctlPath, name string, flags uint32) error {
	if err := checkName(name, ""); err != nil {
		return err
	}
	c, err := openControl(ctlPath)
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.ioctl(unix.DM_DEV_REMOVE, header{Name: name, Flags: flags}, nil, 0); err != nil {
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("remove device-mapper device %s: it is in use (mounted or open): %w", name, err)
		}
		return fmt.Errorf("remove device-mapper device %s: %w", name, err)
	}
	if flags&unix.DM_DEFERRED_REMOVE != 0 {
		return nil // the node goes when the device does
	}
	path := filepath.Join(c.dir, name)
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeDevice != 0 {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove device node %s: %w", path, err)
		}
	}
	return nil
}
