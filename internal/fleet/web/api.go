package web

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/store"
)

// NewToken makes an admin token and the hash the store keeps of it.
func NewToken() (token, hash string) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	token = "strata_" + hex.EncodeToString(b[:])
	return token, HashToken(token)
}

// HashToken is the stored form of a token (SHA-256, hex): a leaked
// database does not leak usable tokens.
func HashToken(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

const maxAPIBody = 1 << 20

func (s *Server) apiRoutes(m *http.ServeMux) {
	h := func(pattern string, fn func(w http.ResponseWriter, r *http.Request) error) {
		m.HandleFunc(pattern, s.admin(fn))
	}
	h("GET /api/apps", s.apiListApps)
	h("POST /api/apps", s.apiCreateApp)
	h("GET /api/apps/{app}", s.apiGetApp)
	h("GET /api/apps/{app}/packages", appListing(s, s.st.ListPackages))
	h("POST /api/apps/{app}/packages", s.apiCreatePackage)
	h("GET /api/apps/{app}/channels", appListing(s, s.st.ListChannels))
	h("POST /api/apps/{app}/channels", s.apiCreateChannel)
	h("PUT /api/apps/{app}/channels/{channel}", s.apiUpdateChannel)
	h("GET /api/apps/{app}/groups", appListing(s, s.st.ListGroups))
	h("POST /api/apps/{app}/groups", s.apiCreateGroup)
	h("GET /api/apps/{app}/groups/{group}", s.apiGetGroup)
	h("PUT /api/apps/{app}/groups/{group}", s.apiUpdateGroup)
	h("POST /api/apps/{app}/groups/{group}/pause", s.apiPause(true))
	h("POST /api/apps/{app}/groups/{group}/resume", s.apiPause(false))
	h("GET /api/apps/{app}/groups/{group}/instances", s.apiListInstances)
	h("GET /api/apps/{app}/instances/{machine}", s.apiGetInstance)
	h("PUT /api/apps/{app}/instances/{machine}/pin", s.apiPin)
	h("GET /api/activity", s.apiActivity)
	h("GET /api/reboot-locks", s.apiListRebootLocks)
	h("GET /api/reboot-locks/{group}", s.apiGetRebootLock)
	h("PUT /api/reboot-locks/{group}", s.apiSetRebootLock)
	h("DELETE /api/reboot-locks/{group}/holders/{id}", s.apiReleaseRebootLock)
}

// httpError carries an HTTP status to the JSON error writer.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errf(code int, format string, args ...any) error {
	return &httpError{code, fmt.Sprintf(format, args...)}
}

// admin wraps an API handler with bearer-token authentication, latency
// metrics and one JSON error shape: {"error": "..."}.
func (s *Server) admin(fn func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		defer func() { s.metrics.latency.WithLabelValues("api").Observe(time.Since(start).Seconds()) }()
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || tok == "" {
			writeJSONError(w, http.StatusUnauthorized, "missing bearer token (create one with: strata fleet token create)")
			return
		}
		valid, err := s.st.HasToken(r.Context(), HashToken(strings.TrimSpace(tok)))
		if err != nil {
			s.storeError(w, r, err)
			return
		}
		if !valid {
			writeJSONError(w, http.StatusUnauthorized, "invalid bearer token")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxAPIBody)
		if err := fn(w, r); err != nil {
			var he *httpError
			switch {
			case errors.As(err, &he):
				writeJSONError(w, he.code, he.msg)
			case errors.Is(err, store.ErrConflict):
				writeJSONError(w, http.StatusConflict, err.Error())
			case errors.Is(err, store.ErrNotFound):
				writeJSONError(w, http.StatusNotFound, err.Error())
			default:
				s.log.Error("fleet: API request failed", "method", r.Method, "path", r.URL.Path, "err", err)
				writeJSONError(w, http.StatusInternalServerError, "internal error; see the server log")
			}
		}
	}
}

func writeJSONError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

func readJSON(r *http.Request, v any) error {
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return errf(http.StatusBadRequest, "request body: %v", err)
	}
	if _, err := d.Token(); err != io.EOF {
		return errf(http.StatusBadRequest, "request body: trailing data after the JSON object")
	}
	return nil
}

// app resolves {app}: id, product id or name.
func (s *Server) app(r *http.Request) (*fleet.App, error) {
	return s.appByKey(r, r.PathValue("app"))
}

