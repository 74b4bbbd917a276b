package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

func TestFile(t *testing.T) {
	body := strings.Repeat("payload", 1000)
	sum := sha256.Sum256([]byte(body))
	want := hex.EncodeToString(sum[:])
	var auth atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth.Store(r.Header.Get("Authorization"))
		switch r.URL.Path {
		case "/ok":
			w.Write([]byte(body))
		case "/trunc":
			w.Header().Set("Content-Length", "100000")
			w.Write([]byte(body[:10]))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	var last int64
	c := &Client{Header: http.Header{"Authorization": {"Bearer t"}}, Progress: func(string) func(done, total int64) {
		return func(done, _ int64) { last = done }
	}}
	ctx := context.Background()
	dir := t.TempDir()

	res, err := c.File(ctx, srv.URL+"/ok", filepath.Join(dir, "a"), want, 0)
	if err != nil || res.SHA256 != want || res.Size != int64(len(body)) {
		t.Fatalf("ok: %v %+v", err, res)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "a")); string(b) != body {
		t.Fatal("downloaded bytes differ")
	}
	if auth.Load() != "Bearer t" || last != int64(len(body)) {
		t.Errorf("header %v, progress %d", auth.Load(), last)
	}
	_, err = c.File(ctx, srv.URL+"/ok", filepath.Join(dir, "b"), strings.Repeat("0", 64), 0)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.URL+"/ok") {
		t.Errorf("mismatch: %v", err)
	}
	if _, err := c.File(ctx, srv.URL+"/trunc", filepath.Join(dir, "c"), want, 0); err == nil || !strings.Contains(err.Error(), "connection closed after 10 of 100000 bytes") {
		t.Errorf("truncated: %v", err)
	}
	if _, err := c.File(ctx, srv.URL+"/missing", filepath.Join(dir, "d"), want, 0); err == nil || !strings.Contains(err.Error(), "404") || !strings.Contains(err.Error(), "/missing") {
		t.Errorf("404: %v", err)
	}
	if _, err := c.File(ctx, srv.URL+"/ok", filepath.Join(dir, "e"), want, 10); err == nil {
		t.Error("size limit not enforced")
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 || ents[0].Name() != "a" {
		t.Errorf("left behind: %v", ents)
	}
	// Rewrite sends the request elsewhere (a mirror).
	c2 := &Client{Rewrite: func(string) string { return srv.URL + "/ok" }}
	if b, err := c2.Bytes(ctx, "https://example.invalid/x", 1<<20); err != nil || string(b) != body {
		t.Errorf("rewrite: %v", err)
	}
}

// TestEndlessFileStops: a server streaming forever is cut off just past
// the limit, and no partial file is left or renamed into place.
func TestEndlessFileStops(t *testing.T) {
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 64<<10)
		for r.Context().Err() == nil {
			n, err := w.Write(buf)
			sent.Add(int64(n))
			if err != nil {
				return
			}
		}
	}))
	defer srv.Close()
	dir := t.TempDir()
	_, err := (&Client{}).File(context.Background(), srv.URL+"/endless.tar.gz", filepath.Join(dir, "a"), "", 4<<20)
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Limit != 4<<20 || !strings.Contains(err.Error(), "/endless.tar.gz") {
		t.Fatalf("endless download: %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("left behind: %v", ents)
	}
	srv.CloseClientConnections()
	if sent.Load() > 64<<20 {
		t.Errorf("server sent %d bytes for a 4 MiB limit", sent.Load())
	}
}
