package launch_test

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/flake/runas"
	"github.com/stratalinux/strata/internal/testutil/privtest"
)

// throwawayUser adds a user with a home under dir and removes it (and
// every process it still runs, such as rootless podman's pause process)
// when the test ends.
func throwawayUser(t *testing.T, dir string) runas.User {
	t.Helper()
	privtest.RequireTools(t, "useradd", "userdel", "newuidmap", "newgidmap")
	var b [4]byte
	rand.Read(b[:])
	name := "strata-t" + hex.EncodeToString(b[:])
	home := filepath.Join(dir, "home-"+name)
	if out, err := exec.Command("useradd", "-M", "-d", home, "-s", "/bin/sh", "-U", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v\n%s", err, out)
	}
	u, err := runas.Lookup(name)
	if err != nil {
		exec.Command("userdel", name).Run()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// userdel refuses a user that still owns a process, and a
		// SIGKILLed process (or one its dying parent forked) lingers
		// until it has exited and been reaped: wait for that.
		if left := endUserProcesses(u.UID, 30*time.Second); len(left) > 0 {
			t.Errorf("processes of %s still there after 30 s: %s", name, strings.Join(left, ", "))
		}
		if out, err := exec.Command("userdel", name).CombinedOutput(); err != nil {
			t.Errorf("userdel %s: %v\n%s", name, err, out)
		}
		os.RemoveAll(u.RuntimeDir())
	})
	if err := os.MkdirAll(home, 0o700); err != nil {
		t.Fatal(err)
	}
	os.Chown(home, int(u.UID), int(u.GID))
	// t.TempDir's directories are 0700: the user must reach its home.
	for d := dir; d != "/" && d != os.TempDir(); d = filepath.Dir(d) {
		os.Chmod(d, 0o755)
	}
	return u
}

// endUserProcesses SIGKILLs the processes whose /proc entry belongs to
// uid (this test's own user), by process id, until none is left or the
// timeout passes; it returns what is left as "PID (COMM)".
func endUserProcesses(uid uint32, timeout time.Duration) []string {
	deadline := time.Now().Add(timeout)
	for {
		left := userProcesses(uid)
		if len(left) == 0 || time.Now().After(deadline) {
			var s []string
			for _, pid := range left {
				comm, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "comm"))
				s = append(s, fmt.Sprintf("%d (%s)", pid, strings.TrimSpace(string(comm))))
			}
			return s
		}
		for _, pid := range left {
			syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// userProcesses lists the processes (zombies too: userdel counts them)
// whose /proc entry belongs to uid.
func userProcesses(uid uint32) []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		var st syscall.Stat_t
		if syscall.Stat(filepath.Join("/proc", e.Name()), &st) == nil && st.Uid == uid {
			pids = append(pids, pid)
		}
	}
	return pids
}

// asUser runs a command with the user's credentials and environment,
// the launcher's own switch.
func (p *podmanEnv) asUser(u runas.User, stdin, name string, args ...string) (string, string, int) {
	p.t.Helper()
	c := exec.Command(name, args...)
	c.Env = u.Env(p.env)
	c.SysProcAttr = u.SysProcAttr()
	c.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("%s as %s: %v", name, u.Name, err)
	}
	return out.String(), errb.String(), code
}

// uidMap is the first line of a container's /proc/self/uid_map as
// fields: "0 UID 1" in a rootless container of user UID, "0 0
// 4294967295" in a rootful one.
func uidMap(out string) string {
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) == 3 {
			return strings.Join(f, " ")
		}
	}
	return ""
}

