package web

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/store"
	"github.com/stratalinux/strata/internal/omaha"
)

const osAppID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"

type harness struct {
	srv   *Server
	http  *httptest.Server
	api   *Client
	omaha *omaha.Client
}

func newHarness(t *testing.T, dsn string) *harness {
	t.Helper()
	if dsn == "" {
		dsn = filepath.Join(t.TempDir(), "fleet.db")
	}
	s, err := New(Config{Database: dsn, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	tok, hash := NewToken()
	if _, err := s.Store().CreateToken(context.Background(), "test", hash); err != nil {
		t.Fatal(err)
	}
	return &harness{srv: s, http: hs, api: &Client{URL: hs.URL, Token: tok}, omaha: &omaha.Client{URL: hs.URL + "/v1/update"}}
}

func digest(data string) (sha1b64, sha256hex string) {
	a := sha1.Sum([]byte(data))
	b := sha256.Sum256([]byte(data))
	return base64.StdEncoding.EncodeToString(a[:]), hex.EncodeToString(b[:])
}

// setup creates the OS app with 1.0.0 and 2.0.0 (2.0.0 carrying an
// extension image), a stable channel at 2.0.0 and a group with policy p.
func (h *harness) setup(t *testing.T, p fleet.Policy) {
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.api.Do(ctx, "POST", "/api/apps", fleet.App{ID: osAppID, Name: "strata-os", ProductID: "io.strata.os"}, nil))
	must(h.api.Do(ctx, "POST", "/api/apps", fleet.App{Name: "docker", Kind: fleet.KindExtension}, nil))
	s1, s256 := digest("docker-27")
	var ext fleet.Package
	must(h.api.Do(ctx, "POST", "/api/apps/docker/packages", fleet.Package{Version: "27.0", Arch: "amd64", URL: "http://127.0.0.1/repo/",
		Filename: "docker-27.0-x86-64.raw", Size: 9, SHA1: s1, SHA256: s256}, &ext))
	for _, v := range []string{"1.0.0", "2.0.0"} {
		s1, s256 := digest("os-" + v)
		p := fleet.Package{Version: v, Arch: "amd64", URL: "http://127.0.0.1/repo", Filename: "os-" + v + ".gz", Size: 6, SHA1: s1, SHA256: s256}
		if v == "2.0.0" {
			p.Extras = []string{ext.ID}
		}
		must(h.api.Do(ctx, "POST", "/api/apps/strata-os/packages", p, nil))
	}
	must(h.api.Do(ctx, "POST", "/api/apps/strata-os/channels", map[string]any{"name": "stable", "arch": "amd64", "version": "2.0.0"}, nil))
	must(h.api.Do(ctx, "POST", "/api/apps/strata-os/groups", map[string]any{"name": "prod", "track": "stable", "arch": "amd64", "channel": "stable", "policy": p}, nil))
}

func (h *harness) check(t *testing.T, machine, ver, prev string) *omaha.ResponseApp {
	t.Helper()
	resp, err := h.omaha.Do(context.Background(), omaha.UpdateEngineRequest(osAppID, ver, "stable", machine, prev))
	if err != nil {
		t.Fatal(err)
	}
	return resp.Apps[0]
}

func (h *harness) event(t *testing.T, machine, ver string, ev omaha.Event) {
	t.Helper()
	resp, err := h.omaha.Do(context.Background(), omaha.EventRequest(osAppID, ver, "stable", machine, ev))
	if err != nil {
		t.Fatal(err)
	}
	if a := resp.Apps[0]; len(a.Events) != 1 || a.Events[0].Status != "ok" || a.UpdateCheck != nil {
		t.Fatalf("event answer: %+v", a)
	}
}

func TestUpdateEngineCycle(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	a := h.check(t, "m1", "1.0.0", "0.0.0.0")
	if a.Status != "ok" || a.Ping == nil || a.Ping.Status != "ok" || len(a.Events) != 1 || a.Events[0].Status != "ok" {
		t.Fatalf("app answer: %+v", a)
	}
	uc := a.UpdateCheck
	if uc == nil || uc.Status != "ok" || len(uc.URLs) != 1 || uc.URLs[0].Codebase != "http://127.0.0.1/repo/" || len(uc.Manifests) != 1 {
		t.Fatalf("updatecheck: %+v", uc)
	}
	m := uc.Manifests[0]
	s1, s256 := digest("os-2.0.0")
	raw, _ := hex.DecodeString(s256)
	if m.Version != "2.0.0" || m.Packages[0].Name != "os-2.0.0.gz" || m.Packages[0].Hash != s1 || m.Packages[0].Size != 6 || !m.Packages[0].Required {
		t.Fatalf("main package: %+v", m)
	}
	act := m.Actions[0]
	if act.Event != "postinstall" || act.SHA256 != base64.StdEncoding.EncodeToString(raw) || act.DisablePayloadBackoff != "true" {
		t.Fatalf("action: %+v", act)
	}
	_, e256 := digest("docker-27")
	if len(m.Packages) != 2 || m.Packages[1].HashSHA256 != e256 || m.Packages[1].Required || m.Packages[1].Name != "docker-27.0-x86-64.raw" {
		t.Fatalf("extension package: %+v", m.Packages)
	}
	for _, ev := range []omaha.Event{{Type: 13, Result: 1}, {Type: 14, Result: 1}, {Type: 3, Result: 1}} {
		h.event(t, "m1", "1.0.0", ev)
	}
	if a := h.check(t, "m1", "2.0.0", "1.0.0"); a.UpdateCheck.Status != "noupdate" {
		t.Fatalf("after reboot: %+v", a.UpdateCheck)
	}
	var got struct {
		Instance fleet.Instance      `json:"instance"`
		Events   []fleet.EventRecord `json:"events"`
	}
	if err := h.api.Do(context.Background(), "GET", "/api/apps/strata-os/instances/m1", nil, &got); err != nil {
		t.Fatal(err)
	}
	if got.Instance.Status != fleet.StatusComplete || got.Instance.Version != "2.0.0" || len(got.Events) != 4 {
		t.Fatalf("instance after cycle: %+v, %d events", got.Instance, len(got.Events))
	}
	var g GroupView
	if err := h.api.Do(context.Background(), "GET", "/api/apps/strata-os/groups/prod", nil, &g); err != nil {
		t.Fatal(err)
	}
	if g.Rollout.Succeeded != 1 || g.Rollout.InProgress != 0 || g.Target != "2.0.0" {
		t.Fatalf("rollout: %+v", g.Rollout)
	}
}

func TestThrottledNodeGetsNoupdate(t *testing.T) {
	h := newHarness(t, "")
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 1
	p.PollInterval = fleet.Duration(5 * time.Minute)
	h.setup(t, p)
	if a := h.check(t, "m1", "2.0.0", ""); a.UpdateCheck.Status != "noupdate" {
		t.Fatal("up-to-date node got an update")
	}
	if a := h.check(t, "m2", "1.0.0", ""); a.UpdateCheck.Status != "ok" {
		t.Fatalf("first node: %+v", a.UpdateCheck)
	}
	a := h.check(t, "m3", "1.0.0", "")
	if a.Status != "ok" || a.UpdateCheck.Status != "noupdate" || a.UpdateCheck.PollInterval != "300" {
		t.Fatalf("throttled answer: app %q %+v", a.Status, a.UpdateCheck)
	}
	// Pause and resume through the API.
	ctx := context.Background()
	if err := h.api.Do(ctx, "POST", "/api/apps/strata-os/groups/prod/pause", nil, nil); err != nil {
		t.Fatal(err)
	}
	h.event(t, "m2", "1.0.0", omaha.Event{Type: 3, Result: 0, ErrorCode: "268435465"})
	time.Sleep(60 * time.Millisecond)
	if a := h.check(t, "m3", "1.0.0", ""); a.UpdateCheck.Status != "noupdate" {
		t.Fatal("paused group granted")
	}
	if err := h.api.Do(ctx, "POST", "/api/apps/strata-os/groups/prod/resume", nil, nil); err != nil {
		t.Fatal(err)
	}
	if a := h.check(t, "m3", "1.0.0", ""); a.UpdateCheck.Status != "ok" {
		t.Fatalf("resumed group: %+v", a.UpdateCheck)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	post := func(path, body string) (int, string) {
		res, err := http.Post(h.http.URL+path, "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := post("/v1/update", "<request"); code != 400 {
		t.Errorf("malformed: %d", code)
	}
	if code, _ := post("/v1/update", `<request protocol="3.0"><app appid="x"/>`+strings.Repeat(" ", 70000)+`</request>`); code != 413 {
		t.Errorf("oversized: %d", code)
	}
	if code, _ := post("/v1/update/guess", `<request protocol="3.0"><app appid="x"/></request>`); code != 404 {
		t.Errorf("secret path without a secret configured: %d", code)
	}
	cases := map[string]string{
		"unknown app":     `<app appid="{00000000-0000-0000-0000-000000000000}" version="1.0.0" track="stable" machineid="a"><updatecheck/></app>`,
		"unknown track":   `<app appid="{` + osAppID + `}" version="1.0.0" track="nightly" machineid="a"><updatecheck/></app>`,
		"invalid version": `<app appid="` + strings.ToUpper(osAppID) + `" version="1.0.0 beta" track="stable" machineid="a"><updatecheck/></app>`,
		"product id":      `<app appid="io.strata.os" version="2.0.0" track="stable" machineid="a"><updatecheck/></app>`,
	}
	for name, app := range cases {
		code, body := post("/v1/update", `<request protocol="3.0">`+app+`</request>`)
		if code != 200 || !strings.Contains(body, `<updatecheck status="noupdate">`) {
			t.Errorf("%s: %d %s", name, code, body)
		}
	}
	// Unauthenticated admin calls.
	bad := &Client{URL: h.http.URL, Token: "strata_nope"}
	err := bad.Do(context.Background(), "GET", "/api/apps", nil, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 401 {
		t.Errorf("bad token: %v", err)
	}
	err = h.api.Do(context.Background(), "POST", "/api/apps/strata-os/packages", map[string]any{"version": "3.0.0", "url": "file:///etc/", "filename": "../x"}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 400 {
		t.Errorf("bad package: %v", err)
	}
}

func TestSecretPath(t *testing.T) {
	s, err := New(Config{Database: filepath.Join(t.TempDir(), "f.db"), OmahaSecret: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s)
	defer hs.Close()
	body := `<request protocol="3.0"><app appid="x" version="1" machineid="m"><ping/></app></request>`
	for path, want := range map[string]int{"/v1/update": 404, "/v1/update/other": 404, "/v1/update/s3cret": 200} {
		res, err := http.Post(hs.URL+path, "text/xml", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != want {
			t.Errorf("%s: %d, want %d", path, res.StatusCode, want)
		}
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	h.check(t, "m1", "1.0.0", "")
	h.check(t, "m2", "2.0.0", "")
	h.event(t, "m1", "1.0.0", omaha.Event{Type: 3, Result: 0, ErrorCode: "268435477"})
	res, err := http.Get(h.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{
		`strata_fleet_update_checks_total{result="granted"} 1`,
		`strata_fleet_update_checks_total{result="noupdate"} 1`,
		`strata_fleet_grants_total 1`,
		`strata_fleet_update_errors_total{code="21"} 1`,
		`strata_fleet_instances{app="strata-os",status="error",version="1.0.0"} 1`,
		`strata_fleet_request_duration_seconds_bucket{endpoint="omaha"`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestStoreGoneGives503(t *testing.T) {
	st, err := store.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "f.db"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Refresh: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	hs := httptest.NewServer(s)
	defer hs.Close()
	tok, hash := NewToken()
	if _, err := st.CreateToken(context.Background(), "t", hash); err != nil {
		t.Fatal(err)
	}
	h := &harness{srv: s, http: hs, api: &Client{URL: hs.URL, Token: tok}, omaha: &omaha.Client{URL: hs.URL + "/v1/update"}}
	h.setup(t, fleet.DefaultPolicy())
	h.check(t, "m1", "1.0.0", "")
	st.Close() // the database goes away under the running server
	_, err = h.omaha.Do(context.Background(), omaha.UpdateEngineRequest(osAppID, "1.0.0", "stable", "m2", ""))
	var he *omaha.HTTPError
	if !errors.As(err, &he) || he.Status != http.StatusServiceUnavailable {
		t.Fatalf("check with the store gone: %v, want HTTP 503", err)
	}
	err = h.api.Do(context.Background(), "GET", "/api/apps", nil, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != http.StatusServiceUnavailable {
		t.Fatalf("API with the store gone: %v", err)
	}
}

// Two replicas on one PostgreSQL: the concurrency limit holds exactly.
func TestReplicasHoldLimits(t *testing.T) {
	dsn := pgDSN(t)
	a := newHarness(t, dsn)
	p := fleet.DefaultPolicy()
	p.MaxConcurrent = 10
	a.setup(t, p)
	b := newHarness(t, dsn)
	var mu sync.Mutex
	granted := 0
	var wg sync.WaitGroup
	for i := 0; i < 120; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			h := a
			if i%2 == 1 {
				h = b
			}
			resp, err := h.omaha.Do(context.Background(), omaha.UpdateEngineRequest(osAppID, "1.0.0", "stable", fmt.Sprintf("node%03d", i), ""))
			if err != nil {
				t.Error(err)
				return
			}
			if resp.Apps[0].UpdateCheck.Status == "ok" {
				mu.Lock()
				granted++
				mu.Unlock()
			}
		}(i)
	}
	wg.Wait()
	var g GroupView
	if err := b.api.Do(context.Background(), "GET", "/api/apps/strata-os/groups/prod", nil, &g); err != nil {
		t.Fatal(err)
	}
	if granted != 10 || g.Rollout.InProgress != 10 || g.Rollout.Granted != 10 {
		t.Fatalf("granted %d across two replicas, counters %+v; want exactly 10", granted, g.Rollout)
	}
}

func TestPinHoldsInstance(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	ctx := context.Background()
	h.check(t, "pinned", "0.9.0", "")
	if err := h.api.Do(ctx, "PUT", "/api/apps/strata-os/instances/pinned/pin", map[string]string{"version": "1.0.0"}, nil); err != nil {
		t.Fatal(err)
	}
	// A node pinned to 1.0.0 is updated to 1.0.0, not to the channel's 2.0.0 …
	a := h.check(t, "pinned", "0.9.0", "")
	if a.UpdateCheck.Status != "ok" || a.UpdateCheck.Manifests[0].Version != "1.0.0" {
		t.Fatalf("pinned node: %+v", a.UpdateCheck)
	}
	h.event(t, "pinned", "0.9.0", omaha.Event{Type: 3, Result: 1})
	// … and stays there.
	if a := h.check(t, "pinned", "1.0.0", "0.9.0"); a.UpdateCheck.Status != "noupdate" {
		t.Fatalf("pinned node after its update: %+v", a.UpdateCheck)
	}
	if err := h.api.Do(ctx, "PUT", "/api/apps/strata-os/instances/pinned/pin", map[string]string{"version": ""}, nil); err != nil {
		t.Fatal(err)
	}
	if a := h.check(t, "pinned", "1.0.0", ""); a.UpdateCheck.Status != "ok" || a.UpdateCheck.Manifests[0].Version != "2.0.0" {
		t.Fatalf("unpinned node: %+v", a.UpdateCheck)
	}
}

// A browser pointed at the server's address lands on the dashboard.
func TestRootRedirectsToDashboard(t *testing.T) {
	h := newHarness(t, "")
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := noFollow.Get(h.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET /: %d Location %q, want 302 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	if body := get(t, h.http.URL+"/"); !strings.Contains(body, "Strata fleet") {
		t.Fatalf("GET / followed: %.300s", body)
	}
	res, err = http.Get(h.http.URL + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("GET /nope: %d, want 404", res.StatusCode)
	}
}

// A version that is not a version is refused where nodes report one
// (error-invalidVersion, noupdate, nothing stored) and where an admin
// creates a package or pins an instance.
func TestNotAVersionIsRefused(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	ctx := context.Background()
	for _, v := range []string{"notaversion", "latest", "v2"} {
		a := h.check(t, "bogus", v, "")
		if a.Status != omaha.StatusInvalidVersion || a.UpdateCheck == nil || a.UpdateCheck.Status != "noupdate" {
			t.Errorf("check with version %q: app %q, updatecheck %+v; want error-invalidVersion and noupdate", v, a.Status, a.UpdateCheck)
		}
	}
	err := h.api.Do(ctx, "GET", "/api/apps/strata-os/instances/bogus", nil, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 404 {
		t.Errorf("an instance with an invalid version was stored: %v", err)
	}
	s1, s256 := digest("x")
	err = h.api.Do(ctx, "POST", "/api/apps/strata-os/packages", fleet.Package{Version: "notaversion", Arch: "amd64", URL: "http://127.0.0.1/",
		Filename: "x.raw", Size: 1, SHA1: s1, SHA256: s256}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 400 || !strings.Contains(ae.Error(), "notaversion") {
		t.Errorf("package notaversion: %v, want 400 naming it", err)
	}
	h.check(t, "m1", "1.0.0", "")
	err = h.api.Do(ctx, "PUT", "/api/apps/strata-os/instances/m1/pin", map[string]string{"version": "notaversion"}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 400 {
		t.Errorf("pin notaversion: %v, want 400", err)
	}
	// Versions as images carry them still pass.
	for _, v := range []string{"27.1", "3815.2.0", "1.0.0-rc1", "2.0.0+git5"} {
		if !fleet.ValidVersion(v) {
			t.Errorf("%q refused", v)
		}
	}
}

// A pin works on a channel created without an architecture (the default),
// replaces the grant the node already holds, and leaves the channel's
// rollout counters with nothing stuck.
func TestPinOnAnyArchChannelReplacesGrant(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	ctx := context.Background()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.api.Do(ctx, "POST", "/api/apps/strata-os/channels", map[string]any{"name": "any", "version": "2.0.0"}, nil))
	must(h.api.Do(ctx, "POST", "/api/apps/strata-os/groups", map[string]any{"name": "edge", "track": "edge", "channel": "any"}, nil))
	check := func(ver, prev string) *omaha.ResponseUpdateCheck {
		t.Helper()
		resp, err := h.omaha.Do(ctx, omaha.UpdateEngineRequest(osAppID, ver, "edge", "m1", prev))
		if err != nil {
			t.Fatal(err)
		}
		return resp.Apps[0].UpdateCheck
	}
	if uc := check("0.9.0", ""); uc.Status != "ok" || uc.Manifests[0].Version != "2.0.0" {
		t.Fatalf("first check: %+v", uc)
	}
	must(h.api.Do(ctx, "PUT", "/api/apps/strata-os/instances/m1/pin", map[string]string{"version": "1.0.0"}, nil))
	time.Sleep(60 * time.Millisecond)
	if uc := check("0.9.0", ""); uc.Status != "ok" || uc.Manifests[0].Version != "1.0.0" {
		t.Fatalf("check after the pin: %+v, want 1.0.0", uc)
	}
	var g GroupView
	must(h.api.Do(ctx, "GET", "/api/apps/strata-os/groups/edge", nil, &g))
	if g.Rollout.InProgress != 1 || g.Rollout.Target != "2.0.0" || g.Rollout.Granted != 1 {
		t.Fatalf("counters after the pin replaced the grant: %+v", g.Rollout)
	}
	for _, ev := range []omaha.Event{{Type: 13, Result: 1}, {Type: 14, Result: 1}, {Type: 3, Result: 1}} {
		resp, err := h.omaha.Do(ctx, omaha.EventRequest(osAppID, "0.9.0", "edge", "m1", ev))
		if err != nil || resp.Apps[0].Events[0].Status != "ok" {
			t.Fatal(err)
		}
	}
	if uc := check("1.0.0", "0.9.0"); uc.Status != "noupdate" {
		t.Fatalf("pinned node after its update: %+v", uc)
	}
	must(h.api.Do(ctx, "GET", "/api/apps/strata-os/groups/edge", nil, &g))
	if g.Rollout.InProgress != 0 || g.Rollout.Target != "2.0.0" || g.Rollout.Granted != 1 || g.Rollout.Failed != 0 {
		t.Fatalf("counters after the pinned update: %+v, want nothing in progress", g.Rollout)
	}
	err := h.api.Do(ctx, "PUT", "/api/apps/strata-os/instances/m1/pin", map[string]string{"version": "9.9.9"}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 404 {
		t.Fatalf("pin to a version without a package: %v, want 404", err)
	}
}

// A node granted an update in one group that reports its events under
// another track: the events count for the group that granted the update,
// so its "in progress" is released and the other group is untouched.
func TestEventsCountForTheGrantingGroup(t *testing.T) {
	for name, dsn := range map[string]func(*testing.T) string{"sqlite": func(*testing.T) string { return "" }, "postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, dsn(t))
			h.setup(t, fleet.DefaultPolicy())
			ctx := context.Background()
			if err := h.api.Do(ctx, "POST", "/api/apps/strata-os/groups", map[string]any{"name": "beta", "track": "beta", "arch": "amd64", "channel": "stable"}, nil); err != nil {
				t.Fatal(err)
			}
			if a := h.check(t, "m1", "1.0.0", ""); a.UpdateCheck.Status != "ok" {
				t.Fatalf("grant in prod: %+v", a.UpdateCheck)
			}
			do := func(req *omaha.Request) *omaha.ResponseApp {
				t.Helper()
				resp, err := h.omaha.Do(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				return resp.Apps[0]
			}
			for _, ev := range []omaha.Event{{Type: 13, Result: 1}, {Type: 14, Result: 1}, {Type: 3, Result: 1}} {
				do(omaha.EventRequest(osAppID, "1.0.0", "beta", "m1", ev))
			}
			if a := do(omaha.UpdateEngineRequest(osAppID, "2.0.0", "beta", "m1", "1.0.0")); a.UpdateCheck.Status != "noupdate" {
				t.Fatalf("check after the reboot: %+v", a.UpdateCheck)
			}
			var prod, beta GroupView
			if err := h.api.Do(ctx, "GET", "/api/apps/strata-os/groups/prod", nil, &prod); err != nil {
				t.Fatal(err)
			}
			if err := h.api.Do(ctx, "GET", "/api/apps/strata-os/groups/beta", nil, &beta); err != nil {
				t.Fatal(err)
			}
			if r := prod.Rollout; r.InProgress != 0 || r.Granted != 1 || r.Succeeded != 1 {
				t.Errorf("granting group prod: %+v, want in progress 0, granted 1, succeeded 1", r)
			}
			if r := beta.Rollout; r.InProgress != 0 || r.Granted != 0 || r.Succeeded != 0 || r.Failed != 0 {
				t.Errorf("group beta counted another group's update: %+v", r)
			}
		})
	}
}

// A package blacklisted on a channel (named as the CLI lets users name
// it) is never served there: not by promoting it, not as a floor, not at
// check time.
func TestBlacklistedPackageNeverServed(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	ctx := context.Background()
	s1, s256 := digest("os-2.1.0")
	var bad fleet.Package
	err := h.api.Do(ctx, "POST", "/api/apps/strata-os/packages", fleet.Package{Version: "2.1.0", Arch: "amd64", URL: "http://127.0.0.1/repo/",
		Filename: "os-2.1.0.gz", Size: 8, SHA1: s1, SHA256: s256, Blacklist: []string{"stable"}}, &bad)
	if err != nil {
		t.Fatal(err)
	}
	err = h.api.Do(ctx, "PUT", "/api/apps/strata-os/channels/stable", map[string]any{"version": "2.1.0"}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 409 {
		t.Errorf("promoting a package blacklisted on the channel by name: %v, want 409", err)
	}
	err = h.api.Do(ctx, "PUT", "/api/apps/strata-os/channels/stable", map[string]any{"floors": []string{bad.ID}}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 409 {
		t.Errorf("a blacklisted floor: %v, want 409", err)
	}
	time.Sleep(60 * time.Millisecond)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		if a := h.check(t, "m-"+v, v, ""); a.UpdateCheck.Status == "ok" && a.UpdateCheck.Manifests[0].Version == "2.1.0" {
			t.Errorf("node at %s was served the blacklisted 2.1.0", v)
		}
	}
	err = h.api.Do(ctx, "POST", "/api/apps/strata-os/packages", fleet.Package{Version: "2.2.0", Arch: "amd64", URL: "http://127.0.0.1/repo/",
		Filename: "os-2.2.0.gz", Size: 8, SHA1: s1, SHA256: s256, Blacklist: []string{"nosuchchannel"}}, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 400 || !strings.Contains(ae.Error(), "nosuchchannel") {
		t.Errorf("blacklist naming no channel: %v, want 400 naming it", err)
	}
}

// The activity API takes an app by id, product id or name (as every other
// endpoint does) and a group by id or name.
func TestActivityFilterByAppName(t *testing.T) {
	h := newHarness(t, "")
	h.setup(t, fleet.DefaultPolicy())
	ctx := context.Background()
	h.check(t, "m1", "1.0.0", "") // rollout of 2.0.0 started
	if err := h.api.Do(ctx, "POST", "/api/apps/docker/channels", map[string]any{"name": "ext", "version": "27.0"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := h.api.Do(ctx, "PUT", "/api/apps/docker/channels/ext", map[string]any{"version": "27.0", "floors": []string{}}, nil); err != nil {
		t.Fatal(err)
	}
	var all []fleet.Activity
	if err := h.api.Do(ctx, "GET", "/api/activity", nil, &all); err != nil || len(all) == 0 {
		t.Fatalf("all activity: %v %d", err, len(all))
	}
	for _, key := range []string{"strata-os", osAppID, "io.strata.os", strings.ToUpper(osAppID)} {
		var got []fleet.Activity
		if err := h.api.Do(ctx, "GET", "/api/activity?app="+key, nil, &got); err != nil {
			t.Fatalf("app=%s: %v", key, err)
		}
		if len(got) == 0 {
			t.Errorf("app=%s: no activity", key)
		}
		for _, a := range got {
			if a.AppID != osAppID {
				t.Errorf("app=%s: entry of app %s: %s", key, a.AppID, a.Message)
			}
		}
	}
	var byGroup []fleet.Activity
	if err := h.api.Do(ctx, "GET", "/api/activity?app=strata-os&group=prod", nil, &byGroup); err != nil || len(byGroup) == 0 {
		t.Errorf("group=prod: %v %d", err, len(byGroup))
	}
	err := h.api.Do(ctx, "GET", "/api/activity?app=nope", nil, nil)
	if ae, ok := err.(*APIError); !ok || ae.Status != 404 {
		t.Errorf("unknown app: %v, want 404", err)
	}
}
