package osimage

import (
	"github.com/stratalinux/strata/internal/gpt"
	"github.com/stratalinux/strata/internal/slot"
)

// MarkGood marks the booted slot successful on the disk (os mark-good, after its health checks).
func MarkGood(disk Disk, size int64, booted string) error {
	return Update(disk, size, func(_ *gpt.Table, s []slot.Slot) ([]slot.Slot, error) {
		return slot.MarkGood(s, booted), nil
	})
}

// Rollback makes the other slot boot next, if it was ever marked good, and returns its name.
func Rollback(disk Disk, size int64, booted string) (other string, err error) {
	err = Update(disk, size, func(_ *gpt.Table, s []slot.Slot) ([]slot.Slot, error) {
		if err := slot.CanRollback(s, booted); err != nil {
			return nil, err
		}
		o, _ := slot.Other(s, booted)
		other = o.Name
		return slot.Rollback(s, booted), nil
	})
	if err != nil {
		return "", err
	}
	return other, nil
}
