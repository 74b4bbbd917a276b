// Package sim simulates a fleet of update_engine nodes against one
// Omaha server: each node checks, downloads, installs, reboots into the
// new version and reports, with a configurable failure rate. It drives
// rollouts for the dashboard and measures the server's throughput and
// latency. It only ever talks to the URL it is given and stops by itself.
package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stratalinux/strata/internal/omaha"
)

// Config describes a simulation run.
type Config struct {
	// Server is the fleet server's base URL or its full Omaha URL.
	Server      string
	Instances   int
	Concurrency int
	AppID       string
	Track       string
	// Version every node starts on.
	Version string
	// Interval between two checks of one node; 0 runs flat out (load test).
	Interval time.Duration
	// Duration bounds the run (default 1 minute); Checks, when > 0, stops
	// after that many update checks in total.
	Duration time.Duration
	Checks   int64
	// FailureRate is the probability that a granted download fails (3/0).
	FailureRate float64
	// IdleOnly sends update checks only (no event follow-up), to measure
	// the check path alone.
	IdleOnly bool
	// MachinePrefix distinguishes the nodes of several simulations.
	MachinePrefix string
	Seed          uint64
	// Progress, when set, is called about once a second.
	Progress func(Stats)
	HTTP     *http.Client
}

// Stats summarises a run.
type Stats struct {
	Requests  int64         `json:"requests"`
	Checks    int64         `json:"checks"`
	Granted   int64         `json:"granted"`
	NoUpdate  int64         `json:"noupdate"`
	Errors    int64         `json:"errors"`
	Updated   int64         `json:"updated"`
	Failed    int64         `json:"failed"`
	Elapsed   time.Duration `json:"elapsed_ns"`
	P50       time.Duration `json:"p50_ns"`
	P99       time.Duration `json:"p99_ns"`
	Max       time.Duration `json:"max_ns"`
	PerSecond float64       `json:"checks_per_second"`
}

func (s Stats) String() string {
	return fmt.Sprintf("%d checks (%.0f/s): %d granted, %d noupdate, %d errors; %d updated, %d failed; p50 %s p99 %s",
		s.Checks, s.PerSecond, s.Granted, s.NoUpdate, s.Errors, s.Updated, s.Failed, s.P50.Round(time.Microsecond), s.P99.Round(time.Microsecond))
}

type phase int

const (
	idle phase = iota
	granted
	downloading
	downloaded
	installed
)

type node struct {
	mu       sync.Mutex
	id       string
	version  string
	previous string
	next     string
	phase    phase
	due      time.Time
}

// Run simulates until the duration passes, the check budget is spent or
// ctx ends.
func Run(ctx context.Context, cfg Config) (Stats, error) {
	if cfg.Instances <= 0 || cfg.Concurrency <= 0 {
		return Stats{}, errors.New("simulate: --instances and --concurrency must be > 0")
	}
	if cfg.Server == "" {
		return Stats{}, errors.New("simulate: --server is required")
	}
	url := strings.TrimSuffix(cfg.Server, "/")
	if !strings.Contains(url, "/v1/update") {
		url += "/v1/update"
	}
	if cfg.Duration <= 0 {
		cfg.Duration = time.Minute
	}
	if cfg.Track == "" {
		cfg.Track = "stable"
	}
	hc := cfg.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: cfg.Concurrency * 2, MaxIdleConnsPerHost: cfg.Concurrency * 2, IdleConnTimeout: time.Minute}}
	}
	client := &omaha.Client{URL: url, HTTP: hc}
	nodes := make([]*node, cfg.Instances)
	for i := range nodes {
		nodes[i] = &node{id: fmt.Sprintf("%s%032x", cfg.MachinePrefix, i)[0 : 32+len(cfg.MachinePrefix)], version: cfg.Version, previous: "0.0.0.0"}
	}
	// The run stops issuing requests when the duration or the check
	// budget is used up, but lets the requests in flight finish (unless
	// the caller cancels): an abandoned request may still be applied by
	// the server after Run returned, and the caller would then read
	// counters that are about to change.
	reqCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()

	var st Stats
	var cursor atomic.Int64
	lat := make([][]time.Duration, cfg.Concurrency)
	start := time.Now()
	done := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			t := time.NewTicker(time.Second)
			defer t.Stop()
			for {
				select {
				case <-done:
					return
				case <-t.C:
					cfg.Progress(snapshot(&st, time.Since(start)))
				}
			}
		}()
	}
	var wg sync.WaitGroup
	for w := 0; w < cfg.Concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(cfg.Seed, uint64(w)))
			for ctx.Err() == nil {
				if cfg.Checks > 0 && atomic.LoadInt64(&st.Checks) >= cfg.Checks {
					cancel()
					return
				}
				n := nodes[cursor.Add(1)%int64(len(nodes))]
				if !n.mu.TryLock() {
					continue
				}
				now := time.Now()
				if cfg.Interval > 0 && now.Before(n.due) {
					n.mu.Unlock()
					sleepBrief(ctx, n.due.Sub(now))
					continue
				}
				t0 := time.Now()
				isCheck, err := step(reqCtx, client, cfg, n, rng, &st)
				d := time.Since(t0)
				n.mu.Unlock()
				if reqCtx.Err() != nil {
					break
				}
				atomic.AddInt64(&st.Requests, 1)
				if err != nil {
					atomic.AddInt64(&st.Errors, 1)
					continue
				}
				if isCheck {
					lat[w] = append(lat[w], d)
				}
			}
		}(w)
	}
	wg.Wait()
	close(done)
	out := snapshot(&st, time.Since(start))
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		out.P50 = all[len(all)/2]
		out.P99 = all[len(all)*99/100]
		out.Max = all[len(all)-1]
	}
	return out, nil
}

