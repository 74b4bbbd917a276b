package coord

import (
	"context"
	"testing"
	"time"
)

func TestParseStrategy(t *testing.T) {
	for in, want := range map[string]Strategy{
		"": Reboot, "reboot": Reboot, "etcd-lock": EtcdLock, "fleetlock": FleetLock,
		"fleet_lock": FleetLock, "kured": Kured, "off": Off, "best-effort": BestEffort,
	} {
		got, err := ParseStrategy(in)
		if err != nil || got != want {
			t.Errorf("ParseStrategy(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"Reboot", "etcd", "immediate", " reboot"} {
		if _, err := ParseStrategy(in); err == nil {
			t.Errorf("ParseStrategy(%q) accepted", in)
		}
	}
	if BestEffort.Resolve(true) != EtcdLock || BestEffort.Resolve(false) != Reboot || FleetLock.Resolve(true) != FleetLock {
		t.Error("Resolve of best-effort is wrong")
	}
}

func TestDecide(t *testing.T) {
	win, err := ParseWindow("04:00", "1h", nil)
	if err != nil {
		t.Fatal(err)
	}
	in := time.Date(2026, 12, 3, 4, 30, 0, 0, time.UTC)
	out := time.Date(2026, 12, 3, 6, 0, 0, 0, time.UTC)
	tomorrow := time.Date(2026, 12, 4, 4, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		s    Strategy
		w    Window
		at   time.Time
		held bool
		want Decision
	}{
		{Off, Window{}, in, false, Decision{Action: Never}},
		{Off, win, out, true, Decision{Action: Never}},
		{Reboot, Window{}, out, false, Decision{Action: RebootNow}},
		{Reboot, win, in, false, Decision{Action: RebootNow}},
		{Reboot, win, out, false, Decision{Action: Wait, Until: tomorrow}},
		{EtcdLock, win, out, false, Decision{Action: Wait, Until: tomorrow}},
		{EtcdLock, win, in, false, Decision{Action: TakeLock}},
		{EtcdLock, win, in, true, Decision{Action: RebootNow}},
		// Got the lock but the window closed meanwhile: wait, never reboot.
		{EtcdLock, win, out, true, Decision{Action: Wait, Until: tomorrow}},
		{FleetLock, Window{}, in, false, Decision{Action: TakeLock}},
		{FleetLock, Window{}, in, true, Decision{Action: RebootNow}},
		{Kured, win, in, false, Decision{Action: TakeLock}},
		{Kured, win, in, true, Decision{Action: HandOff}},
	} {
		if got := Decide(c.s, c.w, c.at, c.held); got != c.want {
			t.Errorf("Decide(%s, %s, %s, held=%v) = %v %s, want %v %s", c.s, c.w, c.at, c.held, got.Action, got.Until, c.want.Action, c.want.Until)
		}
	}
}

func TestBackoff(t *testing.T) {
	for n, base := range []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second} {
		for range 100 {
			d := Backoff(n)
			if d < base*8/10 || d > base*12/10 {
				t.Fatalf("Backoff(%d) = %v, want %v ±20%%", n, d, base)
			}
		}
	}
	if d := Backoff(1000); d > 6*time.Minute || d < 4*time.Minute {
		t.Fatalf("Backoff(1000) = %v, want about 5m", d)
	}
}

func TestNoLock(t *testing.T) {
	var l Lock = NoLock{}
	if l.Acquire(context.Background()) != nil || l.Release(context.Background()) != nil {
		t.Fatal("NoLock failed")
	}
}
