package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/testutil/buftest"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

type syncBuf = buftest.Buffer

type running struct {
	cmd    *exec.Cmd
	stderr *syncBuf
	done   chan struct{}
}

func startStrata(t *testing.T, args ...string) *running {
	t.Helper()
	r := &running{cmd: exec.Command(strataBin, args...), stderr: &syncBuf{}, done: make(chan struct{})}
	r.cmd.Stderr = r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { _ = r.cmd.Process.Kill(); <-r.done })
	return r
}

func (r *running) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-r.done:
		return r.cmd.ProcessState.ExitCode()
	case <-time.After(30 * time.Second):
		t.Fatalf("%v did not finish\n%s", r.cmd.Args, r.stderr)
	}
	return -1
}

// waiting waits until the command says it waits for the lock, and fails
// the test if it ends instead.
func (r *running) waiting(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if strings.Contains(r.stderr.String(), "Waiting for another sysext merge") {
			return
		}
		select {
		case <-r.done:
			t.Fatalf("%v did not wait for the lock: exit %d\n%s", r.cmd.Args[1:], r.cmd.ProcessState.ExitCode(), r.stderr)
		default:
		}
	}
	t.Fatalf("%v neither waited nor ended\n%s", r.cmd.Args[1:], r.stderr)
}

func overlayCount(t *testing.T, target string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, _ := strings.Cut(line, " - ")
		f, p := strings.Fields(pre), strings.Fields(post)
		if len(f) > 4 && len(p) > 0 && f[4] == target && p[0] == "overlay" {
			n++
		}
	}
	return n
}

func TestConcurrentMergeCommands(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := scratch(t)
	exttest.ConfextTree(t, filepath.Join(root, "var/lib/confexts/c"), "c", "ID=_any\n", map[string]string{"etc/c.conf": "c"})
	// Hold the sysext lock as another merge in progress would.
	lockFile := filepath.Join(root, "run/systemd/sysext.lock")
	os.MkdirAll(filepath.Dir(lockFile), 0o755)
	f, err := os.OpenFile(lockFile, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	a := startStrata(t, "sysext", "--root", root, "merge")
	b := startStrata(t, "sysext", "--root", root, "merge")
	a.waiting(t)
	b.waiting(t)
	// confext has a lock of its own.
	if r := strata(t, nil, "confext", "--root", root, "merge"); r.code != 0 {
		t.Fatalf("confext merge while the sysext lock is held: %+v", r)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	codes := []int{a.wait(t), b.wait(t)}
	loser := b
	if codes[0] != 0 {
		codes[0], codes[1], loser = codes[1], codes[0], a
	}
	if codes[0] != 0 || codes[1] != 1 || !strings.Contains(loser.stderr.String(), "Hierarchy '/usr' is already merged.") {
		t.Fatalf("two merges: exit codes %v, want 0 and 1 with 'already merged'\n%s\n%s", codes, a.stderr, b.stderr)
	}
	if n := overlayCount(t, filepath.Join(root, "usr")); n != 1 {
		t.Fatalf("%d overlays on /usr after two merges, want 1", n)
	}
	if m := exttest.Mounts(t, "/run/strata"); len(m) > 0 {
		t.Fatalf("staging under the host's /run: %v", m)
	}
	if _, err := os.Lstat("/run/strata"); err == nil {
		t.Fatal("--root staged under the host's /run/strata")
	}
	for _, class := range []string{"sysext", "confext"} {
		if r := strata(t, nil, class, "--root", root, "unmerge"); r.code != 0 {
			t.Fatalf("%s unmerge: %+v", class, r)
		}
	}
	if m := exttest.Mounts(t, root); len(m) != 0 {
		t.Fatalf("mounts left %v", m)
	}
}
