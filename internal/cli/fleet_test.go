package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
	"github.com/stratalinux/strata/internal/omaha"
)

func TestFleetCommands(t *testing.T) {
	hs, _, fl := fleetFixture(t)

	// A published repository: images and systemd's SHA256SUMS.
	repo := t.TempDir()
	var sums strings.Builder
	for name, body := range map[string]string{"strata-os-2.0.0-x86-64.raw": "os two", "docker-27.0.1-x86-64.raw": "docker"} {
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(body))
		fmt.Fprintf(&sums, "%s *%s\n", hex.EncodeToString(h[:]), name)
	}
	if err := os.WriteFile(filepath.Join(repo, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out := fl("import", "--repo", repo, "--url", "http://127.0.0.1/repo/", "--os", "strata-os")
	if !strings.Contains(out, "imported strata-os 2.0.0") || !strings.Contains(out, "imported docker 27.0.1") {
		t.Fatalf("import: %s", out)
	}
	if out := fl("import", "--repo", repo, "--url", "http://127.0.0.1/repo/", "--os", "strata-os"); strings.Contains(out, "imported") {
		t.Fatalf("second import re-imported: %s", out)
	}
	var pkgs []struct {
		Version string   `json:"version"`
		Extras  []string `json:"extras"`
	}
	if err := json.Unmarshal([]byte(fl("package", "list", "--app", "strata-os", "--json")), &pkgs); err != nil || len(pkgs) != 1 || len(pkgs[0].Extras) != 1 {
		t.Fatalf("os package should carry the docker image: %v %+v", err, pkgs)
	}
	fl("channel", "create", "stable", "--app", "strata-os", "--version", "2.0.0")
	fl("group", "create", "prod", "--app", "strata-os", "--track", "stable", "--channel", "stable", "--max-concurrent", "5", "--poll-interval", "1m")
	var apps []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(fl("app", "list", "--json")), &apps); err != nil {
		t.Fatal(err)
	}
	osID := ""
	for _, a := range apps {
		if a.Name == "strata-os" {
			osID = a.ID
		}
	}
	out = fl("simulate", "--app", osID, "--instances", "40", "--concurrency", "4", "--interval", "0", "--checks", "400", "--failure-rate", "0", "--duration", "30s")
	if !strings.Contains(out, "0 errors") {
		t.Fatalf("simulate: %s", out)
	}
	var g struct {
		Rollout struct {
			Succeeded int `json:"succeeded"`
		} `json:"rollout"`
	}
	if err := json.Unmarshal([]byte(fl("group", "show", "prod", "--app", "strata-os", "--json")), &g); err != nil || g.Rollout.Succeeded == 0 {
		t.Fatalf("group show: %v %+v", err, g)
	}
	if out := fl("pause", "prod", "--app", "strata-os"); !strings.Contains(out, "paused") {
		t.Fatalf("pause: %s", out)
	}
	if out := fl("instances", "--app", "strata-os", "--group", "prod", "--status", "complete", "--limit", "5"); strings.Count(out, "\n") != 6 {
		t.Fatalf("instances page: %q", out)
	}
	// Errors are one line naming the fix.
	_, errOut, code := runCLI(t, "fleet", "app", "list", "--server", hs.URL)
	if code == 0 || !strings.Contains(errOut, "token create") {
		t.Fatalf("missing token: %d %s", code, errOut)
	}
	_, errOut, code = runCLI(t, "fleet", "app", "list", "--server", hs.URL, "--token", "wrong")
	if code == 0 || !strings.Contains(errOut, "invalid bearer token") {
		t.Fatalf("bad token: %d %s", code, errOut)
	}
}

