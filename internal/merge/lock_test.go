package merge

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/imageclass"
	"github.com/stratalinux/strata/internal/testutil/buftest"
	"github.com/stratalinux/strata/internal/testutil/exttest"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

// The helper process: the tests below run the test binary again with
// these variables set, so that each merge, refresh or unmerge is a
// process of its own, as two `strata sysext` commands would be.
const (
	helperOp    = "STRATA_MERGE_HELPER_OP" // merge, refresh or unmerge
	helperRoot  = "STRATA_MERGE_HELPER_ROOT"
	helperClass = "STRATA_MERGE_HELPER_CLASS"
	// helperHold makes the operation stop once its images are mounted,
	// print "STAGED <dir>" and wait until its stdin is closed.
	helperHold = "STRATA_MERGE_HELPER_HOLD"
)

// TestHelperProcess is not a test: it is the helper process.
func TestHelperProcess(t *testing.T) {
	op := os.Getenv(helperOp)
	if op == "" {
		return
	}
	class, err := imageclass.Parse(os.Getenv(helperClass))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	e := &Engine{Class: class, Root: os.Getenv(helperRoot), Hierarchies: class.DefaultHierarchies(), Mode: MutableNo, Log: log}
	if os.Getenv(helperHold) != "" {
		e.staged = func(staging string) {
			fmt.Printf("STAGED %s\n", staging)
			_, _ = io.Copy(io.Discard, os.Stdin)
		}
	}
	ctx := context.Background()
	switch op {
	case "merge":
		_, err = e.Merge(ctx)
	case "refresh":
		_, err = e.Refresh(ctx)
	case "unmerge":
		_, err = e.Unmerge(ctx)
	default:
		err = fmt.Errorf("unknown helper operation %q", op)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAILED:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

type helper struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stdout *bufio.Reader
	stderr *lockedBuffer
	done   chan struct{}
	code   int
}

type lockedBuffer = buftest.Buffer

func startHelper(t *testing.T, op string, class imageclass.Class, root string, hold bool) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperOp+"="+op, helperRoot+"="+root, helperClass+"="+class.String())
	if hold {
		cmd.Env = append(cmd.Env, helperHold+"=1")
	}
	h := &helper{cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	var err error
	if h.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h.stdout = bufio.NewReader(out)
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		_ = cmd.Wait()
		h.code = cmd.ProcessState.ExitCode()
		close(h.done)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-h.done
	})
	return h
}

// staged waits for a holding helper to report its staging directory.
func (h *helper) staged(t *testing.T) string {
	t.Helper()
	type line struct {
		s   string
		err error
	}
	c := make(chan line, 1)
	go func() {
		s, err := h.stdout.ReadString('\n')
		c <- line{s, err}
	}()
	select {
	case l := <-c:
		dir, ok := strings.CutPrefix(strings.TrimSpace(l.s), "STAGED ")
		if !ok {
			<-h.done
			t.Fatalf("helper did not stage (%v, exit %d): %q\n%s", l.err, h.code, l.s, h.stderr)
		}
		return dir
	case <-time.After(20 * time.Second):
		t.Fatalf("helper did not stage in time\n%s", h.stderr)
	}
	return ""
}

// wait returns the helper's exit code once it ends.
func (h *helper) wait(t *testing.T) int {
	t.Helper()
	select {
	case <-h.done:
		return h.code
	case <-time.After(30 * time.Second):
		t.Fatalf("helper did not finish\n%s", h.stderr)
	}
	return -1
}

func (h *helper) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

// waitsForLock waits until the helper says it waits for the lock; it
// fails the test if the helper ends instead.
func (h *helper) waitsForLock(t *testing.T, what string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(h.stderr.String(), "Waiting for another") {
			return
		}
		if h.exited() {
			t.Fatalf("%s did not wait for the running one: it ended with exit %d\n%s", what, h.code, h.stderr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s neither waited nor ended\n%s", what, h.stderr)
}

// overlaysOn counts the overlay mounts stacked on target.
func overlaysOn(t *testing.T, target string) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		f, p := strings.Fields(pre), strings.Fields(post)
		if ok && len(f) > 4 && len(p) > 0 && unescapeMountinfo(f[4]) == target && p[0] == "overlay" {
			n++
		}
	}
	return n
}