// appByKey resolves an app id (braced or not, any case), product id or
// name.
func (s *Server) appByKey(r *http.Request, name string) (*fleet.App, error) {
	key := strings.ToLower(strings.Trim(name, "{}"))
	conf, err := s.config(r.Context())
	if err != nil {
		return nil, err
	}
	if a, ok := conf.App(key); ok {
		return a, nil
	}
	apps, err := s.st.ListApps(r.Context())
	if err != nil {
		return nil, err
	}
	for _, a := range apps {
		if strings.EqualFold(a.Name, key) || a.ID == key {
			return a, nil
		}
	}
	return nil, errf(http.StatusNotFound, "application %q not found", name)
}

func (s *Server) group(r *http.Request, a *fleet.App) (*fleet.Group, error) {
	return s.groupByKey(r, a, r.PathValue("group"))
}

// groupByKey resolves a group id or name; a is nil for every app (a
// name must then be unique).
func (s *Server) groupByKey(r *http.Request, a *fleet.App, key string) (*fleet.Group, error) {
	if a == nil {
		groups, err := s.st.ListGroups(r.Context(), "")
		if err != nil {
			return nil, err
		}
		var found *fleet.Group
		for _, g := range groups {
			if g.ID == key {
				return g, nil
			}
			if g.Name == key {
				if found != nil {
					return nil, errf(400, "group %q exists in several applications; pass app too", key)
				}
				found = g
			}
		}
		if found == nil {
			return nil, errf(http.StatusNotFound, "group %q not found", key)
		}
		return found, nil
	}
	groups, err := s.st.ListGroups(r.Context(), a.ID)
	if err != nil {
		return nil, err
	}
	for _, g := range groups {
		if g.ID == key || g.Name == key {
			return g, nil
		}
	}
	return nil, errf(http.StatusNotFound, "group %q not found in %s", key, a.Name)
}

func (s *Server) channel(r *http.Request, a *fleet.App, key string) (*fleet.Channel, error) {
	chans, err := s.st.ListChannels(r.Context(), a.ID)
	if err != nil {
		return nil, err
	}
	for _, c := range chans {
		if c.ID == key || c.Name == key {
			return c, nil
		}
	}
	return nil, errf(http.StatusNotFound, "channel %q not found in %s", key, a.Name)
}

func (s *Server) apiListApps(w http.ResponseWriter, r *http.Request) error {
	apps, err := s.st.ListApps(r.Context())
	if err != nil {
		return err
	}
	return writeJSON(w, 200, nonNil(apps))
}

func (s *Server) apiCreateApp(w http.ResponseWriter, r *http.Request) error {
	var a fleet.App
	if err := readJSON(r, &a); err != nil {
		return err
	}
	if a.Name == "" || len(a.Name) > 100 || strings.ContainsAny(a.Name, "/?#{} \t\n") {
		return errf(400, "application name %q: want 1–100 characters without / ? # { } or spaces", a.Name)
	}
	a.ID = strings.Trim(a.ID, "{}")
	if len(a.ID) > 64 || strings.ContainsAny(a.ID, "/?#{} \t\n") || len(a.ProductID) > 155 || strings.ContainsAny(a.ProductID, "/?#{} \t\n") {
		return errf(400, "application id or product id: at most 64 (155) characters without / ? # { } or spaces")
	}
	if a.Kind != "" && a.Kind != fleet.KindOS && a.Kind != fleet.KindExtension {
		return errf(400, "kind %q: want os or extension", a.Kind)
	}
	a.Created = time.Time{}
	if err := s.st.CreateApp(r.Context(), &a); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, http.StatusCreated, a)
}

func (s *Server) apiGetApp(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, a)
}

func (s *Server) apiCreatePackage(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	var p fleet.Package
	if err := readJSON(r, &p); err != nil {
		return err
	}
	p.AppID, p.ID, p.Created = a.ID, "", time.Time{}
	if err := validatePackage(&p); err != nil {
		return err
	}
	conf, err := s.config(r.Context())
	if err != nil {
		return err
	}
	for _, x := range p.Extras {
		if conf.Package(x) == nil {
			return errf(400, "extra package %s does not exist", x)
		}
	}
	// Blacklist entries may name a channel or give its id; stored are ids,
	// which is what promotion and every check compare against.
	for i, key := range p.Blacklist {
		c, err := s.channel(r, a, key)
		if err != nil {
			var he *httpError
			if errors.As(err, &he) {
				return errf(400, "blacklist: no channel %q in %s", key, a.Name)
			}
			return err
		}
		p.Blacklist[i] = c.ID
	}
	if err := s.st.CreatePackage(r.Context(), &p); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, http.StatusCreated, p)
}

