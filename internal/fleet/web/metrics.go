package web

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/stratalinux/strata/internal/fleet/store"
	"github.com/stratalinux/strata/internal/metrics"
)

// metrics are the server's Prometheus series, on a registry of its own.
type serverMetrics struct {
	reg           *metrics.Registry
	checks        *metrics.CounterVec
	grants        *metrics.Counter
	refusals      *metrics.CounterVec
	eventErrors   *metrics.CounterVec
	requestErrors *metrics.CounterVec
	fleetLock     *metrics.CounterVec
	latency       *metrics.HistogramVec
}

func newMetrics(s *Server) *serverMetrics {
	reg := metrics.NewRegistry()
	m := &serverMetrics{
		reg: reg,
		checks: reg.NewCounterVec("strata_fleet_update_checks_total",
			"Update checks by answer: granted (ok), noupdate, throttled (noupdate by policy).", "result"),
		grants: reg.NewCounter("strata_fleet_grants_total",
			"New update grants (repeated answers to a granted node not counted)."),
		refusals: reg.NewCounterVec("strata_fleet_noupdate_reasons_total",
			"Why checks were not granted (policy refusals and unplaceable requests).", "reason"),
		eventErrors: reg.NewCounterVec("strata_fleet_update_errors_total",
			"Failure events (3/0) reported by nodes, by update_engine error code without flags.", "code"),
		requestErrors: reg.NewCounterVec("strata_fleet_request_errors_total",
			"Requests answered with an HTTP error, by cause.", "cause"),
		fleetLock: reg.NewCounterVec("strata_fleet_reboot_lock_requests_total",
			"FleetLock requests by endpoint (pre-reboot, steady-state) and result (granted, held, full, released, not-held, or the error kind).", "endpoint", "result"),
		latency: reg.NewHistogramVec("strata_fleet_request_duration_seconds", "Request latency by endpoint.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}, "endpoint"),
	}
	census := &census{s: s}
	reg.NewGaugeFunc("strata_fleet_instances", "Instances seen within the alive window, by application, version and status.", census.collect)
	reg.RegisterRuntime()
	return m
}

func (m *serverMetrics) handler() http.Handler { return m.reg.Handler() }

// census reports instances per version and status; the census is one
// grouped query, cached for 15 s so scrapes stay cheap.
type census struct {
	s *Server

	mu     sync.Mutex
	at     time.Time
	counts []store.InstanceCount
}

func (c *census) collect() []metrics.Sample {
	c.mu.Lock()
	defer c.mu.Unlock()
	if time.Since(c.at) > 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		counts, err := c.s.st.InstanceCounts(ctx, c.s.cfg.Now().Add(-c.s.cfg.AliveWindow))
		cancel()
		if err != nil {
			c.s.log.Warn("fleet: instance census for metrics", "err", err)
		} else {
			c.counts, c.at = counts, time.Now()
		}
	}
	conf, _ := c.s.config(context.Background())
	out := make([]metrics.Sample, 0, len(c.counts))
	for _, n := range c.counts {
		app := n.AppID
		if conf != nil {
			if a, ok := conf.App(n.AppID); ok {
				app = a.Name
			}
		}
		out = append(out, metrics.Sample{Labels: metrics.Labels{"app": app, "version": n.Version, "status": n.Status.String()}, Value: float64(n.Count)})
	}
	return out
}
