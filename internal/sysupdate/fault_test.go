package sysupdate

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/download"
	"github.com/stratalinux/strata/internal/repo"
)

// The fault-injection child: when STRATA_FAULT_ROOT is set, the test
// binary runs one "update" on that root and SIGKILLs itself at step
// STRATA_FAULT_KILL_AT (0: never; then it writes the number of steps it
// passed to STRATA_FAULT_COUNT).
func TestMain(m *testing.M) {
	if root := os.Getenv("STRATA_FAULT_ROOT"); root != "" {
		os.Exit(faultChild(root))
	}
	os.Exit(m.Run())
}

func faultChild(root string) int {
	killAt, _ := strconv.Atoi(os.Getenv("STRATA_FAULT_KILL_AT"))
	d, err := Load(root, DefinitionDirs("hello"), testSpec)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	steps := 0
	labels := map[string]int{}
	e := &Engine{Root: root, Defs: d, CheckFreshness: true, Client: &download.Client{Stall: 5 * time.Second}, ChunkSize: 64 << 10,
		Step: func(label string) {
			steps++
			labels[label]++
			if steps == killAt {
				syscall.Kill(os.Getpid(), syscall.SIGKILL)
				select {}
			}
		}}
	if _, err := e.Update(context.Background(), ""); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if p := os.Getenv("STRATA_FAULT_COUNT"); p != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "%d\n", steps)
		for l, n := range labels {
			fmt.Fprintf(&b, "%s %d\n", l, n)
		}
		os.WriteFile(p, []byte(b.String()), 0o644)
	}
	return 0
}

// cloneTree copies a scratch root, hard-linking regular files (the
// updater never writes into an existing file, it only creates, renames
// and unlinks).
func cloneTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, out)
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		default:
			return os.Link(p, out)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
}

func runChild(t *testing.T, root string, killAt int, count string) (killed bool, stderr string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "STRATA_FAULT_ROOT="+root, "STRATA_FAULT_KILL_AT="+strconv.Itoa(killAt), "STRATA_FAULT_COUNT="+count,
		"GORACE=atexit_sleep_ms=0") // a race-enabled child would idle 1 s at exit
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				return true, string(out)
			}
		}
		t.Fatalf("child (kill at %d) failed: %v\n%s", killAt, err, out)
	}
	return false, string(out)
}

// checkCurrent asserts the CurrentSymlink points at a complete image
// whose hash is the published one, and returns its file name.
func checkCurrent(t *testing.T, root string, r *testRepo) string {
	t.Helper()
	link := filepath.Join(root, "etc/extensions/hello.raw")
	target, err := os.Readlink(link)
	if err != nil {
		t.Fatalf("current symlink: %v", err)
	}
	data, err := os.ReadFile(link)
	if err != nil {
		t.Fatalf("current symlink %s dangles: %v", target, err)
	}
	name := filepath.Base(target)
	if want, ok := r.images[name]; !ok || sha(data) != sha(want) {
		t.Fatalf("current symlink points to %s, which is not a complete, verified image", target)
	}
	return name
}

// TestSIGKILLDuringUpdate kills the updater at every step of an update
// (each downloaded chunk, verification, the renames, the symlink swap and
// vacuum) and checks after each kill that the current symlink points to a
// complete, verified image, and that the next run finishes the job.
func TestSIGKILLDuringUpdate(t *testing.T) {
	const size = 3 << 20 // 48 download chunks of 64 KiB
	r := newTestRepo(t, true, size, "1.0", "1.1")
	pristine := clientRoot(t, r, string(repo.TransferFile(repo.TransferSpec{Name: "hello", URL: r.url, Verify: true, InstancesMax: 2})))
	for _, v := range []string{"1.0", "1.1"} {
		if _, err := newEngine(t, pristine).Update(context.Background(), v); err != nil {
			t.Fatal(err)
		}
	}
	r.publish(t, true, size, "1.2")
	want := "hello-1.2-x86-64.raw"
	// Leftovers of older interrupted runs, for vacuum to clear.
	writeFiles(t, pristine, map[string]string{
		"opt/extensions/hello/.sysupdate.partial.hello-0.9-x86-64.raw": "partial",
		"opt/extensions/hello/.sysupdate.pending.hello-0.8-x86-64.raw": "pending",
		"opt/extensions/hello/.#strata-dl.old":                         "temp",
	})

	// Count the steps of an undisturbed run.
	countFile := filepath.Join(t.TempDir(), "count")
	probe := filepath.Join(t.TempDir(), "root")
	cloneTree(t, pristine, probe)
	runChild(t, probe, 0, countFile)
	data, err := os.ReadFile(countFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	total, _ := strconv.Atoi(lines[0])
	t.Logf("%d kill points: %s", total, strings.Join(lines[1:], ", "))
	if total < 50 {
		t.Fatalf("only %d kill points, want at least 50", total)
	}
	if got := checkCurrent(t, probe, r); got != want {
		t.Fatalf("undisturbed run: current %s", got)
	}

	work := t.TempDir()
	for k := 1; k <= total; k++ {
		root := filepath.Join(work, strconv.Itoa(k))
		cloneTree(t, pristine, root)
		if killed, out := runChild(t, root, k, ""); !killed {
			t.Fatalf("kill point %d: child was not killed\n%s", k, out)
		}
		checkCurrent(t, root, r)
		if killed, out := runChild(t, root, 0, ""); killed {
			t.Fatalf("kill point %d: recovery run killed\n%s", k, out)
		}
		if got := checkCurrent(t, root, r); got != want {
			t.Fatalf("kill point %d: after recovery current is %s, want %s", k, got, want)
		}
		entries, _ := os.ReadDir(filepath.Join(root, "opt/extensions/hello"))
		if len(entries) > 2 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Fatalf("kill point %d: after recovery %v (InstancesMax=2, no leftovers)", k, names)
		}
		os.RemoveAll(root)
	}
}
