package web

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/store"
	"github.com/stratalinux/strata/internal/version"
)

//go:embed ui/*.html ui/static/*
var uiFS embed.FS

// pages are parsed on first use, not at start-up: every strata command
// (the node's merges included) would otherwise pay for the dashboard.
var pages = sync.OnceValue(func() *template.Template {
	return template.Must(template.ParseFS(uiFS, "ui/*.html"))
})

func (s *Server) uiRoutes(m *http.ServeMux) {
	static, _ := fs.Sub(uiFS, "ui/static")
	m.Handle("GET /ui/static/", http.StripPrefix("/ui/static/", http.FileServerFS(static)))
	page := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) (string, map[string]any, error)) {
		m.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			name, data, err := fn(w, r)
			if err != nil {
				var he *httpError
				if ok := asHTTP(err, &he); ok {
					http.Error(w, he.msg, he.code)
					return
				}
				s.log.Error("fleet: dashboard page failed", "path", r.URL.Path, "err", err)
				http.Error(w, "internal error; see the server log", http.StatusInternalServerError)
				return
			}
			data["Elapsed"] = time.Since(start).Round(time.Microsecond).String()
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if err := pages().ExecuteTemplate(w, name, data); err != nil {
				s.log.Error("fleet: rendering dashboard", "page", name, "err", err)
			}
			s.metrics.latency.WithLabelValues("dashboard").Observe(time.Since(start).Seconds())
		})
	}
	page("GET /ui/{$}", s.uiApps)
	page("GET /ui/apps/{app}", s.uiApp)
	page("GET /ui/apps/{app}/groups/{group}", s.uiGroup)
	page("GET /ui/apps/{app}/groups/{group}/instances", s.uiInstances)
	page("GET /ui/apps/{app}/instances/{machine}", s.uiInstance)
	page("GET /ui/activity", s.uiActivity)
}

func asHTTP(err error, he **httpError) bool {
	e, ok := err.(*httpError)
	if ok {
		*he = e
	}
	return ok
}

func (s *Server) uiApps(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	apps, err := s.st.ListApps(r.Context())
	if err != nil {
		return "", nil, err
	}
	groups, err := s.st.ListGroups(r.Context(), "")
	if err != nil {
		return "", nil, err
	}
	type row struct {
		App    *fleet.App
		Groups []*fleet.Group
	}
	var rows []row
	for _, a := range apps {
		rw := row{App: a}
		for _, g := range groups {
			if g.AppID == a.ID {
				rw.Groups = append(rw.Groups, g)
			}
		}
		rows = append(rows, rw)
	}
	locks, err := s.st.ListRebootLocks(r.Context())
	if err != nil {
		return "", nil, err
	}
	return "apps.html", map[string]any{"Title": "Applications", "Apps": rows, "Locks": locks}, nil
}

func policySummary(p fleet.Policy) string {
	var parts []string
	if !p.UpdatesEnabled {
		parts = append(parts, "updates disabled")
	}
	if p.Paused {
		parts = append(parts, "paused")
	}
	if p.SafeMode {
		parts = append(parts, "safe mode")
	}
	if p.Percent < 100 {
		parts = append(parts, fmt.Sprintf("%g%% of nodes", p.Percent))
	}
	if p.MaxUpdatesPerPeriod > 0 {
		parts = append(parts, fmt.Sprintf("%d per %s", p.MaxUpdatesPerPeriod, p.Period.D()))
	}
	if p.MaxConcurrent > 0 {
		parts = append(parts, fmt.Sprintf("%d at once", p.MaxConcurrent))
	}
	if p.UpdateTimeout > 0 {
		parts = append(parts, "timeout "+p.UpdateTimeout.D().String())
	}
	if w := p.Window; w != nil {
		parts = append(parts, fmt.Sprintf("window %s %s–%s %s", strings.Join(w.Days, ","), w.Start, w.End, w.Timezone))
	}
	if len(parts) == 0 {
		return "no limits"
	}
	return strings.Join(parts, " · ")
}

