// Package download fetches update payloads and manifests over HTTP (and
// file:// URLs): streamed to disk and hashed in the same pass, resumed
// with an HTTP Range request when a partial file is already there, bounded
// in size and guarded against stalled servers.
package download

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stratalinux/strata/internal/limitread"
)

// Client downloads with an http.Client.
type Client struct {
	// HTTP is the client used; nil means a client with sane timeouts.
	HTTP *http.Client
	// Stall aborts a transfer when no byte arrived for this long
	// (default 30 s).
	Stall time.Duration
	// UserAgent is sent with every request.
	UserAgent string
	// Rewrite maps a URL before it is requested (a mirror); nil keeps it.
	Rewrite func(string) string
	// Header is added to every HTTP request (e.g. a GitHub token).
	Header http.Header
	// Progress, when set, returns the progress callback of one File
	// download named by its URL.
	Progress func(url string) func(done, total int64)
}

// DefaultHTTPClient connects and waits for response headers with bounded
// timeouts; the body is guarded by the stall timer instead of a total
// deadline, so large images may take as long as they need.
func DefaultHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.ResponseHeaderTimeout = 30 * time.Second
	tr.DisableCompression = true // the hash is over the served bytes
	return &http.Client{Transport: tr}
}

func (c *Client) http() *http.Client {
	if c.HTTP == nil {
		// Kept, so the manifest, its signature and the payloads share
		// connections.
		c.HTTP = DefaultHTTPClient()
	}
	return c.HTTP
}

func (c *Client) stall() time.Duration {
	if c.Stall > 0 {
		return c.Stall
	}
	return 30 * time.Second
}

// HTTPError is a response status other than success.
type HTTPError struct {
	URL    string
	Status string
	Code   int
}

func (e *HTTPError) Error() string { return fmt.Sprintf("%s: server answered %s", e.URL, e.Status) }

// NotFound reports whether err is an HTTP 404 or a missing file:// path.
func NotFound(err error) bool {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Code == http.StatusNotFound
	}
	return errors.Is(err, os.ErrNotExist)
}

// MismatchError is a payload whose SHA256 differs from the manifest's.
type MismatchError struct {
	URL       string
	Want, Got string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: SHA256 mismatch: expected %s, downloaded file has %s", e.URL, e.Want, e.Got)
}

// TooLargeError is a body over the allowed size, or over the size the
// repository declared for it (Declared).
type TooLargeError struct {
	URL      string
	Limit    int64
	Got      int64 // bytes seen (or announced) when the transfer stopped
	Declared bool
}

func (e *TooLargeError) Error() string {
	if e.Declared {
		return fmt.Sprintf("%s: the repository declares %d bytes, the server sent %d or more; the file or the index is wrong", e.URL, e.Limit, e.Got)
	}
	return fmt.Sprintf("%s: larger than the allowed %d bytes", e.URL, e.Limit)
}

// Bytes fetches a small document (a manifest, a signature) of at most
// limit bytes.
func (c *Client) Bytes(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body, _, _, err := c.open(ctx, rawURL, 0)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	r := &stallReader{r: body, d: c.stall(), timer: time.AfterFunc(c.stall(), func() { cancel(errStalled) })}
	defer r.timer.Stop()
	data, err := limitread.ReadAll(r, limit)
	if errors.Is(err, limitread.ErrTooLarge) {
		return nil, &TooLargeError{URL: rawURL, Limit: limit}
	}
	if err != nil {
		return nil, c.wrap(ctx, rawURL, err)
	}
	return data, nil
}

var errStalled = errors.New("no data received within the stall timeout")

func (c *Client) wrap(ctx context.Context, rawURL string, err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the URL is named once, below
	}
	if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errStalled) {
		return fmt.Errorf("%s: %w (after %s)", rawURL, errStalled, c.stall())
	}
	return fmt.Errorf("%s: %w", rawURL, err)
}

