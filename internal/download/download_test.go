package download

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func payload(n int) ([]byte, string) {
	b := make([]byte, n)
	rand.Read(b)
	s := sha256.Sum256(b)
	return b, hex.EncodeToString(s[:])
}

func serve(t *testing.T, data []byte, ranges *[]string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ranges != nil {
			*ranges = append(*ranges, r.Header.Get("Range"))
		}
		http.ServeContent(w, r, "x.raw", time.Unix(0, 0), bytes.NewReader(data))
	}))
	t.Cleanup(srv.Close)
	return srv
}

func partialFile(t *testing.T, content []byte) *os.File {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(t.TempDir(), "p"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(content)
	t.Cleanup(func() { f.Close() })
	return f
}

func TestResumeFromOffset(t *testing.T) {
	data, sum := payload(1<<20 + 123)
	var ranges []string
	srv := serve(t, data, &ranges)
	f := partialFile(t, data[:700000])
	var last int64
	got, err := (&Client{}).Resume(context.Background(), srv.URL+"/x.raw", f, sum, Options{Progress: func(d, _ int64) { last = d }})
	if err != nil || got != sum {
		t.Fatalf("Resume = %s, %v", got, err)
	}
	if len(ranges) != 1 || ranges[0] != "bytes=700000-" {
		t.Fatalf("requests %q", ranges)
	}
	if last != int64(len(data)) {
		t.Fatalf("progress ended at %d", last)
	}
	onDisk, _ := os.ReadFile(f.Name())
	if !bytes.Equal(onDisk, data) {
		t.Fatal("file differs")
	}
	// Complete already: the 416 answer is checked against the hash, and
	// the second digest covers the whole file too.
	ranges = nil
	also := sha1.New()
	if got, err := (&Client{}).Resume(context.Background(), srv.URL+"/x.raw", f, sum, Options{Also: also}); err != nil || got != sum {
		t.Fatalf("complete file: %s %v", got, err)
	}
	if want := sha1.Sum(data); !bytes.Equal(also.Sum(nil), want[:]) {
		t.Fatal("Also's SHA-1 of a complete file differs")
	}
}

// TestAlsoDigestCoversResumedPart: the second digest (Omaha's SHA-1) is
// of the whole payload, the part already on disk included, and starts
// over when the server ignores the range.
func TestAlsoDigestCoversResumedPart(t *testing.T) {
	data, sum := payload(1<<20 + 77)
	want := sha1.Sum(data)
	var ranges []string
	srv := serve(t, data, &ranges)
	also := sha1.New()
	also.Write([]byte("left over from before"))
	f := partialFile(t, data[:500000])
	if _, err := (&Client{}).Resume(context.Background(), srv.URL+"/x.raw", f, sum, Options{Also: also}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(also.Sum(nil), want[:]) || len(ranges) != 1 {
		t.Fatalf("resumed: SHA-1 differs (requests %q)", ranges)
	}
	whole := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer whole.Close()
	f2 := partialFile(t, data[:1000])
	if _, err := (&Client{}).Resume(context.Background(), whole.URL, f2, sum, Options{Also: also}); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(also.Sum(nil), want[:]) {
		t.Fatal("restarted from 0: SHA-1 differs")
	}
}

func TestServerIgnoresRange(t *testing.T) {
	data, sum := payload(300000)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(data) }))
	defer srv.Close()
	f := partialFile(t, data[:1000])
	if _, err := (&Client{}).Resume(context.Background(), srv.URL, f, sum, Options{}); err != nil {
		t.Fatal(err)
	}
	onDisk, _ := os.ReadFile(f.Name())
	if !bytes.Equal(onDisk, data) {
		t.Fatal("restart after a 200 answer produced a different file")
	}
}

func TestMismatchEmptiesPartial(t *testing.T) {
	data, _ := payload(100000)
	srv := serve(t, data, nil)
	f := partialFile(t, nil)
	_, err := (&Client{}).Resume(context.Background(), srv.URL, f, strings.Repeat("0", 64), Options{})
	var mm *MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("err %v", err)
	}
	if fi, _ := f.Stat(); fi.Size() != 0 {
		t.Fatal("partial file kept after a hash mismatch")
	}
}

