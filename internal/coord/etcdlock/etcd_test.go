package etcdlock

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// member is one real etcd server started for a test.
type member struct {
	name, client string
	cmd          *exec.Cmd
	done         chan struct{}
}

// etcdBinary finds etcd, failing loudly under CI and skipping otherwise.
func etcdBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("etcd")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("etcd not found (CI=true): install Debian's etcd-server (scripts/deps): %v", err)
		}
		t.Skipf("etcd not found; install etcd-server: %v", err)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startCluster starts n etcd members on 127.0.0.1 random ports with data in
// a temp dir, waits until the cluster answers and returns its members and a
// client over all of them.
func startCluster(t *testing.T, n int) ([]*member, *Client) {
	t.Helper()
	bin := etcdBinary(t)
	dir := t.TempDir()
	type ports struct{ client, peer int }
	ps := make([]ports, n)
	var initial []string
	for i := range ps {
		ps[i] = ports{freePort(t), freePort(t)}
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, ps[i].peer))
	}
	var members []*member
	var endpoints []string
	for i, p := range ps {
		name := fmt.Sprintf("m%d", i)
		cu := fmt.Sprintf("http://127.0.0.1:%d", p.client)
		pu := fmt.Sprintf("http://127.0.0.1:%d", p.peer)
		logf, err := os.Create(filepath.Join(dir, name+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin,
			"--name", name,
			"--data-dir", filepath.Join(dir, name),
			"--listen-client-urls", cu, "--advertise-client-urls", cu,
			"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
			"--initial-cluster", strings.Join(initial, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir),
			"--heartbeat-interval", "50", "--election-timeout", "500",
			"--listen-metrics-urls", "", // no extra port
		)
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			t.Fatalf("start etcd %s: %v", name, err)
		}
		m := &member{name: name, client: cu, cmd: cmd, done: make(chan struct{})}
		go func() { _ = cmd.Wait(); logf.Close(); close(m.done) }()
		members = append(members, m)
		endpoints = append(endpoints, cu)
	}
	t.Cleanup(func() {
		for _, m := range members {
			m.kill()
		}
		if t.Failed() {
			for _, m := range members {
				b, _ := os.ReadFile(filepath.Join(dir, m.name+".log"))
				if len(b) > 4000 {
					b = b[len(b)-4000:]
				}
				t.Logf("etcd %s log tail:\n%s", m.name, b)
			}
		}
	})
	cli := newClient(t, endpoints...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := cli.Put(ctx, "strata-test/ready", []byte("1"))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd cluster of %d did not come up: %v", n, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return members, cli
}

func (m *member) kill() {
	_ = m.cmd.Process.Kill()
	<-m.done
}

func newClient(t *testing.T, endpoints ...string) *Client {
	t.Helper()
	cli, err := NewClient(&http.Client{}, endpoints...)
	if err != nil {
		t.Fatal(err)
	}
	return cli
}

// officialClient is etcd's own gRPC client, for checking that what the
// gateway client writes is what etcd's other users read.
func officialClient(t *testing.T, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
