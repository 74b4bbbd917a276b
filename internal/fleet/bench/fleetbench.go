// Package bench measures the fleet server under load: update checks
// per second and their latency at 100,000 registered instances on SQLite
// and PostgreSQL, for the noupdate and the granted paths, the dashboard's
// group page and version breakdown, and the process's memory. The server
// runs in this process on 127.0.0.1; the simulator shares the machine.
package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/bench"
	"github.com/stratalinux/strata/internal/fleet"
	fleetclient "github.com/stratalinux/strata/internal/fleet/client"
	fleetsim "github.com/stratalinux/strata/internal/fleet/sim"
	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
)

// Config sizes a run.
type Config struct {
	WorkDir     string
	Instances   int
	Concurrency int
	// Phase is how long each measured load phase runs.
	Phase time.Duration
	// Postgres, when set, is a DSN for a second run on PostgreSQL.
	Postgres string
	Log      func(string, ...any)
}

const (
	appID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"
	title = "Fleet server: update checks at 100,000 instances"
)

// Run measures both backends and returns the report rows.
func Run(ctx context.Context, cfg Config) ([]bench.Row, string, string, error) {
	if cfg.Log == nil {
		cfg.Log = func(string, ...any) {}
	}
	var rows []bench.Row
	backends := []struct{ name, dsn string }{{"SQLite", filepath.Join(cfg.WorkDir, "fleet-bench.db")}}
	if cfg.Postgres != "" {
		backends = append(backends, struct{ name, dsn string }{"PostgreSQL", cfg.Postgres})
	}
	for _, b := range backends {
		r, err := runBackend(ctx, cfg, b.name, b.dsn)
		if err != nil {
			return nil, "", "", fmt.Errorf("fleet bench on %s: %w", b.name, err)
		}
		rows = append(rows, r...)
	}
	return rows, title, notes(cfg), nil
}

func notes(cfg Config) string {
	return fmt.Sprintf(`%d instances in the store (seeded in bulk, last check an hour ago, so
a check writes its check-in), then %s of flat-out update checks per phase
from %d concurrent simulated update_engine clients (ping + updatecheck +
the 3/2 event, as update_engine sends them) against the server in the
same process over 127.0.0.1 HTTP; both share this machine's %d CPUs,
which other builds and tests were using at the same time, so the client's
cost and the machine's load are inside the figures; the CPU time per
check (server and client together) is the steadier figure.
"Strata" is the p99 latency of a check; the note gives the rate and p50.
noupdate: nodes already on the channel's version. granted: 10%% of the
nodes, in a second group below the channel's version, every check answered
with the update: each node's first check takes a grant (a transaction on
the group's counter row), its later ones repeat it (update_engine
restarted before downloading).
Registration: the first check of new nodes, which inserts them.
Dashboard: group page (HTML with SVG charts) and version breakdown (API),
median of 5. Memory: the process's peak RSS, simulator included.
Nebraska cannot be driven from here (it needs its own build and seeding);
a by-hand run on the same machine is in docs/fleet.md.`, cfg.Instances, cfg.Phase, cfg.Concurrency, runtime.NumCPU())
}

