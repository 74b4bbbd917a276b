package etcdlock

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
)

func TestAcquireReleaseLocksmithValue(t *testing.T) {
	members, cli := startCluster(t, 1)
	// etcd's own client (what locksmith and etcdctl use) reads and writes
	// the same key: the gateway calls are the same v3 store.
	official := officialClient(t, members[0].client)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := New(cli, "", "machine-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	resp, err := official.Get(ctx, "coreos.com/updateengine/rebootlock/semaphore")
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("get key: %v %v", resp, err)
	}
	if got := string(resp.Kvs[0].Value); got != `{"semaphore":0,"max":1,"holders":["machine-a"]}` {
		t.Fatalf("stored value %s", got)
	}
	// Recursive: acquiring again while holding succeeds and changes nothing.
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	b, _ := New(cli, "", "machine-b", nil)
	if _, err := b.TryAcquire(ctx); !errors.Is(err, ErrFull) {
		t.Fatalf("second node: %v, want ErrFull", err)
	}
	// Releasing a slot one does not hold is a no-op.
	if err := b.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("second release: %v", err)
	}
	resp, _ = official.Get(ctx, "coreos.com/updateengine/rebootlock/semaphore")
	if got := string(resp.Kvs[0].Value); got != `{"semaphore":1,"max":1,"holders":[]}` {
		t.Fatalf("stored value after release %s", got)
	}
	// A value as locksmith writes it (holders null) in a group key is used.
	if _, err := official.Put(ctx, Key("workers"), `{"semaphore":2,"max":2,"holders":null}`); err != nil {
		t.Fatal(err)
	}
	w, _ := New(cli, "workers", "machine-w", nil)
	if err := w.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := Status(ctx, cli, "workers")
	if err != nil || s.Semaphore != 1 || !slices.Equal(s.Holders, []string{"machine-w"}) {
		t.Fatalf("group status %+v, %v", s, err)
	}
	// A corrupt value is an error naming the key, never overwritten.
	if _, err := official.Put(ctx, Key("bad"), `{{`); err != nil {
		t.Fatal(err)
	}
	x, _ := New(cli, "bad", "machine-x", nil)
	if _, err := x.TryAcquire(ctx); err == nil || !errorsContains(err, Key("bad")) {
		t.Fatalf("corrupt value: %v", err)
	}
}

func errorsContains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// contend runs agents that each take the lock, check in the critical
// section that no more than max hold it, and release it. It returns the
// highest number of holders seen at once.
func contend(ctx context.Context, t *testing.T, agents int, lockFor func(i int) *Lock, max int32, during func()) int32 {
	t.Helper()
	var inside, peak atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, agents)
	start := make(chan struct{})
	// Holders keep the slot until the semaphore has been seen full once (or
	// fillBy passes): under load an acquisition can take longer than the
	// "reboot", which would otherwise hide whether every slot is usable.
	fillBy := time.Now().Add(15 * time.Second)
	for i := range agents {
		wg.Go(func() {
			l := lockFor(i)
			<-start
			if err := l.Acquire(ctx); err != nil {
				errs <- fmt.Errorf("agent %d acquire: %w", i, err)
				return
			}
			n := inside.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			if n > max {
				errs <- fmt.Errorf("agent %d: %d holders at once, max %d", i, n, max)
			}
			time.Sleep(20 * time.Millisecond) // the "reboot"
			for peak.Load() < max && time.Now().Before(fillBy) {
				time.Sleep(5 * time.Millisecond)
			}
			inside.Add(-1)
			if err := l.Release(ctx); err != nil {
				errs <- fmt.Errorf("agent %d release: %w", i, err)
			}
		})
	}
	close(start)
	if during != nil {
		during()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	return peak.Load()
}

func TestFiftyAgentsSemaphoreOfThree(t *testing.T) {
	_, cli := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := SetMax(ctx, cli, "", 3); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	peak := contend(ctx, t, 50, func(i int) *Lock {
		l, _ := New(cli, "", fmt.Sprintf("machine-%02d", i), nil)
		return l
	}, 3, nil)
	t.Logf("50 agents through a semaphore of 3 in %v, peak %d holders", time.Since(began), peak)
	if peak != 3 {
		t.Errorf("peak %d holders, want exactly 3 (the semaphore should be used fully)", peak)
	}
	s, err := Status(ctx, cli, "")
	if err != nil || s.Semaphore != 3 || len(s.Holders) != 0 {
		t.Fatalf("after all released: %+v, %v", s, err)
	}
}