func lockRoot(t *testing.T) string {
	root := exttest.Root(t, exttest.DefaultOSRelease)
	exttest.SysextTree(t, filepath.Join(root, "var/lib/extensions/a"), "a", anyRelease, map[string]string{"usr/bin/a": "a"})
	exttest.ConfextTree(t, filepath.Join(root, "var/lib/confexts/c"), "c", anyRelease, map[string]string{"etc/c.conf": "c"})
	return root
}

func TestConcurrentMergesTakeTurns(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := lockRoot(t)
	usr := filepath.Join(root, "usr")

	// Two merges: the second waits for the first, then finds /usr
	// merged and says so. A confext merge meanwhile does not wait.
	first := startHelper(t, "merge", imageclass.Sysext, root, true)
	first.staged(t)
	second := startHelper(t, "merge", imageclass.Sysext, root, false)
	conf := startHelper(t, "merge", imageclass.Confext, root, false)
	if code := conf.wait(t); code != 0 {
		t.Fatalf("confext merge while a sysext merge runs: exit %d\n%s", code, conf.stderr)
	}
	if first.exited() {
		t.Fatal("the first sysext merge ended before it was let go")
	}
	if overlaysOn(t, filepath.Join(root, "etc")) != 1 {
		t.Fatal("confext not merged into /etc")
	}
	second.waitsForLock(t, "second merge")
	first.stdin.Close()
	if code := first.wait(t); code != 0 {
		t.Fatalf("first merge: exit %d\n%s", code, first.stderr)
	}
	if code := second.wait(t); code != 1 || !strings.Contains(second.stderr.String(), "already merged") {
		t.Fatalf("second merge: exit %d, want 1 with 'already merged'\n%s", code, second.stderr)
	}
	if n := overlaysOn(t, usr); n != 1 {
		t.Fatalf("%d overlays on %s after two merges, want 1", n, usr)
	}

	// Two refreshes: both succeed, one after the other; one overlay.
	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	first = startHelper(t, "refresh", imageclass.Sysext, root, true)
	first.staged(t)
	second = startHelper(t, "refresh", imageclass.Sysext, root, false)
	second.waitsForLock(t, "second refresh")
	first.stdin.Close()
	for i, h := range []*helper{first, second} {
		if code := h.wait(t); code != 0 {
			t.Fatalf("refresh %d: exit %d\n%s", i+1, code, h.stderr)
		}
	}
	if n := overlaysOn(t, usr); n != 1 {
		t.Fatalf("%d overlays on %s after two refreshes, want 1", n, usr)
	}
	if read(t, filepath.Join(usr, "bin/a")) != "a" {
		t.Fatal("extension not visible after the refreshes")
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := newEngine(t, root, imageclass.Confext).Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, root, root)
}

func TestUnmergeWaitsForMerge(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := lockRoot(t)
	merging := startHelper(t, "merge", imageclass.Sysext, root, true)
	merging.staged(t)
	unmerging := startHelper(t, "unmerge", imageclass.Sysext, root, false)
	unmerging.waitsForLock(t, "unmerge")
	merging.stdin.Close()
	if code := merging.wait(t); code != 0 {
		t.Fatalf("merge: exit %d\n%s", code, merging.stderr)
	}
	if code := unmerging.wait(t); code != 0 {
		t.Fatalf("unmerge: exit %d\n%s", code, unmerging.stderr)
	}
	// The unmerge came second, so nothing is left merged.
	if n := overlaysOn(t, filepath.Join(root, "usr")); n != 0 {
		t.Fatalf("%d overlays on /usr after merge then unmerge, want 0", n)
	}
	checkClean(t, root, root)
}

