package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/coord/etcdlock"
)

// EtcdLockTitle heads the reboot-semaphore section.
const EtcdLockTitle = "Reboot semaphore: `coord/etcdlock` against a real etcd (locksmith's key and value)"

// EtcdLockNotes explain the rows.
const EtcdLockNotes = `One etcd member (Debian's etcd-server) on 127.0.0.1 with its data in a scratch directory.
"1 node" is one acquire + release of a free slot: read the key, compare-and-swap on its
mod revision, twice; the floor is the same four calls' minimum cost as two range + two txn
round trips made back to back on one connection. "50 contenders" run 50 nodes (goroutines,
each its own client) that each take a slot of a semaphore of 3, hold it 5 ms and release it,
4 rounds each: the acquire time includes waiting for a slot (woken by a watch), so its p99
is mostly the queue, not etcd. Its floor is the same load (50 goroutines, 3 slots, 5 ms hold,
same rounds) on an ideal semaphore, a channel of 3 in the bench process: the wait the queue
alone imposes, median (p99 in the note).`

// EtcdLock is the bench group of the etcd reboot semaphore.
func EtcdLock(ctx context.Context, _, workDir string, quick bool, logf func(string, ...any)) ([]Row, string, string, error) {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	bin, err := exec.LookPath("etcd")
	if err != nil {
		return nil, "", "", fmt.Errorf("etcd bench: etcd not found (install etcd-server, scripts/deps): %w", err)
	}
	dir := filepath.Join(workDir, "etcdlock")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", "", err
	}
	defer os.RemoveAll(dir)
	endpoint, stop, err := startEtcd(ctx, bin, dir)
	if err != nil {
		return nil, "", "", err
	}
	defer stop()
	cli, err := etcdlock.NewClient(&http.Client{}, endpoint)
	if err != nil {
		return nil, "", "", err
	}
	reps, rounds := 200, 4
	if quick {
		reps, rounds = 20, 1
	}

	// 1 node: acquire + release of a free slot, against four raw calls.
	one, _ := etcdlock.New(cli, "bench-one", "machine-one", nil)
	var cycle, floor []time.Duration
	for i := 0; i < reps; i++ {
		start := time.Now()
		if err := one.Acquire(ctx); err != nil {
			return nil, "", "", err
		}
		if err := one.Release(ctx); err != nil {
			return nil, "", "", err
		}
		cycle = append(cycle, time.Since(start))
		start = time.Now()
		for j := 0; j < 2; j++ {
			if _, _, _, err := cli.Get(ctx, "bench-floor"); err != nil {
				return nil, "", "", err
			}
			if _, _, err := cli.CompareAndPut(ctx, "bench-floor", -1, []byte("x")); err != nil {
				return nil, "", "", err
			}
		}
		floor = append(floor, time.Since(start))
	}
	rows := []Row{{Group: "reboot semaphore", Case: "1 node: acquire + release", Strata: Median(cycle), Floor: Median(floor), FloorName: "2 range + 2 txn round trips",
		Note: "p99 " + Fmt(percentile(cycle, 99))}}

	// 50 contenders for 3 slots.
	if _, err := etcdlock.SetMax(ctx, cli, "bench-50", 3); err != nil {
		return nil, "", "", err
	}
	var mu sync.Mutex
	var acq, rel []time.Duration
	var wg sync.WaitGroup
	errc := make(chan error, 50)
	for n := 0; n < 50; n++ {
		c, err := etcdlock.NewClient(&http.Client{}, endpoint)
		if err != nil {
			return nil, "", "", err
		}
		l, _ := etcdlock.New(c, "bench-50", fmt.Sprintf("machine-%02d", n), nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				t0 := time.Now()
				if err := l.Acquire(ctx); err != nil {
					errc <- err
					return
				}
				t1 := time.Now()
				time.Sleep(5 * time.Millisecond)
				t2 := time.Now()
				if err := l.Release(ctx); err != nil {
					errc <- err
					return
				}
				t3 := time.Now()
				mu.Lock()
				acq, rel = append(acq, t1.Sub(t0)), append(rel, t3.Sub(t2))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errc)
	if err := <-errc; err != nil {
		return nil, "", "", fmt.Errorf("etcd bench contender: %w", err)
	}
	qacq := queueFloor(50, 3, rounds, 5*time.Millisecond)
	rows = append(rows,
		Row{Group: "reboot semaphore", Case: "50 contenders, 3 slots: acquire", Strata: Median(acq), Floor: Median(qacq),
			Note: "median; p99 " + Fmt(percentile(acq, 99)) + " (floor's p99 " + Fmt(percentile(qacq, 99)) + ")"},
		Row{Group: "reboot semaphore", Case: "50 contenders, 3 slots: release", Strata: Median(rel), Note: "median; p99 " + Fmt(percentile(rel, 99))},
	)
	logf("etcd bench: 1 node %s (floor %s); 50 contenders acquire p50 %s p99 %s (queue floor p50 %s p99 %s), release p50 %s p99 %s",
		Fmt(rows[0].Strata), Fmt(rows[0].Floor), Fmt(Median(acq)), Fmt(percentile(acq, 99)), Fmt(Median(qacq)), Fmt(percentile(qacq, 99)), Fmt(Median(rel)), Fmt(percentile(rel, 99)))
	return rows, EtcdLockTitle, EtcdLockNotes, nil
}

// queueFloor is the acquire wait of the contenders' load on an ideal
// semaphore: a channel of slots in this process, the same goroutines,
// rounds and hold, no etcd. What it measures is the queue alone.
func queueFloor(contenders, slots, rounds int, hold time.Duration) []time.Duration {
	sem := make(chan struct{}, slots)
	var mu sync.Mutex
	var waits []time.Duration
	var wg sync.WaitGroup
	for n := 0; n < contenders; n++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				t0 := time.Now()
				sem <- struct{}{}
				w := time.Since(t0)
				time.Sleep(hold)
				<-sem
				mu.Lock()
				waits = append(waits, w)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return waits
}

// percentile is the p-th percentile (nearest rank) of ds.
func percentile(ds []time.Duration, p int) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

// startEtcd runs one etcd member on free 127.0.0.1 ports and waits until
// it answers.
func startEtcd(ctx context.Context, bin, dir string) (endpoint string, stop func(), err error) {
	port := func() (int, error) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port, nil
	}
	cp, err := port()
	if err != nil {
		return "", nil, err
	}
	pp, err := port()
	if err != nil {
		return "", nil, err
	}
	cu, pu := fmt.Sprintf("http://127.0.0.1:%d", cp), fmt.Sprintf("http://127.0.0.1:%d", pp)
	logf, err := os.Create(filepath.Join(dir, "etcd.log"))
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--name", "bench", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "bench="+pu, "--listen-metrics-urls", "")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return "", nil, fmt.Errorf("start etcd: %w", err)
	}
	stop = func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() }
	cli, _ := etcdlock.NewClient(&http.Client{Timeout: time.Second}, cu)
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := cli.Put(ctx, "bench/ready", []byte("1"))
		if err == nil {
			return cu, stop, nil
		}
		if time.Now().After(deadline) || errors.Is(err, context.Canceled) {
			stop()
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			return "", nil, fmt.Errorf("etcd did not come up: %v\n%s", err, strings.TrimSpace(string(b[max(0, len(b)-2000):])))
		}
		time.Sleep(100 * time.Millisecond)
	}
}