func validatePackage(p *fleet.Package) error {
	switch {
	case !fleet.ValidVersion(p.Version):
		return errf(400, "package version %q is not a version (want digits first, e.g. 1.2.3)", p.Version)
	case p.URL == "" || !(strings.HasPrefix(p.URL, "http://") || strings.HasPrefix(p.URL, "https://")):
		return errf(400, "package url %q must be an http(s) codebase", p.URL)
	case p.Filename == "" || strings.ContainsAny(p.Filename, "/\\") || p.Filename == ".." || p.Filename == ".":
		return errf(400, "package filename %q must be a plain file name", p.Filename)
	case p.Size <= 0:
		return errf(400, "package size must be > 0 (update_engine refuses 0)")
	case len(p.SHA256) != 64 || !isHex(p.SHA256):
		return errf(400, "package sha256 must be 64 hex digits")
	case p.SHA1 == "":
		return errf(400, "package sha1 (base64) is required")
	}
	return nil
}

func isHex(s string) bool {
	_, err := hex.DecodeString(s)
	return err == nil
}

// ChannelRequest is the create/update form of a channel; Version picks
// the package by version (for promote) as an alternative to PackageID.
// On update, empty fields and nil Floors leave the channel's value.
type ChannelRequest struct {
	Name      string   `json:"name,omitempty"`
	Arch      string   `json:"arch,omitempty"`
	PackageID string   `json:"package_id,omitempty"`
	Version   string   `json:"version,omitempty"`
	Floors    []string `json:"floors"`
}

func (s *Server) resolvePackage(r *http.Request, a *fleet.App, arch, id, ver string) (string, error) {
	if id == "" && ver == "" {
		return "", nil
	}
	ps, err := s.st.ListPackages(r.Context(), a.ID)
	if err != nil {
		return "", err
	}
	for _, p := range ps {
		if (id != "" && p.ID == id) || (id == "" && p.Version == ver && (arch == "" || p.Arch == arch || p.Arch == "")) {
			return p.ID, nil
		}
	}
	return "", errf(404, "no package %s%s of %s for arch %q", id, ver, a.Name, arch)
}

func (s *Server) apiCreateChannel(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	var b ChannelRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Name == "" {
		return errf(400, "channel needs a name")
	}
	pid, err := s.resolvePackage(r, a, b.Arch, b.PackageID, b.Version)
	if err != nil {
		return err
	}
	c := fleet.Channel{AppID: a.ID, Name: b.Name, Arch: b.Arch, PackageID: pid, Floors: b.Floors}
	if err := s.st.CreateChannel(r.Context(), &c); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, http.StatusCreated, c)
}

// apiUpdateChannel promotes a version (or package) and sets floors; a
// package blacklisted on the channel cannot be promoted onto it.
func (s *Server) apiUpdateChannel(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	c, err := s.channel(r, a, r.PathValue("channel"))
	if err != nil {
		return err
	}
	var b ChannelRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.PackageID != "" || b.Version != "" {
		pid, err := s.resolvePackage(r, a, c.Arch, b.PackageID, b.Version)
		if err != nil {
			return err
		}
		conf, err := s.config(r.Context())
		if err != nil {
			return err
		}
		if p := conf.Package(pid); p != nil && p.BlacklistedOn(c.ID) {
			return errf(409, "package %s is blacklisted on channel %s", p.Version, c.Name)
		}
		old := c.PackageID
		c.PackageID = pid
		if old != pid {
			_ = s.st.AddActivity(r.Context(), fleet.Activity{AppID: a.ID, Version: b.Version, Severity: fleet.SeverityInfo,
				Message: fmt.Sprintf("channel %s now points at %s", c.Name, versionOf(conf, pid))})
		}
	}
	if b.Floors != nil {
		conf, err := s.config(r.Context())
		if err != nil {
			return err
		}
		for _, f := range b.Floors {
			p := conf.Package(f)
			switch {
			case p == nil || p.AppID != a.ID:
				return errf(400, "floor %s is not a package of %s", f, a.Name)
			case p.BlacklistedOn(c.ID):
				return errf(409, "package %s is blacklisted on channel %s and cannot be its floor", p.Version, c.Name)
			}
		}
		c.Floors = b.Floors
	}
	if b.Name != "" {
		c.Name = b.Name
	}
	if err := s.st.UpdateChannel(r.Context(), c); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, 200, c)
}

