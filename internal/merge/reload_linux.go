package merge

import (
	"context"
	"fmt"

	"github.com/stratalinux/strata/internal/image"
	"github.com/stratalinux/strata/internal/rootfs"
	"github.com/stratalinux/strata/internal/sdparse"
	"github.com/stratalinux/strata/internal/systemctl"
)

// Reloader is the service manager a merge asks to re-read its units
// (systemctl.Manager in production).
type Reloader interface {
	IsBooted() bool
	DaemonReload(ctx context.Context) error
}

// NeedReload is sysext.c's need_reload() turned into a value: reload when
// an extension asks for it (EXTENSION_RELOAD_MANAGER=1), unless the user
// said --no-reload or works on another root, and never when nothing changed.
func NeedReload(wanted, skipped, noReload, otherRoot bool) bool {
	return wanted && !skipped && !noReload && !otherRoot
}

// MergedWantReload reports whether an extension in the current merge asks
// for a service manager reload; unmerge reads it before it unmerges.
func (e *Engine) MergedWantReload() bool {
	states, err := e.Status()
	if err != nil {
		return false
	}
	for _, st := range states {
		for _, n := range st.Extensions {
			rel, err := image.ReadRelease(image.DirTree{Root: rootfs.Join(e.Root, "/")}, e.Class, n)
			if err != nil {
				continue
			}
			if b, err := sdparse.Boolean(rel.Fields["EXTENSION_RELOAD_MANAGER"]); err == nil && b {
				return true
			}
		}
	}
	return false
}

// ReloadAfter carries out the reload rule after a merge or refresh: it
// reloads when res's images ask for it and the caller allows it, and says
// so either way. A failed reload is a warning: the merge itself stands.
func (e *Engine) ReloadAfter(ctx context.Context, res Result, noReload, otherRoot bool, r Reloader) {
	wanted := res.Plan.Reload
	if NeedReload(wanted, res.Skipped, noReload, otherRoot) {
		e.reloadManager(ctx, r)
	} else if wanted && !res.Skipped {
		e.log().Debug("Skipping service manager reload (--no-reload or --root).")
	}
}

// UnmergeAndReload unmerges and then reloads the service manager when an
// extension that was merged asked for reloads.
func (e *Engine) UnmergeAndReload(ctx context.Context, noReload, otherRoot bool, r Reloader) ([]string, error) {
	wanted := false
	if !noReload && !otherRoot {
		wanted = e.MergedWantReload()
	}
	done, err := e.Unmerge(ctx)
	if err != nil {
		return done, err
	}
	if NeedReload(wanted, false, noReload, otherRoot) {
		e.reloadManager(ctx, r)
	}
	return done, nil
}

// reloadManager asks PID 1 to reload its units so services shipped in
// extensions are seen; it says so when PID 1 is not systemd.
func (e *Engine) reloadManager(ctx context.Context, r Reloader) {
	if r == nil {
		r = systemctl.Manager{}
	}
	if !r.IsBooted() {
		e.log().Info("Skipping service manager reload requested by EXTENSION_RELOAD_MANAGER=1: PID 1 is not systemd.")
		return
	}
	if err := r.DaemonReload(ctx); err != nil {
		e.log().Warn(fmt.Sprintf("Failed to reload the service manager: %v", err))
		return
	}
	e.log().Info("Reloaded the service manager.")
}
