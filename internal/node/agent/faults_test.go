package agent

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/omaha"
	"github.com/stratalinux/strata/internal/rootfs"
)

// A server that is down is asked once per backoff, and the backoff grows;
// a server's PollInterval sets the next check.
func TestAgentBacksOffAndObeysPollInterval(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	f := newFakeOmaha(t, nil)
	f.answer = func(string) []byte {
		return []byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate" PollInterval="600"></updatecheck></app></response>`)
	}
	n := e.node(t)
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	a.Omaha = nil
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	a.Omaha.URL = f.url + "/down"
	var last time.Duration
	for i := range 4 {
		f.mu.Lock()
		f.requests = 0
		f.mu.Unlock()
		before := time.Now()
		_, err := a.RunOnce(ctx, i == 0)
		if i == 0 && err == nil {
			t.Fatal("no error from a server that is down")
		}
		f.mu.Lock()
		reqs := f.requests
		f.mu.Unlock()
		if i == 0 && reqs != 1 || i > 0 && reqs != 0 {
			t.Fatalf("round %d: %d requests to a server that is down", i, reqs)
		}
		if i == 0 {
			last = a.Journal().NextCheck.Sub(before)
			if last < 4*time.Second || !strings.Contains(a.Journal().LastError, "update check") {
				t.Fatalf("backoff %v, error %q", last, a.Journal().LastError)
			}
		}
	}
	// Later failures wait longer (coord.Backoff doubles, ±20 %).
	j := a.Journal()
	j.NextCheck = time.Time{}
	a.j = j
	if _, err := a.RunOnce(ctx, false); err == nil {
		t.Fatal("second failure not reported")
	}
	if d := time.Until(a.Journal().NextCheck); d < last {
		t.Fatalf("second backoff %v not longer than the first %v", d, last)
	}
	// The server is back: PollInterval=600 sets the next check (±10 %).
	a.Omaha.URL = f.url + "/v1/update/"
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	if d := time.Until(a.Journal().NextCheck); d < 530*time.Second || d > 661*time.Second || a.Journal().Failures != 0 || a.Journal().LastError != "" {
		t.Fatalf("after noupdate with PollInterval=600: next in %v, %+v", d, a.Journal())
	}
}

// A payload server that dies or stalls half way: the attempt fails with
// update_engine's code 9, nothing is armed, and the next grant resumes the
// download from where it stopped (a Range request) and installs.
func TestAgentResumesAfterServerDiesMidDownload(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	sum := sha256.Sum256(e.payload)
	good := base64.StdEncoding.EncodeToString(sum[:])
	for _, mode := range []string{"dies", "stalls"} {
		t.Run(mode, func(t *testing.T) {
			f := newFakeOmaha(t, nil)
			f.answer = func(b string) []byte { return offerXML(b, "2.0.0", "usr-2.0.0.raw", int64(len(e.payload)), good, "") }
			var mu sync.Mutex
			var ranges []string
			broken := true
			f.get = func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				ranges = append(ranges, r.Header.Get("Range"))
				b := broken
				broken = false
				mu.Unlock()
				if !b {
					http.ServeContent(w, r, "p", time.Time{}, strings.NewReader(string(e.payload)))
					return
				}
				half := len(e.payload) / 2
				w.Header().Set("Content-Length", fmt.Sprint(len(e.payload)))
				w.Write(e.payload[:half])
				w.(http.Flusher).Flush()
				if mode == "stalls" {
					select {
					case <-r.Context().Done():
					case <-time.After(10 * time.Second):
					}
					return
				}
				panic(http.ErrAbortHandler) // the connection drops
			}
			n := e.node(t)
			a := n.agent(t, "A", nil)
			a.Config.Server = f.url + "/v1/update/"
			a.Download = &download.Client{Stall: 300 * time.Millisecond}
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			_, err := a.RunOnce(ctx, true)
			if err == nil || strings.Contains(err.Error(), "\n") || a.Journal().Phase != Idle {
				t.Fatalf("first attempt: %v %+v", err, a.Journal())
			}
			if next, infos := n.slots(t); next != "A" || infos[1].Record != nil {
				t.Fatalf("armed after a broken download: %s %+v", next, infos[1])
			}
			f.mu.Lock()
			evs := strings.Join(f.events, " ")
			f.mu.Unlock()
			if evs != "13/1: 3/0:268435465" {
				t.Fatalf("events %q, want 13/1 then 3/0 code 9", evs)
			}
			if _, err := a.RunOnce(ctx, true); err != nil || a.Journal().Phase != Rebooting {
				t.Fatalf("second attempt: %v %+v", err, a.Journal())
			}
			mu.Lock()
			defer mu.Unlock()
			if len(ranges) != 2 || ranges[0] != "" || ranges[1] != fmt.Sprintf("bytes=%d-", len(e.payload)/2) {
				t.Fatalf("range requests %q: the second should resume at %d", ranges, len(e.payload)/2)
			}
		})
	}
}

