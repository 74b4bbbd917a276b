package agent

import (
	"context"
	"github.com/stratalinux/strata/internal/systemctl"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/rootfs"
)

func TestJournalRoundTripAndDamage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "agent")
	j, err := LoadJournal(dir)
	if err != nil || j.Phase != Idle {
		t.Fatalf("no journal yet: %+v %v", j, err)
	}
	j = Journal{Phase: RebootPending, Offer: &Offer{Version: "2.0.0", Payload: Package{Name: "u.raw", Size: 7}}, TargetSlot: "B", Skip: []string{"1.5.0"}}
	j.Queue(success(13), false)
	j.Queue(IdleEvent(), true)
	if err := SaveJournal(dir, j); err != nil {
		t.Fatal(err)
	}
	got, err := LoadJournal(dir)
	if err != nil || !reflect.DeepEqual(got, j) {
		t.Fatalf("round trip:\n got %+v\nwant %+v (%v)", got, j, err)
	}
	if !got.Outbox[1].Event.HasPrevious {
		t.Fatal("previousversion=\"\" lost in the journal")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "state.json" {
		t.Fatalf("state dir holds %v, want only state.json (no temp files)", ents)
	}
	if fi, _ := os.Stat(JournalPath(dir)); fi.Mode().Perm() != 0o600 {
		t.Fatalf("journal mode %v", fi.Mode())
	}
	os.WriteFile(JournalPath(dir), []byte(`{"phase": "idle", `), 0o600)
	if _, err := LoadJournal(dir); err == nil || !strings.Contains(err.Error(), "damaged") || !strings.Contains(err.Error(), "move it away") {
		t.Fatalf("damaged journal: %v", err)
	}
	os.WriteFile(JournalPath(dir), make([]byte, 2<<20), 0o600)
	if _, err := LoadJournal(dir); err == nil {
		t.Fatal("a 2 MiB journal was read")
	}
}

func TestNewLock(t *testing.T) {
	root, err := rootfs.ParseRoot(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []coord.Strategy{coord.Reboot, coord.Off} {
		l, closeLock, err := NewLock(Config{Strategy: s}, root, "m", nil)
		if err != nil || l != (coord.NoLock{}) || closeLock() != nil {
			t.Fatalf("%s: %v %v", s, l, err)
		}
	}
	// kured: the lock is kured's sentinel under --root, gone in steady state.
	kl, _, err := NewLock(Config{Strategy: coord.Kured}, root, "m", nil)
	if err != nil {
		t.Fatalf("kured: %v", err)
	}
	sentinel := root.Join("/var/run/reboot-required")
	if err := kl.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sentinel); err != nil {
		t.Fatalf("kured sentinel not written: %v", err)
	}
	if err := kl.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sentinel); !os.IsNotExist(err) {
		t.Fatalf("kured sentinel left after release: %v", err)
	}
	// fleetlock: needs the server's URL.
	if _, _, err := NewLock(Config{Strategy: coord.FleetLock}, root, "m", nil); err == nil {
		t.Fatal("fleetlock without FLEETLOCK_URL accepted")
	}
	if l, _, err := NewLock(Config{Strategy: coord.FleetLock, FleetLockURL: "http://127.0.0.1:1"}, root, "m", nil); err != nil || l == nil {
		t.Fatalf("fleetlock: %v", err)
	}
	if _, _, err := NewLock(Config{Strategy: coord.EtcdLock, EtcdCAFile: "/nonexistent/ca.pem"}, root, "m", nil); err == nil || !strings.Contains(err.Error(), "LOCKSMITHD_ETCD_CAFILE") {
		t.Fatalf("missing CA: %v", err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, []byte("not pem"), 0o600)
	if _, _, err := NewLock(Config{Strategy: coord.EtcdLock, EtcdCAFile: ca}, root, "m", nil); err == nil || !strings.Contains(err.Error(), "no PEM") {
		t.Fatalf("bad CA: %v", err)
	}
	if _, _, err := NewLock(Config{Strategy: coord.EtcdLock, EtcdEndpoints: []string{"http://127.0.0.1:1"}}, root, "", nil); err == nil || !strings.Contains(err.Error(), "machine-id") {
		t.Fatalf("empty id: %v", err)
	}
	if _, _, err := NewLock(Config{Strategy: coord.EtcdLock, EtcdEndpoints: []string{"127.0.0.1:2379"}}, root, "m", nil); err == nil || !strings.Contains(err.Error(), "want http://host:port") {
		t.Fatalf("endpoint without scheme: %v", err)
	}
}

// TestRebootFunc: without systemd as PID 1 the configured command runs;
// without one either, the error names the key to set.
func TestRebootFunc(t *testing.T) {
	noSystemd := systemctl.Manager{RunDir: filepath.Join(t.TempDir(), "no-systemd")}
	mark := filepath.Join(t.TempDir(), "rebooted")
	if err := RebootFunc(Config{RebootCommand: "touch " + mark}, noSystemd)(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(mark); err != nil {
		t.Fatalf("reboot command did not run: %v", err)
	}
	if err := RebootFunc(Config{}, noSystemd)(context.Background()); err == nil || !strings.Contains(err.Error(), "STRATA_REBOOT_COMMAND") {
		t.Fatalf("no command: %v", err)
	}
	if err := RebootFunc(Config{RebootCommand: "exit 3"}, noSystemd)(context.Background()); err == nil || !strings.Contains(err.Error(), "exit 3") {
		t.Fatalf("failing command: %v", err)
	}
}

func TestCheckTimesOverlayTheJournal(t *testing.T) {
	dir := t.TempDir()
	t1 := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	t2 := t1.Add(45 * time.Minute)
	if err := SaveJournal(dir, Journal{Phase: Idle, LastCheck: t1, NextCheck: t2}); err != nil {
		t.Fatal(err)
	}
	if err := SaveCheckTimes(dir, t2, t2.Add(45*time.Minute)); err != nil {
		t.Fatal(err)
	}
	j, err := LoadJournal(dir)
	if err != nil || !j.LastCheck.Equal(t2) || !j.NextCheck.Equal(t2.Add(45*time.Minute)) {
		t.Fatalf("newer check times not laid over: %+v, %v", j, err)
	}
	// Older than the journal, or torn by a power cut: ignored.
	for _, body := range []string{`{"last_check":"2026-12-03T09:00:00Z","next_check":"2026-12-03T09:45:00Z"}`, `{"last_ch`, ""} {
		if err := os.WriteFile(CheckTimesPath(dir), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := LoadJournal(dir)
		if err != nil || !j.LastCheck.Equal(t1) || !j.NextCheck.Equal(t2) {
			t.Fatalf("check-times file %q: %+v, %v; want the journal's times", body, j, err)
		}
	}
}
