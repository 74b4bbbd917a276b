// Package web is the fleet server's HTTP side: the Omaha endpoint
// update_engine talks to, the JSON admin API behind bearer tokens, the
// server-rendered dashboard and the Prometheus metrics. New builds one
// http.Handler that `strata serve` mounts beside the static repository.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/store"
)

// Config configures a fleet server.
type Config struct {
	// Store is used when set; otherwise Database (a PostgreSQL URL or an
	// SQLite path) is opened and closed with the server.
	Store    store.Store
	Database string
	Logger   *slog.Logger
	// OmahaSecret, when set, makes the Omaha endpoint answer only on
	// /v1/update/SECRET.
	OmahaSecret string
	// Retention of events, activity and dead instances; the zero value
	// means DefaultRetention, a negative age keeps those rows forever.
	Retention store.Retention
	// AliveWindow is how recently an instance must have checked in to
	// count in breakdowns and metrics (default 24h).
	AliveWindow time.Duration
	// Refresh is how often the configuration generation is polled, which
	// bounds how long replicas serve an old configuration (default 1s).
	Refresh time.Duration
	// Now is the clock (tests); nil means time.Now.
	Now func() time.Time
}

// Prefixes are the URL paths the fleet handler owns; a server that mounts
// it beside other handlers (the static repository) routes these to it.
var Prefixes = []string{"/v1/update", "/v1/pre-reboot", "/v1/steady-state", "/api/", "/ui/", "/metrics"}

// DefaultRetention keeps a month of events, half a year of activity and
// forgets instances that have not checked in for 90 days.
var DefaultRetention = store.Retention{Events: 30 * 24 * time.Hour, Activity: 180 * 24 * time.Hour, Instances: 90 * 24 * time.Hour}

// Server is the fleet server; it is an http.Handler.
type Server struct {
	cfg     Config
	st      store.Store
	ownsSt  bool
	log     *slog.Logger
	mux     *http.ServeMux
	metrics *serverMetrics

	mu       sync.Mutex
	conf     *fleet.Config
	loadedAt time.Time

	touches touchBuffer

	cancel context.CancelFunc
	done   chan struct{}
}

// touchBuffer collects check-ins that changed nothing but last_check; they
// are written in one transaction every flushEvery (group commit), so the
// common check costs one indexed read. A crash loses at most that much
// last-check precision, never a status or a counter.
type touchBuffer struct {
	mu      sync.Mutex
	pending map[[2]string]time.Time
}

const flushEvery = 250 * time.Millisecond

func (b *touchBuffer) add(appID, machineID string, at time.Time) {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = map[[2]string]time.Time{}
	}
	b.pending[[2]string{appID, machineID}] = at
	b.mu.Unlock()
}

func (b *touchBuffer) take() []store.Touch {
	b.mu.Lock()
	p := b.pending
	b.pending = nil
	b.mu.Unlock()
	out := make([]store.Touch, 0, len(p))
	for k, t := range p {
		out = append(out, store.Touch{AppID: k[0], MachineID: k[1], LastCheck: t})
	}
	return out
}

func (s *Server) flushTouches(ctx context.Context) {
	if rows := s.touches.take(); len(rows) > 0 {
		if err := s.st.Touch(ctx, rows); err != nil {
			s.log.Warn("fleet: recording check-in times", "count", len(rows), "err", err)
		}
	}
}

