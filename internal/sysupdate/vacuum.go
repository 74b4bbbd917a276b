package sysupdate

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// VacuumResult counts what Vacuum removed, as systemd-sysupdate reports
// it: the most instances one enabled transfer lost, and how many disabled
// transfers had instances removed.
type VacuumResult struct {
	Removed           int `json:"removed"`
	DisabledTransfers int `json:"disabledTransfers"`
}

// Vacuum removes instances beyond InstancesMax, leftovers of interrupted
// installs, and everything of disabled transfers; the current and
// protected versions always stay.
func (e *Engine) Vacuum(ctx context.Context) (VacuumResult, error) {
	var res VacuumResult
	unlock, err := e.lockTargets(ctx, e.Defs.Transfers, false)
	if err != nil {
		return res, err
	}
	defer unlock()
	for _, t := range e.Defs.Transfers {
		target, err := e.listTarget(t)
		if err != nil {
			return res, err
		}
		st := TransferState{T: t, Target: target, CurrentVersion: e.currentVersion(t)}
		limit := e.max(t)
		disabled := !e.Defs.Enabled(t)
		if disabled {
			// A disabled transfer owns no instances: all go.
			limit = -1
		}
		before := len(target)
		if err := e.vacuumTransfer(st, limit, "", job{}); err != nil {
			return res, err
		}
		after, err := e.listTarget(t)
		if err != nil {
			return res, err
		}
		// systemd counts like this: instances as the most any enabled
		// transfer removed (transfers move in lockstep), disabled
		// transfers that had something to remove.
		switch n := before - len(after); {
		case disabled && n > 0:
			res.DisabledTransfers++
		case !disabled:
			res.Removed = max(res.Removed, n)
		}
	}
	return res, ctx.Err()
}

// vacuumTransfer removes temporaries and the instances VacuumPlan picks.
func (e *Engine) vacuumTransfer(st TransferState, limit int, keep string, j job) error {
	t := st.T
	dir := e.hostPath(t.Target.Path)
	if t.RemoveTemporary {
		if err := e.removeTemporaries(dir, j); err != nil {
			return err
		}
	}
	protect := slices.Clone(t.ProtectVersions)
	if limit < 0 {
		protect = nil
	} else if st.CurrentVersion != "" {
		protect = append(protect, st.CurrentVersion)
	} else {
		// Without a symlink the newest installed version is current.
		for _, i := range st.Target {
			if i.State == Final {
				protect = append(protect, i.Version)
				break
			}
		}
	}
	if limit < 0 {
		limit = 0
	}
	for _, i := range VacuumPlan(st.Target, limit, keep, protect) {
		kind := "old"
		switch i.State {
		case PartialState:
			kind = "old partial"
		case PendingState:
			kind = "old pending"
		}
		e.log().Info(fmt.Sprintf("Removing %s '%s'.", kind, i.Path))
		if err := removeInstance(i.Path); err != nil {
			return fmt.Errorf("transfer %s: remove %s: %w", t.ID, i.Path, err)
		}
		e.step("vacuum")
		removeEmptyParents(filepath.Dir(i.Path), dir)
	}
	return nil
}

// removeTemporaries deletes ".#*" leftovers in the target directory, except
// the download this job is resuming.
func (e *Engine) removeTemporaries(dir string, j job) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	for _, de := range entries {
		p := filepath.Join(dir, de.Name())
		if !strings.HasPrefix(de.Name(), tempPrefix) || p == j.dlTemp {
			continue
		}
		if err := os.RemoveAll(p); err != nil {
			return err
		}
		e.step("vacuum-temp")
	}
	return nil
}

// removeInstance deletes a file, or a directory by first renaming it
// aside so that an interrupted removal never leaves a half-deleted
// instance under a matching name.
func removeInstance(p string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if !fi.IsDir() {
		if err := os.Remove(p); err != nil {
			return err
		}
		return syncDir(filepath.Dir(p))
	}
	aside := filepath.Join(filepath.Dir(p), tempPrefix+"strata-rm."+filepath.Base(p))
	if err := renameSync(p, aside); err != nil {
		return err
	}
	return os.RemoveAll(aside)
}

func removeEmptyParents(dir, stop string) {
	for dir != stop && strings.HasPrefix(dir, stop+"/") {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