func TestLimitsAndErrors(t *testing.T) {
	data, sum := payload(100000)
	srv := serve(t, data, nil)
	if _, err := (&Client{}).Resume(context.Background(), srv.URL, partialFile(t, nil), sum, Options{MaxSize: 1000}); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("size limit: %v", err)
	}
	if _, err := (&Client{}).Bytes(context.Background(), srv.URL, 10); err == nil {
		t.Fatal("Bytes over the limit")
	}
	nf := httptest.NewServer(http.NotFoundHandler())
	defer nf.Close()
	_, err := (&Client{}).Bytes(context.Background(), nf.URL+"/SHA256SUMS", 100)
	if !NotFound(err) || !strings.Contains(err.Error(), "/SHA256SUMS") {
		t.Fatalf("404: %v", err)
	}
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "1000")
		w.Write([]byte("abc"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer stall.Close()
	start := time.Now()
	_, err = (&Client{Stall: 200 * time.Millisecond}).Resume(context.Background(), stall.URL, partialFile(t, nil), sum, Options{})
	if err == nil || !strings.Contains(err.Error(), "stall") || time.Since(start) > 5*time.Second {
		t.Fatalf("stall: %v after %s", err, time.Since(start))
	}
	if _, err := (&Client{}).Bytes(context.Background(), "gopher://x/", 10); err == nil {
		t.Fatal("unsupported scheme accepted")
	}
}

func TestFileURL(t *testing.T) {
	data, sum := payload(5000)
	p := filepath.Join(t.TempDir(), "x.raw")
	os.WriteFile(p, data, 0o644)
	f := partialFile(t, data[:100])
	if got, err := (&Client{}).Resume(context.Background(), "file://"+p, f, sum, Options{}); err != nil || got != sum {
		t.Fatalf("file:// resume: %s %v", got, err)
	}
}

func TestParseContentRange(t *testing.T) {
	for _, tc := range []struct {
		in                string
		start, end, total int64
		ok                bool
	}{
		{"bytes 100-199/200", 100, 199, 200, true},
		{"bytes 0-0/*", 0, 0, -1, true},
		{"bytes */200", 0, 0, 0, false},
		{"items 1-2/3", 0, 0, 0, false},
		{"bytes 10-/0", 0, 0, 0, false},  // found by FuzzContentRange
		{"bytes 5-1/9", 0, 0, 0, false},  // last before first
		{"bytes 0-9/5", 0, 0, 0, false},  // past the end
		{"bytes +1-2/3", 0, 0, 0, false}, // signs
		{"bytes 1-2/-3", 0, 0, 0, false},
		{"bytes 01-2/3", 0, 0, 0, false},
	} {
		s, e, tot, ok := parseContentRange(tc.in)
		if s != tc.start || e != tc.end || tot != tc.total || ok != tc.ok {
			t.Errorf("parseContentRange(%q) = %d %d %d %v", tc.in, s, e, tot, ok)
		}
	}
}

// endless streams zeros until the client goes away, announcing no length
// (or a false one).
func endless(t *testing.T, contentLength string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentLength != "" {
			w.Header().Set("Content-Length", contentLength)
		}
		buf := make([]byte, 64<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func TestEndlessStreamStops(t *testing.T) {
	srv := endless(t, "")
	for name, opt := range map[string]Options{
		"declared size": {Size: 3 << 20, MaxSize: 1 << 30},
		"maximum":       {MaxSize: 5 << 20},
	} {
		t.Run(name, func(t *testing.T) {
			f := partialFile(t, nil)
			_, err := (&Client{}).Resume(context.Background(), srv.URL+"/x.raw", f, "", opt)
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.URL != srv.URL+"/x.raw" {
				t.Fatalf("endless body: %v", err)
			}
			limit := opt.MaxSize
			if opt.Size > 0 {
				limit = opt.Size
				if !tl.Declared || !strings.Contains(err.Error(), "declares 3145728 bytes") {
					t.Errorf("error names neither the declared nor the sent size: %v", err)
				}
			}
			if tl.Got <= limit || tl.Got > limit+chunk {
				t.Errorf("stopped at %d, limit %d", tl.Got, limit)
			}
			if fi, _ := f.Stat(); fi.Size() != 0 {
				t.Errorf("partial file keeps %d bytes", fi.Size())
			}
		})
	}
	// A Content-Length over the declared size stops before the body.
	f := partialFile(t, nil)
	_, err := (&Client{}).Resume(context.Background(), endless(t, "1000000000").URL, f, "", Options{Size: 1000})
	var tl *TooLargeError
	if !errors.As(err, &tl) || tl.Got != 1000000000 {
		t.Fatalf("announced size over the declared one: %v", err)
	}
}
