package cli

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// strata serve with --repo and --data serves the repository and the fleet
// server on one address.
func TestServeRepositoryAndFleet(t *testing.T) {
	repoDir, data := t.TempDir(), t.TempDir()
	os.WriteFile(filepath.Join(repoDir, "SHA256SUMS"), []byte("x\n"), 0o644)
	cmd := exec.Command(strataBin, "serve", "--repo", repoDir, "--data", data, "--listen", "127.0.0.1:0")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() }()
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`http://(127\.0\.0\.1:\d+)/`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addr <- m[1]
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case <-time.After(30 * time.Second):
		t.Fatal("strata serve did not start")
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/SHA256SUMS"); code != 200 || body != "x\n" {
		t.Errorf("repository: %d %q", code, body)
	}
	if code, body := get("/metrics"); code != 200 || !strings.Contains(body, "# TYPE") {
		t.Errorf("metrics: %d %.200q", code, body)
	}
	req := `<?xml version="1.0" encoding="UTF-8"?><request protocol="3.0"><app appid="{e96281a6-d1af-4bde-9a0a-97b76e56dc57}" version="1.0.0" track="stable" machineid="m1"><updatecheck/></app></request>`
	resp, err := http.Post(base+"/v1/update/", "text/xml", strings.NewReader(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `<response protocol="3.0"`) {
		t.Errorf("omaha: %d %s", resp.StatusCode, body)
	}
	// FleetLock's paths reach the fleet server, not the repository at /.
	for _, ep := range []string{"pre-reboot", "steady-state"} {
		fl, _ := http.NewRequest("POST", base+"/v1/"+ep, strings.NewReader(`{"client_params":{"id":"m1","group":"default"}}`))
		fl.Header.Set("fleet-lock-protocol", "true")
		resp, err := http.DefaultClient.Do(fl)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("FleetLock %s: %d", ep, resp.StatusCode)
		}
	}
	if _, err := os.Stat(filepath.Join(data, "fleet.db")); err != nil {
		t.Errorf("no SQLite database in --data: %v", err)
	}
}

// startServe runs strata serve with args on a free port and returns its
// base URL and the start line.
func startServe(t *testing.T, args ...string) (base, startLine string) {
	t.Helper()
	cmd := exec.Command(strataBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); cmd.Wait() })
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`http://127\.0\.0\.1:\d+/`)
		for sc.Scan() {
			if re.MatchString(sc.Text()) {
				lines <- sc.Text()
			}
		}
	}()
	select {
	case l := <-lines:
		return strings.TrimSuffix(regexp.MustCompile(`http://127\.0\.0\.1:\d+/`).FindString(l), "/"), l
	case <-time.After(30 * time.Second):
		t.Fatal("strata serve did not start")
	}
	return "", ""
}

// Opening the server's address in a browser leads to the dashboard, unless
// a repository is served at /.
func TestServeRootLeadsToDashboard(t *testing.T) {
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base, _ := startServe(t, "--data", t.TempDir())
	res, err := noFollow.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusFound || res.Header.Get("Location") != "/ui/" {
		t.Fatalf("GET / without a repository: %d Location %q, want 302 to /ui/", res.StatusCode, res.Header.Get("Location"))
	}
	repoDir := t.TempDir()
	os.WriteFile(filepath.Join(repoDir, "SHA256SUMS"), []byte("x\n"), 0o644)
	base, _ = startServe(t, "--repo", repoDir, "--data", t.TempDir())
	res, err = noFollow.Get(base + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "SHA256SUMS") {
		t.Fatalf("GET / with a repository: %d %.300s, want the repository's index", res.StatusCode, b)
	}
}

// --data takes a directory: a PostgreSQL URL there is refused with the fix
// (not turned into a folder named after it), and no password reaches the
// terminal, whichever flag carries it.
func TestServeDSNsAreRedacted(t *testing.T) {
	const pw = "hunter2secret"
	cwd := t.TempDir()
	run := func(args ...string) result {
		t.Helper()
		cmd := exec.Command(strataBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
		cmd.Dir = cwd
		var o, e strings.Builder
		cmd.Stdout, cmd.Stderr = &o, &e
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatalf("serve %v kept running: %s", args, e.String())
		}
		return result{o.String(), e.String(), cmd.ProcessState.ExitCode()}
	}
	r := run("--data", "postgres://strata:"+pw+"@127.0.0.1:1/fleet?sslmode=disable")
	if r.code == 0 || !strings.Contains(r.stderr, "--database") || strings.Contains(r.stderr+r.stdout, pw) {
		t.Errorf("--data URL: exit %d, stderr %q; want a refusal naming --database and no password", r.code, r.stderr)
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 0 {
		t.Errorf("--data URL created %v in the working directory", ents[0].Name())
	}
	for _, dsn := range []string{
		"postgres://strata:" + pw + "@127.0.0.1:1/fleet?sslmode=disable",
		"postgres://strata@127.0.0.1:1/fleet?sslmode=disable&password=" + pw,
		"host=127.0.0.1 port=1 user=strata password=" + pw + " dbname=fleet sslmode=disable",
	} {
		r := run("--database", dsn)
		if r.code == 0 || strings.Contains(r.stderr+r.stdout, pw) {
			t.Errorf("--database %s: exit %d, output %q; want a failure without the password", dsn, r.code, r.stderr)
		}
	}
	if ents, _ := os.ReadDir(cwd); len(ents) != 0 {
		t.Errorf("--database created %v in the working directory", ents[0].Name())
	}
}