func runBackend(ctx context.Context, cfg Config, name, dsn string) ([]bench.Row, error) {
	if !strings.Contains(dsn, "://") {
		_ = os.Remove(dsn)
		_ = os.Remove(dsn + "-wal")
		_ = os.Remove(dsn + "-shm")
	}
	srv, err := fleetweb.New(fleetweb.Config{Database: dsn, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hs := &http.Server{Handler: srv}
	go hs.Serve(ln)
	defer hs.Close()
	base := "http://" + ln.Addr().String()

	tok, hash := fleetweb.NewToken()
	if _, err := srv.Store().CreateToken(ctx, "bench", hash); err != nil {
		return nil, err
	}
	api := fleetclient.New(base, tok, nil)
	if err := setup(ctx, api); err != nil {
		return nil, err
	}
	var cpu time.Duration // process CPU time of the last simulation
	sim := func(track, version string, n int, checks int64, d time.Duration, prefix string) (fleetsim.Stats, error) {
		c0 := cpuTime()
		st, err := fleetsim.Run(ctx, fleetsim.Config{Server: base, Instances: n, Concurrency: cfg.Concurrency, AppID: appID,
			Track: track, Version: version, Duration: d, Checks: checks, IdleOnly: true, MachinePrefix: prefix})
		cpu = cpuTime() - c0
		return st, err
	}
	var rows []bench.Row
	row := func(c string, st fleetsim.Stats) {
		perCheck := time.Duration(0)
		if st.Requests > 0 {
			perCheck = cpu / time.Duration(st.Requests)
		}
		cfg.Log("fleet bench %s: %s: %s; CPU %s per check (server+client)", name, c, st, perCheck)
		rows = append(rows, bench.Row{Group: "fleet", Case: fmt.Sprintf("%s, %s", c, name), Strata: st.P99, PeerName: "Nebraska",
			Note: fmt.Sprintf("%s checks/s, p50 %s, %d errors; %s CPU per check (server+client)", thousands(st.PerSecond), bench.Fmt(st.P50), st.Errors, perCheck.Round(time.Microsecond))})
	}
	// Seed the registered fleet in bulk (what the first check of each node
	// would have written), then measure.
	granted := cfg.Instances / 10
	newNodes := min(5000, cfg.Instances/10)
	conf, err := srv.Store().LoadConfig(ctx)
	if err != nil {
		return nil, err
	}
	prod, _ := conf.Group(appID, "stable", "amd64")
	beta, _ := conf.Group(appID, "beta", "amd64")
	now := time.Now()
	var seed []fleet.Instance
	for i := 0; i < cfg.Instances-granted-newNodes; i++ {
		seed = append(seed, fleet.Instance{AppID: appID, MachineID: fmt.Sprintf("a%032x", i), GroupID: prod.ID, Version: "2.0.0",
			Status: fleet.StatusComplete, IP: "127.0.0.1", LastCheck: now.Add(-time.Hour), Created: now})
	}
	for i := 0; i < granted; i++ {
		seed = append(seed, fleet.Instance{AppID: appID, MachineID: fmt.Sprintf("b%032x", i), GroupID: beta.ID, Version: "1.0.0",
			Status: fleet.StatusUndefined, IP: "127.0.0.1", LastCheck: now.Add(-time.Hour), Created: now})
	}
	t0 := time.Now()
	if err := srv.Store().ImportInstances(ctx, seed); err != nil {
		return nil, err
	}
	cfg.Log("fleet bench %s: seeded %d instances in %s", name, len(seed), time.Since(t0).Round(time.Millisecond))
	// New nodes: the first check inserts the instance.
	reg, err := sim("stable", "2.0.0", newNodes, int64(newNodes), 10*time.Minute, "n")
	if err != nil {
		return nil, err
	}
	row(fmt.Sprintf("registration (first check of %d new nodes)", newNodes), reg)
	st, err := sim("stable", "2.0.0", cfg.Instances-granted-newNodes, 0, cfg.Phase, "a")
	if err != nil {
		return nil, err
	}
	row("noupdate checks", st)
	st, err = sim("beta", "1.0.0", granted, 0, cfg.Phase, "b")
	if err != nil {
		return nil, err
	}
	row(fmt.Sprintf("granted checks (%d nodes)", granted), st)

	for _, page := range []struct{ c, path string }{
		{"dashboard group page", "/ui/apps/" + appID + "/groups/prod"},
		{"version breakdown (API)", "/api/apps/" + appID + "/groups/prod"},
	} {
		var ds []time.Duration
		for i := 0; i < 5; i++ {
			t0 := time.Now()
			req, _ := http.NewRequestWithContext(ctx, "GET", base+page.path, nil)
			req.Header.Set("Authorization", "Bearer "+tok)
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return nil, err
			}
			res.Body.Close()
			if res.StatusCode != 200 {
				return nil, fmt.Errorf("%s: HTTP %d", page.path, res.StatusCode)
			}
			ds = append(ds, time.Since(t0))
		}
		rows = append(rows, bench.Row{Group: "fleet", Case: fmt.Sprintf("%s, %d instances, %s", page.c, cfg.Instances, name), Strata: bench.Median(ds)})
	}
	rss := peakRSS()
	rows = append(rows, bench.Row{Group: "fleet", Case: "peak memory (server + simulator), " + name, Note: fmt.Sprintf("%d MB RSS", rss>>20)})
	cfg.Log("fleet bench %s: peak RSS %d MB", name, rss>>20)
	return rows, nil
}

func setup(ctx context.Context, api *fleetclient.Client) error {
	sha := strings.Repeat("ab", 32)
	if _, err := api.CreateApp(ctx, fleet.App{ID: appID, Name: "os"}); err != nil {
		return err
	}
	for _, v := range []string{"1", "2"} {
		p := fleet.Package{Version: v + ".0.0", URL: "http://127.0.0.1/", Filename: "os-" + v + ".gz", Size: 1, SHA1: "x", SHA256: sha}
		if _, err := api.AddPackage(ctx, "os", p); err != nil {
			return err
		}
	}
	if _, err := api.CreateChannel(ctx, "os", fleetweb.ChannelRequest{Name: "stable", Version: "2.0.0"}); err != nil {
		return err
	}
	for _, g := range [][2]string{{"prod", "stable"}, {"beta", "beta"}} {
		if _, err := api.CreateGroup(ctx, "os", fleetweb.GroupRequest{Name: g[0], Track: g[1], Channel: "stable"}); err != nil {
			return err
		}
	}
	return nil
}

func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			f := strings.Fields(l)
			if len(f) >= 2 {
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				return kb << 10
			}
		}
	}
	return 0
}

func thousands(f float64) string {
	s := strconv.FormatInt(int64(f+0.5), 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// LocalPostgres starts the machine's PostgreSQL 15 cluster if needed and
// returns a DSN for a fresh strata_bench database (over 127.0.0.1 with a
// password set for the postgres role). It needs root and the cluster's
// socket directory; inside strata-bench's private mount namespace that is
// hidden, so set STRATA_BENCH_POSTGRES to a DSN there.
func LocalPostgres(ctx context.Context) (string, error) {
	if v := os.Getenv("STRATA_BENCH_POSTGRES"); v != "" {
		return v, nil
	}
	run := func(name string, args ...string) error {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = "/"
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
		return nil
	}
	if err := run("pg_ctlcluster", "15", "main", "start"); err != nil && !strings.Contains(err.Error(), "already running") {
		return "", err
	}
	psql := func(db, stmt string) error {
		return run("runuser", "-u", "postgres", "--", "psql", "-X", "-q", "-d", db, "-v", "ON_ERROR_STOP=1", "-c", stmt)
	}
	var err error
	for i := 0; i < 100; i++ {
		// The same password as internal/testutil/pgtest, so tests running
		// side by side do not lock each other out.
		if err = psql("postgres", "ALTER ROLE postgres PASSWORD 'strata-test'"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		return "", err
	}
	_ = psql("postgres", "DROP DATABASE IF EXISTS strata_bench WITH (FORCE)")
	if err := psql("postgres", "CREATE DATABASE strata_bench"); err != nil {
		return "", err
	}
	return "postgres://postgres:strata-test@127.0.0.1:5432/strata_bench?sslmode=disable", nil
}

// cpuTime is this process's user+system CPU time (Linux).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