func TestKilledRefreshIsCleanedUp(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := lockRoot(t)
	parent := filepath.Join(root, StagingDir)

	// A refresh killed while its images are mounted leaves its staging
	// directory behind.
	killed := startHelper(t, "refresh", imageclass.Sysext, root, true)
	left := killed.staged(t)
	if filepath.Dir(left) != parent {
		t.Fatalf("staging directory %s, want it in the root's %s", left, parent)
	}
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed.wait(t)
	if _, err := os.Stat(left); err != nil {
		t.Fatalf("the killed refresh left no staging directory to clean: %v", err)
	}

	// Other leftovers: one with a mount still visible here, a symbolic
	// link pointing out of the root, and a file that is not ours.
	mounted := filepath.Join(parent, "sysext.mounted")
	if err := os.Mkdir(mounted, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", mounted, "tmpfs", 0, "mode=0700"); err != nil {
		t.Fatal(err)
	}
	exttest.Write(t, mounted, map[string]string{"extensions/x/usr/file": "x"})
	outside := t.TempDir()
	exttest.Write(t, outside, map[string]string{"precious": "keep"})
	if err := os.Symlink(outside, filepath.Join(parent, "confext.link")); err != nil {
		t.Fatal(err)
	}
	exttest.Write(t, parent, map[string]string{"notes.txt": "not a staging directory"})

	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Refresh(context.Background()); err != nil {
		t.Fatalf("refresh after the killed one: %v", err)
	}
	for _, p := range []string{left, mounted, filepath.Join(parent, "confext.link")} {
		mustNotExist(t, p)
	}
	if m := exttest.Mounts(t, parent); len(m) > 0 {
		t.Fatalf("mounts left in the staging directory: %v", m)
	}
	if read(t, filepath.Join(outside, "precious")) != "keep" || read(t, filepath.Join(parent, "notes.txt")) == "" {
		t.Fatal("cleaning removed something that was not a staging directory")
	}
	if n := overlaysOn(t, filepath.Join(root, "usr")); n != 1 {
		t.Fatalf("%d overlays on /usr, want 1", n)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 1 {
		t.Fatalf("staging directory holds %v after the refresh, want only notes.txt", entries)
	}
	// Neither staging nor the lock touched the host's /run.
	for _, p := range []string{"/run/strata", "/run/systemd/sysext.lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s exists on the host (%v); --root must keep to the root's /run", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, LockPath(imageclass.Sysext))); err != nil {
		t.Errorf("lock file not in the root: %v", err)
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, root, root)
}

func TestLockWaitEndsWithContext(t *testing.T) {
	if !privtest.InMountNS(t) {
		return
	}
	root := lockRoot(t)
	// Another holder (as systemd-sysext or a second strata would be).
	p := filepath.Join(root, LockPath(imageclass.Sysext))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	e := newEngine(t, root, imageclass.Sysext)
	if _, err := e.Merge(ctx); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), p) {
		t.Fatalf("merge while the lock is held: %v, want a deadline error naming %s", err, p)
	}
	if n := overlaysOn(t, filepath.Join(root, "usr")); n != 0 {
		t.Fatalf("merge went ahead without the lock: %d overlays", n)
	}
	// The confext lock is another file: a confext merge goes ahead.
	if _, err := newEngine(t, root, imageclass.Confext).Merge(context.Background()); err != nil {
		t.Fatalf("confext merge while the sysext lock is held: %v", err)
	}
	if _, err := newEngine(t, root, imageclass.Confext).Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	if _, err := e.Merge(context.Background()); err != nil {
		t.Fatalf("merge once the lock is free: %v", err)
	}
	if _, err := e.Unmerge(context.Background()); err != nil {
		t.Fatal(err)
	}
	checkClean(t, root, root)
}
