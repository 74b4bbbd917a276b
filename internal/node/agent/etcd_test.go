package agent

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/coord"
	"github.com/stratalinux/strata/internal/coord/etcdlock"
)

// freePort is a 127.0.0.1 port nothing listens on (just closed).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startEtcd runs one real etcd member on 127.0.0.1 and returns its URL.
func startEtcd(t *testing.T) string {
	t.Helper()
	return startEtcdAt(t, fmt.Sprintf("http://127.0.0.1:%d", freePort(t)))
}

// startEtcdAt runs one real etcd member serving clients at cu.
func startEtcdAt(t *testing.T, cu string) string {
	t.Helper()
	bin, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd not found (CI=true): install Debian's etcd-server: %v", err)
		}
		t.Skipf("etcd not found: %v", err)
	}
	dir := t.TempDir()
	pu := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "--name", "m0", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu, "--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "m0="+pu, "--listen-metrics-urls", "")
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait(); logf.Close() })
	cli, err := etcdlock.NewClient(nil, cu)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := etcdlock.Status(ctx, cli, "")
		cancel()
		if err == nil {
			return cu
		}
		if i == 50 {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("etcd did not come up: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Two nodes share locksmith's default semaphore (one slot): the second
// waits while the first reboots, and gets the slot only once the first
// has booted its new slot, passed its health check and reported 3/2.
func TestAgentRebootsUnderEtcdLock(t *testing.T) {
	endpoint := startEtcd(t)
	e := newFleetEnv(t)
	ctx := context.Background()
	cli, err := etcdlock.NewClient(nil, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	holders := func() []string {
		t.Helper()
		s, err := etcdlock.Status(ctx, cli, "")
		if err != nil {
			t.Fatal(err)
		}
		return s.Holders
	}
	rebootsOneAtATime(t, e, func(c *Config) { c.Strategy, c.EtcdEndpoints = coord.EtcdLock, []string{endpoint} }, holders)
}

// Two nodes share the same FleetLock group of one slot on strata serve
// itself: the same one-at-a-time reboot as with etcd, the slot visible
// in the server's reboot-lock API.
func TestAgentRebootsUnderFleetLock(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	base := strings.TrimSuffix(e.omaha, "/v1/update/")
	holders := func() []string {
		t.Helper()
		l, err := e.api.RebootLock(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range l.Holders {
			ids = append(ids, h.ID)
		}
		return ids
	}
	rebootsOneAtATime(t, e, func(c *Config) { c.Strategy, c.FleetLockURL = coord.FleetLock, base }, holders)
}

// rebootsOneAtATime drives two nodes through an update under one reboot
// slot: node 2 waits while node 1 reboots; node 1 frees the slot only
// after its 3/2; then node 2 reboots.
func rebootsOneAtATime(t *testing.T, e *fleetEnv, configure func(*Config), holders func() []string) {
	t.Helper()
	ctx := context.Background()
	withLock := func(n *node, booted string) *Agent {
		t.Helper()
		a := n.agent(t, booted, nil)
		configure(&a.Config)
		l, closeLock, err := NewLock(a.Config, a.Root, n.mid, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { closeLock() })
		a.Lock = l
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	n1, n2 := e.node(t), e.node(t)
	a1 := withLock(n1, "A")
	if _, err := a1.RunOnce(ctx, true); err != nil || a1.Journal().Phase != Rebooting || !a1.Journal().LockHeld {
		t.Fatalf("node 1: %v %+v", err, a1.Journal())
	}
	if h := holders(); !slices.Equal(h, []string{n1.mid}) {
		t.Fatalf("holders %q, want node 1", h)
	}
	a2 := withLock(n2, "A")
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	waiting := make(chan Journal, 1)
	go func() {
		// While it waits, a full lock is no error; the holders are shown
		// when the backend names them (etcd does, FleetLock does not).
		var j Journal
		var since time.Time
		for short.Err() == nil {
			var err error
			if j, err = LoadJournal(a2.dir()); err != nil {
				t.Error(err)
				break
			}
			if j.Phase == WaitingForLock && since.IsZero() {
				since = time.Now()
			}
			if !since.IsZero() && (len(j.LockHolders) > 0 || time.Since(since) > 300*time.Millisecond) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		waiting <- j
	}()
	_, err := a2.RunOnce(short, true)
	cancel()
	if j := <-waiting; j.Phase != WaitingForLock || j.LastError != "" || len(j.LockHolders) > 0 && !slices.Equal(j.LockHolders, []string{n1.mid}) {
		t.Fatalf("node 2's saved status while waiting for a full lock: %+v", j)
	} else {
		t.Logf("node 2 waiting, holders shown: %q", j.LockHolders)
	}
	if err == nil || a2.Journal().Phase != WaitingForLock || n2.reboots != 0 {
		t.Fatalf("node 2 while node 1 holds the slot: %v %+v, %d reboots", err, a2.Journal(), n2.reboots)
	}
	// Node 1 reboots into B; the slot is freed only after the 3/2.
	n1.setBoot(t, 2)
	a1 = withLock(n1, "B")
	if h := holders(); !slices.Equal(h, []string{n1.mid}) {
		t.Fatalf("released before the health check: %q", h)
	}
	if _, err := a1.RunOnce(ctx, false); err != nil || a1.Journal().LockHeld || a1.Journal().Phase != Idle {
		t.Fatalf("node 1 after reboot: %v %+v", err, a1.Journal())
	}
	if got := n1.events(t); !slices.Equal(got, []string{"13/1", "14/1", "3/1", "3/2<1.0.0"}) {
		t.Fatalf("node 1 events %q", got)
	}
	if h := holders(); len(h) != 0 {
		t.Fatalf("holders after node 1 finished: %q", h)
	}
	a2 = withLock(n2, "A")
	if _, err := a2.RunOnce(ctx, false); err != nil || a2.Journal().Phase != Rebooting || n2.reboots != 1 {
		t.Fatalf("node 2 after the slot was freed: %v %+v", err, a2.Journal())
	}
	if h := holders(); !slices.Equal(h, []string{n2.mid}) {
		t.Fatalf("holders %q, want node 2", h)
	}
}

// REBOOT_STRATEGY=kured: the agent never reboots itself; it writes kured's
// sentinel and kured drains and reboots the node. Once the new slot has
// passed its health check the sentinel is gone.
func TestAgentHandsRebootToKured(t *testing.T) {
	e := newFleetEnv(t)
	ctx := context.Background()
	n := e.node(t)
	withKured := func(booted string) *Agent {
		a := n.agent(t, booted, nil)
		a.Config.Strategy = coord.Kured
		l, _, err := NewLock(a.Config, a.Root, n.mid, nil)
		if err != nil {
			t.Fatal(err)
		}
		a.Lock = l
		if err := a.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := withKured("A")
	sentinel := a.Root.Join("/var/run/reboot-required")
	if _, err := a.RunOnce(ctx, true); err != nil || a.Journal().Phase != Rebooting || n.reboots != 0 {
		t.Fatalf("before the reboot: %v %+v, %d reboots by the agent", err, a.Journal(), n.reboots)
	}
	if _, err := os.Stat(sentinel); err != nil {
		t.Fatalf("kured's sentinel was not written: %v", err)
	}
	n.setBoot(t, 2) // kured rebooted the node into B
	a = withKured("B")
	if _, err := a.RunOnce(ctx, false); err != nil || a.Journal().Phase != Idle {
		t.Fatalf("after the reboot: %v %+v", err, a.Journal())
	}
	if _, err := os.Stat(sentinel); !os.IsNotExist(err) {
		t.Fatalf("sentinel still there after the health check: %v", err)
	}
	if got := n.events(t); !slices.Equal(got, []string{"13/1", "14/1", "3/1", "3/2<1.0.0"}) {
		t.Fatalf("events %q", got)
	}
}

// The lock backend is down (nothing listens on its port): the agent
// installs the update, waits for the lock and shows the backend's error,
// naming the endpoint, in its saved status within seconds, while nothing
// else changes (installed, not rebooted). With etcd, once etcd comes up on
// that port the agent takes the lock and the error is gone.
func TestAgentShowsLockBackendDown(t *testing.T) {
	e := newFleetEnv(t)
	for _, tc := range []struct {
		name      string
		configure func(c *Config, url string)
		comeUp    func(t *testing.T, url string)
	}{
		{"etcd-lock", func(c *Config, u string) { c.Strategy, c.EtcdEndpoints = coord.EtcdLock, []string{u} },
			func(t *testing.T, u string) { startEtcdAt(t, u) }},
		{"fleetlock", func(c *Config, u string) { c.Strategy, c.FleetLockURL = coord.FleetLock, u+"/" }, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
			n := e.node(t)
			a := n.agent(t, "A", nil)
			tc.configure(&a.Config, url)
			l, closeLock, err := NewLock(a.Config, a.Root, n.mid, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { closeLock() })
			a.Lock = l
			logs := &lockedBuffer{}
			a.Log = slog.New(slog.NewTextHandler(logs, nil))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if err := a.Start(ctx); err != nil {
				t.Fatal(err)
			}
			type result struct {
				j   Journal
				err error
			}
			done := make(chan result, 1)
			go func() {
				_, err := a.RunOnce(ctx, true)
				done <- result{a.Journal(), err}
			}()
			saved := func() Journal {
				t.Helper()
				j, err := LoadJournal(a.dir())
				if err != nil {
					t.Fatal(err)
				}
				return j
			}
			// Timed from the saved waiting-for-lock (the update's download
			// and install before it are not the lock's).
			start, waitingSince := time.Now(), time.Time{}
			var j Journal
			for j = saved(); !strings.Contains(j.LastError, url); j = saved() {
				if j.Phase == WaitingForLock && waitingSince.IsZero() {
					waitingSince = time.Now()
				}
				if time.Since(start) > 30*time.Second {
					t.Fatalf("no error naming %s in the saved status after 30 s: %+v", url, j)
				}
				time.Sleep(10 * time.Millisecond)
			}
			if waitingSince.IsZero() {
				waitingSince = time.Now()
			}
			t.Logf("%s after waiting-for-lock: %s", time.Since(waitingSince).Round(time.Millisecond), j.LastError)
			if d := time.Since(waitingSince); d > 5*time.Second {
				t.Errorf("the backend's error took %s to show", d)
			}
			if j.Phase != WaitingForLock || j.LockHeld || j.TargetSlot != "B" || strings.Contains(j.LastError, "\n") {
				t.Fatalf("saved status while the lock backend is down: %+v", j)
			}
			if n.reboots != 0 {
				t.Fatalf("%d reboots while the lock backend is down", n.reboots)
			}
			if l := logs.String(); strings.Count(l, "reboot lock unavailable") != 1 || !strings.Contains(l, url) {
				t.Fatalf("log while the lock backend is down, want one line naming %s:\n%s", url, l)
			}
			if got := n.events(t); !slices.Equal(got, []string{"13/1", "14/1", "3/1"}) {
				t.Fatalf("events %q", got)
			}
			if next, _ := n.slots(t); next != "B" {
				t.Fatalf("boot loader picks %s, want the installed B still armed", next)
			}
			if tc.comeUp == nil {
				cancel()
				r := <-done
				if r.err == nil || r.j.Phase != WaitingForLock || !strings.Contains(r.j.LastError, url) || n.reboots != 0 {
					t.Fatalf("after giving up: %v %+v", r.err, r.j)
				}
				return
			}
			tc.comeUp(t, url)
			var r result
			select {
			case r = <-done:
			case <-time.After(30 * time.Second):
				t.Fatalf("lock not taken 30 s after the backend came up: %+v", saved())
			}
			if r.err != nil || r.j.Phase != Rebooting || !r.j.LockHeld || r.j.LastError != "" || n.reboots != 1 {
				t.Fatalf("after the backend came up: %v %+v, %d reboots", r.err, r.j, n.reboots)
			}
			if j := saved(); j.LastError != "" || !j.LockHeld {
				t.Fatalf("saved status after the lock was taken: %+v", j)
			}
		})
	}
}

// lockedBuffer is a log sink the agent's goroutine writes while the test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
