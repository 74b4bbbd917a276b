package systemctl

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestNotBootedRefusesWithoutRunning(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	bin := filepath.Join(dir, "systemctl")
	if err := os.WriteFile(bin, []byte("#!/bin/sh\ntouch "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := Manager{Binary: bin, RunDir: filepath.Join(dir, "absent")}
	if m.IsBooted() {
		t.Fatal("IsBooted with no run dir")
	}
	if err := m.DaemonReload(context.Background()); !errors.Is(err, ErrNotBooted) {
		t.Fatalf("DaemonReload = %v, want ErrNotBooted", err)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Fatal("systemctl ran although PID 1 is not systemd")
	}
}

func TestRunsVerbAndReportsOutput(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o755); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	bin := filepath.Join(dir, "systemctl")
	script := "#!/bin/sh\necho \"$1\" >>" + log + "\n[ \"$1\" = reboot ] && { echo 'Access denied' >&2; exit 1; }\nexit 0\n"
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	m := Manager{Binary: bin, RunDir: run}
	if !m.IsBooted() {
		t.Fatal("IsBooted false with run dir present")
	}
	if err := m.DaemonReload(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := m.Reboot(context.Background())
	if err == nil || !strings.Contains(err.Error(), "Access denied") || !strings.Contains(err.Error(), "systemctl reboot") {
		t.Fatalf("Reboot error = %v, want the command and its output", err)
	}
	b, _ := os.ReadFile(log)
	if string(b) != "daemon-reload\nreboot\n" {
		t.Fatalf("verbs run = %q", b)
	}
}