func versionOf(conf *fleet.Config, pid string) string {
	if p := conf.Package(pid); p != nil {
		return p.Version
	}
	return pid
}

// GroupRequest is the create/update form of a group; Channel may be a
// name. On update, empty fields and a nil Policy leave the group's value.
type GroupRequest struct {
	Name    string        `json:"name,omitempty"`
	Track   string        `json:"track,omitempty"`
	Arch    string        `json:"arch,omitempty"`
	Channel string        `json:"channel,omitempty"`
	Policy  *fleet.Policy `json:"policy,omitempty"`
}

func (s *Server) apiCreateGroup(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	var b GroupRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Name == "" {
		return errf(400, "group needs a name")
	}
	if b.Track == "" {
		b.Track = b.Name
	}
	g := fleet.Group{AppID: a.ID, Name: b.Name, Track: b.Track, Arch: b.Arch, Policy: fleet.DefaultPolicy()}
	if b.Policy != nil {
		g.Policy = *b.Policy
	}
	if err := g.Policy.Validate(); err != nil {
		return errf(400, "%v", err)
	}
	if b.Channel != "" {
		c, err := s.channel(r, a, b.Channel)
		if err != nil {
			return err
		}
		g.ChannelID = c.ID
	}
	if err := s.st.CreateGroup(r.Context(), &g); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, http.StatusCreated, g)
}

// GroupView is a group with its rollout counters and breakdowns
// (GET /api/apps/{app}/groups/{group}).
type GroupView struct {
	*fleet.Group
	Rollout  fleet.Rollout `json:"rollout"`
	Target   string        `json:"target,omitempty"`
	Versions []store.Count `json:"versions"`
	Statuses []store.Count `json:"statuses"`
}

func (s *Server) groupView(r *http.Request, g *fleet.Group) (*GroupView, error) {
	ctx := r.Context()
	v := &GroupView{Group: g}
	var err error
	if v.Rollout, err = s.st.Rollout(ctx, g.ID); err != nil {
		return nil, err
	}
	alive := s.cfg.Now().Add(-s.cfg.AliveWindow)
	if v.Versions, err = s.st.VersionBreakdown(ctx, g.ID, alive); err != nil {
		return nil, err
	}
	if v.Statuses, err = s.st.StatusBreakdown(ctx, g.ID, alive); err != nil {
		return nil, err
	}
	if conf, err := s.config(ctx); err == nil {
		if _, t := conf.Target(g); t != nil {
			v.Target = t.Version
		}
	}
	v.Versions, v.Statuses = nonNil(v.Versions), nonNil(v.Statuses)
	return v, nil
}

func (s *Server) apiGetGroup(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	g, err := s.group(r, a)
	if err != nil {
		return err
	}
	v, err := s.groupView(r, g)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, v)
}

func (s *Server) apiUpdateGroup(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	g, err := s.group(r, a)
	if err != nil {
		return err
	}
	var b GroupRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Name != "" {
		g.Name = b.Name
	}
	if b.Track != "" {
		g.Track = b.Track
	}
	if b.Arch != "" {
		g.Arch = b.Arch
	}
	if b.Channel != "" {
		c, err := s.channel(r, a, b.Channel)
		if err != nil {
			return err
		}
		g.ChannelID = c.ID
	}
	if b.Policy != nil {
		if err := b.Policy.Validate(); err != nil {
			return errf(400, "%v", err)
		}
		g.Policy = *b.Policy
	}
	if err := s.st.UpdateGroup(r.Context(), g); err != nil {
		return err
	}
	s.invalidate()
	return writeJSON(w, 200, g)
}