func TestPodmanRunAs(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	privtest.RequireRoot(t)
	p := newPodmanEnv(t)
	u := throwawayUser(t, p.dir)
	if err := u.EnsureRuntimeDir(); err != nil {
		t.Fatal(err)
	}
	// The image goes into the user's own rootless storage only.
	c := exec.Command("sh", "-c", "tar -C \"$1\" -c . | podman import - localhost/bbu:1", "sh", filepath.Join(p.dir, "bb"))
	c.Env, c.SysProcAttr = u.Env(p.env), u.SysProcAttr()
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("podman import as %s: %v\n%s", u.Name, err, out)
	}
	sysroot := filepath.Join(p.dir, "sysroot")
	p.strataOK("flake", "--root", sysroot, "register", "podman", "--app", "/usr/bin/ush", "--container", "localhost/bbu:1", "--target", "/bin/sh", "--run-as", u.Name)
	p.strataOK("flake", "--root", sysroot, "register", "podman", "--app", "/usr/bin/rush", "--container", "localhost/bbu:1", "--target", "/bin/sh", "--run-as", "#"+strconv.Itoa(int(u.UID)), "--resume")
	p.strataOK("flake", "--root", sysroot, "register", "podman", "--app", "/usr/bin/rootsh", "--container", "localhost/bb:1", "--target", "/bin/sh")
	ush, rush, rootsh := filepath.Join(sysroot, "usr/bin/ush"), filepath.Join(sysroot, "usr/bin/rush"), filepath.Join(sysroot, "usr/bin/rootsh")
	script := "wc -l; cat /proc/self/uid_map; echo err >&2; exit 4"
	rootless := fmt.Sprintf("0 %d 1", u.UID)

	t.Run("root launches it as the user, rootless", func(t *testing.T) {
		out, errs, code := p.run("a\nb\n", ush, "-c", script)
		if code != 4 || !strings.HasPrefix(out, "2\n") || uidMap(out) != rootless || !strings.Contains(errs, "err\n") {
			t.Fatalf("stdout %q stderr %q code %d; want uid map %q", out, errs, code, rootless)
		}
	})
	t.Run("the user launches it as itself", func(t *testing.T) {
		out, errs, code := p.asUser(u, "x\n", ush, "-c", script)
		if code != 4 || !strings.HasPrefix(out, "1\n") || uidMap(out) != rootless {
			t.Fatalf("stdout %q stderr %q code %d", out, errs, code)
		}
	})
	t.Run("a root flake stays rootful", func(t *testing.T) {
		out, errs, code := p.run("", rootsh, "-c", "cat /proc/self/uid_map")
		if code != 0 || uidMap(out) != "0 0 4294967295" {
			t.Fatalf("stdout %q stderr %q code %d", out, errs, code)
		}
	})
	t.Run("resumed instance lives in the user's podman and runtime dir", func(t *testing.T) {
		for i := range 2 {
			out, errs, code := p.run("", rush, "-c", "echo x >> /tmp/n; wc -l < /tmp/n; cat /proc/self/uid_map")
			if code != 0 || !strings.HasPrefix(out, strconv.Itoa(i+1)+"\n") || uidMap(out) != rootless {
				t.Fatalf("launch %d: stdout %q stderr %q code %d", i, out, errs, code)
			}
		}
		state := filepath.Join(u.RuntimeDir(), "flakes", "rush.json")
		var st syscall.Stat_t
		if err := syscall.Stat(state, &st); err != nil || st.Uid != u.UID {
			t.Fatalf("instance state %s: %v, owner %d", state, err, st.Uid)
		}
		if ps, _, _ := p.asUser(u, "", "podman", "ps", "--format", "{{.Names}}"); !strings.Contains(ps, "flake-rush-default") {
			t.Fatalf("not in the user's podman: %q", ps)
		}
		if ps := p.podman("ps", "-a", "--format", "{{.Names}}"); strings.Contains(ps, "flake-rush") {
			t.Fatalf("in root's podman: %q", ps)
		}
	})
	t.Run("links the user plants in its state directory are not followed as root", func(t *testing.T) {
		flakes := filepath.Join(u.RuntimeDir(), "flakes")
		if err := os.Rename(flakes, flakes+".saved"); err != nil {
			t.Fatal(err)
		}
		defer func() { os.Remove(flakes); os.Rename(flakes+".saved", flakes) }()
		rootOnly := filepath.Join(p.dir, "root-only")
		os.Mkdir(rootOnly, 0o700)
		os.Symlink(rootOnly, flakes)
		os.Lchown(flakes, int(u.UID), int(u.GID))
		_, errs, code := p.run("", rush, "-c", "true")
		if ents, _ := os.ReadDir(rootOnly); code != 125 || !strings.Contains(errs, "permission denied") || len(ents) != 0 {
			t.Fatalf("stderr %q code %d, %d files written into a root-only directory", errs, code, len(ents))
		}
	})
	t.Run("another user is refused with the fix", func(t *testing.T) {
		nobody, err := runas.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody")
		}
		_, errs, code := p.asUser(nobody, "", ush)
		want := fmt.Sprintf("flake ush runs podman as user %s (runtime.runas: %s) and you are nobody: run it as root (it then switches to %s) or as %s", u.Name, u.Name, u.Name, u.Name)
		if code != 125 || !strings.Contains(errs, want) {
			t.Fatalf("stderr %q code %d", errs, code)
		}
		_, errs, code = p.asUser(nobody, "", rootsh)
		if code != 125 || !strings.Contains(errs, "flake rootsh runs podman as root (runtime.runas: root) and you are nobody: run it as root") {
			t.Fatalf("root flake by nobody: stderr %q code %d", errs, code)
		}
	})
	t.Run("unknown user at registration and at launch", func(t *testing.T) {
		_, errs, code := p.run("", p.strata, "flake", "--root", sysroot, "register", "podman", "--app", "/usr/bin/nosh", "--container", "localhost/bb:1", "--run-as", "strata-no-such-user")
		if code == 0 || !strings.Contains(errs, `--run-as strata-no-such-user: no user "strata-no-such-user" in /etc/passwd`) {
			t.Fatalf("register: stderr %q code %d", errs, code)
		}
		// A flake-pilot registration naming a user this host lacks.
		drop := filepath.Join(sysroot, "usr/share/flakes/rootsh.d")
		os.WriteFile(filepath.Join(drop, "runas.yaml"), []byte("container:\n  runtime:\n    runas: strata-no-such-user\n"), 0o644)
		defer os.Remove(filepath.Join(drop, "runas.yaml"))
		_, errs, code = p.run("", rootsh, "-c", "true")
		if code != 125 || !strings.Contains(errs, `flake rootsh: runtime.runas: no user "strata-no-such-user" in /etc/passwd`) {
			t.Fatalf("launch: stderr %q code %d", errs, code)
		}
	})
	t.Run("image missing from the user's storage at registration", func(t *testing.T) {
		_, errs, code := p.run("", p.strata, "flake", "--root", sysroot, "register", "podman", "--app", "/usr/bin/bbsh2", "--container", "localhost/bb:1", "--run-as", u.Name)
		if code == 0 || !strings.Contains(errs, "image localhost/bb:1 is not in the podman storage of user "+u.Name) {
			t.Fatalf("stderr %q code %d", errs, code)
		}
	})
}
