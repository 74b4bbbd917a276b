package agent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/web"
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

// An extension registered as its own app (kind extension) is updated over
// Omaha under its group's policy: the node reports its version from
// /etc/extensions/NAME.raw, gets 28.0, verifies it, switches the link,
// refreshes the merge and reports 13/1 14/1 3/1 3/2; no reboot, the OS slot
// untouched; the next check is noupdate.
func TestAgentUpdatesExtensionApp(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	apps, err := e.api.Apps(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var docker fleet.App
	for _, a := range apps {
		if a.Name == "docker" {
			docker = a
		}
	}
	if _, err := e.api.CreateChannel(ctx, "docker", web.ChannelRequest{Name: "stable", Arch: "amd64", Version: "28.0"}); err != nil {
		t.Fatal(err)
	}
	pol := fleet.DefaultPolicy()
	if _, err := e.api.CreateGroup(ctx, "docker", web.GroupRequest{Name: "prod", Track: "stable", Arch: "amd64", Channel: "stable", Policy: &pol}); err != nil {
		t.Fatal(err)
	}
	n := e.node(t)
	write(t, n.root, "/opt/extensions/docker/docker-27.0-x86-64.raw", "old image")
	if err := os.MkdirAll(filepath.Join(n.root, "etc/extensions"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/opt/extensions/docker/docker-27.0-x86-64.raw", filepath.Join(n.root, "etc/extensions/docker.raw")); err != nil {
		t.Fatal(err)
	}
	a := n.agent(t, "A", nil)
	if a.Config.ExtensionApps, err = ParseExtensionApps("docker=" + docker.ID); err != nil {
		t.Fatal(err)
	}
	refreshed := 0
	a.Refresh = func(context.Context) error { refreshed++; return nil }
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	// Hold the OS where it is, so the extension is checked on its own.
	if _, err := a.Omaha.Do(ctx, PingRequest(a.Identity())); err != nil {
		t.Fatal(err)
	}
	if _, err := e.api.Pin(ctx, "strata-os", n.mid, "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	if j := a.Journal(); j.Phase != Idle || len(j.Outbox) != 0 || j.LastError != "" || n.reboots != 0 {
		t.Fatalf("journal %+v, %d reboots", j, n.reboots)
	}
	if l, err := os.Readlink(filepath.Join(n.root, "etc/extensions/docker.raw")); err != nil || l != "/opt/extensions/docker/docker-28.0-x86-64.raw" || refreshed != 1 {
		t.Fatalf("link %q %v, %d refreshes", l, err, refreshed)
	}
	if _, err := os.Stat(filepath.Join(n.root, "/opt/extensions/docker/docker-27.0-x86-64.raw")); err != nil {
		t.Fatalf("the old image is gone: %v", err)
	}
	d, err := e.api.Instance(ctx, "docker", n.mid)
	if err != nil {
		t.Fatal(err)
	}
	var evs []string
	for _, ev := range d.Events {
		evs = append(evs, fmt.Sprintf("%d/%d%s", ev.Type, ev.Result, ev.PreviousVersion))
	}
	slices.Sort(evs)
	if !slices.Equal(evs, []string{"13/1", "14/1", "3/1", "3/227.0"}) || d.Instance.Status != fleet.StatusComplete || d.Instance.Version != "28.0" {
		t.Fatalf("docker instance %+v, events %q", d.Instance, evs)
	}
	if next, infos := n.slots(t); next != "A" || infos[1].Record != nil {
		t.Fatalf("the OS slot moved: %s %+v", next, infos[1])
	}
	if _, err := a.RunOnce(ctx, true); err != nil || refreshed != 1 {
		t.Fatalf("second check: %v, %d refreshes", err, refreshed)
	}
}
