package etcdlock

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestNewClientEndpoints(t *testing.T) {
	c, err := NewClient(nil, "http://a:2379, http://b:2379/", "https://c:2379")
	if err != nil || strings.Join(c.Endpoints, " ") != "http://a:2379 http://b:2379 https://c:2379" {
		t.Fatalf("%v %v", c, err)
	}
	for _, bad := range [][]string{nil, {""}, {" , "}, {"a:2379"}} {
		if _, err := NewClient(nil, bad...); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// TestFailoverPastDeadAndLeaderlessMembers: a refused connection and a 503
// (a member without a leader) send the call to the next member; a 4xx is
// the answer and is not retried elsewhere.
func TestFailoverPastDeadAndLeaderlessMembers(t *testing.T) {
	members, _ := startCluster(t, 1)
	leaderless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, `{"error":"etcdserver: no leader"}`, http.StatusServiceUnavailable)
	}))
	defer leaderless.Close()
	dead := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	cli := newClient(t, dead, leaderless.URL, members[0].client)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cli.Put(ctx, "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	v, modRev, _, err := cli.Get(ctx, "k")
	if err != nil || string(v) != "v" || modRev == 0 {
		t.Fatalf("get: %q %d %v", v, modRev, err)
	}
	ok, _, err := cli.CompareAndPut(ctx, "k", modRev+100, []byte("w"))
	if err != nil || ok {
		t.Fatalf("stale compare-and-put: ok=%v %v", ok, err)
	}
	if ok, _, err := cli.CompareAndPut(ctx, "k", modRev, []byte("w")); err != nil || !ok {
		t.Fatalf("compare-and-put: ok=%v %v", ok, err)
	}
	if ok, _, err := cli.CompareAndPut(ctx, "absent", 0, []byte("x")); err != nil || !ok {
		t.Fatalf("create absent key: ok=%v %v", ok, err)
	}

	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "bad request", http.StatusBadRequest)
	}))
	defer bad.Close()
	only := newClient(t, bad.URL, members[0].client)
	if _, _, _, err := only.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "400") {
		t.Fatalf("4xx: %v", err)
	}
	none := newClient(t, dead)
	if _, _, _, err := none.Get(ctx, "k"); err == nil || !strings.Contains(err.Error(), "no etcd member answered") {
		t.Fatalf("all down: %v", err)
	}
}

// TestAuthenticatedEtcd: with auth enabled, calls carry the token from
// /v3/auth/authenticate; without credentials etcd refuses them.
func TestAuthenticatedEtcd(t *testing.T) {
	members, _ := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	official := officialClient(t, members[0].client)
	if _, err := official.RoleAdd(ctx, "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := official.UserAdd(ctx, "root", "s3cret"); err != nil {
		t.Fatal(err)
	}
	if _, err := official.UserGrantRole(ctx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := official.AuthEnable(ctx); err != nil {
		t.Fatal(err)
	}
	anon := newClient(t, members[0].client)
	if _, _, _, err := anon.Get(ctx, Key("")); err == nil {
		t.Fatal("etcd with auth answered an anonymous read")
	}
	cli := newClient(t, members[0].client)
	cli.Username, cli.Password = "root", "s3cret"
	l, _ := New(cli, "", "machine-auth", nil)
	if err := l.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := Status(ctx, cli, "")
	if err != nil || len(s.Holders) != 1 || s.Holders[0] != "machine-auth" {
		t.Fatalf("status %+v %v", s, err)
	}
	wrong := newClient(t, members[0].client)
	wrong.Username, wrong.Password = "root", "wrong"
	if _, _, _, err := wrong.Get(ctx, Key("")); err == nil || !strings.Contains(err.Error(), "authenticate to etcd as root") {
		t.Fatalf("wrong password: %v", err)
	}
}

// WaitFor skips the changes its predicate rejects on one stream and
// returns at the first it accepts; a delete is seen as deleted.
func TestWaitForSkipsRejectedChanges(t *testing.T) {
	_, cli := startCluster(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, _, rev, err := cli.Get(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"full-1", "full-2", "free", "full-3"} {
		if err := cli.Put(ctx, "k", []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	var seen []string
	err = cli.WaitFor(ctx, "k", rev, func(v []byte, deleted bool) bool {
		seen = append(seen, string(v))
		return string(v) == "free"
	})
	if err != nil || strings.Join(seen, " ") != "full-1 full-2 free" {
		t.Fatalf("WaitFor: %v, saw %q", err, seen)
	}
	// Past the last write nothing comes until ctx ends.
	_, _, rev, _ = cli.Get(ctx, "k")
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if err := cli.WaitFor(short, "k", rev, func([]byte, bool) bool { return true }); err == nil {
		t.Fatal("WaitFor returned without a change")
	}
}
