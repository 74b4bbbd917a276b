package fleetweb

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/stratalinux/strata/internal/fleet/store"
)

// metrics are the server's Prometheus series, on a registry of its own.
type metrics struct {
	checks        *prometheus.CounterVec
	grants        prometheus.Counter
	refusals      *prometheus.CounterVec
	eventErrors   *prometheus.CounterVec
	requestErrors *prometheus.CounterVec
	latency       *prometheus.HistogramVec
}

func newMetrics(reg *prometheus.Registry, s *Server) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_fleet_update_checks_total",
			Help: "Update checks by answer: granted (ok), noupdate, throttled (noupdate by policy)."}, []string{"result"}),
		grants: prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_fleet_grants_total",
			Help: "New update grants (repeated answers to a granted node not counted)."}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_fleet_noupdate_reasons_total",
			Help: "Why checks were not granted (policy refusals and unplaceable requests)."}, []string{"reason"}),
		eventErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_fleet_update_errors_total",
			Help: "Failure events (3/0) reported by nodes, by update_engine error code without flags."}, []string{"code"}),
		requestErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_fleet_request_errors_total",
			Help: "Requests answered with an HTTP error, by cause."}, []string{"cause"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "strata_fleet_request_duration_seconds",
			Help:    "Request latency by endpoint.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}}, []string{"endpoint"}),
	}
	reg.MustRegister(m.checks, m.grants, m.refusals, m.eventErrors, m.requestErrors, m.latency,
		&censusCollector{s: s, desc: prometheus.NewDesc("strata_fleet_instances",
			"Instances seen within the alive window, by application, version and status.", []string{"app", "version", "status"}, nil)},
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

// censusCollector reports instances per version and status; the census
// is one grouped query, cached for 15 s so scrapes stay cheap.
type censusCollector struct {
	s    *Server
	desc *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	counts []store.InstanceCount
}

func (c *censusCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *censusCollector) Collect(ch chan<- prometheus.Metric) {
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
	for _, n := range c.counts {
		app := n.AppID
		if conf != nil {
			if a, ok := conf.App(n.AppID); ok {
				app = a.Name
			}
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n.Count), app, n.Version, n.Status.String())
	}
}
