package sysupdate

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Two updates of one target at once, against a slow server: exactly one
// downloads and installs, the other waits for it (saying so) and then has
// nothing to do; the installed image is whole and the one published.
func TestConcurrentUpdatesLockTheTarget(t *testing.T) {
	const size = 512 << 10
	r := newTestRepo(t, true, size, "1.0")
	var gets sync.WaitGroup
	var mu sync.Mutex
	downloads := 0
	started := make(chan struct{}, 2)
	r.hook = func(w http.ResponseWriter, req *http.Request) bool {
		if !strings.HasSuffix(req.URL.Path, ".raw") {
			return false
		}
		gets.Add(1)
		defer gets.Done()
		mu.Lock()
		downloads++
		mu.Unlock()
		started <- struct{}{}
		data, err := os.ReadFile(filepath.Join(r.dir, filepath.Base(req.URL.Path)))
		if err != nil {
			http.NotFound(w, req)
			return true
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(data)))
		for off := 0; off < len(data); off += 32 << 10 {
			w.Write(data[off : off+32<<10])
			w.(http.Flusher).Flush()
			time.Sleep(20 * time.Millisecond) // 16 chunks: ~0.3 s per download
		}
		return true
	}
	root := clientRoot(t, r, "")
	logs := &syncBuffer{}
	results := make([]*UpdateResult, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for k := range 2 {
		e := newEngine(t, root)
		e.Log = slog.New(slog.NewTextHandler(logs, nil))
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[k], errs[k] = e.Update(context.Background(), "")
		}()
		if k == 0 {
			<-started // the first one is downloading
		}
	}
	wg.Wait()
	gets.Wait()
	for k := range 2 {
		if errs[k] != nil {
			t.Fatalf("update %d: %v", k, errs[k])
		}
	}
	if results[0].Installed == results[1].Installed {
		t.Fatalf("want exactly one install: %+v %+v", results[0], results[1])
	}
	if downloads != 1 {
		t.Fatalf("%d downloads, want 1", downloads)
	}
	if !strings.Contains(logs.String(), "Another update is running on "+filepath.Join(root, "opt/extensions/hello")+", waiting") {
		t.Fatalf("the waiting update did not say so:\n%s", logs)
	}
	got, err := os.ReadFile(filepath.Join(root, "opt/extensions/hello/hello-1.0-x86-64.raw"))
	if err != nil || sha(got) != sha(r.images["hello-1.0-x86-64.raw"]) {
		t.Fatalf("installed image is not the published one (%d bytes, %v)", len(got), err)
	}
	if s := strings.Join(installed(t, root), " "); s != "hello-1.0-x86-64.raw" {
		t.Fatalf("target holds %s", s)
	}
	if l := current(t, root); l != "../../opt/extensions/hello/hello-1.0-x86-64.raw" {
		t.Fatalf("symlink %q", l)
	}
}

// A waiting update gives up when its context ends.
func TestLockWaitEndsWithContext(t *testing.T) {
	r := newTestRepo(t, true, 1024, "1.0")
	root := clientRoot(t, r, "")
	e := newEngine(t, root)
	unlock, err := e.lockTargets(context.Background(), e.Defs.EnabledTransfers(), true)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = newEngine(t, root).Update(ctx, "")
	if err == nil || !strings.Contains(err.Error(), "waiting for the update running on "+filepath.Join(root, "opt/extensions/hello")) {
		t.Fatalf("update while locked: %v", err)
	}
	if s := installed(t, root); len(s) != 0 {
		t.Fatalf("installed while locked: %v", s)
	}
}