// An optional extension that fails to verify does not sink the OS update;
// it is named in the status.
func TestAgentOptionalExtensionFailureDoesNotSink(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	sum := sha256.Sum256(e.payload)
	good := base64.StdEncoding.EncodeToString(sum[:])
	f := newFakeOmaha(t, map[string][]byte{"usr-2.0.0.raw": e.payload, "tools-1.0-x86-64.raw": []byte("not what was announced")})
	f.answer = func(b string) []byte {
		return offerXML(b, "2.0.0", "usr-2.0.0.raw", int64(len(e.payload)), good,
			`<package name="tools-1.0-x86-64.raw" hash="" hash_sha256="`+strings.Repeat("ab", 32)+`" size="22" required="false"></package>`)
	}
	n := e.node(t)
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.RunOnce(ctx, true); err != nil {
		t.Fatal(err)
	}
	j := a.Journal()
	if j.Phase != Rebooting || len(j.ExtrasFailed) != 1 || j.ExtrasFailed[0] != "tools-1.0-x86-64.raw" {
		t.Fatalf("journal %+v", j)
	}
	if next, _ := n.slots(t); next != "B" {
		t.Fatalf("OS update not armed: next %s", next)
	}
}

// The daemon loop checks as often as the server's PollInterval says, no
// more, and stops with its context.
func TestAgentRunFollowsPollInterval(t *testing.T) {
	e := newFleetEnv(t)
	f := newFakeOmaha(t, nil)
	f.answer = func(string) []byte {
		return []byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate" PollInterval="1"></updatecheck></app></response>`)
	}
	n := e.node(t)
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3500*time.Millisecond)
	defer cancel()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	reqs := f.requests
	f.mu.Unlock()
	// Checks at 0 s and about every second after (at least 1 s apart).
	if reqs < 3 || reqs > 5 {
		t.Fatalf("%d checks in 3.5 s with PollInterval=1", reqs)
	}
}

