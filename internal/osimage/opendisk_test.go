package osimage

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// layoutDisk writes a sparse disk image file holding only the GPT of a new layout.
func layoutDisk(t *testing.T) (string, int64) {
	t.Helper()
	tab, size := Layout(Sizes{}, "opendisk")
	p := filepath.Join(t.TempDir(), "disk.img")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	if err := tab.Write(f, size); err != nil {
		t.Fatal(err)
	}
	return p, size
}

func TestChooseDisk(t *testing.T) {
	called := false
	running := func() (string, int, error) { called = true; return "/dev/vda", IndexUSRB, nil }

	p, idx, err := ChooseDisk(DiskOptions{Path: "disk.img", Booted: "B"}, running)
	if err != nil || p != "disk.img" || idx != 0 || called {
		t.Fatalf("with --disk: %q %d %v (running called: %v)", p, idx, err, called)
	}
	_, _, err = ChooseDisk(DiskOptions{Booted: "B"}, running)
	if err == nil || err.Error() != "--booted needs --disk FILE (on the running system the booted slot is read from /usr's device)" || called {
		t.Fatalf("--booted without --disk: %v (running called: %v)", err, called)
	}
	p, idx, err = ChooseDisk(DiskOptions{}, running)
	if err != nil || p != "/dev/vda" || idx != IndexUSRB || !called {
		t.Fatalf("running disk: %q %d %v", p, idx, err)
	}
	boom := errors.New("no usr")
	if _, _, err := ChooseDisk(DiskOptions{}, func() (string, int, error) { return "", 0, boom }); !errors.Is(err, boom) {
		t.Fatalf("running error lost: %v", err)
	}
}

func TestBootedSlot(t *testing.T) {
	tab, _ := Layout(Sizes{}, "booted")
	for _, c := range []struct {
		given string
		index int
		want  string
		err   string
	}{
		{"", 0, "A", ""},            // the new disk boots USR-A
		{"B", 0, "B", ""},           // --booted wins on an image file
		{"", IndexUSRB, "B", ""},    // the running /usr's partition
		{"A", IndexUSRB, "B", ""},   // the partition wins over a name
		{"", IndexOEM, "A", ""},     // not a slot: the boot loader's pick
		{"C", 0, "", "C"},           // unknown slot named in the error
		{"C", IndexUSRA, "A", ""},   // partition index decides first
		{"", 99, "A", ""},           // no such partition
		{"B", 99, "B", ""},          // … then the given name
		{"x/../A", 0, "", "x/../A"}, // names are not paths
		{strings.Repeat("A", 64), 0, "", "AAAA"},
	} {
		got, err := BootedSlot(tab, c.given, c.index)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("BootedSlot(%q, %d) = %q, %v; want an error naming %q", c.given, c.index, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("BootedSlot(%q, %d) = %q, %v; want %q", c.given, c.index, got, err, c.want)
		}
	}
}

