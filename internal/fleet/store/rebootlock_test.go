package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/fleet"
)

func lockFn(id string, now time.Time, res *fleet.LockResult) RebootLockFunc {
	return func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		next, r := cur.Lock(id, now)
		*res = r
		return next, nil
	}
}

func unlockFn(id string) RebootLockFunc {
	return func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		next, _ := cur.Unlock(id)
		return next, nil
	}
}

func testRebootLock(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 3, 9, 0, 0, 0, time.UTC)
	// An unknown group reads as the default and a release of it leaves
	// no row behind.
	if l, err := s.RebootLock(ctx, "default"); err != nil || l.Max != 1 || len(l.Holders) != 0 {
		t.Fatalf("unknown group: %+v %v", l, err)
	}
	if _, err := s.UpdateRebootLock(ctx, "default", unlockFn("a")); err != nil {
		t.Fatal(err)
	}
	if ls, err := s.ListRebootLocks(ctx); err != nil || len(ls) != 0 {
		t.Fatalf("release of an unknown group stored %+v %v", ls, err)
	}
	var r fleet.LockResult
	l, err := s.UpdateRebootLock(ctx, "default", lockFn("a", t0, &r))
	if err != nil || r != fleet.LockGranted || !l.Holds("a") {
		t.Fatalf("lock a: %v %+v %v", r, l, err)
	}
	if _, err := s.UpdateRebootLock(ctx, "default", lockFn("b", t0, &r)); err != nil || r != fleet.LockFull {
		t.Fatalf("lock b with one slot: %v %v", r, err)
	}
	if _, err := s.UpdateRebootLock(ctx, "default", lockFn("a", t0.Add(time.Hour), &r)); err != nil || r != fleet.LockHeld {
		t.Fatalf("lock a again: %v %v", r, err)
	}
	if l, err = s.SetRebootLockMax(ctx, "default", 3); err != nil || l.Max != 3 || !l.Holds("a") {
		t.Fatalf("set max: %+v %v", l, err)
	}
	if _, err := s.UpdateRebootLock(ctx, "default", lockFn("b", t0.Add(time.Minute), &r)); err != nil || r != fleet.LockGranted {
		t.Fatalf("lock b with three slots: %v %v", r, err)
	}
	// Max of a group nobody locked yet is kept.
	if _, err := s.SetRebootLockMax(ctx, "workers", 1); err != nil {
		t.Fatal(err)
	}
	got, err := s.RebootLock(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	want := []fleet.RebootLockHolder{{ID: "a", Since: t0}, {ID: "b", Since: t0.Add(time.Minute)}}
	if got.Max != 3 || fmt.Sprint(got.Holders) != fmt.Sprint(want) {
		t.Fatalf("stored lock: %+v, want max 3 holders %v", got, want)
	}
	ls, err := s.ListRebootLocks(ctx)
	if err != nil || len(ls) != 2 || ls[0].Group != "default" || len(ls[0].Holders) != 2 || ls[1].Group != "workers" || ls[1].Max != 1 || len(ls[1].Holders) != 0 {
		t.Fatalf("list: %+v %v", ls, err)
	}
	if l, err = s.UpdateRebootLock(ctx, "default", unlockFn("a")); err != nil || l.Holds("a") || !l.Holds("b") {
		t.Fatalf("unlock a: %+v %v", l, err)
	}
	// fn's error aborts the transaction and is returned.
	boom := errors.New("boom")
	if _, err := s.UpdateRebootLock(ctx, "default", func(cur fleet.RebootLock) (fleet.RebootLock, error) {
		cur.Holders = nil
		return cur, boom
	}); !errors.Is(err, boom) {
		t.Fatalf("fn error: %v", err)
	}
	if got, _ := s.RebootLock(ctx, "default"); !got.Holds("b") {
		t.Fatalf("aborted update was written: %+v", got)
	}
}

// 50 clients contend for 3 slots, each locking, holding briefly and
// releasing, over and over: the store never shows more than 3 holders and
// every client got its turn; with 50 waiting, all 3 slots are used.
func testRebootLockContention(t *testing.T, s Store) {
	ctx := context.Background()
	const clients, slots, rounds = 50, 3, 2
	if _, err := s.SetRebootLockMax(ctx, "default", slots); err != nil {
		t.Fatal(err)
	}
	var holding, peak atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	deadline := time.Now().Add(90 * time.Second)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("node-%02d", i)
			for range rounds {
				for {
					if time.Now().After(deadline) {
						errs <- fmt.Errorf("%s never got a slot", id)
						return
					}
					var r fleet.LockResult
					l, err := s.UpdateRebootLock(ctx, "default", lockFn(id, time.Now(), &r))
					if err != nil {
						errs <- err
						return
					}
					if len(l.Holders) > slots {
						errs <- fmt.Errorf("%d holders after %s's lock: %+v", len(l.Holders), id, l.Holders)
						return
					}
					if r == fleet.LockGranted {
						break
					}
					time.Sleep(time.Millisecond)
				}
				n := holding.Add(1)
				for {
					p := peak.Load()
					if n <= p || peak.CompareAndSwap(p, n) {
						break
					}
				}
				time.Sleep(20 * time.Millisecond)
				holding.Add(-1)
				if _, err := s.UpdateRebootLock(ctx, "default", unlockFn(id)); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if p := peak.Load(); p != slots {
		t.Errorf("peak holders %d, want %d (all slots used, never more)", p, slots)
	}
	if l, err := s.RebootLock(ctx, "default"); err != nil || len(l.Holders) != 0 {
		t.Errorf("after all released: %+v %v", l, err)
	}
	t.Logf("%d clients × %d rounds, peak %d concurrent holders of %d", clients, rounds, peak.Load(), slots)
}

// Clients cannot create groups without bound (the FleetLock endpoints
// carry no credentials); existing groups and releases keep working.
func testRebootLockGroupLimit(t *testing.T, s Store) {
	ctx := context.Background()
	var vals []string
	for i := range fleet.MaxRebootGroups {
		vals = append(vals, fmt.Sprintf("('g%04d', 1, 0)", i))
	}
	if _, err := s.(*sqlStore).write.ExecContext(ctx, `INSERT INTO reboot_locks (group_name, max_holders, updated) VALUES `+strings.Join(vals, ", ")); err != nil {
		t.Fatal(err)
	}
	var r fleet.LockResult
	if _, err := s.UpdateRebootLock(ctx, "one-too-many", lockFn("a", time.Now(), &r)); !errors.Is(err, ErrTooManyGroups) {
		t.Fatalf("new group beyond the limit: %v", err)
	}
	if l, err := s.RebootLock(ctx, "one-too-many"); err != nil || len(l.Holders) != 0 {
		t.Fatalf("refused group was stored: %+v %v", l, err)
	}
	if _, err := s.UpdateRebootLock(ctx, "one-too-many", unlockFn("a")); err != nil {
		t.Fatalf("release in an unknown group at the limit: %v", err)
	}
	if _, err := s.UpdateRebootLock(ctx, "g0007", lockFn("a", time.Now(), &r)); err != nil || r != fleet.LockGranted {
		t.Fatalf("existing group at the limit: %v %v", r, err)
	}
	// The administrator may still create one.
	if _, err := s.SetRebootLockMax(ctx, "admin-made", 2); err != nil {
		t.Fatal(err)
	}
}
