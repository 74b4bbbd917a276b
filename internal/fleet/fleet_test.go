package fleet

import (
	"fmt"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/omaha"
)

var now = time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC) // a Friday

func input(p Policy, inst Instance, r Rollout) CheckInput {
	target := &Package{ID: "p3", Version: "3.0.0"}
	floor := &Package{ID: "p2", Version: "2.0.0"}
	g := &Group{ID: "g", Policy: p}
	return CheckInput{Now: now, Instance: inst, Group: g, Channel: &Channel{ID: "c"}, Target: target, Floors: []*Package{floor}, Rollout: r}
}

func TestDecide(t *testing.T) {
	open := DefaultPolicy()
	paused := open
	paused.Paused = true
	perPeriod := open
	perPeriod.MaxUpdatesPerPeriod = 2
	conc := open
	conc.MaxConcurrent = 1
	safe := open
	safe.SafeMode = true
	window := open
	window.Window = &Window{Days: []string{"sat", "sun"}, Start: "00:00", End: "23:59", Timezone: "Europe/Berlin"}
	none := open
	none.Percent = 0

	cases := []decideCase{
		{"floor first", open, Instance{Version: "1.0.0"}, Rollout{}, Grant, "2.0.0", ""},
		{"after floor", open, Instance{Version: "2.0.0"}, Rollout{}, Grant, "3.0.0", ""},
		{"up to date", open, Instance{Version: "3.0.0"}, Rollout{}, NoUpdate, "", "already at the channel's version"},
		{"downloading", open, Instance{Version: "1.0.0", Status: StatusDownloading}, Rollout{}, NoUpdate, "", "update in progress on instance"},
		{"regrant ignores policy", paused, Instance{Version: "2.0.0", Status: StatusGranted, InProgress: true, GrantedVersion: "3.0.0"}, Rollout{}, Regrant, "3.0.0", ""},
		{"paused", paused, Instance{Version: "2.0.0"}, Rollout{}, NoUpdate, "", string(RefusePaused)},
		{"per period", perPeriod, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", PeriodStart: now.Add(-time.Minute), PeriodGrants: 2}, NoUpdate, "", string(RefusePerPeriod)},
		{"period rolled over", perPeriod, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", PeriodStart: now.Add(-2 * time.Hour), PeriodGrants: 2}, Grant, "3.0.0", ""},
		{"concurrency", conc, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", InProgress: 1}, NoUpdate, "", string(RefuseConcurrency)},
		{"canary out", safe, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", Granted: 1, InProgress: 1}, NoUpdate, "", string(RefuseCanary)},
		{"canary failed", safe, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", Granted: 1, Failed: 1}, NoUpdate, "", string(RefuseCanaryFail)},
		{"canary ok", safe, Instance{Version: "2.0.0"}, Rollout{Target: "3.0.0", Granted: 1, Succeeded: 1}, Grant, "3.0.0", ""},
		{"canary counters of old target", safe, Instance{Version: "2.0.0"}, Rollout{Target: "2.5.0", Granted: 1, Failed: 1}, Grant, "3.0.0", ""},
		{"window closed", window, Instance{Version: "2.0.0"}, Rollout{}, NoUpdate, "", string(RefuseWindow)},
		{"zero percent", none, Instance{Version: "2.0.0", MachineID: "m"}, Rollout{}, NoUpdate, "", string(RefusePercent)},
	}
	for _, c := range cases {
		d := Decide(input(c.p, c.inst, c.r))
		c.check(t, d)
	}
	// A grant of a step that is blacklisted on the channel is not repeated.
	in := input(open, Instance{Version: "1.0.0", Status: StatusGranted, InProgress: true, GrantedVersion: "2.0.0"}, Rollout{})
	in.Floors[0].Blacklist = []string{"c"}
	if d := Decide(in); d.Verdict != NoUpdate || d.Reason != "package blacklisted on this channel" {
		t.Errorf("regrant of a blacklisted floor: %+v", d)
	}
}

type decideCase struct {
	name    string
	p       Policy
	inst    Instance
	r       Rollout
	verdict Verdict
	version string
	reason  string
}

func (c decideCase) check(t *testing.T, d Decision) {
	t.Helper()
	{
		got := ""
		if d.Package != nil {
			got = d.Package.Version
		}
		if d.Verdict != c.verdict || got != c.version || d.Reason != c.reason {
			t.Errorf("%s: got %v %q %q, want %v %q %q", c.name, d.Verdict, got, d.Reason, c.verdict, c.version, c.reason)
		}
	}
}

func TestWindowWraps(t *testing.T) {
	w := &Window{Days: []string{"fri"}, Start: "22:00", End: "02:00", Timezone: "UTC"}
	if err := w.Prepare(); err != nil {
		t.Fatal(err)
	}
	fri23 := time.Date(2026, 11, 20, 23, 0, 0, 0, time.UTC)
	sat1 := fri23.Add(2 * time.Hour)
	sat3 := fri23.Add(4 * time.Hour)
	if !w.Contains(fri23) || !w.Contains(sat1) || w.Contains(sat3) || w.Contains(now) {
		t.Fatal("wrapping window wrong")
	}
	if err := (&Window{Timezone: "Mars/Olympus"}).Prepare(); err == nil {
		t.Fatal("bad zone accepted")
	}
}

func TestPercentIsStableAndProportional(t *testing.T) {
	in := 0
	for i := 0; i < 10000; i++ {
		m := fmt.Sprintf("%032x", i)
		a := InPercent(m, "3.0.0", 25)
		if a != InPercent(m, "3.0.0", 25) {
			t.Fatal("unstable")
		}
		if a && !InPercent(m, "3.0.0", 50) {
			t.Fatal("not monotonic in percent")
		}
		if a {
			in++
		}
	}
	if in < 2300 || in > 2700 {
		t.Fatalf("25%% picked %d of 10000", in)
	}
}

func TestEventLifecycle(t *testing.T) {
	inst := GrantTo(Instance{MachineID: "m", Version: "2.0.0"}, "3.0.0", now)
	steps := []struct {
		ev     omaha.Event
		status Status
		delta  Delta
		store  bool
	}{
		{omaha.Event{Type: 13, Result: 1}, StatusDownloading, Delta{}, true},
		{omaha.Event{Type: 13, Result: 1}, StatusDownloading, Delta{}, false}, // duplicate
		{omaha.Event{Type: 14, Result: 1}, StatusDownloaded, Delta{}, true},
		{omaha.Event{Type: 3, Result: 9}, StatusDownloaded, Delta{}, false}, // not whitelisted
		{omaha.Event{Type: 3, Result: 1}, StatusInstalled, Delta{}, true},
	}
	for i, s := range steps {
		out := ApplyEvent(inst, &s.ev, now)
		if out.Instance.Status != s.status || out.Delta != s.delta || out.Store != s.store {
			t.Fatalf("step %d: %+v", i, out)
		}
		inst = out.Instance
	}
	inst.Version = "3.0.0" // rebooted into the update
	out := ApplyEvent(inst, &omaha.Event{Type: 3, Result: 2, PreviousVersion: "2.0.0", HasPrevious: true}, now)
	if out.Instance.Status != StatusComplete || out.Delta != (Delta{InProgress: -1, Succeeded: 1, Version: "3.0.0"}) {
		t.Fatalf("complete: %+v", out)
	}
	again := ApplyEvent(out.Instance, &omaha.Event{Type: 3, Result: 2, PreviousVersion: "2.0.0", HasPrevious: true}, now)
	if !again.Delta.Zero() || again.Store {
		t.Fatalf("replayed completion counted: %+v", again)
	}
}

func TestEventFailureAndReset(t *testing.T) {
	inst := GrantTo(Instance{MachineID: "m", Version: "2.0.0"}, "3.0.0", now)
	out := ApplyEvent(inst, &omaha.Event{Type: 3, Result: 0, ErrorCode: "268435477"}, now)
	if out.Instance.Status != StatusError || out.Delta != (Delta{InProgress: -1, Failed: 1, Version: "3.0.0"}) || out.Activity == nil {
		t.Fatalf("failure: %+v", out)
	}
	if dup := ApplyEvent(out.Instance, &omaha.Event{Type: 3, Result: 0, ErrorCode: "21"}, now); !dup.Delta.Zero() {
		t.Fatalf("duplicate failure counted: %+v", dup)
	}
	kept := ApplyEvent(inst, &omaha.Event{Type: 3, Result: 2, HasPrevious: true}, now)
	if kept.Instance != inst || !kept.Delta.Zero() {
		t.Fatalf("an idle check released a grant not yet started: %+v", kept)
	}
	stalled := inst
	stalled.Status = StatusDownloading
	reset := ApplyEvent(stalled, &omaha.Event{Type: 3, Result: 2, HasPrevious: true}, now)
	if reset.Instance.Status != StatusUndefined || reset.Delta.InProgress != -1 || reset.Store {
		t.Fatalf("reset: %+v", reset)
	}
	rb := ApplyEvent(Instance{Version: "2.0.0", Status: StatusComplete, GrantedVersion: "3.0.0"}, &omaha.Event{Type: 3, Result: 0, ErrorCode: "44"}, now)
	if rb.Instance.Status != StatusError || rb.Delta.Failed != 1 {
		t.Fatalf("rollback: %+v", rb)
	}
}

func TestRollAndApply(t *testing.T) {
	p := DefaultPolicy()
	r := Rollout{Target: "2.0.0", Succeeded: 5, InProgress: 2, PeriodStart: now.Add(-2 * time.Hour), PeriodGrants: 7}
	r = r.Roll(now, "3.0.0", p)
	if r.Succeeded != 0 || r.InProgress != 2 || r.PeriodGrants != 0 || r.Target != "3.0.0" {
		t.Fatalf("roll: %+v", r)
	}
	r = r.Apply(Delta{InProgress: -1, Succeeded: 1, Version: "2.0.0"})
	if r.Succeeded != 0 || r.InProgress != 1 {
		t.Fatalf("old version's success counted: %+v", r)
	}
}

func TestSettleCountsForGrantingGroup(t *testing.T) {
	a := &Group{ID: "a", Policy: DefaultPolicy()}
	b := &Group{ID: "b", Policy: DefaultPolicy()}
	target := &Package{ID: "p3", Version: "3.0.0"}
	inst := GrantTo(Instance{MachineID: "m", GroupID: "b", Version: "2.0.0", LastCheck: now}, "3.0.0", now)
	inst.GrantedGroup = "a"
	inst.Status = StatusInstalled
	done := &omaha.Event{Type: 3, Result: 2, PreviousVersion: "2.0.0", HasPrevious: true}
	in := CheckRequest{Now: now, App: &App{ID: "os"}, Group: b, Channel: &Channel{ID: "c"}, Target: target,
		Report: Report{MachineID: "m", Version: "3.0.0"}, Events: []*omaha.Event{done}, UpdateCheck: true}
	if !SettleNeeded(in, inst, true) {
		t.Fatal("a completion under another track was not settled with the granting group")
	}
	out := Settle(in, a, "3.0.0", inst, Rollout{GroupID: "a", Target: "3.0.0", InProgress: 1, Granted: 1})
	if out.Rollout.InProgress != 0 || out.Rollout.Succeeded != 1 || out.Instance.Status != StatusComplete || out.Instance.GroupID != "b" {
		t.Fatalf("settle: %+v %+v", out.Rollout, out.Instance)
	}
	in.Group = a
	if SettleNeeded(in, inst, true) {
		t.Fatal("settled a request of the granting group itself")
	}
}
