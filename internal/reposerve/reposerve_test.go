package reposerve

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
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

// TestRangeLimits: a request for thousands of small ranges gets the
// whole file once (as Apache's MaxRanges does), overlapping ranges are
// coalesced instead of sent twice, and a sane multi-range request is
// still answered in parts.
func TestRangeLimits(t *testing.T) {
	srv, dir := setup(t)
	data := make([]byte, 100000)
	for i := range data {
		data[i] = byte('a' + i%26)
	}
	os.WriteFile(filepath.Join(dir, "big.raw"), data, 0o644)
	many := func(n int) string {
		var b strings.Builder
		b.WriteString("bytes=")
		for i := 0; i < n; i++ {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(i*2) + "-" + strconv.Itoa(i*2))
		}
		return b.String()
	}
	resp, body := get(t, srv.URL+"/big.raw", map[string]string{"Range": many(5000)})
	if resp.StatusCode != 200 || body != string(data) {
		t.Errorf("5000 ranges: %d, %d bytes (%s)", resp.StatusCode, len(body), resp.Header.Get("Content-Type"))
	}
	resp, body = get(t, srv.URL+"/big.raw", map[string]string{"Range": many(MaxRanges)})
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") || strings.Count(body, "Content-Range: bytes ") != MaxRanges {
		t.Errorf("%d ranges: %d %s", MaxRanges, resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Overlapping and unsorted: one part, each byte once.
	resp, body = get(t, srv.URL+"/big.raw", map[string]string{"Range": "bytes=100-199,0-149,150-299,-100,99900-"})
	if resp.StatusCode != 206 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "multipart/byteranges") ||
		strings.Count(body, "Content-Range: bytes ") != 2 || !strings.Contains(body, "Content-Range: bytes 0-299/100000") || !strings.Contains(body, "Content-Range: bytes 99900-99999/100000") {
		t.Errorf("overlapping ranges: %d %s\n%.600s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	resp, body = get(t, srv.URL+"/big.raw", map[string]string{"Range": "bytes=10-19,15-29"})
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != "bytes 10-29/100000" || body != string(data[10:30]) {
		t.Errorf("two overlapping ranges: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), body)
	}
	// Resumed downloads are untouched.
	resp, body = get(t, srv.URL+"/big.raw", map[string]string{"Range": "bytes=99990-"})
	if resp.StatusCode != 206 || body != string(data[99990:]) {
		t.Errorf("open range: %d %q", resp.StatusCode, body)
	}
}

// TestTrailingSlashOnFile: /SHA256SUMS/ names a directory that does not
// exist; serving the file there would let relative links resolve wrongly.
func TestTrailingSlashOnFile(t *testing.T) {
	srv, _ := setup(t)
	for _, p := range []string{"/SHA256SUMS/", "/hello-1.0-x86-64.raw/", "/SHA256SUMS//", "/sub/x/"} {
		if resp, body := get(t, srv.URL+p, nil); resp.StatusCode != 404 || strings.Contains(body, "sums") {
			t.Errorf("GET %s: %d %q", p, resp.StatusCode, body)
		}
	}
	if resp, _ := get(t, srv.URL+"/sub/", nil); resp.StatusCode != 200 {
		t.Errorf("GET /sub/: %d", resp.StatusCode)
	}
}
