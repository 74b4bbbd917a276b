package fleetlock

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
)

// seen is what a tiny independent FleetLock server received.
type seen struct {
	method, path, header, ctype, body string
}

func recorder(t *testing.T, answer func(n int, w http.ResponseWriter)) (*httptest.Server, func() []seen) {
	t.Helper()
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		got = append(got, seen{r.Method, r.URL.Path, r.Header.Get("fleet-lock-protocol"), r.Header.Get("Content-Type"), string(b)})
		n := len(got)
		mu.Unlock()
		answer(n, w)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen { mu.Lock(); defer mu.Unlock(); return append([]seen(nil), got...) }
}

func fast(c *Client) *Client {
	c.Backoff = func(int) time.Duration { return time.Millisecond }
	return c
}

func TestWireBytes(t *testing.T) {
	srv, got := recorder(t, func(int, http.ResponseWriter) {})
	for _, c := range []struct{ base, pre, steady string }{
		// Resolved as Zincati does (RFC 3986 reference resolution).
		{srv.URL, "/v1/pre-reboot", "/v1/steady-state"},
		{srv.URL + "/", "/v1/pre-reboot", "/v1/steady-state"},
		{srv.URL + "/fleet/", "/fleet/v1/pre-reboot", "/fleet/v1/steady-state"},
		{srv.URL + "/fleet", "/v1/pre-reboot", "/v1/steady-state"},
	} {
		cl, err := New(c.base, "workers", "c988d2509fdf4cdcbed39037c56406fb", nil)
		if err != nil {
			t.Fatal(err)
		}
		before := len(got())
		if err := cl.Acquire(context.Background()); err != nil {
			t.Fatal(err)
		}
		if err := cl.Release(context.Background()); err != nil {
			t.Fatal(err)
		}
		reqs := got()[before:]
		want := `{"client_params":{"id":"c988d2509fdf4cdcbed39037c56406fb","group":"workers"}}`
		if len(reqs) != 2 {
			t.Fatalf("base %s: %d requests, want 2", c.base, len(reqs))
		}
		for i, path := range []string{c.pre, c.steady} {
			r := reqs[i]
			if r.method != "POST" || r.path != path || r.header != "true" || r.body != want || r.ctype != "application/json" {
				t.Errorf("base %s request %d: %+v, want POST %s with header true and body %s", c.base, i, r, path, want)
			}
		}
	}
	// No group is Zincati's default.
	cl, _ := New(srv.URL, "", "m1", nil)
	before := len(got())
	if err := cl.PreReboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	if r := got()[before]; r.body != `{"client_params":{"id":"m1","group":"default"}}` {
		t.Errorf("default group body: %s", r.body)
	}
}

func TestNewRefuses(t *testing.T) {
	for _, c := range []struct{ base, group, id, want string }{
		{"ftp://h/", "default", "m1", "not an http(s) URL"},
		{"h:80", "default", "m1", "not an http(s) URL"},
		{"http://h/", "a_b", "m1", "group"},
		{"http://h/", "default", "", "id is empty"},
		{"http://h/", "default", "a b", "printable"},
	} {
		if _, err := New(c.base, c.group, c.id, nil); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%q, %q, %q): %v, want %q", c.base, c.group, c.id, err, c.want)
		}
	}
}

func TestRejections(t *testing.T) {
	srv, _ := recorder(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(409)
			io.WriteString(w, `{"kind":"failed_lock_semaphore_full","value":"semaphore currently full"}`)
		case 2:
			w.WriteHeader(503)
			io.WriteString(w, "<html>maintenance</html>")
		case 3:
			w.Header().Set("Location", "/elsewhere")
			w.WriteHeader(http.StatusTemporaryRedirect)
		}
	})
	cl, _ := New(srv.URL, "default", "m1", nil)
	var rej *Rejection
	err := cl.PreReboot(context.Background())
	if !errors.As(err, &rej) || rej.Status != 409 || !rej.Full() || rej.Value != "semaphore currently full" || rej.Endpoint != "pre-reboot" {
		t.Fatalf("409: %#v", err)
	}
	if !strings.Contains(err.Error(), "HTTP 409 failed_lock_semaphore_full: semaphore currently full") {
		t.Errorf("message: %v", err)
	}
	if err := cl.PreReboot(context.Background()); !errors.As(err, &rej) || rej.Kind != "generic_http_503" || rej.Full() {
		t.Fatalf("503 without JSON: %#v", err)
	}
	// A redirect is not followed: it fails like any other non-200.
	if err := cl.SteadyState(context.Background()); !errors.As(err, &rej) || rej.Status != 307 {
		t.Fatalf("redirect: %v", err)
	}
}

