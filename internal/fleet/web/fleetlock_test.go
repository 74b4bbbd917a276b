package web

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord/fleetlock"
	"github.com/stratalinux/strata/internal/fleet"
)

// flPost sends a FleetLock request; header "" leaves the header out.
func flPost(t *testing.T, base, endpoint, header, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+"/v1/"+endpoint, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if header != "" {
		req.Header.Set("fleet-lock-protocol", header)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

func flBody(id, group string) string {
	return fmt.Sprintf(`{"client_params":{"id":%q,"group":%q}}`, id, group)
}

// wantKind checks an error answer: status and the protocol's error body.
func wantKind(t *testing.T, what string, code int, body string, wantCode int, kind string) {
	t.Helper()
	var e fleetlock.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil || code != wantCode || e.Kind != kind || e.Value == "" {
		t.Errorf("%s: HTTP %d %s (err %v), want %d with kind %s and a value", what, code, body, err, wantCode, kind)
	}
}

func TestFleetLockProtocol(t *testing.T) {
	h := newHarness(t, "")
	base := h.http.URL
	ok := func(what, endpoint, id, group string) {
		t.Helper()
		if code, body := flPost(t, base, endpoint, "true", flBody(id, group)); code != 200 || body != "" {
			t.Errorf("%s: HTTP %d %q, want 200 with no body", what, code, body)
		}
	}
	ok("a takes the slot", "pre-reboot", "a", "default")
	ok("a again (recursive)", "pre-reboot", "a", "default")
	code, body := flPost(t, base, "pre-reboot", "true", flBody("b", "default"))
	wantKind(t, "b while a holds the only slot", code, body, http.StatusConflict, fleetlock.KindSemaphoreFull)
	ok("other group has its own slot", "pre-reboot", "b", "workers")
	ok("b releases what it does not hold", "steady-state", "b", "default")
	ok("a releases", "steady-state", "a", "default")
	ok("a releases again", "steady-state", "a", "default")
	ok("b now takes the slot", "pre-reboot", "b", "default")
	// Zincati sends its body pretty-printed (serde_json::to_string_pretty).
	zincati := "{\n  \"client_params\": {\n    \"id\": \"c988d2509fdf4cdcbed39037c56406fb\",\n    \"group\": \"zincati\"\n  }\n}"
	if code, body := flPost(t, base, "pre-reboot", "true", zincati); code != 200 {
		t.Errorf("Zincati's body: HTTP %d %s", code, body)
	}
	if code, body := flPost(t, base, "steady-state", "true", zincati); code != 200 {
		t.Errorf("Zincati's body: HTTP %d %s", code, body)
	}

	for _, c := range []struct {
		what, header, body string
		code               int
		kind               string
	}{
		{"no header", "", flBody("c", "default"), 400, fleetlock.KindBadHeader},
		{"header false", "false", flBody("c", "default"), 400, fleetlock.KindBadHeader},
		{"not JSON", "true", "id=c", 400, fleetlock.KindBadParams},
		{"no client_params", "true", `{}`, 400, fleetlock.KindBadParams},
		{"empty id", "true", flBody("", "default"), 400, fleetlock.KindBadParams},
		{"Zincati's old node_uuid only", "true", `{"client_params":{"node_uuid":"c","group":"default"}}`, 400, fleetlock.KindBadParams},
		{"empty group", "true", flBody("c", ""), 400, fleetlock.KindBadParams},
		{"group outside the protocol's alphabet", "true", flBody("c", "../etc"), 400, fleetlock.KindBadParams},
		{"id with a newline", "true", flBody("c\nd", "default"), 400, fleetlock.KindBadParams},
		{"huge body", "true", `{"client_params":{"id":"` + strings.Repeat("x", 70<<10) + `","group":"default"}}`, 413, fleetlock.KindTooLarge},
	} {
		for _, ep := range []string{"pre-reboot", "steady-state"} {
			code, body := flPost(t, base, ep, c.header, c.body)
			wantKind(t, ep+": "+c.what, code, body, c.code, c.kind)
		}
	}
	// Refused requests changed nothing.
	l, err := h.srv.Store().RebootLock(context.Background(), "default")
	if err != nil || len(l.Holders) != 1 || l.Holders[0].ID != "b" {
		t.Fatalf("default group after refusals: %+v %v", l, err)
	}
	res, err := http.Get(base + "/v1/pre-reboot")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/pre-reboot: %d, want 405", res.StatusCode)
	}

	// Admin API: max holders per group, listing, forced release.
	ctx := context.Background()
	var got fleet.RebootLock
	if err := h.api.Do(ctx, "PUT", "/api/reboot-locks/default", map[string]int{"max_holders": 2}, &got); err != nil || got.Max != 2 || !got.Holds("b") {
		t.Fatalf("set max: %+v %v", got, err)
	}
	ok("a gets the second slot", "pre-reboot", "a", "default")
	code, body = flPost(t, base, "pre-reboot", "true", flBody("c", "default"))
	wantKind(t, "c with both slots taken", code, body, http.StatusConflict, fleetlock.KindSemaphoreFull)
	if !strings.Contains(body, "all 2 slots") {
		t.Errorf("full message does not name the slots: %s", body)
	}
	var list []fleet.RebootLock
	if err := h.api.Do(ctx, "GET", "/api/reboot-locks", nil, &list); err != nil || len(list) != 3 || list[0].Group != "default" || len(list[0].Holders) != 2 || list[1].Group != "workers" {
		t.Fatalf("list: %+v %v", list, err)
	}
	if err := h.api.Do(ctx, "DELETE", "/api/reboot-locks/default/holders/b", nil, &got); err != nil || got.Holds("b") || !got.Holds("a") {
		t.Fatalf("forced release: %+v %v", got, err)
	}
	if err := h.api.Do(ctx, "DELETE", "/api/reboot-locks/default/holders/b", nil, nil); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("release of a non-holder: %v, want 404", err)
	}
	for _, bad := range []string{`{"max_holders": -1}`, `{"max_holders": 100000}`, `{}`, `{"max": 2}`} {
		req, _ := http.NewRequest("PUT", base+"/api/reboot-locks/default", strings.NewReader(bad))
		req.Header.Set("Authorization", "Bearer "+h.api.Token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != 400 {
			t.Errorf("PUT %s: %d, want 400", bad, res.StatusCode)
		}
	}
	if err := h.api.Do(ctx, "PUT", "/api/reboot-locks/bad_group", map[string]int{"max_holders": 2}, nil); err == nil {
		t.Error("invalid group name accepted by the API")
	}
	// The admin API needs a token; the FleetLock endpoints do not.
	if res, err := http.Get(base + "/api/reboot-locks"); err != nil || res.StatusCode != 401 {
		t.Errorf("API without a token: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	page := get(t, base+"/ui/")
	for _, want := range []string{"Reboot locks", `<td>default</td><td>1</td><td>2</td>`, "<code>a</code> since", `<td>workers</td><td>1</td><td>1</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("dashboard lacks %q", want)
		}
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`strata_fleet_reboot_lock_requests_total{endpoint="pre-reboot",result="full"} 2`,
		`strata_fleet_reboot_lock_requests_total{endpoint="steady-state",result="released"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// 50 clients contend over HTTP for a group of 3 slots: never more than 3
// hold one, every client gets its turn, all slots get used.
func TestFleetLockContention(t *testing.T) {
	for name, dsn := range map[string]func(*testing.T) string{"sqlite": func(*testing.T) string { return "" }, "postgres": pgDSN} {
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, dsn(t))
			if err := h.api.Do(context.Background(), "PUT", "/api/reboot-locks/default", map[string]int{"max_holders": 3}, nil); err != nil {
				t.Fatal(err)
			}
			const clients, slots = 50, 3
			var holding, peak, granted atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			hc := &http.Client{Timeout: 30 * time.Second}
			post := func(ep, id string) (int, error) {
				req, _ := http.NewRequest("POST", h.http.URL+"/v1/"+ep, bytes.NewBufferString(flBody(id, "default")))
				req.Header.Set("fleet-lock-protocol", "true")
				res, err := hc.Do(req)
				if err != nil {
					return 0, err
				}
				io.Copy(io.Discard, res.Body)
				res.Body.Close()
				return res.StatusCode, nil
			}
			deadline := time.Now().Add(2 * time.Minute)
			for i := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					id := fmt.Sprintf("node-%02d", i)
					for {
						code, err := post("pre-reboot", id)
						if err != nil {
							errs <- err
							return
						}
						if code == 200 {
							break
						}
						if code != http.StatusConflict || time.Now().After(deadline) {
							errs <- fmt.Errorf("%s: pre-reboot HTTP %d", id, code)
							return
						}
						time.Sleep(2 * time.Millisecond)
					}
					granted.Add(1)
					n := holding.Add(1)
					for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
					}
					if n > slots {
						errs <- fmt.Errorf("%d clients hold a slot of %d", n, slots)
					}
					time.Sleep(20 * time.Millisecond)
					holding.Add(-1)
					if code, err := post("steady-state", id); err != nil || code != 200 {
						errs <- fmt.Errorf("%s: steady-state HTTP %d %v", id, code, err)
					}
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if granted.Load() != clients || peak.Load() != slots {
				t.Errorf("granted %d of %d clients, peak %d holders (want %d)", granted.Load(), clients, peak.Load(), slots)
			}
			l, err := h.srv.Store().RebootLock(context.Background(), "default")
			if err != nil || len(l.Holders) != 0 {
				t.Errorf("after all released: %+v %v", l, err)
			}
		})
	}
}

// FuzzFleetLockRequest: any body is either refused with one of the
// protocol error kinds or yields params that pass validation.
func FuzzFleetLockRequest(f *testing.F) {
	f.Add(flBody("a", "default"))
	f.Add(`{"client_params":{"id":"a\u0000","group":"x"}}`)
	f.Add(`{"client_params":{"id":"a","group":"default"}} trailing`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, body string) {
		r := httptest.NewRequest("POST", "/v1/pre-reboot", strings.NewReader(body))
		r.Header.Set(fleetlock.Header, "true")
		p, ferr := readFleetLock(httptest.NewRecorder(), r)
		if ferr != nil {
			if _, ok := fleetLockStatus[ferr.Kind]; !ok || ferr.Value == "" {
				t.Fatalf("error kind %q value %q", ferr.Kind, ferr.Value)
			}
			return
		}
		if fleetlock.ValidateID(p.ID) != nil || fleetlock.ValidateGroup(p.Group) != nil {
			t.Fatalf("accepted invalid params %+v", p)
		}
	})
}

func TestFleetLockGroupLimit(t *testing.T) {
	h := newHarness(t, "")
	ctx := context.Background()
	for i := range fleet.MaxRebootGroups {
		if _, err := h.srv.Store().SetRebootLockMax(ctx, fmt.Sprintf("g%d", i), 1); err != nil {
			t.Fatal(err)
		}
	}
	code, body := flPost(t, h.http.URL, "pre-reboot", "true", flBody("a", "new-group"))
	wantKind(t, "a new group beyond the limit", code, body, http.StatusConflict, fleetlock.KindTooManyGroups)
	if code, body := flPost(t, h.http.URL, "steady-state", "true", flBody("a", "new-group")); code != 200 {
		t.Errorf("steady-state in an unknown group at the limit: %d %s", code, body)
	}
	if code, body := flPost(t, h.http.URL, "pre-reboot", "true", flBody("a", "g7")); code != 200 {
		t.Errorf("existing group at the limit: %d %s", code, body)
	}
}
