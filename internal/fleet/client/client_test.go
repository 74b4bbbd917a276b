package client

import (
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
	"github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/omaha"
)

const osAppID = "e96281a6-d1af-4bde-9a0a-97b76e56dc57"

// serve runs the real fleet server (SQLite) on 127.0.0.1 and returns a
// client with a valid admin token and the server's base URL.
func serve(t *testing.T) (*Client, string) {
	t.Helper()
	s, err := web.New(web.Config{Database: filepath.Join(t.TempDir(), "fleet.db"),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Refresh: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s)
	t.Cleanup(func() { hs.Close(); s.Close() })
	tok, hash := web.NewToken()
	if _, err := s.Store().CreateToken(context.Background(), "test", hash); err != nil {
		t.Fatal(err)
	}
	return New(hs.URL, tok, nil), hs.URL
}

func pkg(ver, file, data string) fleet.Package {
	a, b := sha1.Sum([]byte(data)), sha256.Sum256([]byte(data))
	return fleet.Package{Version: ver, Arch: "amd64", URL: "http://127.0.0.1/repo/", Filename: file,
		Size: int64(len(data)), SHA1: base64.StdEncoding.EncodeToString(a[:]), SHA256: hex.EncodeToString(b[:])}
}

// must(f())(t) returns f's value or fails t with f's error.
func must[T any](v T, err error) func(*testing.T) T {
	return func(t *testing.T) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

func TestClientAppsAndPackages(t *testing.T) {
	c, _ := serve(t)
	ctx := context.Background()
	a := must(c.CreateApp(ctx, fleet.App{ID: osAppID, Name: "strata-os", ProductID: "io.strata.os"}))(t)
	if a.ID != osAppID || a.Kind != fleet.KindOS {
		t.Fatalf("CreateApp answered %+v", a)
	}
	d := must(c.CreateApp(ctx, fleet.App{Name: "docker", Kind: fleet.KindExtension}))(t)
	if d.ID == "" || d.Kind != fleet.KindExtension {
		t.Fatalf("CreateApp (generated id) answered %+v", d)
	}
	if _, err := c.CreateApp(ctx, fleet.App{Name: "docker", Kind: fleet.KindExtension}); !errors.Is(err, ErrConflict) {
		t.Fatalf("second docker app: %v, want ErrConflict", err)
	}
	apps := must(c.Apps(ctx))(t)
	if len(apps) != 2 {
		t.Fatalf("Apps: %+v", apps)
	}

	ext := must(c.AddPackage(ctx, "docker", pkg("27.0", "docker-27.0-x86-64.raw", "docker")))(t)
	if ext.ID == "" || ext.AppID != d.ID {
		t.Fatalf("AddPackage answered %+v", ext)
	}
	_, err := c.AddPackage(ctx, "docker", pkg("27.0", "docker-27.0-x86-64.raw", "docker"))
	var ae *APIError
	if !errors.Is(err, ErrConflict) || !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("duplicate package: %v, want HTTP 409", err)
	}
	p := pkg("2.0.0", "os-2.0.0.raw", "os")
	p.Extras = []string{ext.ID}
	osp := must(c.AddPackage(ctx, "io.strata.os", p))(t) // by product id
	if len(osp.Extras) != 1 || osp.Extras[0] != ext.ID {
		t.Fatalf("extras not kept: %+v", osp)
	}
	ps := must(c.Packages(ctx, "strata-os"))(t)
	if len(ps) != 1 || ps[0].ID != osp.ID {
		t.Fatalf("Packages: %+v", ps)
	}
	if id := must(c.PackageID(ctx, "docker", "27.0", "amd64"))(t); id != ext.ID {
		t.Fatalf("PackageID = %s, want %s", id, ext.ID)
	}
	if _, err := c.PackageID(ctx, "docker", "28.0", "amd64"); err == nil {
		t.Fatal("PackageID found a version that does not exist")
	}
	if _, err := c.Packages(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("packages of a missing app: %v, want ErrNotFound", err)
	}
}

// fleetSetup makes the OS app with 1.0.0 and 2.0.0, channel stable at
// 1.0.0 and group prod on it.
func fleetSetup(t *testing.T, c *Client) {
	t.Helper()
	ctx := context.Background()
	must(c.CreateApp(ctx, fleet.App{ID: osAppID, Name: "strata-os"}))(t)
	for _, v := range []string{"1.0.0", "2.0.0"} {
		must(c.AddPackage(ctx, "strata-os", pkg(v, "os-"+v+".raw", "os-"+v)))(t)
	}
	ch := must(c.CreateChannel(ctx, "strata-os", web.ChannelRequest{Name: "stable", Arch: "amd64", Version: "1.0.0"}))(t)
	if ch.ID == "" || ch.PackageID == "" {
		t.Fatalf("CreateChannel answered %+v", ch)
	}
	pol := fleet.DefaultPolicy()
	g := must(c.CreateGroup(ctx, "strata-os", web.GroupRequest{Name: "prod", Track: "stable", Arch: "amd64", Channel: "stable", Policy: &pol}))(t)
	if g.ChannelID != ch.ID || g.Track != "stable" {
		t.Fatalf("CreateGroup answered %+v", g)
	}
}

func TestClientChannelsAndGroups(t *testing.T) {
	c, _ := serve(t)
	ctx := context.Background()
	fleetSetup(t, c)
	ch := must(c.Promote(ctx, "strata-os", "stable", "2.0.0"))(t)
	want := must(c.PackageID(ctx, "strata-os", "2.0.0", "amd64"))(t)
	if ch.PackageID != want {
		t.Fatalf("Promote: channel on %s, want %s", ch.PackageID, want)
	}
	chs := must(c.Channels(ctx, "strata-os"))(t)
	if len(chs) != 1 || chs[0].PackageID != want {
		t.Fatalf("Channels: %+v", chs)
	}
	if _, err := c.Promote(ctx, "strata-os", "stable", "9.9.9"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("promote to a missing version: %v, want ErrNotFound", err)
	}

	pol := fleet.DefaultPolicy()
	pol.MaxConcurrent = 3
	g := must(c.SetPolicy(ctx, "strata-os", "prod", pol))(t)
	if g.Policy.MaxConcurrent != 3 || g.Track != "stable" {
		t.Fatalf("SetPolicy answered %+v", g)
	}
	if g = must(c.Pause(ctx, "strata-os", "prod"))(t); !g.Policy.Paused {
		t.Fatalf("Pause answered %+v", g)
	}
	gs := must(c.Groups(ctx, "strata-os"))(t)
	if len(gs) != 1 || !gs[0].Policy.Paused || gs[0].Policy.MaxConcurrent != 3 {
		t.Fatalf("Groups: %+v", gs)
	}
	if g = must(c.Resume(ctx, "strata-os", "prod"))(t); g.Policy.Paused {
		t.Fatalf("Resume answered %+v", g)
	}
	v := must(c.Group(ctx, "strata-os", "prod"))(t)
	if v.Group == nil || v.Name != "prod" || v.Target != "2.0.0" {
		t.Fatalf("Group answered %+v", v)
	}
	acts := must(c.Activity(ctx, ActivityQuery{App: "strata-os", Group: "prod"}))(t)
	if len(acts) < 2 {
		t.Fatalf("Activity for the pause and the resume: %+v", acts)
	}
	all := must(c.Activity(ctx, ActivityQuery{}))(t)
	if len(all) <= len(acts) { // the promotion is logged for the app, not the group
		t.Fatalf("Activity: %d entries, group's %d", len(all), len(acts))
	}
	older := must(c.Activity(ctx, ActivityQuery{Before: all[0].ID}))(t)
	if len(older) != len(all)-1 {
		t.Fatalf("Activity before %d: %d entries of %d", all[0].ID, len(older), len(all))
	}
}

func TestClientInstancesAndPin(t *testing.T) {
	c, base := serve(t)
	ctx := context.Background()
	fleetSetup(t, c)
	om := &omaha.Client{URL: base + "/v1/update"}
	for _, m := range []string{"m1", "m2", "x3"} {
		if _, err := om.Do(ctx, omaha.UpdateEngineRequest(osAppID, "1.0.0", "stable", m, "")); err != nil {
			t.Fatal(err)
		}
	}
	page := must(c.Instances(ctx, "strata-os", "prod", InstanceQuery{}))(t)
	if page.Total != 3 || len(page.Instances) != 3 {
		t.Fatalf("Instances: %+v", page)
	}
	page = must(c.Instances(ctx, "strata-os", "prod", InstanceQuery{Search: "m", Limit: 1, Page: 2}))(t)
	if page.Total != 2 || len(page.Instances) != 1 {
		t.Fatalf("Instances (search m, page 2 of 1): %+v", page)
	}
	if _, err := c.Instances(ctx, "strata-os", "prod", InstanceQuery{Status: "bogus"}); err == nil {
		t.Fatal("unknown status accepted")
	}
	pin := must(c.Pin(ctx, "strata-os", "m1", "1.0.0"))(t)
	if pin != (web.Pin{MachineID: "m1", Pinned: "1.0.0"}) {
		t.Fatalf("Pin answered %+v", pin)
	}
	d := must(c.Instance(ctx, "strata-os", "m1"))(t)
	if d.Instance.MachineID != "m1" || d.Instance.Pinned != "1.0.0" {
		t.Fatalf("Instance answered %+v", d.Instance)
	}
	if _, err := c.Pin(ctx, "strata-os", "m1", "3.0.0"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pin to a missing version: %v, want ErrNotFound", err)
	}
	if pin = must(c.Pin(ctx, "strata-os", "m1", ""))(t); pin.Pinned != "" {
		t.Fatalf("unpin answered %+v", pin)
	}
}

func TestClientAuth(t *testing.T) {
	_, base := serve(t)
	_, err := New(base, "strata_nope", nil).Apps(context.Background())
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || errors.Is(err, ErrConflict) {
		t.Fatalf("bad token: %v, want HTTP 401", err)
	}
}

// Reboot locks through the typed client, with a node taking a slot over
// the FleetLock endpoint in between.
func TestClientRebootLocks(t *testing.T) {
	c, base := serve(t)
	ctx := context.Background()
	if l := must(c.RebootLock(ctx, "workers"))(t); l.Max != fleet.DefaultRebootLockMax || len(l.Holders) != 0 {
		t.Fatalf("unknown group: %+v", l)
	}
	if l := must(c.SetRebootLockMax(ctx, "workers", 2))(t); l.Max != 2 {
		t.Fatalf("set max: %+v", l)
	}
	req, _ := http.NewRequest("POST", base+"/v1/pre-reboot", strings.NewReader(`{"client_params":{"id":"m1","group":"workers"}}`))
	req.Header.Set("fleet-lock-protocol", "true")
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("pre-reboot: %v %v", res, err)
	}
	res.Body.Close()
	ls := must(c.RebootLocks(ctx))(t)
	if len(ls) != 1 || ls[0].Group != "workers" || ls[0].Max != 2 || len(ls[0].Holders) != 1 || ls[0].Holders[0].ID != "m1" || ls[0].Holders[0].Since.IsZero() {
		t.Fatalf("list: %+v", ls)
	}
	if l := must(c.ReleaseRebootLock(ctx, "workers", "m1"))(t); len(l.Holders) != 0 {
		t.Fatalf("release: %+v", l)
	}
	if _, err := c.ReleaseRebootLock(ctx, "workers", "m1"); !errors.Is(err, web.ErrNotFound) {
		t.Fatalf("release of a non-holder: %v", err)
	}
	if _, err := c.SetRebootLockMax(ctx, "workers", -1); err == nil {
		t.Fatal("negative max accepted")
	}
}