// sleepBrief waits a little when the next node is not due, without
// sleeping past the run's end.
func sleepBrief(ctx context.Context, d time.Duration) {
	d = min(d, 5*time.Millisecond)
	if d <= 0 {
		return
	}
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

func snapshot(st *Stats, elapsed time.Duration) Stats {
	s := Stats{
		Requests: atomic.LoadInt64(&st.Requests), Checks: atomic.LoadInt64(&st.Checks), Granted: atomic.LoadInt64(&st.Granted),
		NoUpdate: atomic.LoadInt64(&st.NoUpdate), Errors: atomic.LoadInt64(&st.Errors), Updated: atomic.LoadInt64(&st.Updated),
		Failed: atomic.LoadInt64(&st.Failed), Elapsed: elapsed,
	}
	if elapsed > 0 {
		s.PerSecond = float64(s.Checks) / elapsed.Seconds()
	}
	return s
}

// step performs a node's next request, update_engine style.
func step(ctx context.Context, c *omaha.Client, cfg Config, n *node, rng *rand.Rand, st *Stats) (bool, error) {
	ev := func(e omaha.Event) error {
		_, err := c.Do(ctx, omaha.EventRequest(cfg.AppID, n.version, cfg.Track, n.id, e))
		return err
	}
	n.due = time.Now().Add(jitter(cfg.Interval, rng))
	switch n.phase {
	case granted:
		if cfg.FailureRate > 0 && rng.Float64() < cfg.FailureRate {
			n.phase = idle
			atomic.AddInt64(&st.Failed, 1)
			return false, ev(omaha.Event{Type: 3, Result: 0, ErrorCode: fmt.Sprint(9 | omaha.FlagTestOmahaURL)})
		}
		n.phase = downloading
		return false, ev(omaha.Event{Type: 13, Result: 1})
	case downloading:
		n.phase = downloaded
		return false, ev(omaha.Event{Type: 14, Result: 1})
	case downloaded:
		n.phase = installed
		return false, ev(omaha.Event{Type: 3, Result: 1})
	case installed:
		// Reboot into the new version; the next check reports it.
		n.previous, n.version, n.phase = n.version, n.next, idle
		atomic.AddInt64(&st.Updated, 1)
	}
	resp, err := c.Do(ctx, omaha.UpdateEngineRequest(cfg.AppID, n.version, cfg.Track, n.id, n.previous))
	atomic.AddInt64(&st.Checks, 1)
	n.previous = ""
	if err != nil {
		return true, err
	}
	if len(resp.Apps) == 0 || resp.Apps[0].UpdateCheck == nil {
		return true, errors.New("simulate: answer without updatecheck")
	}
	uc := resp.Apps[0].UpdateCheck
	switch uc.Status {
	case omaha.StatusOK:
		atomic.AddInt64(&st.Granted, 1)
		if len(uc.Manifests) == 0 {
			return true, errors.New("simulate: ok without manifest")
		}
		if !cfg.IdleOnly {
			n.next, n.phase = uc.Manifests[0].Version, granted
		}
	case omaha.StatusNoUpdate:
		atomic.AddInt64(&st.NoUpdate, 1)
	default:
		return true, fmt.Errorf("simulate: updatecheck status %q (update_engine would report error 34)", uc.Status)
	}
	return true, nil
}

func jitter(d time.Duration, rng *rand.Rand) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + time.Duration(rng.Int64N(int64(d)))
}