func TestOpenDisk(t *testing.T) {
	p, size := layoutDisk(t)

	d, err := OpenDisk(DiskOptions{Path: p, Booted: "B"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Path != p || d.Size != size || d.Booted != "B" {
		t.Fatalf("opened %+v; want %s, %d bytes, booted B", d, p, size)
	}
	if _, err := d.File.WriteAt([]byte{1}, 0); err == nil {
		t.Fatal("read-only open accepted a write")
	}
	d.Close()

	d, err = OpenDisk(DiskOptions{Path: p, Write: true})
	if err != nil {
		t.Fatal(err)
	}
	if d.Booted != "A" {
		t.Fatalf("booted %q; want A (the boot loader's pick)", d.Booted)
	}
	if _, err := d.File.WriteAt([]byte{0}, 0); err != nil {
		t.Fatalf("read-write open refused a write: %v", err)
	}
	d.Close()

	if _, err := OpenDisk(DiskOptions{Path: p, Booted: "C"}); err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Fatalf("unknown slot: %v; want an error starting with the disk", err)
	}
	missing := filepath.Join(t.TempDir(), "none.img")
	if _, err := OpenDisk(DiskOptions{Path: missing}); err == nil || !strings.HasPrefix(err.Error(), "open disk: ") || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing disk: %v", err)
	}
	blank := filepath.Join(t.TempDir(), "blank.img")
	if err := os.WriteFile(blank, make([]byte, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDisk(DiskOptions{Path: blank}); err == nil || !strings.HasPrefix(err.Error(), blank+": ") {
		t.Fatalf("disk without a GPT: %v", err)
	}
	// Without --disk the running disk comes from sysfs; an empty one says to pass --disk.
	if _, err := OpenDisk(DiskOptions{SysRoot: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "pass --disk FILE") {
		t.Fatalf("no running disk: %v", err)
	}
}

// TestRunningDisk builds the sysfs shape of a dm-verity "usr" over /dev/vda4 in a scratch dir.
func TestRunningDisk(t *testing.T) {
	root := t.TempDir()
	mk := func(p, content string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("sys/block/dm-1/dm/name", "root\n") // another dm device is skipped
	mk("sys/block/dm-0/dm/name", "usr\n")
	mk("sys/devices/virtual/block/vda/vda4/partition", "4\n")
	if err := os.MkdirAll(filepath.Join(root, "sys/block/dm-0/slaves/vda4"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "sys/class/block"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../devices/virtual/block/vda/vda4", filepath.Join(root, "sys/class/block/vda4")); err != nil {
		t.Fatal(err)
	}
	disk, idx, err := RunningDisk(root)
	if err != nil || disk != "/dev/vda" || idx != IndexUSRB {
		t.Fatalf("RunningDisk = %q, %d, %v; want /dev/vda, 4", disk, idx, err)
	}
	p, bi, err := ChooseDisk(DiskOptions{}, func() (string, int, error) { return RunningDisk(root) })
	if err != nil || p != "/dev/vda" || bi != IndexUSRB {
		t.Fatalf("ChooseDisk = %q, %d, %v", p, bi, err)
	}
}

func TestReport(t *testing.T) {
	p, size := layoutDisk(t)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rep, err := Report(f, p, size, true)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Disk != p || rep.Size != size || rep.DiskGUID != DeriveGUID("opendisk", "disk").String() || rep.Next != "A" || rep.FromBackup {
		t.Fatalf("report %+v", rep)
	}
	var names []string
	for _, pi := range rep.Partitions {
		names = append(names, pi.Name)
	}
	if strings.Join(names, ",") != "EFI-SYSTEM,USR-A,USR-B,OEM,ROOT" {
		t.Fatalf("partitions %v", names)
	}
	if want := fmt.Sprintf("%016x", slot.Attr{Priority: 1, Successful: true}.Encode(0)); rep.Partitions[1].Attributes != want || want == "0000000000000000" {
		t.Fatalf("USR-A attributes %s", rep.Partitions[1].Attributes)
	}
	if len(rep.Slots) != 2 || rep.Slots[0].Name != "A" || rep.Slots[1].Name != "B" || !rep.Slots[0].Successful || rep.Slots[0].PartUUID != slot.USRA.String() {
		t.Fatalf("slots %+v", rep.Slots)
	}
	short, err := Report(f, p, size, false)
	if err != nil || short.Partitions != nil {
		t.Fatalf("without partitions: %+v, %v", short, err)
	}
	if _, err := Report(f, "named", 1<<20, false); err == nil || !strings.HasPrefix(err.Error(), "named: ") {
		t.Fatalf("short disk: %v", err)
	}
}

// TestMarkGoodAndRollback walks a disk through arm B → boot B → mark good → roll back to A, reading
// the table back from the file after each step.
func TestMarkGoodAndRollback(t *testing.T) {
	p, _ := layoutDisk(t)
	open := func(booted string) *OpenedDisk {
		t.Helper()
		d, err := OpenDisk(DiskOptions{Path: p, Booted: booted, Write: true})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return d
	}
	next := func() string {
		t.Helper()
		d := open("")
		rep, err := Report(d.File, d.Path, d.Size, false)
		if err != nil {
			t.Fatal(err)
		}
		return rep.Next
	}

	d := open("A")
	if _, err := Rollback(d.File, d.Size, d.Booted); err == nil || !strings.Contains(err.Error(), "slot B was never marked good") {
		t.Fatalf("rollback to a never-good slot: %v", err)
	}
	if err := Update(d.File, d.Size, func(_ *gpt.Table, s []slot.Slot) ([]slot.Slot, error) { return slot.Arm(s, "B"), nil }); err != nil {
		t.Fatal(err)
	}
	if n := next(); n != "B" {
		t.Fatalf("after arming B next is %s", n)
	}
	d = open("B")
	if err := MarkGood(d.File, d.Size, d.Booted); err != nil {
		t.Fatal(err)
	}
	rep, err := Report(d.File, d.Path, d.Size, false)
	if err != nil || !rep.Slots[1].Successful || rep.Slots[1].Tries != 0 || rep.Next != "B" {
		t.Fatalf("after mark-good B: %+v, %v", rep, err)
	}
	other, err := Rollback(d.File, d.Size, d.Booted)
	if err != nil || other != "A" {
		t.Fatalf("rollback from B = %q, %v; want A", other, err)
	}
	if n := next(); n != "A" {
		t.Fatalf("after rollback next is %s", n)
	}
	if _, err := Rollback(d.File, d.Size, "C"); err == nil || !strings.Contains(err.Error(), "than C") {
		t.Fatalf("rollback from an unknown slot: %v", err)
	}
}
