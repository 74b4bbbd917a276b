package runas

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func fakeLookup(spec string) (User, error) {
	users := map[string]User{
		"root":  {Name: "root", UID: 0, GID: 0, Home: "/root"},
		"#0":    {Name: "root", UID: 0, GID: 0, Home: "/root"},
		"alice": {Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"},
		"#1000": {Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"},
		"bob":   {Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob"},
	}
	if u, ok := users[spec]; ok {
		return u, nil
	}
	return User{}, errors.New(`no user "` + spec + `" in /etc/passwd`)
}

func TestDecide(t *testing.T) {
	root, _ := fakeLookup("root")
	alice, _ := fakeLookup("alice")
	for _, tc := range []struct {
		runas     string
		caller    User
		kind      Kind
		user      string
		errSubstr string
	}{
		{"", root, AsCaller, "root", ""},
		{"", alice, AsCaller, "alice", ""},
		{"root", root, AsCaller, "root", ""},
		{"#0", root, AsCaller, "root", ""},
		{"alice", alice, AsCaller, "alice", ""},
		{"#1000", alice, AsCaller, "alice", ""},
		{" alice ", alice, AsCaller, "alice", ""},
		{"alice", root, Switch, "alice", ""},
		{"#1000", root, Switch, "alice", ""},
		{"bob", alice, 0, "", "flake aws runs podman as user bob (runtime.runas: bob) and you are alice: run it as root (it then switches to bob) or as bob"},
		{"root", alice, 0, "", "flake aws runs podman as root (runtime.runas: root) and you are alice: run it as root"},
		{"nosuch", root, 0, "", `flake aws: runtime.runas: no user "nosuch" in /etc/passwd; register it again with --run-as`},
		{"nosuch", alice, 0, "", `no user "nosuch"`},
	} {
		d, err := Decide("aws", tc.runas, tc.caller, fakeLookup)
		if tc.errSubstr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errSubstr) {
				t.Errorf("runas %q by %s: error %v, want %q", tc.runas, tc.caller.Name, err, tc.errSubstr)
			}
			continue
		}
		if err != nil || d.Kind != tc.kind || d.User.Name != tc.user {
			t.Errorf("runas %q by %s: %+v %v, want kind %d user %s", tc.runas, tc.caller.Name, d, err, tc.kind, tc.user)
		}
	}
}

func TestEnv(t *testing.T) {
	u := User{Name: "bob", UID: 1001, GID: 1001, Home: "/home/bob"}
	env := u.Env([]string{"HOME=/root", "PATH=/bin", "CONTAINERS_CONF=/c", "CONTAINERS_STORAGE_CONF=/root/s", "XDG_RUNTIME_DIR=/run/user/0", "USER=root", "TERM=xterm"})
	want := []string{"PATH=/bin", "CONTAINERS_CONF=/c", "TERM=xterm", "HOME=/home/bob", "USER=bob", "LOGNAME=bob", "XDG_RUNTIME_DIR=/run/user/1001"}
	if !slices.Equal(env, want) {
		t.Fatalf("got %q\nwant %q", env, want)
	}
}

func TestHasRange(t *testing.T) {
	text := "alice:100000:65536\n1001:165536:65536\ncarol:200000:0\n"
	if !HasRange(text, "alice", 1000) || !HasRange(text, "bob", 1001) || HasRange(text, "carol", 1002) || HasRange(text, "dave", 1003) {
		t.Fatal("HasRange")
	}
}

func TestLookupRootAndCaller(t *testing.T) {
	u, err := Lookup("root")
	if err != nil || u.UID != 0 || u.Name != "root" || !slices.Contains(u.Groups, 0) {
		t.Fatalf("root: %+v %v", u, err)
	}
	if u2, err := Lookup("#0"); err != nil || u2.Name != "root" {
		t.Fatalf("#0: %+v %v", u2, err)
	}
	if _, err := Lookup("#x"); err == nil {
		t.Fatal("#x accepted")
	}
	if _, err := Lookup("no-such-user-strata"); err == nil || !strings.Contains(err.Error(), "no user") {
		t.Fatalf("unknown user: %v", err)
	}
	if c := Caller(); c.UID != uint32(os.Geteuid()) {
		t.Fatalf("caller %+v", c)
	}
}

// Do switches one thread only: a file only root can read is unreadable
// inside fn, and readable again outside.
func TestDoSwitchesOneThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("x"), 0o600)
	nobody, err := Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	err = nobody.Do(func() error {
		_, err := os.ReadFile(secret)
		return err
	})
	if !errors.Is(err, os.ErrPermission) {
		t.Fatalf("inside Do: %v, want permission denied", err)
	}
	if _, err := os.ReadFile(secret); err != nil {
		t.Fatalf("after Do: %v", err)
	}
	// A child started with SysProcAttr runs as the user.
	c := exec.Command("id", "-u")
	c.SysProcAttr = nobody.SysProcAttr()
	out, err := c.Output()
	if err != nil || strings.TrimSpace(string(out)) != "65534" {
		t.Fatalf("id -u as nobody: %q %v", out, err)
	}
}

// When Do returns, its thread (with the user's credentials) is gone, so
// no thread of the process differs from the rest: a Become right after
// (which changes every thread at once) cannot find one it may not change
// and take the runtime down ("AllThreadsSyscall6 results differ").
func TestDoLeavesNoSwitchedThread(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to switch users")
	}
	nobody, err := Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody")
	}
	for i := range 300 {
		if err := nobody.Do(func() error { return nil }); err != nil {
			t.Fatal(err)
		}
		ents, _ := os.ReadDir("/proc/self/task")
		for _, e := range ents {
			status, _ := os.ReadFile(filepath.Join("/proc/self/task", e.Name(), "status"))
			for _, l := range strings.Split(string(status), "\n") {
				if f := strings.Fields(l); len(f) > 1 && f[0] == "Uid:" && f[1] != "0" {
					t.Fatalf("round %d: thread %s still runs as uid %s after Do returned", i, e.Name(), f[1])
				}
			}
		}
	}
}
