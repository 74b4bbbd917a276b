package fetch

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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	c := &Client{}
	ctx := context.Background()
	dir := t.TempDir()

	res, err := c.File(ctx, srv.URL+"/ok", filepath.Join(dir, "a"), want, 0)
	if err != nil || res.SHA256 != want || res.Size != int64(len(body)) {
		t.Fatalf("ok: %v %+v", err, res)
	}
	_, err = c.File(ctx, srv.URL+"/ok", filepath.Join(dir, "b"), strings.Repeat("0", 64), 0)
	var me *MismatchError
	if !errors.As(err, &me) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.URL+"/ok") {
		t.Errorf("mismatch: %v", err)
	}
	if _, err := c.File(ctx, srv.URL+"/trunc", filepath.Join(dir, "c"), want, 0); err == nil || !strings.Contains(err.Error(), "truncated") {
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
	// Rewrite sends the request elsewhere.
	c2 := &Client{Rewrite: func(string) string { return srv.URL + "/ok" }}
	if _, err := c2.Bytes(ctx, "https://example.invalid/x", 1<<20); err != nil {
		t.Errorf("rewrite: %v", err)
	}
}

func TestParseSums(t *testing.T) {
	h := strings.Repeat("ab", 32)
	data := []byte("# comment\n" + strings.Repeat("cd", 32) + "  other.tgz\n" + h + " *dist/tool-linux.tgz\n")
	if got, ok := ParseSums(data, "tool-linux.tgz"); !ok || got != h {
		t.Errorf("got %q %v", got, ok)
	}
	if _, ok := ParseSums(data, "nope"); ok {
		t.Error("found missing entry")
	}
	if got, ok := FirstHash([]byte(strings.ToUpper(h) + "  file\n")); !ok || got != h {
		t.Errorf("FirstHash %q", got)
	}
}

// TestEndlessDownloadStops: a server streaming forever is cut off just
// past the limit, and no partial file is left or renamed into place.
func TestEndlessDownloadStops(t *testing.T) {
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