func (s *Server) uiApp(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	a, err := s.app(r)
	if err != nil {
		return "", nil, err
	}
	conf, err := s.config(r.Context())
	if err != nil {
		return "", nil, err
	}
	groups, err := s.st.ListGroups(r.Context(), a.ID)
	if err != nil {
		return "", nil, err
	}
	chans, err := s.st.ListChannels(r.Context(), a.ID)
	if err != nil {
		return "", nil, err
	}
	pkgs, err := s.st.ListPackages(r.Context(), a.ID)
	if err != nil {
		return "", nil, err
	}
	type grow struct {
		G                       *fleet.Group
		Channel, Target, Policy string
	}
	var gr []grow
	for _, g := range groups {
		row := grow{G: g, Policy: policySummary(g.Policy)}
		if ch, t := conf.Target(g); ch != nil {
			row.Channel = ch.Name
			if t != nil {
				row.Target = t.Version
			}
		}
		gr = append(gr, row)
	}
	type crow struct{ Name, Arch, Version, Floors string }
	var cr []crow
	for _, c := range chans {
		var fl []string
		for _, f := range c.Floors {
			fl = append(fl, versionOf(conf, f))
		}
		cr = append(cr, crow{c.Name, c.Arch, versionOf(conf, c.PackageID), strings.Join(fl, ", ")})
	}
	sort.Slice(pkgs, func(i, j int) bool { return version.Compare(pkgs[i].Version, pkgs[j].Version) > 0 })
	return "app.html", map[string]any{"Title": a.Name, "App": a, "Groups": gr, "Channels": cr, "Packages": pkgs}, nil
}