// New builds the server and starts its background jobs (grant timeouts,
// retention); Close stops them.
func New(cfg Config) (*Server, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Retention == (store.Retention{}) {
		cfg.Retention = DefaultRetention
	}
	if cfg.AliveWindow <= 0 {
		cfg.AliveWindow = 24 * time.Hour
	}
	if cfg.Refresh <= 0 {
		cfg.Refresh = time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if strings.ContainsAny(cfg.OmahaSecret, "/?#") {
		return nil, fmt.Errorf("fleet: the Omaha secret must not contain / ? or #")
	}
	s := &Server{cfg: cfg, st: cfg.Store, log: cfg.Logger, done: make(chan struct{})}
	if s.st == nil {
		if cfg.Database == "" {
			return nil, errors.New("fleet: no store and no database given")
		}
		st, err := store.Open(context.Background(), cfg.Database)
		if err != nil {
			return nil, err
		}
		s.st, s.ownsSt = st, true
	}
	if _, err := s.config(context.Background()); err != nil {
		s.closeStore()
		return nil, err
	}
	s.metrics = newMetrics(s)
	s.routes()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	go s.background(ctx)
	return s, nil
}

// Store returns the server's store (for the CLI and tests).
func (s *Server) Store() store.Store { return s.st }

// Close stops the background jobs and closes a store the server opened.
func (s *Server) Close() error {
	s.cancel()
	<-s.done
	return s.closeStore()
}

func (s *Server) closeStore() error {
	if s.ownsSt {
		return s.st.Close()
	}
	return nil
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// config returns the configuration snapshot, reloading it when the
// store's generation moved (checked at most every Refresh).
func (s *Server) config(ctx context.Context) (*fleet.Config, error) {
	s.mu.Lock()
	c, at := s.conf, s.loadedAt
	s.mu.Unlock()
	now := time.Now()
	if c != nil && now.Sub(at) < s.cfg.Refresh {
		return c, nil
	}
	gen, err := s.st.Generation(ctx)
	if err != nil {
		if c != nil {
			s.log.Warn("fleet: cannot check the configuration generation, serving the last one", "err", err)
			return c, nil
		}
		return nil, fmt.Errorf("fleet: reading configuration: %w", err)
	}
	if c == nil || gen != c.Generation {
		nc, err := s.st.LoadConfig(ctx)
		if err != nil {
			if c != nil {
				return c, nil
			}
			return nil, err
		}
		c = nc
	}
	s.mu.Lock()
	s.conf, s.loadedAt = c, now
	s.mu.Unlock()
	return c, nil
}

// invalidate forces a reload after an admin write on this replica.
func (s *Server) invalidate() {
	s.mu.Lock()
	s.loadedAt = time.Time{}
	s.mu.Unlock()
}

func (s *Server) background(ctx context.Context) {
	defer close(s.done)
	defer s.flushTouches(context.Background())
	tick := time.NewTicker(10 * time.Second)
	defer tick.Stop()
	flush := time.NewTicker(flushEvery)
	defer flush.Stop()
	var lastRetention time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-flush.C:
			s.flushTouches(ctx)
		case <-tick.C:
			s.maintain(ctx, &lastRetention)
		}
	}
}

// maintain expires timed-out grants and, hourly, old rows.
func (s *Server) maintain(ctx context.Context, lastRetention *time.Time) {
	now := s.cfg.Now()
	groups, err := s.st.ListGroups(ctx, "")
	if err != nil {
		s.log.Warn("fleet: maintenance skipped", "err", err)
	} else {
		if n, err := s.st.ExpireGrants(ctx, now, groups); err != nil {
			s.log.Warn("fleet: expiring grants", "err", err)
		} else if n > 0 {
			s.log.Info("fleet: grants timed out", "count", n)
		}
	}
	if now.Sub(*lastRetention) >= time.Hour {
		*lastRetention = now
		if e, err := s.st.Expire(ctx, now, s.cfg.Retention); err != nil {
			s.log.Warn("fleet: retention", "err", err)
		} else if e.Events+e.Activity+e.Instances > 0 {
			s.log.Info("fleet: retention deleted old rows", "events", e.Events, "activity", e.Activity, "instances", e.Instances)
		}
	}
}

func (s *Server) routes() {
	m := http.NewServeMux()
	m.HandleFunc("POST /v1/update", s.handleOmaha)
	m.HandleFunc("POST /v1/update/{$}", s.handleOmaha)
	m.HandleFunc("POST /v1/update/{secret}", s.handleOmaha)
	m.HandleFunc("POST /v1/pre-reboot", s.handlePreReboot)
	m.HandleFunc("POST /v1/steady-state", s.handleSteadyState)
	m.Handle("GET /metrics", s.metrics.handler())
	// A browser pointed at the server's address lands on the dashboard
	// (a server mounting a repository at / keeps that instead).
	m.Handle("GET /{$}", http.RedirectHandler("/ui/", http.StatusFound))
	s.apiRoutes(m)
	s.uiRoutes(m)
	s.mux = m
}
