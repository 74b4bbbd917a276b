package osimage

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// DiskOptions say which OS disk a slot command (status, install, mark-good, rollback) works on.
type DiskOptions struct {
	// Path is a disk image file; empty means the running system's disk (found through sysfs).
	Path string
	// Booted is, with Path, the slot taken as booted (A or B); empty means the one the boot loader
	// would pick. On the running system the booted slot is /usr's partition, so Booted needs Path.
	Booted string
	// Write opens the disk read-write.
	Write bool
	// SysRoot is where the running disk is looked up ("/" when empty; tests point it at a fake sysfs).
	SysRoot string
}

// OpenedDisk is an open OS disk and the slot taken as booted on it.
type OpenedDisk struct {
	File   *os.File
	Path   string
	Size   int64
	Booted string
}

// Close closes the disk.
func (d *OpenedDisk) Close() error { return d.File.Close() }

// errBootedNeedsDisk keeps --booted from overriding what the running system says it booted.
var errBootedNeedsDisk = errors.New("--booted needs --disk FILE (on the running system the booted slot is read from /usr's device)")

// ChooseDisk decides which disk to open: opts.Path, else the running disk that running finds (with
// the partition index of the booted /usr; 0 when unknown). running is called only without a Path.
func ChooseDisk(opts DiskOptions, running func() (disk string, partIndex int, err error)) (path string, bootedIndex int, err error) {
	if opts.Path != "" {
		return opts.Path, 0, nil
	}
	if opts.Booted != "" {
		return "", 0, errBootedNeedsDisk
	}
	return running()
}

// BootedSlot names the booted slot on t: the slot on partition bootedIndex when there is one (the
// running system's /usr), else given when set, else the one the boot loader would pick.
func BootedSlot(t *gpt.Table, given string, bootedIndex int) (string, error) {
	if bootedIndex > 0 {
		for _, s := range slot.Slots(t) {
			if s.Index == bootedIndex {
				given = s.Name
			}
		}
	}
	return Booted(t, given)
}

// OpenDisk opens the disk opts name and reads which slot is booted on it. The caller closes it.
func OpenDisk(opts DiskOptions) (*OpenedDisk, error) {
	sysRoot := opts.SysRoot
	if sysRoot == "" {
		sysRoot = "/"
	}
	path, bootedIdx, err := ChooseDisk(opts, func() (string, int, error) { return RunningDisk(sysRoot) })
	if err != nil {
		return nil, err
	}
	flag := os.O_RDONLY
	if opts.Write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return nil, fmt.Errorf("open disk: %w", err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("size of %s: %w", path, err)
	}
	t, err := gpt.Read(f, size)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	booted, err := BootedSlot(t, opts.Booted, bootedIdx)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &OpenedDisk{File: f, Path: path, Size: size, Booted: booted}, nil
}

// DiskReport is what os inspect and os status print about a disk.
type DiskReport struct {
	Disk       string          `json:"disk"`
	DiskGUID   string          `json:"disk_guid"`
	Size       int64           `json:"size"`
	FromBackup bool            `json:"from_backup_gpt,omitempty"`
	Partitions []PartitionInfo `json:"partitions,omitempty"`
	Booted     string          `json:"booted,omitempty"`
	Next       string          `json:"next,omitempty"`
	Slots      []SlotInfo      `json:"slots"`
}

// PartitionInfo is one GPT entry of a DiskReport.
type PartitionInfo struct {
	Index      int    `json:"number"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	UUID       string `json:"partuuid"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	Attributes string `json:"attributes"`
}

// Report reads a disk's GPT and slots; withParts adds every partition. path only names the disk.
func Report(r io.ReaderAt, path string, size int64, withParts bool) (*DiskReport, error) {
	t, err := gpt.Read(r, size)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rep := &DiskReport{Disk: path, DiskGUID: t.DiskGUID.String(), Size: size, FromBackup: t.FromBackup, Slots: Slots(r, t)}
	if withParts {
		for _, p := range t.Partitions {
			rep.Partitions = append(rep.Partitions, PartitionInfo{p.Index, p.Name, p.Type.String(), p.UUID.String(), p.Start(), p.Size(), fmt.Sprintf("%016x", p.Attributes)})
		}
	}
	if n, _, err := slot.Next(slot.Slots(t)); err == nil {
		rep.Next = n.Name
	}
	return rep, nil
}
