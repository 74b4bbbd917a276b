package sim

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
)

const appID = "5b810680-e36a-4879-b98a-4f989e80b899"

func TestSimulatedRollout(t *testing.T) {
	srv, err := fleetweb.New(fleetweb.Config{Database: filepath.Join(t.TempDir(), "fleet.db"), Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv)
	defer hs.Close()
	tok, hash := fleetweb.NewToken()
	ctx := context.Background()
	if _, err := srv.Store().CreateToken(ctx, "t", hash); err != nil {
		t.Fatal(err)
	}
	api := &fleetweb.Client{URL: hs.URL, Token: tok}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(api.Do(ctx, "POST", "/api/apps", fleet.App{ID: appID, Name: "os"}, nil))
	must(api.Do(ctx, "POST", "/api/apps/os/packages", fleet.Package{Version: "2.0.0", URL: "http://127.0.0.1/", Filename: "os.gz", Size: 1, SHA1: "x",
		SHA256: "0000000000000000000000000000000000000000000000000000000000000000"}, nil))
	must(api.Do(ctx, "POST", "/api/apps/os/channels", map[string]any{"name": "stable", "version": "2.0.0"}, nil))
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 20
	must(api.Do(ctx, "POST", "/api/apps/os/groups", map[string]any{"name": "all", "track": "stable", "channel": "stable", "policy": p}, nil))

	st, err := Run(ctx, Config{Server: hs.URL, Instances: 200, Concurrency: 8, AppID: appID, Version: "1.0.0",
		Duration: 20 * time.Second, FailureRate: 0.1, Seed: 1, Checks: 1500})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s", st)
	if st.Errors != 0 || st.Updated == 0 || st.Failed == 0 || st.Granted == 0 {
		t.Fatalf("simulation: %+v", st)
	}
	var g struct {
		Rollout  fleet.Rollout `json:"rollout"`
		Versions []struct {
			Key   string `json:"key"`
			Count int    `json:"count"`
		} `json:"versions"`
	}
	must(api.Do(ctx, "GET", "/api/apps/os/groups/all", nil, &g))
	onNew := 0
	for _, v := range g.Versions {
		if v.Key == "2.0.0" {
			onNew = v.Count
		}
	}
	// Every node the simulator rebooted into 2.0.0 and that checked in
	// since is counted as a success exactly once.
	if g.Rollout.Succeeded != onNew || g.Rollout.Failed > int(st.Failed) || g.Rollout.InProgress > 20 {
		t.Fatalf("counters %+v, %d nodes on 2.0.0, simulator %+v", g.Rollout, onNew, st)
	}
}
