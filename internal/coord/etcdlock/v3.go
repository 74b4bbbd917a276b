package etcdlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Client speaks etcd v3's KV and watch API through the JSON gateway every
// etcd ≥ 3.4 serves on its client URLs (/v3/kv/range, /v3/kv/txn,
// /v3/watch). The semaphore needs three calls; linking etcd's gRPC client
// for them would add tens of milliseconds of package initialisation to
// every start of the multi-call strata binary, sysext merge included.
type Client struct {
	// Endpoints are the members' client URLs (http://host:2379). A call
	// goes to the member that answered last and fails over to the others
	// on a connection error or a 5xx.
	Endpoints []string
	// HTTP carries the requests (TLS settings live here); nil is
	// http.DefaultClient.
	HTTP *http.Client
	// Username and Password, when set, authenticate with etcd's auth API
	// (/v3/auth/authenticate); the token goes in each call's
	// Authorization header and is renewed when etcd refuses it.
	Username, Password string

	mu    sync.Mutex
	good  int // index of the endpoint that answered last
	token string
}

// maxResponse bounds one gateway answer: a range of one key plus header.
const maxResponse = maxValue*2 + 64<<10

// NewClient returns a client over endpoints (comma-separated lists as
// locksmith's LOCKSMITHD_ENDPOINT takes them are split).
func NewClient(hc *http.Client, endpoints ...string) (*Client, error) {
	var eps []string
	for _, e := range endpoints {
		for p := range strings.SplitSeq(e, ",") {
			if p = strings.TrimRight(strings.TrimSpace(p), "/"); p != "" {
				if !strings.HasPrefix(p, "http://") && !strings.HasPrefix(p, "https://") {
					return nil, fmt.Errorf("etcd endpoint %q: want http://host:port or https://host:port", p)
				}
				eps = append(eps, p)
			}
		}
	}
	if len(eps) == 0 {
		return nil, errors.New("no etcd endpoints: set LOCKSMITHD_ENDPOINT or ETCD_ENDPOINTS")
	}
	return &Client{Endpoints: eps, HTTP: hc}, nil
}

// statusError is a non-2xx answer of the gateway.
type statusError struct {
	endpoint string
	code     int
	body     string
}

func (e *statusError) Error() string {
	return fmt.Sprintf("etcd %s answered %d: %s", e.endpoint, e.code, e.body)
}

// post sends one JSON call, authenticating first when a user is set. It
// returns the open response for streaming calls (watch); the caller
// closes it.
func (c *Client) post(ctx context.Context, path string, req any) (*http.Response, error) {
	if c.Username == "" {
		return c.send(ctx, path, req, "")
	}
	for attempt := 0; ; attempt++ {
		c.mu.Lock()
		tok := c.token
		c.mu.Unlock()
		if tok == "" {
			var out struct {
				Token string `json:"token"`
			}
			res, err := c.send(ctx, "/v3/auth/authenticate", map[string]string{"name": c.Username, "password": c.Password}, "")
			if err != nil {
				return nil, fmt.Errorf("authenticate to etcd as %s: %w", c.Username, err)
			}
			err = json.NewDecoder(io.LimitReader(res.Body, 64<<10)).Decode(&out)
			res.Body.Close()
			if err != nil || out.Token == "" {
				return nil, fmt.Errorf("authenticate to etcd as %s: no token in the answer (%v)", c.Username, err)
			}
			tok = out.Token
			c.mu.Lock()
			c.token = tok
			c.mu.Unlock()
		}
		res, err := c.send(ctx, path, req, tok)
		var se *statusError
		if attempt == 0 && errors.As(err, &se) && (se.code == http.StatusUnauthorized || strings.Contains(se.body, "invalid auth token")) {
			c.mu.Lock()
			c.token = ""
			c.mu.Unlock()
			continue
		}
		return res, err
	}
}

// send sends one JSON call, failing over between endpoints.
func (c *Client) send(ctx context.Context, path string, req any, token string) (*http.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	c.mu.Lock()
	start := c.good
	c.mu.Unlock()
	var errs []error
	for i := range c.Endpoints {
		n := (start + i) % len(c.Endpoints)
		ep := c.Endpoints[n]
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, ep+path, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		hr.Header.Set("Content-Type", "application/json")
		if token != "" {
			hr.Header.Set("Authorization", token)
		}
		res, err := hc.Do(hr)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			errs = append(errs, err)
			continue
		}
		if res.StatusCode/100 != 2 {
			b, _ := io.ReadAll(io.LimitReader(res.Body, 4<<10))
			res.Body.Close()
			se := &statusError{ep, res.StatusCode, strings.TrimSpace(string(b))}
			if res.StatusCode >= 500 {
				errs = append(errs, se) // e.g. a member without a leader: try the next
				continue
			}
			return nil, se
		}
		c.mu.Lock()
		c.good = n
		c.mu.Unlock()
		return res, nil
	}
	return nil, fmt.Errorf("no etcd member answered: %w", joinLine(errs))
}

