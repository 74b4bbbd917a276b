// Package systemctl is the thin effect layer over the service manager:
// whether PID 1 is systemd, daemon-reload and reboot. Callers decide when;
// this package only carries it out, so every decision stays testable
// without a running systemd.
package systemctl

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
)

// ErrNotBooted says PID 1 is not systemd, so there is no manager to ask.
var ErrNotBooted = errors.New("PID 1 is not systemd")

// Manager runs systemctl. Binary and RunDir exist so tests (and hosts with
// systemctl elsewhere) can point it at another program or marker.
type Manager struct {
	Binary string // default "systemctl"
	RunDir string // default "/run/systemd/system", sd_booted()'s marker
}

// IsBooted reports whether the system was booted with systemd, the test
// sd_booted(3) makes: /run/systemd/system is a directory.
func (m Manager) IsBooted() bool {
	dir := m.RunDir
	if dir == "" {
		dir = "/run/systemd/system"
	}
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// DaemonReload asks the manager to re-read unit files (systemctl
// daemon-reload). It returns ErrNotBooted when there is no manager.
func (m Manager) DaemonReload(ctx context.Context) error {
	return m.run(ctx, "daemon-reload")
}

// Reboot asks the manager for an orderly reboot (systemctl reboot).
func (m Manager) Reboot(ctx context.Context) error {
	return m.run(ctx, "reboot")
}

func (m Manager) run(ctx context.Context, verb string) error {
	if !m.IsBooted() {
		return fmt.Errorf("systemctl %s: %w", verb, ErrNotBooted)
	}
	bin := m.Binary
	if bin == "" {
		bin = "systemctl"
	}
	out, err := exec.CommandContext(ctx, bin, verb).CombinedOutput()
	if err != nil {
		msg := strings.TrimSpace(string(out))
		if msg != "" {
			return fmt.Errorf("systemctl %s: %w: %s", verb, err, msg)
		}
		return fmt.Errorf("systemctl %s: %w", verb, err)
	}
	return nil
}