// strata fleet pin as a user runs it: a channel created without --arch,
// a node already granted the channel's version, pinned to an older one.
func TestFleetPinOnDefaultChannel(t *testing.T) {
	hs, _, fl := fleetFixture(t)
	repo := t.TempDir()
	var sums strings.Builder
	for _, v := range []string{"1.0.0", "2.0.0"} {
		name, body := "strata-os-"+v+"-x86-64.raw", "os "+v
		if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		h := sha256.Sum256([]byte(body))
		fmt.Fprintf(&sums, "%s *%s\n", hex.EncodeToString(h[:]), name)
	}
	if err := os.WriteFile(filepath.Join(repo, "SHA256SUMS"), []byte(sums.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	fl("import", "--repo", repo, "--url", "http://127.0.0.1/repo/", "--os", "strata-os")
	fl("channel", "create", "stable", "--app", "strata-os", "--version", "2.0.0")
	fl("group", "create", "prod", "--app", "strata-os", "--track", "stable", "--channel", "stable")
	var apps []struct{ ID, Name string }
	if err := json.Unmarshal([]byte(fl("app", "list", "--json")), &apps); err != nil || len(apps) != 1 {
		t.Fatal(err, apps)
	}
	oc := &omaha.Client{URL: hs.URL + "/v1/update"}
	check := func() string {
		t.Helper()
		resp, err := oc.Do(context.Background(), omaha.UpdateEngineRequest(apps[0].ID, "0.9.0", "stable", "m1", ""))
		if err != nil {
			t.Fatal(err)
		}
		if uc := resp.Apps[0].UpdateCheck; uc.Status == "ok" {
			return uc.Manifests[0].Version
		}
		return "noupdate"
	}
	if v := check(); v != "2.0.0" {
		t.Fatalf("first check: %s", v)
	}
	fl("pin", "m1", "1.0.0", "--app", "strata-os")
	time.Sleep(50 * time.Millisecond)
	if v := check(); v != "1.0.0" {
		t.Fatalf("check after strata fleet pin m1 1.0.0: %s, want 1.0.0", v)
	}
}

// strata fleet import reads SHA256SUMS as systemd-sysupdate does: a
// manifest sysupdate refuses (no final newline, a name listed twice) is
// refused, and nothing is registered.
func TestFleetImportStrictManifest(t *testing.T) {
	hs, tok, _ := fleetFixture(t)
	repo := t.TempDir()
	name, body := "docker-27.0.1-x86-64.raw", "docker"
	if err := os.WriteFile(filepath.Join(repo, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256([]byte(body))
	line := hex.EncodeToString(h[:]) + " *" + name
	for manifest, want := range map[string]string{
		line:                      "last line does not end in a newline",
		line + "\n" + line + "\n": "listed twice",
	} {
		if err := os.WriteFile(filepath.Join(repo, "SHA256SUMS"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := runCLI(t, "fleet", "import", "--repo", repo, "--url", "http://127.0.0.1/repo/", "--server", hs.URL, "--token", tok)
		if code == 0 || !strings.Contains(errOut, repo+"/SHA256SUMS") || !strings.Contains(errOut, want) {
			t.Errorf("import of %q: exit %d, stdout %q, stderr %q; want a failure naming %s/SHA256SUMS: %s", manifest, code, out, errOut, repo, want)
		}
	}
	out, _, _ := runCLI(t, "fleet", "app", "list", "--json", "--server", hs.URL, "--token", tok)
	if strings.TrimSpace(out) != "[]" {
		t.Fatalf("a refused import registered applications: %s", out)
	}
}

// fleetFixture runs a fleet server on a private database for the test and creates an admin token;
// fl runs `strata fleet ARGS --server URL --token TOKEN` and fails the test on a non-zero exit.
func fleetFixture(t *testing.T) (hs *httptest.Server, tok string, fl func(args ...string) string) {
	t.Helper()
	data := t.TempDir()
	srv, err := fleetweb.New(fleetweb.Config{Database: filepath.Join(data, "fleet.db"), Refresh: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs = httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	out, errOut, code := runCLI(t, "fleet", "token", "create", "--data", data)
	if code != 0 {
		t.Fatalf("token create: %d %s", code, errOut)
	}
	tok = strings.TrimSpace(out)
	fl = func(args ...string) string {
		t.Helper()
		out, errOut, code := runCLI(t, append(append([]string{"fleet"}, args...), "--server", hs.URL, "--token", tok)...)
		if code != 0 {
			t.Fatalf("fleet %v: exit %d: %s", args, code, errOut)
		}
		return out
	}
	return hs, tok, fl
}
