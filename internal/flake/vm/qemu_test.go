package vm

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

// TestQemuVM boots Debian's kernel (software emulation unless KVM works)
// with the guest init built from this module, a squashfs rootfs of
// busybox and an ext4 overlay carrying an include, and checks that
// stdout, stderr, stdin and the exit code travel over the framed channel.
func TestQemuVM(t *testing.T) {
	privtest.RequireRoot(t)
	privtest.RequireTools(t, "qemu-system-x86_64", "mksquashfs", "mkfs.ext4", "busybox")
	kernels, _ := filepath.Glob("/boot/vmlinuz-*")
	if len(kernels) == 0 {
		privtest.Missing(t, "no kernel in /boot (apt-get install linux-image-amd64)")
	}
	sort.Strings(kernels)
	kernel := kernels[len(kernels)-1]
	dir := t.TempDir()

	_, file, _, _ := runtime.Caller(0)
	repo := filepath.Join(filepath.Dir(file), "..", "..", "..")
	gi := filepath.Join(dir, "strata-guest-init")
	build := exec.Command("go", "build", "-o", gi, "./cmd/strata-guest-init")
	build.Dir = repo
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build guest init: %v\n%s", err, out)
	}
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"bin", "proc", "sys", "dev", "tmp", "etc"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	bb, _ := exec.LookPath("busybox")
	data, _ := os.ReadFile(bb)
	os.WriteFile(filepath.Join(tree, "bin/busybox"), data, 0o755)
	for _, c := range []string{"sh", "cat", "echo", "wc", "ls"} {
		os.Symlink("busybox", filepath.Join(tree, "bin", c))
	}
	rootfs := filepath.Join(dir, "rootfs.sqfs")
	if out, err := exec.Command("mksquashfs", tree, rootfs, "-noappend", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v %s", err, out)
	}
	inc := filepath.Join(dir, "inc", "etc", "flake.conf")
	os.MkdirAll(filepath.Dir(inc), 0o755)
	os.WriteFile(inc, []byte("included\n"), 0o644)

	// A server on the host's loopback: the guest reaches it at 10.0.2.2.
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.WriteString(w, "from-host "+r.URL.Path+"\n")
	}))
	defer srv.Close()
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	url := fmt.Sprintf("http://10.0.2.2:%d/hello", port)

	// Boot 1, one-shot with networking (the default) on pipes: stdin,
	// separate stdout/stderr, the include, a write to the overlay, the
	// network (interfaces, resolv.conf, a request to the host) and the
	// exit code.
	spec := Spec{Name: "vmsh", Engine: flake.EngineVM, Args: []string{"-c", "read l; echo out:$l; echo err >&2; cat " + inc +
		"; echo w > /written; cat /written; echo /sys/class/net/*; cat /etc/resolv.conf; wget -q -O - " + url + "; [ -t 0 ] || echo notty; exit 7"},
		Include: flake.Include{Path: []string{inc}},
		VM: &flake.VM{Name: "vmsh", TargetAppPath: "/bin/sh", Runtime: &flake.VMRuntime{Engine: "qemu", Firecracker: &flake.Firecracker{
			KernelImagePath: kernel, RootfsImagePath: rootfs, OverlaySize: "32m", MemSizeMiB: 256,
			BootArgs: flake.DefaultBootArgs(flake.EngineVM, false, false, false)}}}}
	stdinR, stdinW, _ := os.Pipe()
	stdinW.WriteString("hello\n")
	stdinW.Close()
	outF, _ := os.Create(filepath.Join(dir, "stdout"))
	errF, _ := os.Create(filepath.Join(dir, "stderr"))
	env := map[string]string{"STRATA_GUEST_INIT": gi, "STRATA_VM_ACCEL": os.Getenv("STRATA_VM_ACCEL")}
	e := &Engine{StateDir: filepath.Join(dir, "state"), Stdin: stdinR, Stdout: outF, Stderr: errF, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Second)
	defer cancel()
	start := time.Now()
	code, err := e.Launch(ctx, spec)
	t.Logf("VM launch to exit (network on): %v", time.Since(start))
	outF.Close()
	errF.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	errs, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	want := "out:hello\nincluded\nw\n/sys/class/net/eth0 /sys/class/net/lo\nnameserver 10.0.2.3\nfrom-host /hello\nnotty\n"
	if code != 7 || string(out) != want || string(errs) != "err\n" {
		t.Fatalf("code %d stdout %q (want %q) stderr %q", code, out, want, errs)
	}
	if hits.Load() != 1 {
		t.Fatalf("the host server saw %d requests, want 1", hits.Load())
	}
	if strings.Contains(string(out), "Linux version") {
		t.Fatal("kernel messages in the output")
	}
	// The instance directory is gone; the cached initramfs stays.
	left, _ := filepath.Glob(filepath.Join(dir, "state", "vm", "vmsh-*"))
	if len(left) != 0 {
		t.Fatalf("instance dirs left: %v", left)
	}

	// Boot 2, resumed, without network and without an overlay disk: the
	// first launch boots the VM and finds no NIC, the second runs in it
	// at once on a terminal (the tmpfs overlay's state is still there).
	spec.VM.Runtime.Resume = true
	spec.VM.Runtime.NoNet = true
	spec.VM.Runtime.Firecracker.OverlaySize = "" // a tmpfs upper layer, living as long as the VM
	spec.Include = flake.Include{}
	spec.VM.Runtime.Firecracker.BootArgs = flake.DefaultBootArgs(flake.EngineVM, true, true, false)
	t.Cleanup(func() { // the resumed VM outlives its launches
		var st vmState
		if b, err := os.ReadFile(filepath.Join(dir, "state", "vm", "vmsh.json")); err == nil && json.Unmarshal(b, &st) == nil && st.Pid > 0 {
			syscall.Kill(st.Pid, syscall.SIGKILL)
		}
	})
	spec.Args = []string{"-c", "echo one > /state; echo /sys/class/net/*; cat /sys/class/net/lo/flags; wget -q -T 3 -O - " + url + " || echo unreachable"}
	outF, _ = os.Create(filepath.Join(dir, "stdout"))
	e.Stdout, e.Stdin = outF, nil
	start = time.Now()
	code, err = e.Launch(ctx, spec)
	t1 := time.Since(start)
	outF.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ = os.ReadFile(filepath.Join(dir, "stdout"))
	// lo is up (IFF_UP|IFF_LOOPBACK) even without a network.
	if string(out) != "/sys/class/net/lo\n0x9\nunreachable\n" || code != 0 || hits.Load() != 1 {
		t.Fatalf("--no-net: code %d stdout %q, host server hits %d", code, out, hits.Load())
	}

	// The TTY launch: the launcher's stdin and stdout are a terminal the
	// test holds the other end of.
	ptm, pts := openPTY(t)
	setSize(t, pts, 24, 80)
	before, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	screen := &screenBuf{}
	go io.Copy(screen, ptm)
	e.Stdin, e.Stdout, e.Stderr = pts, pts, pts
	spec.TTY = true
	spec.Args = []string{"-c", `tty; stty size; cat /state; while [ "$(stty size)" = "24 80" ]; do sleep 0.1; done; stty size; read l; echo got:$l; exit 5`}
	done := make(chan launchResult, 1)
	start = time.Now()
	go func() {
		code, err := e.Launch(ctx, spec)
		done <- launchResult{code, err}
	}()
	screen.waitFor(t, "24 80\r\none\r\n", done)
	setSize(t, pts, 30, 100)
	syscall.Kill(os.Getpid(), syscall.SIGWINCH)
	screen.waitFor(t, "30 100\r\n", done)
	ptm.Write([]byte("typed\r"))
	r := <-done
	t2 := time.Since(start)
	t.Logf("resumed VM: first launch %v, TTY launch %v", t1, t2)
	if r.err != nil {
		t.Fatal(r.err)
	}
	screen.waitFor(t, "got:typed\r\n", nil)
	if want := "/dev/pts/0\r\n24 80\r\none\r\n30 100\r\ntyped\r\ngot:typed\r\n"; screen.String() != want || r.code != 5 {
		t.Fatalf("TTY launch: code %d, screen %q, want %q", r.code, screen.String(), want)
	}
	after, err := unix.IoctlGetTermios(int(pts.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	if *after != *before {
		t.Fatalf("the terminal was not restored: lflag %#x before, %#x after", before.Lflag, after.Lflag)
	}
	var st vmState
	b, err := os.ReadFile(filepath.Join(dir, "state", "vm", "vmsh.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Pid == 0 {
		t.Fatalf("resume state: %s %v", b, err)
	}
}

// openPTY opens a pseudo-terminal pair in the test process.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	if err := unix.IoctlSetPointerInt(int(m.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(m.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

func setSize(t *testing.T, f *os.File, rows, cols uint16) {
	t.Helper()
	if err := unix.IoctlSetWinsize(int(f.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: rows, Col: cols}); err != nil {
		t.Fatal(err)
	}
}

// screenBuf collects what a terminal shows.
type screenBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *screenBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *screenBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type launchResult struct {
	code int
	err  error
}

// waitFor waits until the screen shows want, failing early when the
// launch ends first.
func (s *screenBuf) waitFor(t *testing.T, want string, done <-chan launchResult) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); !strings.Contains(s.String(), want); {
		select {
		case r := <-done:
			t.Fatalf("the launch ended (code %d, %v) before the screen showed %q: %q", r.code, r.err, want, s.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the screen did not show %q: %q", want, s.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