func (s *Server) apiPause(pause bool) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.app(r)
		if err != nil {
			return err
		}
		g, err := s.group(r, a)
		if err != nil {
			return err
		}
		g.Policy.Paused = pause
		if err := s.st.UpdateGroup(r.Context(), g); err != nil {
			return err
		}
		word := "resumed"
		if pause {
			word = "paused"
		}
		_ = s.st.AddActivity(r.Context(), fleet.Activity{AppID: a.ID, GroupID: g.ID, Severity: fleet.SeverityWarning,
			Message: fmt.Sprintf("rollout in group %s %s by an administrator", g.Name, word)})
		s.invalidate()
		return writeJSON(w, 200, g)
	}
}

func instanceFilter(r *http.Request) (store.InstanceFilter, error) {
	q := r.URL.Query()
	f := store.InstanceFilter{Version: q.Get("version"), Search: q.Get("q"), Limit: 50}
	if st := q.Get("status"); st != "" {
		v, ok := fleet.ParseStatus(st)
		if !ok {
			return f, errf(400, "unknown status %q", st)
		}
		f.Status = v
	}
	if p := q.Get("limit"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 500 {
			return f, errf(400, "limit must be 1..500")
		}
		f.Limit = n
	}
	if p := q.Get("page"); p != "" {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 1_000_000 {
			return f, errf(400, "page must be a positive number")
		}
		f.Offset = (n - 1) * f.Limit
	}
	return f, nil
}

func (s *Server) apiListInstances(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	g, err := s.group(r, a)
	if err != nil {
		return err
	}
	f, err := instanceFilter(r)
	if err != nil {
		return err
	}
	f.AppID, f.GroupID = a.ID, g.ID
	list, total, err := s.st.ListInstances(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, InstancePage{Total: total, Instances: nonNil(list)})
}

func (s *Server) apiGetInstance(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	in, found, err := s.st.Instance(r.Context(), a.ID, r.PathValue("machine"))
	if err != nil {
		return err
	}
	if !found {
		return errf(404, "instance %q not found in %s", r.PathValue("machine"), a.Name)
	}
	evs, err := s.st.InstanceEvents(r.Context(), a.ID, in.MachineID, 200)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, InstanceDetail{Instance: in, Events: nonNil(evs)})
}

func (s *Server) apiPin(w http.ResponseWriter, r *http.Request) error {
	a, err := s.app(r)
	if err != nil {
		return err
	}
	var b PinRequest
	if err := readJSON(r, &b); err != nil {
		return err
	}
	if b.Version != "" && !fleet.ValidVersion(b.Version) {
		return errf(400, "version %q is not a version (want digits first, e.g. 1.2.3)", b.Version)
	}
	if b.Version != "" {
		// A pin to a version with no package would be ignored at check
		// time; say so now.
		ps, err := s.st.ListPackages(r.Context(), a.ID)
		if err != nil {
			return err
		}
		if !slices.ContainsFunc(ps, func(p *fleet.Package) bool { return p.Version == b.Version }) {
			return errf(404, "no package %s of %s to pin to (create it first: strata fleet package create)", b.Version, a.Name)
		}
	}
	if err := s.st.SetPinned(r.Context(), a.ID, r.PathValue("machine"), b.Version); err != nil {
		return err
	}
	return writeJSON(w, 200, Pin{MachineID: r.PathValue("machine"), Pinned: b.Version})
}

func (s *Server) apiActivity(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	// app and group are resolved like the path's {app} and {group}: id,
	// product id or name.
	var f store.ActivityFilter
	var a *fleet.App
	if key := q.Get("app"); key != "" {
		var err error
		if a, err = s.appByKey(r, key); err != nil {
			return err
		}
		f.AppID = a.ID
	}
	if key := q.Get("group"); key != "" {
		g, err := s.groupByKey(r, a, key)
		if err != nil {
			return err
		}
		f.GroupID = g.ID
	}
	if b := q.Get("before"); b != "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil {
			return errf(400, "before must be an activity id")
		}
		f.Before = n
	}
	acts, err := s.st.ListActivity(r.Context(), f)
	if err != nil {
		return err
	}
	return writeJSON(w, 200, nonNil(acts))
}

// appListing answers GET /api/apps/{app}/… with one of the app's lists.
func appListing[T any](s *Server, list func(ctx context.Context, appID string) ([]T, error)) func(http.ResponseWriter, *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		a, err := s.app(r)
		if err != nil {
			return err
		}
		items, err := list(r.Context(), a.ID)
		if err != nil {
			return err
		}
		return writeJSON(w, 200, nonNil(items))
	}
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