// open starts reading rawURL at offset. It returns the body, the offset
// the body actually starts at (0 when the server ignored the range) and
// the total size when known (-1 otherwise).
func (c *Client) open(ctx context.Context, rawURL string, offset int64) (io.ReadCloser, int64, int64, error) {
	if c.Rewrite != nil {
		rawURL = c.Rewrite(rawURL)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("invalid URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "file":
		f, err := os.Open(u.Path)
		if err != nil {
			return nil, 0, 0, err
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			return nil, 0, 0, err
		}
		if !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, 0, fmt.Errorf("%s is not a regular file", u.Path)
		}
		if offset > fi.Size() {
			offset = 0
		}
		if _, err := f.Seek(offset, io.SeekStart); err != nil {
			f.Close()
			return nil, 0, 0, err
		}
		return f, offset, fi.Size(), nil
	case "http", "https":
	default:
		return nil, 0, 0, fmt.Errorf("unsupported URL scheme %q in %s", u.Scheme, rawURL)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, 0, 0, err
	}
	if c.UserAgent != "" {
		req.Header.Set("User-Agent", c.UserAgent)
	}
	for k, v := range c.Header {
		req.Header[k] = v
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, 0, 0, c.wrap(ctx, rawURL, err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
		return resp.Body, 0, resp.ContentLength, nil
	case http.StatusPartialContent:
		start, end, total, ok := parseContentRange(resp.Header.Get("Content-Range"))
		if !ok || start != offset || total >= 0 && end != total-1 {
			resp.Body.Close()
			return nil, 0, 0, fmt.Errorf("%s: server answered range %q to a request for bytes %d-", rawURL, resp.Header.Get("Content-Range"), offset)
		}
		return resp.Body, start, total, nil
	case http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, 0, 0, errRangeNotSatisfiable
	}
	resp.Body.Close()
	return nil, 0, 0, &HTTPError{URL: rawURL, Status: resp.Status, Code: resp.StatusCode}
}

var errRangeNotSatisfiable = errors.New("range not satisfiable")

// parseContentRange reads a 206 answer's "bytes FIRST-LAST/COMPLETE"
// (RFC 9110 §14.4; COMPLETE may be "*"). Only plain decimal digits are
// numbers, and the range must lie inside the whole: anything else is a
// server this client should not trust with its file.
func parseContentRange(v string) (start, end, total int64, ok bool) {
	v, found := strings.CutPrefix(v, "bytes ")
	if !found {
		return 0, 0, 0, false
	}
	rng, tot, found := strings.Cut(v, "/")
	if !found {
		return 0, 0, 0, false
	}
	s, e, found := strings.Cut(rng, "-")
	if !found {
		return 0, 0, 0, false
	}
	var sok, eok bool
	start, sok = decimal(s)
	end, eok = decimal(e)
	if !sok || !eok || end < start {
		return 0, 0, 0, false
	}
	total = -1
	if tot != "*" {
		var tok bool
		if total, tok = decimal(tot); !tok || end >= total {
			return 0, 0, 0, false
		}
	}
	return start, end, total, true
}

// decimal parses a non-negative decimal number without sign or leading
// zeros (strconv.ParseInt takes "+1" and "-0").
func decimal(s string) (int64, bool) {
	if s == "" || len(s) > 1 && s[0] == '0' {
		return 0, false
	}
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n, err == nil
}

// Options tune one payload download.
type Options struct {
	// MaxSize bounds the payload (0: unlimited).
	MaxSize int64
	// Size is the payload's size as the repository declares it (its
	// index.json), 0 when unknown: a server sending more is stopped there.
	Size int64
	// Progress, when set, is called as bytes arrive (done, total; total
	// is -1 when unknown).
	Progress func(done, total int64)
	// Step, when set, is called after every chunk written: the updater's
	// deterministic fault-injection points.
	Step func(label string)
	// ChunkSize is the unit of writing and hashing (default 256 KiB).
	ChunkSize int
	// Also, when set, is fed the same bytes as the SHA-256, the resumed
	// part included: a second digest in the same pass (Omaha's SHA-1),
	// which the caller checks.
	Also hash.Hash
}

// chunk is the unit of writing and hashing.
const chunk = 256 << 10

// Resume downloads rawURL into partial (an open, writable file), keeping
// and hashing the bytes already there and asking the server only for the
// rest. On success the file holds exactly the payload, its SHA256 equals
// wantSHA256 (unless empty) and it has been fsynced; the digest is
// returned. On a hash mismatch the partial file is emptied so the next
// attempt starts over.
func (c *Client) Resume(ctx context.Context, rawURL string, partial *os.File, wantSHA256 string, opt Options) (string, error) {
	fi, err := partial.Stat()
	if err != nil {
		return "", err
	}
	have := fi.Size()
	if opt.MaxSize > 0 && have > opt.MaxSize || opt.Size > 0 && have > opt.Size {
		have = 0
	}
	h := sha256.New()
	var w io.Writer = h
	if opt.Also != nil {
		opt.Also.Reset()
		w = io.MultiWriter(h, opt.Also)
	}
	if have > 0 {
		if _, err := partial.Seek(0, io.SeekStart); err != nil {
			return "", err
		}
		if _, err := io.CopyN(w, partial, have); err != nil {
			return "", fmt.Errorf("rehash partial download %s: %w", partial.Name(), err)
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	body, start, total, err := c.open(ctx, rawURL, have)
	if errors.Is(err, errRangeNotSatisfiable) {
		// Everything may already be here: check it.
		got := hex.EncodeToString(h.Sum(nil))
		if wantSHA256 == "" || got == wantSHA256 {
			return got, partial.Sync()
		}
		body, start, total, err = c.open(ctx, rawURL, 0)
	}
	if err != nil {
		return "", err
	}
	defer body.Close()
	if start != have {
		// The server sent the whole file: start over.
		h.Reset()
		if opt.Also != nil {
			opt.Also.Reset()
		}
		if err := partial.Truncate(0); err != nil {
			return "", err
		}
		have = 0
	}
	if opt.Size > 0 && total > opt.Size {
		_ = partial.Truncate(0)
		return "", &TooLargeError{URL: rawURL, Limit: opt.Size, Got: total, Declared: true}
	}
	if opt.MaxSize > 0 && total > opt.MaxSize {
		_ = partial.Truncate(0)
		return "", &TooLargeError{URL: rawURL, Limit: opt.MaxSize, Got: total}
	}
	if _, err := partial.Seek(have, io.SeekStart); err != nil {
		return "", err
	}
	r := &stallReader{r: body, d: c.stall(), timer: time.AfterFunc(c.stall(), func() { cancel(errStalled) })}
	defer r.timer.Stop()
	if err := copyHashed(partial, w, r, have, total, opt); err != nil {
		var tl *TooLargeError
		if errors.As(err, &tl) {
			// Nothing here is worth resuming.
			_ = partial.Truncate(0)
			tl.URL = rawURL
			return "", tl
		}
		return "", c.wrap(ctx, rawURL, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if wantSHA256 != "" && got != strings.ToLower(wantSHA256) {
		_ = partial.Truncate(0)
		return got, &MismatchError{URL: rawURL, Want: wantSHA256, Got: got}
	}
	if err := partial.Sync(); err != nil {
		return "", fmt.Errorf("fsync %s: %w", partial.Name(), err)
	}
	return got, nil
}

func copyHashed(dst *os.File, h io.Writer, src io.Reader, done, total int64, opt Options) error {
	size := opt.ChunkSize
	if size <= 0 {
		size = chunk
	}
	buf := make([]byte, size)
	for {
		n, rerr := io.ReadFull(src, buf)
		if n > 0 {
			if opt.Size > 0 && done+int64(n) > opt.Size {
				return &TooLargeError{Limit: opt.Size, Got: done + int64(n), Declared: true}
			}
			if opt.MaxSize > 0 && done+int64(n) > opt.MaxSize {
				return &TooLargeError{Limit: opt.MaxSize, Got: done + int64(n)}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return fmt.Errorf("write %s: %w", dst.Name(), err)
			}
			h.Write(buf[:n])
			done += int64(n)
			if opt.Progress != nil {
				opt.Progress(done, total)
			}
			if opt.Step != nil {
				opt.Step("download")
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			if total >= 0 && done < total {
				return fmt.Errorf("connection closed after %d of %d bytes", done, total)
			}
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// stallReader re-arms a timer on every read; the timer cancels the
// request when the server goes quiet.
type stallReader struct {
	r     io.Reader
	d     time.Duration
	timer *time.Timer
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.timer.Reset(s.d)
	}
	return n, err
}