// call is post for a single JSON answer decoded into out.
func (c *Client) call(ctx context.Context, path string, req, out any) error {
	res, err := c.post(ctx, path, req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxResponse+1))
	if err != nil {
		return fmt.Errorf("read etcd answer to %s: %w", path, err)
	}
	if len(b) > maxResponse {
		return fmt.Errorf("etcd answer to %s is over %d bytes", path, maxResponse)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("etcd answer to %s is not the v3 gateway's JSON: %w", path, err)
	}
	return nil
}

// int64s are strings in the gateway's JSON (proto3 JSON mapping).
type i64 int64

func (v *i64) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	if s == "" || s == "null" {
		*v = 0
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	*v = i64(n)
	return err
}

type header struct {
	Revision i64 `json:"revision"`
}

type kv struct {
	Key         []byte `json:"key"` // base64 in JSON, as encoding/json does []byte
	Value       []byte `json:"value"`
	ModRevision i64    `json:"mod_revision"`
}

// Get reads key: its value and mod revision (0 when absent) and the
// store's revision at the read.
func (c *Client) Get(ctx context.Context, key string) (value []byte, modRev, rev int64, err error) {
	var out struct {
		Header header `json:"header"`
		Kvs    []kv   `json:"kvs"`
	}
	if err := c.call(ctx, "/v3/kv/range", map[string]any{"key": []byte(key)}, &out); err != nil {
		return nil, 0, 0, err
	}
	if len(out.Kvs) == 0 {
		return nil, 0, int64(out.Header.Revision), nil
	}
	return out.Kvs[0].Value, int64(out.Kvs[0].ModRevision), int64(out.Header.Revision), nil
}

// Put writes key unconditionally (operators' and tests' use).
func (c *Client) Put(ctx context.Context, key string, value []byte) error {
	var out struct{}
	return c.call(ctx, "/v3/kv/put", map[string]any{"key": []byte(key), "value": value}, &out)
}

// CompareAndPut writes value if key's mod revision is still modRev (0:
// the key must be absent). ok false means someone wrote in between.
func (c *Client) CompareAndPut(ctx context.Context, key string, modRev int64, value []byte) (ok bool, rev int64, err error) {
	req := map[string]any{
		"compare": []map[string]any{{
			"key": []byte(key), "target": "MOD", "result": "EQUAL",
			"mod_revision": strconv.FormatInt(modRev, 10),
		}},
		"success": []map[string]any{{"request_put": map[string]any{"key": []byte(key), "value": value}}},
	}
	var out struct {
		Header    header `json:"header"`
		Succeeded bool   `json:"succeeded"`
	}
	if err := c.call(ctx, "/v3/kv/txn", req, &out); err != nil {
		return false, 0, err
	}
	return out.Succeeded, int64(out.Header.Revision), nil
}

// WaitChange blocks until key is written or deleted at a revision after
// rev, or ctx ends (then it returns ctx's error).
func (c *Client) WaitChange(ctx context.Context, key string, rev int64) error {
	return c.WaitFor(ctx, key, rev, func([]byte, bool) bool { return true })
}

// WaitFor watches key from the revision after rev and returns once done
// is true for a change (its new value, or deleted) or the watch is
// canceled (a compacted revision: the caller reads again), or with ctx's
// error. Changes done rejects are skipped on the same stream, without a
// new request.
func (c *Client) WaitFor(ctx context.Context, key string, rev int64, done func(value []byte, deleted bool) bool) error {
	req := map[string]any{"create_request": map[string]any{
		"key": []byte(key), "start_revision": strconv.FormatInt(rev+1, 10),
	}}
	res, err := c.post(ctx, "/v3/watch", req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(io.LimitReader(res.Body, 64<<20))
	for {
		var msg struct {
			Result struct {
				Events []struct {
					Type string `json:"type"` // "" is PUT (proto3 omits the default)
					Kv   kv     `json:"kv"`
				} `json:"events"`
				Canceled bool `json:"canceled"`
			} `json:"result"`
			Error *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("watch %s: %w", key, err)
		}
		if msg.Error != nil {
			return fmt.Errorf("watch %s: %s", key, msg.Error.Message)
		}
		if msg.Result.Canceled {
			return nil
		}
		for _, ev := range msg.Result.Events {
			if done(ev.Kv.Value, ev.Type == "DELETE") {
				return nil
			}
		}
	}
}

// joinLine joins errs on one line (errors.Join puts each on its own, and
// the agent's status and log take one line).
func joinLine(errs []error) error {
	if len(errs) == 0 {
		return errors.New("no endpoints")
	}
	if len(errs) == 1 {
		return errs[0]
	}
	return lineErrors(errs)
}

type lineErrors []error

func (e lineErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e lineErrors) Unwrap() []error { return e }
