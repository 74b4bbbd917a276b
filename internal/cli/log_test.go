package cli

import (
	"log/slog"
	"strings"
	"sync"
	"testing"
)

// halvingWriter splits each write in two, so unsynchronised writers would
// interleave their halves.
type halvingWriter struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (w *halvingWriter) Write(p []byte) (int, error) {
	half := len(p) / 2
	for _, part := range [][]byte{p[:half], p[half:]} {
		w.mu.Lock()
		w.buf.Write(part)
		w.mu.Unlock()
	}
	return len(p), nil
}

func TestLineHandlerConcurrentLinesStayWhole(t *testing.T) {
	w := &halvingWriter{}
	base := slog.New(newLineHandler(w, slog.LevelInfo))
	var wg sync.WaitGroup
	for g := range 8 {
		l := base.With("worker", g)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 200 {
				l.Info("baking image")
			}
		}()
	}
	wg.Wait()
	lines := strings.Split(strings.TrimSuffix(w.buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("%d lines, want 1600", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "baking image worker=") || strings.Count(l, "baking") != 1 {
			t.Fatalf("interleaved line %q", l)
		}
	}
}
