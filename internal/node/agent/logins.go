package agent

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/utmp"
)

// DefaultLoginsDelay is locksmithd's wait between "System reboot in 5
// minutes!" on the logged-in users' terminals and the reboot.
const DefaultLoginsDelay = 5 * time.Minute

// LoginsDelay is how long to wait after warning logged-in users: the
// configured delay, cut short so that the reboot still falls inside the
// maintenance window (locksmithd sleeps the full five minutes even if the
// window closes meanwhile; a reboot outside the window is never ours).
func LoginsDelay(d time.Duration, w coord.Window, now time.Time) time.Duration {
	if d <= 0 {
		return 0
	}
	if w.IsZero() {
		return d
	}
	_, end := w.Next(now)
	left := end.Sub(now) - time.Second
	return max(0, min(d, left))
}

// warnLogins tells the users logged in on terminals that the node
// reboots, and waits for them as locksmithd does when anyone was told.
// Reading utmp is best effort: a node without it has no logins to warn.
func (a *Agent) warnLogins(ctx context.Context) error {
	if a.Config.LoginsDelay <= 0 {
		return nil
	}
	logins, err := utmp.Read(a.Root.Path())
	if err != nil {
		a.log().Warn("agent: cannot read who is logged in; rebooting without warning them", "err", err)
		return nil
	}
	if len(logins) == 0 {
		return nil
	}
	d := LoginsDelay(a.Config.LoginsDelay, a.Config.Window, a.now())
	msg := fmt.Sprintf("System reboot in %d minutes!", max(1, int((d+time.Minute-1)/time.Minute)))
	if d < time.Minute {
		msg = fmt.Sprintf("System reboot in %d seconds!", int((d+time.Second-1)/time.Second))
	}
	n := utmp.Broadcast(filepath.Join(a.Root.Path(), "dev"), logins, utmp.Message("strata agent", a.now(), msg))
	if n == 0 || d == 0 {
		return nil
	}
	a.log().Info("agent: logins detected, delaying the reboot", "delay", d, "terminals", n)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
