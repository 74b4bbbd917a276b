package fleetlock_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord/fleetlock"
	fleetweb "github.com/stratalinux/strata/internal/fleet/web"
)

// The client against strata serve's own FleetLock server over 127.0.0.1:
// one slot, two nodes; the second waits until the first reaches steady
// state.
func TestAgainstStrataServe(t *testing.T) {
	srv, err := fleetweb.New(fleetweb.Config{Database: filepath.Join(t.TempDir(), "fleet.db")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(func() { hs.Close(); srv.Close() })
	newClient := func(id string) *fleetlock.Client {
		c, err := fleetlock.New(hs.URL+"/", "workers", id, nil)
		if err != nil {
			t.Fatal(err)
		}
		c.Backoff = func(int) time.Duration { return 5 * time.Millisecond }
		return c
	}
	a, b := newClient("node-a"), newClient("node-b")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Acquire(ctx); err != nil { // recursive
		t.Fatal(err)
	}
	// b is refused with the server's full kind.
	err = b.PreReboot(ctx)
	if rej, ok := err.(*fleetlock.Rejection); !ok || !rej.Full() || rej.Status != 409 {
		t.Fatalf("b while a holds the slot: %v", err)
	}
	got := make(chan error, 1)
	waits := 0
	b.OnRetry = func(error, time.Duration) { waits++ }
	go func() { got <- b.Acquire(ctx) }()
	select {
	case err := <-got:
		t.Fatalf("b acquired while a holds the only slot: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := a.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	l, err := srv.Store().RebootLock(ctx, "workers")
	if err != nil || len(l.Holders) != 1 || l.Holders[0].ID != "node-b" {
		t.Fatalf("server's semaphore: %+v %v", l, err)
	}
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Release(ctx); err != nil { // not holding: still success
		t.Fatal(err)
	}
	if l, _ := srv.Store().RebootLock(ctx, "workers"); len(l.Holders) != 0 {
		t.Fatalf("after release: %+v", l)
	}
	t.Logf("b retried %d times while a held the slot", waits)
}
