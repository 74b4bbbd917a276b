package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/limitread"
)

// Client is one node's handle on a FleetLock server's reboot slot. It
// implements coord.Lock.
type Client struct {
	pre, steady string
	body        []byte
	hc          *http.Client

	// Backoff is the wait before retry n (default coord.Backoff: 5 s
	// doubling to 5 min, ±20 % jitter).
	Backoff func(n int) time.Duration
	// OnRetry, when set, hears every failed attempt and the wait before
	// the next (the agent shows it as waiting-for-lock).
	OnRetry func(err error, wait time.Duration)
	Log     *slog.Logger
}

var _ coord.Lock = (*Client)(nil)

// New returns the client of the server at base for node id in group ("" is
// Zincati's "default"). The endpoints are resolved against base as Zincati
// resolves them (RFC 3986): https://h/base/ gives https://h/base/v1/pre-reboot,
// while https://h/base (no trailing slash) gives https://h/v1/pre-reboot.
// hc nil means a client with a 30 s timeout; redirects are never followed
// (the protocol's header exists to catch them), a copy of hc is used.
func New(base, group, id string, hc *http.Client) (*Client, error) {
	if group == "" {
		group = DefaultGroup
	}
	if err := ValidateGroup(group); err != nil {
		return nil, fmt.Errorf("fleetlock: %w", err)
	}
	if err := ValidateID(id); err != nil {
		return nil, fmt.Errorf("fleetlock: %w", err)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("fleetlock: server URL %q is not an http(s) URL (set FLEETLOCK_URL, e.g. https://fleet.example/)", base)
	}
	body, err := json.Marshal(Request{ClientParams: Params{ID: id, Group: group}})
	if err != nil {
		return nil, err
	}
	c := &http.Client{Timeout: 30 * time.Second}
	if hc != nil {
		cp := *hc
		c = &cp
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &Client{
		pre:     u.ResolveReference(&url.URL{Path: PreRebootPath}).String(),
		steady:  u.ResolveReference(&url.URL{Path: SteadyStatePath}).String(),
		body:    body,
		hc:      c,
		Backoff: coord.Backoff,
		Log:     slog.New(slog.DiscardHandler),
	}, nil
}

// Rejection is a server's non-200 answer.
type Rejection struct {
	Endpoint string // pre-reboot or steady-state
	Status   int
	Kind     string // the server's kind, or generic_http_<status> (as Zincati)
	Value    string
}

func (r *Rejection) Error() string {
	return fmt.Sprintf("FleetLock %s refused, HTTP %d %s: %s", r.Endpoint, r.Status, r.Kind, r.Value)
}

// Full reports whether the server said all slots are taken.
func (r *Rejection) Full() bool { return r.Kind == KindSemaphoreFull }

// PreReboot asks once for a reboot slot: nil when held.
func (c *Client) PreReboot(ctx context.Context) error {
	return c.post(ctx, "pre-reboot", c.pre)
}

// SteadyState gives the slot back once: nil when released or not held.
func (c *Client) SteadyState(ctx context.Context) error {
	return c.post(ctx, "steady-state", c.steady)
}

func (c *Client) post(ctx context.Context, endpoint, u string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(c.body))
	if err != nil {
		return fmt.Errorf("FleetLock %s %s: %w", endpoint, u, err)
	}
	req.Header.Set(Header, "true")
	req.Header.Set("Content-Type", "application/json")
	res, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("FleetLock %s: %w", endpoint, err)
	}
	defer res.Body.Close()
	b, rerr := limitread.ReadAll(res.Body, MaxBody)
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, MaxBody)) // let the connection be reused
	if res.StatusCode == http.StatusOK {
		return nil
	}
	if rerr != nil {
		b = nil
	}
	return rejection(endpoint, res.StatusCode, b)
}

// maxShown bounds what of a server's kind and value reaches logs and the
// agent's status line.
const maxShown = 256

// rejection reads a server's error body: its kind and value when it is
// the protocol's JSON, else Zincati's generic_http_<status>. Both are
// made one printable line of bounded length (the server is not trusted
// to send either).
func rejection(endpoint string, status int, body []byte) *Rejection {
	rej := &Rejection{Endpoint: endpoint, Status: status}
	var e Error
	if json.Unmarshal(body, &e) == nil && e.Kind != "" {
		rej.Kind, rej.Value = oneLine(e.Kind), oneLine(e.Value)
		if rej.Value == "" {
			rej.Value = "(no description from the server)"
		}
	} else {
		rej.Kind, rej.Value = fmt.Sprintf("generic_http_%d", status), "(unknown server error)"
	}
	return rej
}

func oneLine(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= maxShown {
			b.WriteString("…")
			break
		}
		if unicode.IsControl(r) || r == utf8.RuneError {
			r = ' '
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Acquire takes a reboot slot, retrying with backoff until the server
// grants it or ctx ends. A 400 answer is returned at once: the request
// itself is wrong (group, id), and asking again will not change that.
// Each failed attempt goes to ctx's coord.Observe observer (a full
// semaphore as waiting, anything else as the error).
func (c *Client) Acquire(ctx context.Context) error {
	return c.retry(ctx, c.PreReboot)
}

// Release gives the slot back (not holding it is success), retrying until
// the server confirms or ctx ends: a node that reaches steady state must
// not keep its slot because the server was down for a minute.
func (c *Client) Release(ctx context.Context) error {
	return c.retry(ctx, c.SteadyState)
}

func (c *Client) retry(ctx context.Context, op func(context.Context) error) error {
	var last error
	for n := 0; ; n++ {
		err := op(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The attempt ctx cut short says less than the answer
			// before it (the server's refusal).
			if last == nil {
				last = err
			}
			return fmt.Errorf("%w (gave up: %w)", last, ctx.Err())
		}
		last = err
		var rej *Rejection
		if errors.As(err, &rej) && rej.Status == http.StatusBadRequest {
			return err
		}
		wait := c.Backoff(n)
		if c.OnRetry != nil {
			c.OnRetry(err, wait)
		}
		if errors.As(err, &rej) && rej.Full() {
			coord.Observe(ctx, coord.Attempt{Wait: wait}) // waiting, not a fault
		} else {
			coord.Observe(ctx, coord.Attempt{Err: err, Wait: wait})
		}
		c.Log.Warn("FleetLock: retrying", "err", err, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up: %w)", last, ctx.Err())
		case <-t.C:
		}
	}
}