var palette = []string{"#2563eb", "#16a34a", "#f59e0b", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9ca3af"}

var statusColor = map[string]string{
	"complete": "#16a34a", "granted": "#2563eb", "downloading": "#0891b2", "downloaded": "#7c3aed",
	"installed": "#65a30d", "error": "#dc2626", "onhold": "#f59e0b", "undefined": "#9ca3af",
}

type bar struct {
	Key, Color, Percent string
	Count               int
	Y, W, TextY, CountX int
}

type barChart struct {
	Label                                string
	Bars                                 []bar
	Width, Height, LabelWidth, BarHeight int
}

// bars lays out a horizontal bar chart; at most 12 bars (the rest folded
// into "other") so a fleet with many versions stays readable.
func bars(label string, counts []store.Count, color func(i int, key string) string) barChart {
	sort.Slice(counts, func(i, j int) bool { return counts[i].Count > counts[j].Count })
	if len(counts) > 12 {
		other := store.Count{Key: "other"}
		for _, c := range counts[11:] {
			other.Count += c.Count
		}
		counts = append(counts[:11:11], other)
	}
	total := 0
	for _, c := range counts {
		total += c.Count
	}
	ch := barChart{Label: label, Width: 520, LabelWidth: 140, BarHeight: 18}
	maxW := 280
	for i, c := range counts {
		w := 0
		if total > 0 {
			w = c.Count * maxW / max(counts[0].Count, 1)
		}
		y := i * 26
		ch.Bars = append(ch.Bars, bar{Key: c.Key, Count: c.Count, Color: color(i, c.Key), Y: y, W: max(w, 1), TextY: y + 14,
			CountX: ch.LabelWidth + w + 6, Percent: fmt.Sprintf("%.1f%%", 100*float64(c.Count)/float64(max(total, 1)))})
	}
	ch.Height = max(len(counts)*26, 24)
	return ch
}

type segment struct {
	Key, Color string
	Count      int
	X, W       int
}

func (s *Server) uiGroup(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	a, err := s.app(r)
	if err != nil {
		return "", nil, err
	}
	g, err := s.group(r, a)
	if err != nil {
		return "", nil, err
	}
	v, err := s.groupView(r, g)
	if err != nil {
		return "", nil, err
	}
	acts, err := s.st.ListActivity(r.Context(), store.ActivityFilter{GroupID: g.ID, Limit: 15})
	if err != nil {
		return "", nil, err
	}
	alive, onTarget := 0, 0
	for _, c := range v.Versions {
		alive += c.Count
		if c.Key == v.Target {
			onTarget = c.Count
		}
	}
	// Updating and failed are the rollout's counters, the numbers the
	// counter line under the bar shows (the instances' error status
	// would forget a failed node as soon as it checks in again).
	inProgress := v.Rollout.InProgress
	failed := v.Rollout.Failed
	rest := max(alive-onTarget-inProgress-failed, 0)
	segs := []segment{{Key: "on " + v.Target, Color: "#16a34a", Count: onTarget}, {Key: "updating", Color: "#2563eb", Count: inProgress},
		{Key: "failed", Color: "#dc2626", Count: failed}, {Key: "waiting", Color: "#d1d5db", Count: rest}}
	// A node that failed and then updated counts in two segments: scale
	// to the sum so the bar never overflows.
	width := max(alive, onTarget+inProgress+failed)
	x := 0
	for i := range segs {
		if width > 0 {
			segs[i].W = segs[i].Count * 600 / width
		}
		segs[i].X = x
		x += segs[i].W
	}
	chName := ""
	if conf, err := s.config(r.Context()); err == nil {
		if ch := conf.Channel(g.ChannelID); ch != nil {
			chName = ch.Name
		}
	}
	return "group.html", map[string]any{
		"Title": g.Name, "App": a, "Group": g, "Target": v.Target, "Channel": chName, "Policy": policySummary(g.Policy),
		"Rollout": v.Rollout, "Alive": alive, "Activity": acts,
		"Progress": map[string]any{"Segments": segs},
		"Versions": bars("versions", v.Versions, func(i int, _ string) string { return palette[i%len(palette)] }),
		"Statuses": bars("statuses", v.Statuses, func(i int, k string) string {
			if c, ok := statusColor[k]; ok {
				return c
			}
			return palette[i%len(palette)]
		}),
	}, nil
}

func (s *Server) uiInstances(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	a, err := s.app(r)
	if err != nil {
		return "", nil, err
	}
	g, err := s.group(r, a)
	if err != nil {
		return "", nil, err
	}
	f, err := instanceFilter(r)
	if err != nil {
		return "", nil, err
	}
	f.AppID, f.GroupID = a.ID, g.ID
	list, total, err := s.st.ListInstances(r.Context(), f)
	if err != nil {
		return "", nil, err
	}
	page := f.Offset/f.Limit + 1
	pages := max((total+f.Limit-1)/f.Limit, 1)
	link := func(p int) string {
		q := r.URL.Query()
		q.Set("page", strconv.Itoa(p))
		return "?" + q.Encode()
	}
	data := map[string]any{"Title": g.Name + " instances", "App": a, "Group": g, "Instances": list, "Total": total,
		"Page": page, "Pages": pages, "Q": f.Search, "Version": f.Version, "Status": "",
		"StatusOptions": statusNames()}
	if f.Status != 0 {
		data["Status"] = f.Status.String()
	}
	if page > 1 {
		data["Prev"] = link(page - 1)
	}
	if page < pages {
		data["Next"] = link(page + 1)
	}
	return "instances.html", data, nil
}

func statusNames() []string {
	var out []string
	for _, s := range fleet.AllStatuses {
		out = append(out, s.String())
	}
	return out
}

type timelineEntry struct {
	Created              time.Time
	Label, Detail, Class string
}

func describeEvent(e fleet.EventRecord) timelineEntry {
	t := timelineEntry{Created: e.Created, Label: fmt.Sprintf("event %d/%d", e.Type, e.Result)}
	switch {
	case e.Type == 13 && e.Result == 1:
		t.Label = "download started"
	case e.Type == 14 && e.Result == 1:
		t.Label = "download finished"
	case e.Type == 3 && e.Result == 1:
		t.Label = "installed, waiting for reboot"
	case e.Type == 3 && e.Result == 2:
		t.Label, t.Class = "updated", "ok"
		t.Detail = fmt.Sprintf("from %s to %s", e.PreviousVersion, e.Version)
	case e.Type == 3 && e.Result == 0:
		t.Label, t.Class = "update failed", "error"
		t.Detail = "error code " + e.ErrorCode + " " + errorCodeText(e.ErrorCode)
	}
	return t
}

func (s *Server) uiInstance(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	a, err := s.app(r)
	if err != nil {
		return "", nil, err
	}
	in, found, err := s.st.Instance(r.Context(), a.ID, r.PathValue("machine"))
	if err != nil {
		return "", nil, err
	}
	if !found {
		return "", nil, errf(404, "instance %q not found", r.PathValue("machine"))
	}
	evs, err := s.st.InstanceEvents(r.Context(), a.ID, in.MachineID, 200)
	if err != nil {
		return "", nil, err
	}
	var tl []timelineEntry
	for _, e := range evs {
		tl = append(tl, describeEvent(e))
	}
	gname := in.GroupID
	if conf, err := s.config(r.Context()); err == nil {
		if g := conf.GroupByID(in.GroupID); g != nil {
			gname = g.Name
		}
	}
	return "instance.html", map[string]any{"Title": "Instance " + in.MachineID, "App": a, "I": in, "GroupName": gname, "Events": tl}, nil
}

func (s *Server) uiActivity(w http.ResponseWriter, r *http.Request) (string, map[string]any, error) {
	f := store.ActivityFilter{Limit: 100}
	if b, err := strconv.ParseInt(r.URL.Query().Get("before"), 10, 64); err == nil {
		f.Before = b
	}
	acts, err := s.st.ListActivity(r.Context(), f)
	if err != nil {
		return "", nil, err
	}
	data := map[string]any{"Title": "Activity", "Activity": acts}
	if len(acts) == f.Limit {
		data["Next"] = "?before=" + url.QueryEscape(strconv.FormatInt(acts[len(acts)-1].ID, 10))
	}
	return "activitypage", data, nil
}
