package osimage

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// Update reads the disk's GPT, hands its slots to change and writes the result back (both copies).
func Update(disk Disk, size int64, change func(t *gpt.Table, s []slot.Slot) ([]slot.Slot, error)) error {
	t, err := gpt.Read(disk, size)
	if err != nil {
		return err
	}
	s, err := change(t, slot.Slots(t))
	if err != nil {
		return err
	}
	slot.Apply(t, s)
	if err := t.Write(disk, size); err != nil {
		return err
	}
	return disk.Sync()
}

// Booted names the booted slot: given explicitly, else the one Next picks on the table.
func Booted(t *gpt.Table, given string) (string, error) {
	s := slot.Slots(t)
	if given != "" {
		if _, err := slot.ByName(s, given); err != nil {
			return "", err
		}
		return given, nil
	}
	n, _, err := slot.Next(s)
	if err != nil {
		return "", err
	}
	return n.Name, nil
}

// Check is one health check of mark-good.
type Check struct {
	Name string
	Argv []string
}

// CommandCheck runs a shell command line.
func CommandCheck(cmdline string) Check {
	return Check{Name: cmdline, Argv: []string{"/bin/sh", "-c", cmdline}}
}

// UnitCheck requires a systemd unit to be active.
func UnitCheck(unit string) Check {
	return Check{Name: "unit " + unit, Argv: []string{"systemctl", "is-active", "--quiet", unit}}
}

// RunChecks runs the checks in order and returns the first failure as one line.
func RunChecks(ctx context.Context, checks []Check) error {
	for _, c := range checks {
		cmd := exec.CommandContext(ctx, c.Argv[0], c.Argv[1:]...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			msg := strings.TrimSpace(out.String())
			if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
				msg = msg[i+1:]
			}
			if msg != "" {
				msg = ": " + msg
			}
			return fmt.Errorf("health check %q failed (%v)%s", c.Name, err, msg)
		}
	}
	return nil
}

// RunningDisk finds the booted slot and its disk on the running system from sysfs: the device-mapper
// device named "usr" (dm-verity) and the partition under it, else the partition mounted at /usr.
// sysRoot is "/" except in tests.
func RunningDisk(sysRoot string) (disk string, partIndex int, err error) {
	blocks, _ := filepath.Glob(filepath.Join(sysRoot, "sys/block/dm-*"))
	for _, dm := range blocks {
		name, err := os.ReadFile(filepath.Join(dm, "dm/name"))
		if err != nil || strings.TrimSpace(string(name)) != "usr" {
			continue
		}
		slaves, _ := os.ReadDir(filepath.Join(dm, "slaves"))
		for _, s := range slaves {
			part := filepath.Join(sysRoot, "sys/class/block", s.Name())
			n, err := os.ReadFile(filepath.Join(part, "partition"))
			if err != nil {
				continue
			}
			idx, err := strconv.Atoi(strings.TrimSpace(string(n)))
			if err != nil {
				continue
			}
			target, err := filepath.EvalSymlinks(part)
			if err != nil {
				continue
			}
			return "/dev/" + filepath.Base(filepath.Dir(target)), idx, nil
		}
	}
	return "", 0, fmt.Errorf("cannot find the booted /usr slot (no dm-verity device \"usr\" over a partition); pass --disk FILE")
}
