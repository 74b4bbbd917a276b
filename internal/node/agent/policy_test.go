package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

// Agents obey the server's rollout policy: with safe mode only the canary
// updates until it has completed; then the per-period limit lets exactly
// as many more through; throttled nodes stay on their version and come
// back after the group's PollInterval; a pinned node stays put.
func TestAgentsFollowRolloutPolicy(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	pol := fleet.DefaultPolicy()
	pol.SafeMode, pol.MaxUpdatesPerPeriod, pol.Period, pol.PollInterval = true, 2, fleet.Duration(time.Hour), fleet.Duration(time.Minute)
	if _, err := e.api.SetPolicy(ctx, "strata-os", "prod", pol); err != nil {
		t.Fatal(err)
	}
	var nodes []*node
	var agents []*Agent
	for range 5 {
		n := e.node(t)
		a := n.agent(t, "A", nil)
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		nodes, agents = append(nodes, n), append(agents, a)
	}
	pinned := nodes[4]
	round := func() (updated []int) {
		t.Helper()
		for i, a := range agents {
			if a.Journal().Phase != Idle {
				continue
			}
			if _, err := a.RunOnce(ctx, true); err != nil {
				t.Fatalf("node %d: %v", i, err)
			}
			if a.Journal().Phase == Rebooting {
				updated = append(updated, i)
			} else if d := time.Until(a.Journal().NextCheck); a.Journal().Phase != Idle || d > 70*time.Second && nodes[i] != pinned && a.Identity().Version == "1.0.0" {
				t.Fatalf("throttled node %d: %+v, next check in %v (want the group's 1m)", i, a.Journal(), d)
			}
		}
		return updated
	}
	// The pinned node is known to the server (a ping) before it is pinned.
	if _, err := agents[4].Omaha.Do(ctx, PingRequest(agents[4].Identity())); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Pin(ctx, "strata-os", pinned.mid, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	first := round()
	if len(first) != 1 {
		t.Fatalf("safe mode granted %d nodes (%v), want the one canary", len(first), first)
	}
	if again := round(); len(again) != 0 {
		t.Fatalf("granted %v while the canary had not completed", again)
	}
	// The canary reboots into 2.0.0 and reports.
	c := first[0]
	nodes[c].setBoot(t, 2)
	agents[c] = nodes[c].agent(t, "B", nil)
	if err := agents[c].Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := agents[c].RunOnce(ctx, false); err != nil || agents[c].Journal().Phase != Idle {
		t.Fatalf("canary after reboot: %v %+v", err, agents[c].Journal())
	}
	if in := nodes[c].instance(t); in.Status != fleet.StatusComplete {
		t.Fatalf("canary %+v", in)
	}
	second := round()
	if len(second) != 1 {
		t.Fatalf("after the canary, the limit of 2 per period let %d more through (%v), want 1", len(second), second)
	}
	for _, i := range second {
		if nodes[i] == pinned {
			t.Fatal("the pinned node was updated")
		}
	}
	if more := round(); len(more) != 0 {
		t.Fatalf("over the per-period limit: %v", more)
	}
	if next, _ := pinned.slots(t); next != "A" || pinned.instance(t).Version != "1.0.0" {
		t.Fatalf("pinned node moved: %s %+v", next, pinned.instance(t))
	}
}
