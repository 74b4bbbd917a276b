package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func needOSTools(t *testing.T) {
	t.Helper()
	for _, n := range []string{"mkfs.erofs", "mkfs.ext4", "mkfs.fat", "mcopy", "sgdisk"} {
		if _, err := exec.LookPath(n); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("%s not installed (scripts/deps test)", n)
			}
			t.Skipf("%s not installed", n)
		}
	}
}

type osStatusJSON struct {
	Booted, Next string
	Slots        []struct {
		Name       string
		Priority   int
		Tries      int
		Successful bool
		Record     *struct{ Version string }
	}
}

func osStatus(t *testing.T, disk string, extra ...string) osStatusJSON {
	t.Helper()
	r := strata(t, nil, append([]string{"os", "status", "--disk", disk, "--json"}, extra...)...)
	if r.code != 0 {
		t.Fatalf("os status: %d %s", r.code, r.stderr)
	}
	var s osStatusJSON
	if err := json.Unmarshal([]byte(r.stdout), &s); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	return s
}

// TestOSCycle runs bake → install B → failing mark-good → mark-good → rollback on a disk file.
func TestOSCycle(t *testing.T) {
	needOSTools(t)
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr")
	if err := os.MkdirAll(filepath.Join(usr, "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(usr, "lib/os-release"), []byte("ID=strata\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kernel := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernel, []byte("kernel"), 0o644); err != nil {
		t.Fatal(err)
	}
	disk := filepath.Join(dir, "disk.img")
	small := []string{"--usr-size", "8", "--root-size", "16", "--esp-size", "33", "--oem-size", "8"}
	if r := strata(t, nil, append([]string{"os", "bake", "--usr", usr, "--kernel", kernel, "--version", "1.0.0", "--output", disk}, small...)...); r.code != 0 {
		t.Fatalf("bake: %s", r.stderr)
	}
	if out, err := exec.Command("sgdisk", "-v", disk).CombinedOutput(); err != nil || !strings.Contains(string(out), "No problems found") {
		t.Fatalf("sgdisk -v: %v %s", err, out)
	}
	r := strata(t, nil, "os", "inspect", disk)
	if r.code != 0 || !strings.Contains(r.stdout, "USR-A") || !strings.Contains(r.stdout, "7130c94a-213a-4e5a-8e26-6cce9662f132") || !strings.Contains(r.stdout, "0101000000000000") {
		t.Fatalf("inspect: %d %s %s", r.code, r.stdout, r.stderr)
	}
	if s := osStatus(t, disk); s.Booted != "A" || s.Slots[0].Record == nil || s.Slots[0].Record.Version != "1.0.0" || s.Slots[1].Record != nil {
		t.Fatalf("fresh status %+v", s)
	}
	payload := filepath.Join(dir, "p2")
	if r := strata(t, nil, "os", "payload", "--usr", usr, "--version", "2.0.0", payload); r.code != 0 {
		t.Fatalf("payload: %s", r.stderr)
	}
	if r := strata(t, nil, "os", "install", payload, "--disk", disk, "--sha256", strings.Repeat("0", 64)); r.code != 1 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "expected 000") {
		t.Fatalf("bad sha256: %d %q", r.code, r.stderr)
	}
	if s := osStatus(t, disk); s.Next != "A" {
		t.Fatalf("bad install armed: %+v", s)
	}
	if r := strata(t, nil, "os", "install", payload, "--disk", disk); r.code != 0 || !strings.Contains(r.stdout, "into slot B") {
		t.Fatalf("install: %d %s", r.code, r.stderr)
	}
	s := osStatus(t, disk)
	if s.Next != "B" || s.Slots[1].Priority != 2 || s.Slots[1].Tries != 1 || s.Slots[1].Successful || s.Slots[1].Record.Version != "2.0.0" {
		t.Fatalf("after install %+v", s)
	}
	if r := strata(t, nil, "os", "mark-good", "--disk", disk, "--booted", "B", "--check", "exit 3"); r.code != 1 || !strings.Contains(r.stderr, "stays unmarked") {
		t.Fatalf("failing check: %d %s", r.code, r.stderr)
	}
	if s := osStatus(t, disk); s.Slots[1].Successful {
		t.Fatal("failing check marked B")
	}
	if r := strata(t, nil, "os", "mark-good", "--disk", disk, "--booted", "B", "--check", "true"); r.code != 0 {
		t.Fatalf("mark-good: %s", r.stderr)
	}
	if s := osStatus(t, disk, "--booted", "B"); !s.Slots[1].Successful || s.Slots[1].Tries != 0 || s.Next != "B" {
		t.Fatalf("after mark-good %+v", s)
	}
	if r := strata(t, nil, "os", "rollback", "--disk", disk, "--booted", "B"); r.code != 0 || !strings.Contains(r.stdout, "slot A boots next") {
		t.Fatalf("rollback: %s", r.stderr)
	}
	if s := osStatus(t, disk); s.Next != "A" {
		t.Fatalf("after rollback %+v", s)
	}
}
