package agent

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
)

func TestLoginsDelayStaysInsideTheWindow(t *testing.T) {
	w, err := coord.ParseWindow("04:00", "1h", time.UTC)
	if err != nil {
		t.Fatal(err)
	}
	at := func(h, m int) time.Time { return time.Date(2026, 12, 3, h, m, 0, 0, time.UTC) }
	for _, c := range []struct {
		d    time.Duration
		w    coord.Window
		now  time.Time
		want time.Duration
	}{
		{5 * time.Minute, coord.Window{}, at(12, 0), 5 * time.Minute},
		{5 * time.Minute, w, at(4, 10), 5 * time.Minute},
		{5 * time.Minute, w, at(4, 58), 2*time.Minute - time.Second}, // cut to the window's end
		{0, w, at(4, 10), 0},
	} {
		if got := LoginsDelay(c.d, c.w, c.now); got != c.want {
			t.Errorf("LoginsDelay(%v, %v, %v) = %v, want %v", c.d, c.w, c.now, got, c.want)
		}
	}
}

// utmpRecord is one USER_PROCESS record in glibc's layout.
func utmpRecord(line, user string) []byte {
	r := make([]byte, 384)
	binary.LittleEndian.PutUint16(r[0:2], 7)
	binary.LittleEndian.PutUint32(r[4:8], 4242)
	copy(r[8:40], line)
	copy(r[44:76], user)
	return r
}

// TestAgentWarnsLoggedInUsersBeforeReboot: as locksmithd, a user logged in
// on a terminal is told before the reboot, and the reboot waits.
func TestAgentWarnsLoggedInUsersBeforeReboot(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	n := e.node(t)
	write(t, n.root, "/run/utmp", string(utmpRecord("pts/0", "alice")))
	tty := filepath.Join(n.root, "dev/pts/0")
	write(t, n.root, "/dev/pts/0", "")
	a := n.agent(t, "A", nil)
	a.Config.LoginsDelay = time.Second
	var warnedFor time.Duration
	a.Reboot = func(context.Context) error {
		st, err := os.Stat(tty)
		if err != nil {
			return err
		}
		warnedFor = time.Since(st.ModTime())
		n.reboots++
		return nil
	}
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(tty)
	if n.reboots != 1 || !strings.Contains(string(b), "System reboot in 1 seconds!") || !strings.Contains(string(b), "Broadcast message from strata agent") {
		t.Fatalf("%d reboots, terminal got %q", n.reboots, b)
	}
	if warnedFor < time.Second {
		t.Fatalf("rebooted %v after the warning, want the 1 s delay", warnedFor)
	}
}