func TestAcquireRetriesUntilGranted(t *testing.T) {
	srv, got := recorder(t, func(n int, w http.ResponseWriter) {
		if n <= 3 {
			w.WriteHeader(409)
			io.WriteString(w, `{"kind":"failed_lock_semaphore_full","value":"full"}`)
		}
	})
	cl := fast(must(New(srv.URL, "default", "m1", nil)))
	var retries []time.Duration
	cl.Backoff = func(n int) time.Duration { return time.Duration(n+1) * time.Millisecond }
	cl.OnRetry = func(err error, wait time.Duration) { retries = append(retries, wait) }
	if err := cl.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(got()); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
	if len(retries) != 3 || retries[0] != time.Millisecond || retries[2] != 3*time.Millisecond {
		t.Errorf("waits %v, want backoff(0..2)", retries)
	}
}

func TestRetryEndsWithContext(t *testing.T) {
	srv, _ := recorder(t, func(n int, w http.ResponseWriter) { w.WriteHeader(500) })
	cl := fast(must(New(srv.URL, "default", "m1", nil)))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err := cl.Release(ctx)
	var rej *Rejection
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &rej) || rej.Status != 500 {
		t.Fatalf("release against a failing server: %v", err)
	}
}

func TestBadRequestIsNotRetried(t *testing.T) {
	srv, got := recorder(t, func(n int, w http.ResponseWriter) {
		w.WriteHeader(400)
		io.WriteString(w, `{"kind":"invalid_client_params","value":"unknown group"}`)
	})
	cl := fast(must(New(srv.URL, "default", "m1", nil)))
	if err := cl.Acquire(context.Background()); err == nil || len(got()) != 1 {
		t.Fatalf("400: %v after %d attempts, want an error after 1", err, len(got()))
	}
}

func TestServerDownThenUp(t *testing.T) {
	// Nothing listens at first (connection refused); the client keeps
	// trying until a server comes up on the address.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	cl := fast(must(New("http://"+addr+"/", "default", "m1", nil)))
	fails := 0
	srv := &http.Server{Handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})}
	defer srv.Close()
	cl.OnRetry = func(err error, wait time.Duration) {
		fails++
		if fails == 3 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Errorf("listen again on %s: %v", addr, err)
				return
			}
			go srv.Serve(l)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if fails != 3 {
		t.Errorf("%d failed attempts before the server came up, want 3", fails)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func FuzzRejection(f *testing.F) {
	f.Add(409, []byte(`{"kind":"failed_lock_semaphore_full","value":"full"}`))
	f.Add(500, []byte(`<html>`))
	f.Add(400, []byte(`{"kind":"x\n\u001b[31m","value":"`+strings.Repeat("v", 1000)+`"}`))
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		r := rejection("pre-reboot", status, body)
		if r.Kind == "" || r.Value == "" {
			t.Fatalf("empty kind or value: %+v", r)
		}
		for _, s := range []string{r.Kind, r.Value, r.Error()} {
			if strings.ContainsAny(s, "\n\r\x1b\x00") || len(s) > 2*maxShown+100 {
				t.Fatalf("not one bounded line: %q", s)
			}
		}
	})
}

// Acquire tells ctx's observer of every failed attempt: a full semaphore
// as waiting (no error), a server error as the error.
func TestAcquireReportsAttempts(t *testing.T) {
	srv, _ := recorder(t, func(n int, w http.ResponseWriter) {
		switch n {
		case 1:
			w.WriteHeader(409)
			io.WriteString(w, `{"kind":"failed_lock_semaphore_full","value":"full"}`)
		case 2:
			w.WriteHeader(500)
			io.WriteString(w, `{"kind":"db_down","value":"store unavailable"}`)
		}
	})
	cl := fast(must(New(srv.URL, "default", "m1", nil)))
	var seen []coord.Attempt
	ctx := coord.WithObserver(context.Background(), func(a coord.Attempt) { seen = append(seen, a) })
	if err := cl.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if len(seen) != 2 || seen[0].Err != nil || seen[1].Err == nil || !strings.Contains(seen[1].Err.Error(), "store unavailable") || seen[1].Wait != time.Millisecond {
		t.Fatalf("attempts seen %+v", seen)
	}
}
