package web

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/omaha"
)

// App statuses Strata adds for requests it cannot place; the updatecheck
// itself is answered noupdate so update_engine does not report a failure.
const (
	statusUnknownGroup = "error-unknownApplicationOrGroup"
	statusNoMachineID  = "error-invalidMachineId"
)

func (s *Server) handleOmaha(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() { s.metrics.latency.WithLabelValues("omaha").Observe(time.Since(start).Seconds()) }()
	if secret := r.PathValue("secret"); secret != s.cfg.OmahaSecret {
		s.metrics.requestErrors.WithLabelValues("path").Inc()
		http.NotFound(w, r)
		return
	}
	req, err := omaha.Decode(r.Body)
	if err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, omaha.ErrTooLarge) {
			code = http.StatusRequestEntityTooLarge
		}
		s.metrics.requestErrors.WithLabelValues("malformed").Inc()
		s.log.Warn("fleet: rejected Omaha request", "remote", r.RemoteAddr, "err", err)
		http.Error(w, err.Error(), code)
		return
	}
	conf, err := s.config(r.Context())
	if err != nil {
		s.storeError(w, r, err)
		return
	}
	ip := clientIP(r)
	resp := omaha.NewResponse()
	for _, app := range req.Apps {
		ra, err := s.answerApp(r.Context(), conf, req, app, ip)
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		resp.Apps = append(resp.Apps, ra)
	}
	var buf bytes.Buffer
	if err := omaha.Encode(&buf, resp); err != nil {
		s.storeError(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error) {
	s.metrics.requestErrors.WithLabelValues("store").Inc()
	s.log.Error("fleet: request failed", "path", r.URL.Path, "remote", r.RemoteAddr, "err", err)
	w.Header().Set("Retry-After", "60")
	http.Error(w, "fleet store unavailable, retry later", http.StatusServiceUnavailable)
}

// answerApp handles one <app>: events first, then ping and update check.
func (s *Server) answerApp(ctx context.Context, conf *fleet.Config, req *omaha.Request, app *omaha.App, ip string) (*omaha.ResponseApp, error) {
	ra := &omaha.ResponseApp{ID: app.ID, Status: omaha.StatusOK}
	if app.Ping != nil {
		ra.Ping = &omaha.StatusOnly{Status: "ok"}
	}
	for range app.Events {
		ra.Events = append(ra.Events, &omaha.StatusOnly{Status: "ok"})
	}
	noupdate := func(status, reason string) (*omaha.ResponseApp, error) {
		ra.Status = status
		if app.UpdateCheck != nil {
			ra.UpdateCheck = &omaha.ResponseUpdateCheck{Status: omaha.StatusNoUpdate}
			s.metrics.checks.WithLabelValues("noupdate").Inc()
		}
		s.metrics.refusals.WithLabelValues(reason).Inc()
		return ra, nil
	}
	a, ok := conf.App(omaha.NormalizeAppID(app.ID))
	if !ok {
		return noupdate(omaha.StatusUnknownApp, "unknown-app")
	}
	arch := omaha.Arch(app, req.OS)
	g, err := conf.Group(a.ID, app.Track, arch)
	if err != nil {
		return noupdate(statusUnknownGroup, "unknown-group")
	}
	if !fleet.ValidVersion(app.Version) {
		return noupdate(omaha.StatusInvalidVersion, "invalid-version")
	}
	machine := strings.TrimSpace(app.MachineID)
	if machine == "" {
		return noupdate(statusNoMachineID, "no-machine-id")
	}
	for _, ev := range app.Events {
		if ev.Type == omaha.EventUpdateComplete && ev.Result == omaha.ResultError {
			code, _, _ := omaha.ErrorCode(ev.ErrorCode)
			s.metrics.eventErrors.WithLabelValues(strconv.FormatUint(uint64(code), 10)).Inc()
		}
	}

	inst, found, err := s.st.Instance(ctx, a.ID, machine)
	if err != nil {
		return nil, err
	}
	ch, target := conf.Target(g)
	var floors []*fleet.Package
	if ch != nil {
		floors = conf.Floors(ch.ID)
	}
	rolloutTarget, pinned := "", false
	if target != nil {
		rolloutTarget = target.Version
	}
	if inst.Pinned != "" && ch != nil {
		if p := conf.Pin(a.ID, inst.Pinned, arch, ch); p != nil {
			target, pinned = p, true
		}
	}
	creq := fleet.CheckRequest{
		Now: s.cfg.Now(), App: a, Group: g, Channel: ch, Target: target, Floors: floors,
		Pinned: pinned, RolloutTarget: rolloutTarget,
		Report:      fleet.Report{MachineID: machine, Version: app.Version, Alias: app.MachineAlias, OEM: app.OEM, IP: ip},
		Events:      app.Events,
		UpdateCheck: app.UpdateCheck != nil,
	}
	if fleet.SettleNeeded(creq, inst, found) {
		if inst, err = s.settle(ctx, conf, creq, inst); err != nil {
			return nil, err
		}
		creq.Events = nil
	}
	// Decide without the group's counters first: a node that holds a
	// grant, is mid-update or is current does not need them, and reading
	// them is a database round trip on every such check.
	out := fleet.Process(creq, inst, found, fleet.Rollout{})
	if out.Decision.UsedCounters {
		r, err := s.st.Rollout(ctx, g.ID)
		if err != nil {
			return nil, err
		}
		out = fleet.Process(creq, inst, found, r)
	}
	saved := false
	if found && out.Write && !out.NeedsLock && len(out.Events) == 0 && len(out.Activities) == 0 && onlyCheckedIn(inst, out.Instance) {
		s.touches.add(a.ID, machine, out.Instance.LastCheck)
		saved = true
	}
	if !saved && !out.NeedsLock {
		if saved, err = s.st.SaveOptimistic(ctx, inst, found, out); err != nil {
			return nil, err
		}
	}
	if !saved {
		out, err = s.st.Transition(ctx, a.ID, machine, g.ID, func(in fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error) {
			return fleet.Process(creq, in, found, r), nil
		})
		if err != nil {
			return nil, err
		}
		if out.Brake {
			s.invalidate()
			s.log.Warn("fleet: safe-mode canary failed, rollout paused", "group", g.Name, "version", out.Rollout.Target)
		}
	}
	if app.UpdateCheck == nil {
		return ra, nil
	}
	d := out.Decision
	switch d.Verdict {
	case fleet.Grant, fleet.Regrant:
		ra.UpdateCheck = s.updateFor(conf, d.Package)
		s.metrics.checks.WithLabelValues("granted").Inc()
		if d.Verdict == fleet.Grant {
			s.metrics.grants.Inc()
		}
	default:
		uc := &omaha.ResponseUpdateCheck{Status: omaha.StatusNoUpdate}
		if d.Throttled {
			if pi := g.Policy.PollInterval.D(); pi > 0 {
				uc.PollInterval = strconv.Itoa(int(pi.Seconds()))
			}
			s.metrics.checks.WithLabelValues("throttled").Inc()
			s.metrics.refusals.WithLabelValues(string(d.Refusal)).Inc()
		} else {
			s.metrics.checks.WithLabelValues("noupdate").Inc()
		}
		ra.UpdateCheck = uc
	}
	return ra, nil
}

// settle counts the request's events (and the release of a stale grant)
// against the group that granted the instance's update, then returns the
// instance as stored for the rest of the request.
func (s *Server) settle(ctx context.Context, conf *fleet.Config, creq fleet.CheckRequest, inst fleet.Instance) (fleet.Instance, error) {
	gg := conf.GroupByID(inst.GrantedGroup)
	if gg == nil {
		return inst, nil // the group is gone, and its counters with it
	}
	grantTarget := ""
	if _, t := conf.Target(gg); t != nil {
		grantTarget = t.Version
	}
	_, err := s.st.Transition(ctx, creq.App.ID, inst.MachineID, gg.ID, func(in fleet.Instance, found bool, r fleet.Rollout) (fleet.Outcome, error) {
		if !found {
			return fleet.Outcome{}, nil
		}
		return fleet.Settle(creq, gg, grantTarget, in, r), nil
	})
	if err != nil {
		return inst, err
	}
	after, _, err := s.st.Instance(ctx, creq.App.ID, inst.MachineID)
	return after, err
}

// updateFor builds the <updatecheck status="ok"> for a package and the
// extension packages that ride along with it.
func (s *Server) updateFor(conf *fleet.Config, p *fleet.Package) *omaha.ResponseUpdateCheck {
	base := p.URL
	if !strings.HasSuffix(base, "/") {
		base += "/"
	}
	m := &omaha.Manifest{Version: p.Version}
	m.Packages = append(m.Packages, omaha.Package{Name: p.Filename, Hash: p.SHA1, Size: p.Size, Required: true})
	for _, id := range p.Extras {
		if x := conf.Package(id); x != nil {
			m.Packages = append(m.Packages, omaha.Package{Name: x.Filename, Hash: x.SHA1, HashSHA256: x.SHA256, Size: x.Size, Required: false})
		}
	}
	m.Actions = []omaha.Action{{Event: "postinstall", SHA256: hexToBase64(p.SHA256), DisablePayloadBackoff: "true"}}
	return &omaha.ResponseUpdateCheck{Status: omaha.StatusOK, URLs: []omaha.URL{{Codebase: base}}, Manifests: []*omaha.Manifest{m}}
}

func hexToBase64(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

func clientIP(r *http.Request) string {
	if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
		first := strings.TrimSpace(strings.Split(xff, ",")[0])
		if net.ParseIP(first) != nil {
			return first
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// onlyCheckedIn reports whether after differs from before in last_check
// alone.
func onlyCheckedIn(before, after fleet.Instance) bool {
	before.LastCheck, after.LastCheck = time.Time{}, time.Time{}
	return before == after
}
