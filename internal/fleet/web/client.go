package web

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Client calls the admin API (used by `strata fleet` and tests).
type Client struct {
	URL   string
	Token string
	HTTP  *http.Client
}

// APIError is an error answer of the admin API.
type APIError struct {
	Status  int
	Message string
}

func (e *APIError) Error() string { return fmt.Sprintf("fleet API: %s (HTTP %d)", e.Message, e.Status) }

// ErrConflict and ErrNotFound match an APIError of HTTP 409 and 404
// with errors.Is: the thing exists already, or does not exist.
var (
	ErrConflict = errors.New("fleet API: conflict")
	ErrNotFound = errors.New("fleet API: not found")
)

// Is lets errors.Is(err, ErrConflict) and errors.Is(err, ErrNotFound)
// branch on the status.
func (e *APIError) Is(target error) bool {
	return (target == ErrConflict && e.Status == http.StatusConflict) ||
		(target == ErrNotFound && e.Status == http.StatusNotFound)
}

// Do sends in (if not nil) as JSON and decodes the answer into out.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(c.URL, "/")+path, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	res, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleet API at %s: %w", c.URL, err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(io.LimitReader(res.Body, 64<<20))
	if err != nil {
		return err
	}
	if res.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(data, &e) != nil || e.Error == "" {
			e.Error = strings.TrimSpace(string(data))
		}
		return &APIError{Status: res.StatusCode, Message: e.Error}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("fleet API: decoding answer to %s %s: %w", method, path, err)
		}
	}
	return nil
}