// The daemon's first regular check waits InitialDelay ± 5/7 of it
// (update_engine's 7 min ±5); a journal whose next check is later keeps
// it; the periodic fuzz is ±1/9 (update_engine's 45 min ±5).
func TestAgentRunDelaysFirstCheck(t *testing.T) {
	e := newFleetEnv(t)
	f := newFakeOmaha(t, nil)
	f.answer = func(string) []byte {
		return []byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`)
	}
	n := e.node(t)
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	a.Config.InitialDelay = 2 * time.Second // first check in 0.57 … 3.43 s
	if err := a.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := a.Run(ctx); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	reqs := f.requests
	f.mu.Unlock()
	if next := a.Journal().NextCheck.Sub(start); reqs != 0 || next < 570*time.Millisecond || next > 3430*time.Millisecond {
		t.Fatalf("%d checks in the first 0.4 s; next check in %s, want 0.57 … 3.43 s", reqs, next)
	}
	// Later already: kept.
	far := time.Now().Add(time.Hour)
	a.j.NextCheck = far
	a.delayFirstCheck(time.Now())
	if !a.j.NextCheck.Equal(far) {
		t.Fatalf("next check moved from %s to %s", far, a.j.NextCheck)
	}
	a.Config.PollInterval = 45 * time.Minute
	lo, hi := time.Hour, time.Duration(0)
	for range 2000 {
		d := a.interval(0)
		lo, hi = min(lo, d), max(hi, d)
	}
	if lo < 40*time.Minute || hi > 50*time.Minute || lo > 41*time.Minute || hi < 49*time.Minute {
		t.Fatalf("periodic interval spread %s … %s, want 40 … 50 min", lo, hi)
	}
}

// BenchmarkIdleCheck is one noupdate check of an idle agent: request,
// answer, journal write.
func BenchmarkIdleCheck(b *testing.B) {
	dir := b.TempDir()
	f := newFakeOmahaB(b)
	root := dir
	for p, c := range map[string]string{"/etc/machine-id": "0123456789abcdef0123456789abcdef\n", "/usr/lib/os-release": "VERSION_ID=1.0.0\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	r, _ := rootfs.ParseRoot(root)
	cfg, _ := ParseConfig([]Layer{{"b", []byte("SERVER=" + f + "\n")}})
	id, err := LoadIdentity(r, cfg, "amd64")
	if err != nil {
		b.Fatal(err)
	}
	a := &Agent{Config: cfg, Root: r, Omaha: &omaha.Client{URL: f}, id: id, j: Journal{Phase: Idle}}
	ctx := context.Background()
	b.ReportAllocs()
	var ru0, ru1 syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	n := 0
	for b.Loop() {
		a.j.NextCheck = time.Time{}
		if _, err := a.RunOnce(ctx, false); err != nil {
			b.Fatal(err)
		}
		n++
	}
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
	cpu := time.Duration(ru1.Utime.Nano() - ru0.Utime.Nano() + ru1.Stime.Nano() - ru0.Stime.Nano())
	// Includes the in-process fake server's share.
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(n), "cpu-ns/op")
}

func newFakeOmahaB(b *testing.B) string {
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Write([]byte(`<response protocol="3.0"><app appid="` + osApp + `" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`))
	}))
	b.Cleanup(hs.Close)
	return hs.URL + "/v1/update/"
}

// A payload that keeps failing is not fetched again faster than the poll
// interval once the short backoff is spent.
func TestAgentBadPayloadBacksOffToPollInterval(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	other := sha256.Sum256([]byte("something else"))
	f := newFakeOmaha(t, map[string][]byte{"usr-2.0.0.raw": e.payload})
	f.answer = func(b string) []byte {
		return offerXML(b, "2.0.0", "usr-2.0.0.raw", int64(len(e.payload)), base64.StdEncoding.EncodeToString(other[:]), "")
	}
	n := e.node(t)
	a := n.agent(t, "A", nil)
	a.Config.Server = f.url + "/v1/update/"
	if err := a.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		if _, err := a.RunOnce(ctx, true); err == nil {
			t.Fatal("a bad payload was accepted")
		}
		d := time.Until(a.Journal().NextCheck)
		if i <= 3 && d > 2*time.Minute || i > 3 && d < 50*time.Minute {
			t.Fatalf("failure %d: next check in %v", i, d)
		}
	}
}

// An extension app's update stopped at every journalled step and
// restarted: the link ends on the new image and each event reached the
// server exactly once.
func TestExtensionAppCrashAtEveryStep(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	img := []byte("an extension image, version 28")
	sum := sha256.Sum256(img)
	f := newFakeOmaha(t, map[string][]byte{"docker-28.0-x86-64.raw": img})
	noupdate := func(id string) []byte {
		return []byte(`<response protocol="3.0"><app appid="` + id + `" status="ok"><updatecheck status="noupdate"></updatecheck></app></response>`)
	}
	f.answerApp = func(base string, app *omaha.App) []byte {
		if omaha.NormalizeAppID(app.ID) != "docker-app" || app.Version != "27.0" {
			return noupdate(app.ID)
		}
		return []byte(`<response protocol="3.0"><app appid="docker-app" status="ok"><updatecheck status="ok"><urls><url codebase="` + base + `"></url></urls>` +
			`<manifest version="28.0"><packages><package name="docker-28.0-x86-64.raw" hash="" size="` + fmt.Sprint(len(img)) + `" required="true"></package></packages>` +
			`<actions><action event="postinstall" sha256="` + base64.StdEncoding.EncodeToString(sum[:]) + `"></action></actions></manifest></updatecheck></app></response>`)
	}
	setup := func(t *testing.T, hook func(string) error) (*node, func() *Agent) {
		n := e.node(t)
		write(t, n.root, "/opt/extensions/docker/docker-27.0-x86-64.raw", "old")
		os.MkdirAll(filepath.Join(n.root, "etc/extensions"), 0o755)
		if err := os.Symlink("/opt/extensions/docker/docker-27.0-x86-64.raw", filepath.Join(n.root, "etc/extensions/docker.raw")); err != nil {
			t.Fatal(err)
		}
		return n, func() *Agent {
			a := n.agent(t, "A", hook)
			a.Config.Server = f.url + "/v1/update/"
			a.Config.ExtensionApps = []ExtensionApp{{Name: "docker", AppID: "docker-app"}}
			return a
		}
	}
	run := func(t *testing.T, mk func() *Agent) {
		t.Helper()
		for try := 0; try < 6; try++ {
			a := mk()
			err := a.Start(ctx)
			if err == nil {
				_, err = a.RunOnce(ctx, true)
			}
			var st *Stopped
			if errors.As(err, &st) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			if j := a.Journal(); len(j.Outbox) == 0 && len(j.ExtPending) == 0 {
				return
			}
		}
		t.Fatal("did not settle in 6 runs")
	}
	want := "docker-app 13/1< docker-app 14/1< docker-app 3/1< docker-app 3/2<27.0"
	var steps []string
	f.appEvents = nil
	_, mk := setup(t, func(s string) error { steps = append(steps, s); return nil })
	run(t, mk)
	if got := strings.Join(f.appEvents, " "); got != want {
		t.Fatalf("clean run: %q", got)
	}
	for i, step := range steps {
		t.Run(fmt.Sprintf("%02d-%s", i, step), func(t *testing.T) {
			calls := 0
			n, mk := setup(t, func(string) error {
				calls++
				if calls == i+1 {
					return errCrash
				}
				return nil
			})
			f.mu.Lock()
			f.appEvents = nil
			f.mu.Unlock()
			run(t, mk)
			f.mu.Lock()
			got := strings.Join(f.appEvents, " ")
			f.mu.Unlock()
			if got != want {
				t.Fatalf("events %q, want %q", got, want)
			}
			if l, _ := os.Readlink(filepath.Join(n.root, "etc/extensions/docker.raw")); l != "/opt/extensions/docker/docker-28.0-x86-64.raw" {
				t.Fatalf("link %q", l)
			}
		})
	}
}
