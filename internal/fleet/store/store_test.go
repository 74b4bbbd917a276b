package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/testutil/pgtest"
)

// Every test in the suite runs against both databases.
func TestSQLite(t *testing.T) {
	runSuite(t, func(t *testing.T) Store {
		s, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "fleet.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestPostgres(t *testing.T) {
	runSuite(t, func(t *testing.T) Store {
		s, err := OpenPostgres(context.Background(), pgtest.NewDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func runSuite(t *testing.T, open func(*testing.T) Store) {
	tests := map[string]func(*testing.T, Store){
		"Admin":                testAdmin,
		"ConcurrentGrants":     testConcurrentGrants,
		"BatchedTransitions":   testBatchedTransitions,
		"Touch":                testTouch,
		"Lifecycle":            testLifecycle,
		"OptimisticConflict":   testOptimisticConflict,
		"Expiry":               testExpiry,
		"Listing":              testListing,
		"Migrate twice":        testMigrateTwice,
		"GrantingGroup":        testGrantingGroup,
		"RebootLock":           testRebootLock,
		"RebootLockContention": testRebootLockContention,
		"RebootLockGroupLimit": testRebootLockGroupLimit,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) { fn(t, open(t)) })
	}
}

type world struct {
	app   *fleet.App
	group *fleet.Group
	ch    *fleet.Channel
	pkgs  []*fleet.Package
}

func seed(t *testing.T, s Store, p fleet.Policy) world {
	ctx := context.Background()
	w := world{app: &fleet.App{ID: "E96281A6-D1AF-4BDE-9A0A-97B76E56DC57", Name: "os", ProductID: "io.strata.os"}}
	if err := s.CreateApp(ctx, w.app); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"1.0.0", "2.0.0"} {
		pk := &fleet.Package{AppID: w.app.ID, Version: v, Arch: "amd64", URL: "http://127.0.0.1/", Filename: "os-" + v + ".raw", Size: 10, SHA1: "x", SHA256: "y"}
		if err := s.CreatePackage(ctx, pk); err != nil {
			t.Fatal(err)
		}
		w.pkgs = append(w.pkgs, pk)
	}
	w.ch = &fleet.Channel{AppID: w.app.ID, Name: "stable", Arch: "amd64", PackageID: w.pkgs[1].ID}
	if err := s.CreateChannel(ctx, w.ch); err != nil {
		t.Fatal(err)
	}
	w.group = &fleet.Group{AppID: w.app.ID, Name: "prod", Track: "stable", Arch: "amd64", ChannelID: w.ch.ID, Policy: p}
	if err := s.CreateGroup(ctx, w.group); err != nil {
		t.Fatal(err)
	}
	return w
}

// check runs one update check (with events) the way the server does.
func check(ctx context.Context, s Store, w world, machine, ver string, now time.Time, evs ...*omaha.Event) (fleet.Outcome, error) {
	cfg, err := s.LoadConfig(ctx)
	if err != nil {
		return fleet.Outcome{}, err
	}
	g := cfg.GroupByID(w.group.ID)
	ch, target := cfg.Target(g)
	app, _ := cfg.App(w.app.ID)
	req := fleet.CheckRequest{Now: now, App: app, Group: g, Channel: ch, Target: target, Floors: cfg.Floors(ch.ID),
		Report: fleet.Report{MachineID: machine, Version: ver}, Events: evs, UpdateCheck: len(evs) == 0}
	return s.Transition(ctx, app.ID, machine, g.ID, func(in fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error) {
		return fleet.Process(req, in, found, r), nil
	})
}

func testAdmin(t *testing.T, s Store) {
	ctx := context.Background()
	g0, _ := s.Generation(ctx)
	w := seed(t, s, fleet.DefaultPolicy())
	g1, _ := s.Generation(ctx)
	if g1 <= g0 {
		t.Fatalf("generation did not move: %d → %d", g0, g1)
	}
	if err := s.CreateApp(ctx, &fleet.App{Name: "os"}); !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate app: %v", err)
	}
	if err := s.CreateChannel(ctx, &fleet.Channel{AppID: "nope", Name: "x"}); err == nil {
		t.Fatal("channel of unknown app accepted")
	}
	cfg, err := s.LoadConfig(ctx)
	if err != nil {
		t.Fatal(err)
	}
	a, ok := cfg.App(omaha.NormalizeAppID("{e96281a6-d1af-4bde-9a0a-97b76e56dc57}"))
	if !ok || a.Name != "os" {
		t.Fatal("app by id")
	}
	if a2, ok := cfg.App("io.strata.os"); !ok || a2 != a {
		t.Fatal("app by product id")
	}
	g, err := cfg.Group(a.ID, "STABLE", "amd64")
	if err != nil || g.ID != w.group.ID {
		t.Fatalf("group by track: %v", err)
	}
	if _, err := cfg.Group(a.ID, "beta", "amd64"); !errors.Is(err, fleet.ErrUnknownGroup) {
		t.Fatal("unknown track resolved")
	}
	w.group.Policy.Paused = true
	if err := s.UpdateGroup(ctx, w.group); err != nil {
		t.Fatal(err)
	}
	cfg, _ = s.LoadConfig(ctx)
	if !cfg.GroupByID(w.group.ID).Policy.Paused {
		t.Fatal("policy update lost")
	}
	hash := "abc123"
	if _, err := s.CreateToken(ctx, "ci", hash); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.HasToken(ctx, hash); !ok {
		t.Fatal("token not found")
	}
	if ok, _ := s.HasToken(ctx, "other"); ok {
		t.Fatal("wrong token accepted")
	}
}

func testConcurrentGrants(t *testing.T, s Store) {
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 5
	p.MaxUpdatesPerPeriod = 7
	p.Period = fleet.Duration(time.Hour)
	w := seed(t, s, p)
	ctx := context.Background()
	now := time.Now()
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			out, err := check(ctx, s, w, fmt.Sprintf("m%02d", i), "1.0.0", now)
			if err != nil {
				errs <- err
				return
			}
			if out.Decision.Verdict == fleet.Grant {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	r, _ := s.Rollout(ctx, w.group.ID)
	if granted != 5 || r.InProgress != 5 || r.PeriodGrants != 5 {
		t.Fatalf("granted %d, counters %+v; want exactly 5", granted, r)
	}
}

func testLifecycle(t *testing.T, s Store) {
	ctx := context.Background()
	p := fleet.DefaultPolicy()
	p.SafeMode = true
	w := seed(t, s, p)
	now := time.Now()
	out, err := check(ctx, s, w, "canary", "1.0.0", now)
	if err != nil || out.Decision.Verdict != fleet.Grant {
		t.Fatalf("canary grant: %v %+v", err, out.Decision)
	}
	if out, _ := check(ctx, s, w, "second", "1.0.0", now); out.Decision.Refusal != fleet.RefuseCanary {
		t.Fatalf("second node during canary: %+v", out.Decision)
	}
	for _, ev := range []*omaha.Event{{Type: 13, Result: 1}, {Type: 14, Result: 1}, {Type: 3, Result: 1}} {
		if _, err := check(ctx, s, w, "canary", "1.0.0", now, ev); err != nil {
			t.Fatal(err)
		}
	}
	in, _, _ := s.Instance(ctx, w.app.ID, "canary")
	if in.Status != fleet.StatusInstalled {
		t.Fatalf("status %v", in.Status)
	}
	if _, err := check(ctx, s, w, "canary", "2.0.0", now, &omaha.Event{Type: 3, Result: 2, PreviousVersion: "1.0.0", HasPrevious: true}); err != nil {
		t.Fatal(err)
	}
	r, _ := s.Rollout(ctx, w.group.ID)
	if r.Succeeded != 1 || r.InProgress != 0 {
		t.Fatalf("after canary: %+v", r)
	}
	if out, _ := check(ctx, s, w, "second", "1.0.0", now); out.Decision.Verdict != fleet.Grant {
		t.Fatalf("second node after canary: %+v", out.Decision)
	}
	evs, err := s.InstanceEvents(ctx, w.app.ID, "canary", 10)
	if err != nil || len(evs) != 4 {
		t.Fatalf("timeline: %v %d", err, len(evs))
	}
	// A failure of the second node is counted once even if replayed.
	for i := 0; i < 3; i++ {
		if _, err := check(ctx, s, w, "second", "1.0.0", now, &omaha.Event{Type: 3, Result: 0, ErrorCode: "268435477"}); err != nil {
			t.Fatal(err)
		}
	}
	r, _ = s.Rollout(ctx, w.group.ID)
	if r.Failed != 1 || r.InProgress != 0 {
		t.Fatalf("after failure replays: %+v", r)
	}
	acts, _ := s.ListActivity(ctx, ActivityFilter{GroupID: w.group.ID})
	if len(acts) < 2 {
		t.Fatalf("activity: %+v", acts)
	}
}

func testOptimisticConflict(t *testing.T, s Store) {
	ctx := context.Background()
	w := seed(t, s, fleet.DefaultPolicy())
	now := time.Now()
	if _, err := check(ctx, s, w, "m", "1.0.0", now); err != nil {
		t.Fatal(err)
	}
	stale, _, _ := s.Instance(ctx, w.app.ID, "m")
	stale.Status = fleet.StatusUndefined
	stale.InProgress = false
	ok, err := s.SaveOptimistic(ctx, stale, true, fleet.Outcome{Instance: stale, Write: true})
	if err != nil || ok {
		t.Fatalf("stale write accepted: %v %v", ok, err)
	}
	in, _, _ := s.Instance(ctx, w.app.ID, "m")
	if in.Status != fleet.StatusGranted {
		t.Fatalf("grant overwritten: %+v", in)
	}
	fresh := in
	fresh.Alias = "web-1"
	if ok, err := s.SaveOptimistic(ctx, in, true, fleet.Outcome{Instance: fresh, Write: true}); err != nil || !ok {
		t.Fatalf("fresh write refused: %v %v", ok, err)
	}
}

func testExpiry(t *testing.T, s Store) {
	ctx := context.Background()
	p := fleet.DefaultPolicy()
	p.UpdateTimeout = fleet.Duration(time.Minute)
	p.MaxConcurrent = 1
	w := seed(t, s, p)
	old := time.Now().Add(-2 * time.Hour)
	if out, err := check(ctx, s, w, "slow", "1.0.0", old); err != nil || out.Decision.Verdict != fleet.Grant {
		t.Fatalf("%v %+v", err, out.Decision)
	}
	cfg, _ := s.LoadConfig(ctx)
	n, err := s.ExpireGrants(ctx, time.Now(), []*fleet.Group{cfg.GroupByID(w.group.ID)})
	if err != nil || n != 1 {
		t.Fatalf("expired %d: %v", n, err)
	}
	r, _ := s.Rollout(ctx, w.group.ID)
	if r.InProgress != 0 || r.TimedOut != 1 {
		t.Fatalf("counters after timeout: %+v", r)
	}
	if out, _ := check(ctx, s, w, "next", "1.0.0", time.Now()); out.Decision.Verdict != fleet.Grant {
		t.Fatalf("slot not freed: %+v", out.Decision)
	}
	if err := s.AddActivity(ctx, fleet.Activity{Message: "old", Severity: fleet.SeverityInfo, Created: old}); err != nil {
		t.Fatal(err)
	}
	e, err := s.Expire(ctx, time.Now(), Retention{Events: time.Hour, Activity: time.Hour, Instances: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if e.Instances != 1 || e.Activity < 1 {
		t.Fatalf("expired %+v", e)
	}
	if _, found, _ := s.Instance(ctx, w.app.ID, "slow"); found {
		t.Fatal("dead instance kept")
	}
	if _, found, _ := s.Instance(ctx, w.app.ID, "next"); !found {
		t.Fatal("live instance deleted")
	}
}

func testListing(t *testing.T, s Store) {
	ctx := context.Background()
	w := seed(t, s, fleet.DefaultPolicy())
	now := time.Now()
	for i := 0; i < 30; i++ {
		v := "1.0.0"
		if i%3 == 0 {
			v = "2.0.0"
		}
		in := fleet.Instance{AppID: w.app.ID, MachineID: fmt.Sprintf("m%02d", i), GroupID: w.group.ID, Version: v, Status: fleet.StatusUndefined, LastCheck: now, Created: now}
		if ok, err := s.SaveOptimistic(ctx, fleet.Instance{}, false, fleet.Outcome{Instance: in, Write: true}); err != nil || !ok {
			t.Fatal(err)
		}
	}
	vb, err := s.VersionBreakdown(ctx, w.group.ID, now.Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, c := range vb {
		got[c.Key] = c.Count
	}
	if got["1.0.0"] != 20 || got["2.0.0"] != 10 {
		t.Fatalf("breakdown %v", got)
	}
	page, total, err := s.ListInstances(ctx, InstanceFilter{GroupID: w.group.ID, Version: "1.0.0", Limit: 7, Offset: 14})
	if err != nil || total != 20 || len(page) != 6 {
		t.Fatalf("page: %v total %d len %d", err, total, len(page))
	}
	if _, total, _ := s.ListInstances(ctx, InstanceFilter{Search: "m1"}); total != 10 {
		t.Fatalf("search m1: %d", total)
	}
	counts, err := s.InstanceCounts(ctx, now.Add(-time.Hour))
	if err != nil || len(counts) != 2 {
		t.Fatalf("counts %v %+v", err, counts)
	}
}

func testMigrateTwice(t *testing.T, s Store) {
	if err := s.(*sqlStore).migrate(context.Background()); err != nil {
		t.Fatalf("second migration run: %v", err)
	}
}

// testBatchedTransitions drives many Transitions of one group at once so
// they commit in shared transactions: each must still see the counters
// its predecessors left, a failing decision must fail alone, and two
// requests of one machine must not share a batch (the second sees the
// first's write).
func testBatchedTransitions(t *testing.T, s Store) {
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 30
	w := seed(t, s, p)
	ctx := context.Background()
	now := time.Now()
	const n = 60
	var (
		mu      sync.Mutex
		granted = map[string]int{}
		seen    = map[int]bool{} // InProgress values the deciders saw
		failed  int
		wg      sync.WaitGroup
	)
	boom := errors.New("decider failed")
	errs := make(chan error, 2*n)
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			machine := fmt.Sprintf("b%02d", i%n) // every machine twice
			cfg, err := s.LoadConfig(ctx)
			if err != nil {
				errs <- err
				return
			}
			g := cfg.GroupByID(w.group.ID)
			ch, target := cfg.Target(g)
			app, _ := cfg.App(w.app.ID)
			req := fleet.CheckRequest{Now: now, App: app, Group: g, Channel: ch, Target: target,
				Report: fleet.Report{MachineID: machine, Version: "1.0.0"}, UpdateCheck: true}
			out, err := s.Transition(ctx, app.ID, machine, g.ID, func(in fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error) {
				if i == 7 {
					return fleet.Outcome{}, boom
				}
				mu.Lock()
				seen[r.InProgress] = true
				mu.Unlock()
				return fleet.Process(req, in, found, r), nil
			})
			if i == 7 {
				if !errors.Is(err, boom) {
					errs <- fmt.Errorf("failing decider: got %v", err)
				}
				mu.Lock()
				failed++
				mu.Unlock()
				return
			}
			if err != nil {
				errs <- err
				return
			}
			if out.Decision.Verdict == fleet.Grant {
				mu.Lock()
				granted[machine]++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := 0
	for m, c := range granted {
		if c != 1 {
			t.Errorf("machine %s granted %d times; a replay must see the first grant", m, c)
		}
		total += c
	}
	r, _ := s.Rollout(ctx, w.group.ID)
	if total != 30 || r.InProgress != 30 || r.Granted != 30 {
		t.Fatalf("granted %d, counters %+v; want exactly 30", total, r)
	}
	for i := 0; i < 30; i++ {
		if !seen[i] {
			t.Fatalf("no decider saw InProgress=%d (saw %v): decisions did not see their predecessors' counters", i, seen)
		}
	}
	if failed != 1 {
		t.Fatalf("failed deciders: %d", failed)
	}
	tq := &s.(*sqlStore).transitions
	if c, r := tq.commits.Load(), tq.requests.Load(); c >= r {
		t.Fatalf("%d requests in %d transactions: none shared a commit", r, c)
	}
	t.Logf("%d requests in %d transactions", tq.requests.Load(), tq.commits.Load())
}

// testTouch records check-ins in bulk: the latest time of a machine
// listed twice wins, and a time never moves backwards.
func testTouch(t *testing.T, s Store) {
	w := seed(t, s, fleet.DefaultPolicy())
	ctx := context.Background()
	t0 := time.Now().Truncate(time.Millisecond)
	for _, m := range []string{"t1", "t2", "t3"} {
		if _, err := check(ctx, s, w, m, "1.0.0", t0); err != nil {
			t.Fatal(err)
		}
	}
	rows := []Touch{
		{w.app.ID, "t1", t0.Add(time.Hour)},
		{w.app.ID, "t2", t0.Add(-time.Hour)},
		{w.app.ID, "t1", t0.Add(30 * time.Minute)},
		{w.app.ID, "t3", t0.Add(2 * time.Hour)},
		{w.app.ID, "nobody", t0},
	}
	if err := s.Touch(ctx, rows); err != nil {
		t.Fatal(err)
	}
	for m, want := range map[string]time.Time{"t1": t0.Add(time.Hour), "t2": t0, "t3": t0.Add(2 * time.Hour)} {
		in, ok, err := s.Instance(ctx, w.app.ID, m)
		if err != nil || !ok {
			t.Fatalf("%s: %v %v", m, ok, err)
		}
		if !in.LastCheck.Equal(want) {
			t.Errorf("%s: last check %v, want %v", m, in.LastCheck, want)
		}
	}
}

// A node granted an update in one group that then reports another track
// keeps the granting group on its grant, and a timeout frees that
// group's slot, not the new group's.
func testGrantingGroup(t *testing.T, s Store) {
	ctx := context.Background()
	p := fleet.DefaultPolicy()
	p.UpdateTimeout = fleet.Duration(time.Minute)
	w := seed(t, s, p)
	beta := &fleet.Group{AppID: w.app.ID, Name: "beta", Track: "beta", Arch: "amd64", ChannelID: w.ch.ID, Policy: p}
	if err := s.CreateGroup(ctx, beta); err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour)
	if out, err := check(ctx, s, w, "m1", "1.0.0", old); err != nil || out.Decision.Verdict != fleet.Grant {
		t.Fatalf("%v %+v", err, out.Decision)
	}
	cfg, _ := s.LoadConfig(ctx)
	app, _ := cfg.App(w.app.ID)
	gb := cfg.GroupByID(beta.ID)
	ch, target := cfg.Target(gb)
	req := fleet.CheckRequest{Now: old.Add(time.Second), App: app, Group: gb, Channel: ch, Target: target,
		Report: fleet.Report{MachineID: "m1", Version: "1.0.0", IP: "10.0.0.9"}}
	if _, err := s.Transition(ctx, app.ID, "m1", gb.ID, func(in fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error) {
		return fleet.Process(req, in, found, r), nil
	}); err != nil {
		t.Fatal(err)
	}
	in, _, err := s.Instance(ctx, app.ID, "m1")
	if err != nil || in.GroupID != gb.ID || in.GrantedGroup != w.group.ID || !in.InProgress {
		t.Fatalf("instance after the track change: %+v %v", in, err)
	}
	n, err := s.ExpireGrants(ctx, time.Now(), []*fleet.Group{cfg.GroupByID(w.group.ID), gb})
	if err != nil || n != 1 {
		t.Fatalf("expired %d: %v", n, err)
	}
	if r, _ := s.Rollout(ctx, w.group.ID); r.InProgress != 0 || r.TimedOut != 1 {
		t.Errorf("granting group after the timeout: %+v", r)
	}
	if r, _ := s.Rollout(ctx, gb.ID); r.InProgress != 0 || r.TimedOut != 0 {
		t.Errorf("other group after the timeout: %+v", r)
	}
}