// TestDeadHolderKeepsSlotUntilUnlocked: locksmith's semaphore has no TTL. A
// node that dies holding a slot keeps it; the slot comes back when that
// node starts again and releases (locksmithd unlocks on start) or when an
// operator runs the equivalent of `locksmithctl unlock ID`.
func TestDeadHolderKeepsSlotUntilUnlocked(t *testing.T) {
	members, _ := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// The dying agent has its own client.
	deadCli := newClient(t, members[0].client)
	dead, _ := New(deadCli, "", "machine-dead", nil)
	if err := dead.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// It dies without releasing: no session to close over HTTP.

	cli := newClient(t, members[0].client)
	waiter, _ := New(cli, "", "machine-live", nil)
	wctx, wcancel := context.WithTimeout(ctx, 2*time.Second)
	err := waiter.Acquire(wctx)
	wcancel()
	if err == nil {
		t.Fatal("a live node took the slot a dead node holds")
	}
	s, _ := Status(ctx, cli, "")
	if !slices.Equal(s.Holders, []string{"machine-dead"}) {
		t.Fatalf("holders %v, want the dead node", s.Holders)
	}
	// The operator frees it; the waiting node gets the slot at once (it
	// watches the key).
	got := make(chan error, 1)
	go func() { got <- waiter.Acquire(ctx) }()
	time.Sleep(200 * time.Millisecond)
	if err := Unlock(ctx, cli, "", "nobody"); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("unlock of a non-holder: %v, want ErrNotHeld", err)
	}
	t0 := time.Now()
	if err := Unlock(ctx, cli, "", "machine-dead"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("waiter took the freed slot after %v; the watch should wake it at once", d)
	}
	// Or: the dead node comes back and releases on start, as locksmithd.
	if err := waiter.Release(ctx); err != nil {
		t.Fatal(err)
	}
	back, _ := New(cli, "", "machine-dead", nil)
	if err := back.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	if err := back.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if s, _ := Status(ctx, cli, ""); s.Semaphore != 1 || len(s.Holders) != 0 {
		t.Fatalf("after restart release: %+v", s)
	}
}

// TestFiftyAgentsOneKilledWhileHolding: 50 agents contend for 3 slots; one
// dies while holding. The others never exceed 3 holders and go through the
// 2 remaining slots; the operator's Unlock recovers the third.
func TestFiftyAgentsOneKilledWhileHolding(t *testing.T) {
	_, cli := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if _, err := SetMax(ctx, cli, "", 3); err != nil {
		t.Fatal(err)
	}
	dead, _ := New(cli, "", "machine-killed", nil)
	if err := dead.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	// 49 live agents share the 2 slots left; the dead one counts as inside.
	peak := contend(ctx, t, 49, func(i int) *Lock {
		l, _ := New(cli, "", fmt.Sprintf("machine-%02d", i), nil)
		return l
	}, 2, nil)
	if peak != 2 {
		t.Errorf("peak %d live holders next to the dead one, want 2", peak)
	}
	if err := Unlock(ctx, cli, "", "machine-killed"); err != nil {
		t.Fatal(err)
	}
	if s, _ := Status(ctx, cli, ""); s.Semaphore != 3 || len(s.Holders) != 0 {
		t.Fatalf("after operator unlock: %+v", s)
	}
}

// TestThreeMemberClusterLosesOne: the lock keeps working with contention
// while one of three etcd members is killed mid-test.
func TestThreeMemberClusterLosesOne(t *testing.T) {
	members, cli := startCluster(t, 3)
	ctx, cancel := context.WithTimeout(context.Background(), 180*time.Second)
	defer cancel()
	if _, err := SetMax(ctx, cli, "", 3); err != nil {
		t.Fatal(err)
	}
	// Each agent has its own client over all three endpoints, as nodes do.
	var eps []string
	for _, m := range members {
		eps = append(eps, m.client)
	}
	clients := make([]*Lock, 30)
	for i := range clients {
		clients[i], _ = New(newClient(t, eps...), "", fmt.Sprintf("machine-%02d", i), nil)
	}
	peak := contend(ctx, t, len(clients), func(i int) *Lock { return clients[i] }, 3, func() {
		time.Sleep(150 * time.Millisecond)
		members[0].kill()
		t.Logf("killed etcd member %s mid-test", members[0].name)
	})
	if peak < 1 || peak > 3 {
		t.Errorf("peak %d holders", peak)
	}
	s, err := Status(ctx, cli, "")
	if err != nil || s.Semaphore != 3 || len(s.Holders) != 0 {
		t.Fatalf("after all released on two members: %+v, %v", s, err)
	}
}

// Acquire tells ctx's observer why it waits: etcd unreachable is an error
// on one line naming every endpoint tried; a full semaphore is no error
// and names its holders.
func TestAcquireReportsAttempts(t *testing.T) {
	down := []string{fmt.Sprintf("http://127.0.0.1:%d", freePort(t)), fmt.Sprintf("http://127.0.0.1:%d", freePort(t))}
	l, err := New(newClient(t, down...), "", "machine-a", nil)
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan coord.Attempt, 100)
	ctx, cancel := context.WithTimeout(coord.WithObserver(context.Background(), func(a coord.Attempt) { seen <- a }), time.Second)
	defer cancel()
	if err := l.Acquire(ctx); err == nil {
		t.Fatal("acquired from an etcd that is down")
	}
	a := <-seen
	if a.Err == nil || strings.Contains(a.Err.Error(), "\n") || !strings.Contains(a.Err.Error(), down[0]) || !strings.Contains(a.Err.Error(), down[1]) || a.Wait < 4*time.Second {
		t.Fatalf("attempt against etcd down: %+v", a)
	}

	_, cli := startCluster(t, 1)
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	holder, _ := New(cli, "", "machine-b", nil)
	if err := holder.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	waiter, _ := New(cli, "", "machine-c", nil)
	full := make(chan coord.Attempt, 100)
	wctx, wcancel := context.WithCancel(coord.WithObserver(ctx, func(a coord.Attempt) { full <- a }))
	defer wcancel()
	got := make(chan error, 1)
	go func() { got <- waiter.Acquire(wctx) }()
	if a := <-full; a.Err != nil || !slices.Equal(a.Holders, []string{"machine-b"}) {
		t.Fatalf("attempt on a full semaphore: %+v", a)
	}
	if err := holder.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("waiter after the release: %v", err)
	}
}
