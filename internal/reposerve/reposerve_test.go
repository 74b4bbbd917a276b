package reposerve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func setup(t *testing.T) (*httptest.Server, string) {
	t.Helper()
	base := t.TempDir()
	dir := filepath.Join(base, "repo")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "hello-1.0-x86-64.raw"), []byte("0123456789"), 0o644)
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("sums\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "SHA256SUMS.gpg"), []byte("sig"), 0o644)
	os.WriteFile(filepath.Join(dir, "index.json"), []byte("{}"), 0o644)
	os.WriteFile(filepath.Join(dir, "hello.transfer"), []byte("[Transfer]\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".#temp"), []byte("x"), 0o644)
	os.WriteFile(filepath.Join(base, "secret"), []byte("secret"), 0o644)
	os.Symlink("../secret", filepath.Join(dir, "escape"))
	os.Symlink("/etc/passwd", filepath.Join(dir, "abs-escape"))
	h, err := New(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() { srv.Close(); h.Close() })
	return srv, dir
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func TestServe(t *testing.T) {
	srv, _ := setup(t)
	resp, body := get(t, srv.URL+"/hello-1.0-x86-64.raw", nil)
	if resp.StatusCode != 200 || body != "0123456789" || resp.Header.Get("Content-Type") != "application/octet-stream" || resp.Header.Get("Accept-Ranges") != "bytes" {
		t.Fatalf("GET image: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatal("no ETag or Last-Modified")
	}
	resp, body = get(t, srv.URL+"/hello-1.0-x86-64.raw", map[string]string{"Range": "bytes=4-"})
	if resp.StatusCode != 206 || body != "456789" || resp.Header.Get("Content-Range") != "bytes 4-9/10" {
		t.Fatalf("Range: %d %q %q", resp.StatusCode, body, resp.Header.Get("Content-Range"))
	}
	if resp, _ = get(t, srv.URL+"/hello-1.0-x86-64.raw", map[string]string{"If-None-Match": etag}); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match: %d", resp.StatusCode)
	}
	if resp, _ = get(t, srv.URL+"/hello-1.0-x86-64.raw", map[string]string{"If-Modified-Since": time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)}); resp.StatusCode != 304 {
		t.Fatalf("If-Modified-Since: %d", resp.StatusCode)
	}
	if resp, _ = get(t, srv.URL+"/hello-1.0-x86-64.raw", map[string]string{"Range": "bytes=20-"}); resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	for path, ct := range map[string]string{"/SHA256SUMS": "text/plain; charset=utf-8", "/SHA256SUMS.gpg": "application/pgp-signature", "/index.json": "application/json", "/hello.transfer": "text/plain; charset=utf-8"} {
		if resp, _ := get(t, srv.URL+path, nil); resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ct {
			t.Errorf("%s: %d %q", path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}
	resp, body = get(t, srv.URL+"/", nil)
	if resp.StatusCode != 200 || !strings.Contains(body, `href="./hello-1.0-x86-64.raw"`) || !strings.Contains(body, `href="./sub/"`) || strings.Contains(body, ".#temp") {
		t.Fatalf("index: %d\n%s", resp.StatusCode, body)
	}
	if resp, _ = get(t, srv.URL+"/sub", nil); resp.StatusCode != 200 {
		t.Fatalf("directory redirect: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/SHA256SUMS", nil)
	if r, _ := http.DefaultClient.Do(req); r.StatusCode != 405 {
		t.Fatalf("POST: %d", r.StatusCode)
	}
}

func TestNoEscapes(t *testing.T) {
	srv, _ := setup(t)
	for _, p := range []string{"/escape", "/abs-escape", "/.%23temp", "/..%2fsecret", "/sub/../../secret", "/%2e%2e/secret"} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+p, nil)
		req.URL.Opaque = p // send the path as written, uncleaned
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 || strings.Contains(string(b), "secret") || strings.Contains(string(b), "root:") {
			t.Errorf("%s: %d %q", p, resp.StatusCode, b)
		}
	}
}

// FuzzServePath: no request path reaches outside the repository.
func FuzzServePath(f *testing.F) {
	base := f.TempDir()
	dir := filepath.Join(base, "repo")
	os.MkdirAll(filepath.Join(dir, "sub"), 0o755)
	os.WriteFile(filepath.Join(dir, "SHA256SUMS"), []byte("sums\n"), 0o644)
	os.WriteFile(filepath.Join(base, "secret"), []byte("TOP-SECRET"), 0o644)
	os.Symlink("../secret", filepath.Join(dir, "escape"))
	os.Symlink("../../secret", filepath.Join(dir, "sub", "escape"))
	h, err := New(dir, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	for _, s := range []string{"/SHA256SUMS", "/../secret", "/escape", "/sub/escape", "/sub/../../secret", "//secret", "/.", "/sub/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: p}, Header: http.Header{}}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if strings.Contains(rec.Body.String(), "TOP-SECRET") {
			t.Fatalf("path %q served a file outside the repository", p)
		}
	})
}
