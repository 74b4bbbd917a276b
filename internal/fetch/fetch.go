// Package fetch downloads artifacts over HTTP: streamed to a temporary
// file in the destination directory and hashed in the same pass, checked
// for truncation and against the expected sha256, then renamed into place.
// A failed download leaves nothing behind.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Client downloads with an http.Client and an optional URL rewrite.
type Client struct {
	HTTP *http.Client
	// Rewrite maps a URL before it is requested (a mirror); nil keeps it.
	Rewrite func(string) string
	// Progress, if set, is called to wrap a download's body for display.
	Progress func(url string, size int64, r io.Reader) io.Reader
	// Header is added to every request (e.g. a GitHub token).
	Header http.Header
}

// MismatchError is a checksum mismatch.
type MismatchError struct {
	URL, Want, Got string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("%s: sha256 mismatch: expected %s, got %s", e.URL, e.Want, e.Got)
}

// TooLargeError is a download over its size limit; Got is what the
// server announced or what had arrived when it was stopped.
type TooLargeError struct {
	URL        string
	Limit, Got int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("GET %s: %d bytes or more, more than the limit of %d bytes", e.URL, e.Got, e.Limit)
}

func (c *Client) http() *http.Client {
	if c.HTTP != nil {
		return c.HTTP
	}
	return &http.Client{Timeout: 30 * time.Minute}
}

func (c *Client) open(ctx context.Context, url string) (*http.Response, string, error) {
	real := url
	if c.Rewrite != nil {
		real = c.Rewrite(url)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, real, nil)
	if err != nil {
		return nil, real, fmt.Errorf("%s: %w", url, err)
	}
	req.Header.Set("User-Agent", "strata-bake")
	for k, v := range c.Header {
		req.Header[k] = v
	}
	resp, err := c.http().Do(req)
	if err != nil {
		var ue *neturl.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, real, fmt.Errorf("GET %s: %w", real, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, real, fmt.Errorf("GET %s: HTTP %s", real, resp.Status)
	}
	return resp, real, nil
}

// Bytes fetches a small document (a release listing, a SHA256SUMS) of at
// most limit bytes.
func (c *Client) Bytes(ctx context.Context, url string, limit int64) ([]byte, error) {
	resp, real, err := c.open(ctx, url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", real, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("GET %s: response larger than %d bytes", real, limit)
	}
	if resp.ContentLength >= 0 && int64(len(b)) != resp.ContentLength {
		return nil, fmt.Errorf("GET %s: truncated: got %d of %d bytes", real, len(b), resp.ContentLength)
	}
	return b, nil
}

// Result describes a finished download.
type Result struct {
	Path   string
	SHA256 string
	Size   int64
}

// File downloads url to dst (renamed into place when complete and
// verified). wantSHA256 is the expected hex digest; empty skips the check
// (only for sources the recipe marks unverifiable). maxSize bounds it.
func (c *Client) File(ctx context.Context, url, dst, wantSHA256 string, maxSize int64) (Result, error) {
	wantSHA256 = strings.ToLower(wantSHA256)
	resp, real, err := c.open(ctx, url)
	if err != nil {
		return Result{}, err
	}
	defer resp.Body.Close()
	if maxSize > 0 && resp.ContentLength > maxSize {
		return Result{}, &TooLargeError{URL: real, Limit: maxSize, Got: resp.ContentLength}
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), "."+filepath.Base(dst)+".part-")
	if err != nil {
		return Result{}, err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	var body io.Reader = resp.Body
	if c.Progress != nil {
		body = c.Progress(url, resp.ContentLength, body)
	}
	if maxSize > 0 {
		body = io.LimitReader(body, maxSize+1)
	}
	n, err := io.Copy(io.MultiWriter(tmp, h), body)
	if err != nil {
		if ctx.Err() != nil {
			return Result{}, ctx.Err()
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Result{}, fmt.Errorf("GET %s: truncated download: got %d of %d bytes", real, n, resp.ContentLength)
		}
		return Result{}, fmt.Errorf("GET %s: %w (after %d bytes)", real, err, n)
	}
	if maxSize > 0 && n > maxSize {
		return Result{}, &TooLargeError{URL: real, Limit: maxSize, Got: n}
	}
	if resp.ContentLength >= 0 && n != resp.ContentLength {
		return Result{}, fmt.Errorf("GET %s: truncated download: got %d of %d bytes", real, n, resp.ContentLength)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if wantSHA256 != "" && got != wantSHA256 {
		return Result{}, &MismatchError{URL: real, Want: wantSHA256, Got: got}
	}
	if err := tmp.Sync(); err != nil {
		return Result{}, err
	}
	if err := tmp.Close(); err != nil {
		return Result{}, err
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return Result{}, err
	}
	ok = true
	return Result{Path: dst, SHA256: got, Size: n}, nil
}

// ParseSums finds name in a SHA256SUMS-style listing ("HEX  NAME" or
// "HEX *NAME"; paths compared by base name) and returns its hash.
func ParseSums(data []byte, name string) (string, bool) {
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || len(f[0]) != 64 {
			continue
		}
		n := strings.TrimPrefix(f[len(f)-1], "*")
		if n == name || filepath.Base(n) == name {
			if _, err := hex.DecodeString(f[0]); err == nil {
				return strings.ToLower(f[0]), true
			}
		}
	}
	return "", false
}

// FirstHash reads a .sha256 file: the first word must be the hex digest.
func FirstHash(data []byte) (string, bool) {
	f := strings.Fields(string(data))
	if len(f) == 0 || len(f[0]) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(f[0]); err != nil {
		return "", false
	}
	return strings.ToLower(f[0]), true
}
