// Package qemutest boots a Linux kernel and initrd in QEMU for tests
// (software emulation: there is no KVM here) and talks to the guest over
// its serial console: wait for output matching a pattern, type a line,
// wait for QEMU to exit. Every console line is kept with the time it
// arrived, for boot timing, and copied to a log file in the test's temp
// dir and to the test log when the test fails. A machine never outlives
// its test: cleanup kills QEMU's whole process group. The kernel is
// booted by PVH from its unpacked ELF (cached in the temp dir), which
// skips the firmware's loader and the bzImage's self-decompression.
package qemutest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/initrd"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

// QEMU is the emulator the machines run.
const QEMU = "qemu-system-x86_64"

// KernelEnv names a kernel image to boot instead of the newest in /boot.
const KernelEnv = "STRATA_QEMU_KERNEL"

// Host is what Require found on this machine.
type Host struct {
	QEMU          string // path of qemu-system-x86_64
	Kernel        string // kernel image, e.g. /boot/vmlinuz-6.1.0-57-amd64
	KernelVersion string // e.g. 6.1.0-57-amd64
	Modules       string // that kernel's module tree, /lib/modules/VERSION ("" if absent)
}

// Require finds QEMU and a kernel to boot. It fails the test when CI=true
// and skips it elsewhere when either is missing.
func Require(t testing.TB) Host {
	t.Helper()
	h, err := FindHost()
	if err != nil {
		privtest.Missing(t, "%v", err)
	}
	return h
}

// FindHost finds QEMU and a kernel to boot: $STRATA_QEMU_KERNEL, else the
// newest /boot/vmlinuz-* whose module tree is installed, else the newest.
func FindHost() (Host, error) {
	q, err := exec.LookPath(QEMU)
	if err != nil {
		return Host{}, fmt.Errorf("this needs %s (run ./scripts/deps test: qemu-system-x86)", QEMU)
	}
	h := Host{QEMU: q}
	if k := os.Getenv(KernelEnv); k != "" {
		h.Kernel = k
	} else {
		kernels, _ := filepath.Glob("/boot/vmlinuz-*")
		sort.Strings(kernels)
		// Prefer the newest kernel whose module tree is installed: tests
		// that build an initrd take its modules from there.
		for i := len(kernels) - 1; i >= 0 && h.Kernel == ""; i-- {
			v := strings.TrimPrefix(filepath.Base(kernels[i]), "vmlinuz-")
			if _, err := os.Stat(filepath.Join("/lib/modules", v, "modules.dep")); err == nil {
				h.Kernel = kernels[i]
			}
		}
		if h.Kernel == "" && len(kernels) > 0 {
			h.Kernel = kernels[len(kernels)-1]
		}
	}
	if h.Kernel == "" {
		return Host{}, errors.New("no kernel in /boot to boot in QEMU (run ./scripts/deps test: linux-image-amd64)")
	}
	f, err := os.Open(h.Kernel)
	if err != nil {
		return Host{}, fmt.Errorf("kernel %s is not readable (set %s to another): %w", h.Kernel, KernelEnv, err)
	}
	f.Close()
	h.KernelVersion = strings.TrimPrefix(filepath.Base(h.Kernel), "vmlinuz-")
	if d := filepath.Join("/lib/modules", h.KernelVersion); dirExists(d) {
		h.Modules = d
	}
	return h, nil
}

// Busybox is where the static busybox (Debian's busybox-static) lives.
const Busybox = "/bin/busybox"

// BusyboxEntries are the files of a minimal busybox initrd: init as
// /init, the static busybox as /bin/busybox with /bin/sh linked to it,
// and the mount points /proc, /sys, /dev. init runs with no console open
// (the archive has no /dev/console); it should start with
//
//	/bin/busybox mount -t devtmpfs dev /dev
//	exec </dev/console >/dev/console 2>&1
//	/bin/busybox --install -s /bin
func BusyboxEntries(init []byte) ([]initrd.Entry, error) {
	bb, err := os.ReadFile(Busybox)
	if err != nil {
		return nil, fmt.Errorf("read the static busybox (run ./scripts/deps test: busybox-static): %w", err)
	}
	entries := []initrd.Entry{
		{Name: "init", Mode: initrd.ModeRegular | 0o755, Data: init},
		{Name: "bin/busybox", Mode: initrd.ModeRegular | 0o755, Data: bb},
		{Name: "bin/sh", Mode: initrd.ModeSymlink | 0o777, Data: []byte("busybox")},
	}
	for _, d := range []string{"proc", "dev", "sys"} {
		entries = append(entries, initrd.Entry{Name: d, Mode: initrd.ModeDir | 0o755})
	}
	return entries, nil
}

// BusyboxInitrd writes a busybox initrd (BusyboxEntries plus extra) into
// the test's temp dir and returns its path.
func BusyboxInitrd(t testing.TB, init string, extra ...initrd.Entry) string {
	t.Helper()
	entries, err := BusyboxEntries([]byte(init))
	if err != nil {
		privtest.Missing(t, "%v", err)
	}
	var b bytes.Buffer
	if err := initrd.WriteCPIO(&b, append(entries, extra...)); err != nil {
		t.Fatalf("qemutest: busybox initrd: %v", err)
	}
	p := filepath.Join(t.TempDir(), "initrd.cpio")
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func dirExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

// Net gives the guest one virtio NIC on QEMU's user-mode network (slirp:
// no privileges; the guest is 10.0.2.15, the host 10.0.2.2).
type Net struct {
	// HostFwd are QEMU hostfwd rules, e.g. "tcp:127.0.0.1:10022-:22".
	HostFwd []string
	// GuestFwd are QEMU guestfwd rules, e.g.
	// "tcp:10.0.2.100:80-tcp:127.0.0.1:8080".
	GuestFwd []string
}

// Config is one machine. Kernel is required; the rest has defaults.
type Config struct {
	// Kernel is booted by PVH from its unpacked vmlinux (see PVHKernel),
	// 2-3× faster to userspace under TCG than through the firmware; when
	// it cannot be unpacked, or BzImage is set, it is booted as given.
	Kernel  string
	BzImage bool
	Initrd  string
	// Append is the kernel command line. console=ttyS0 is added when it
	// names no console, so the serial port carries the console.
	Append string
	// Disks are raw images attached as virtio disks, /dev/vda, vdb, … in
	// order, writable.
	Disks []string
	// Memory is QEMU's -m value; "" means 512M.
	Memory string
	// CPUs is the number of vCPUs; 0 means 2 (one TCG thread each).
	CPUs int
	// NoReboot makes a guest reboot end QEMU instead of restarting the
	// guest (with -kernel, a restart boots the same kernel and initrd).
	NoReboot bool
	Net      *Net
	// ExtraArgs go at the end of QEMU's command line.
	ExtraArgs []string
	// Firmware, when set, boots through UEFI: OVMF's code (read-only) and a writable copy of its
	// variable store, Firmware.Vars. Kernel may then be empty: the firmware boots the first disk.
	Firmware *Firmware
}

// Firmware is a UEFI firmware for Config.
type Firmware struct{ Code, Vars string }

// OVMF finds Debian's OVMF (package ovmf) and copies its variable store into dir.
func OVMF(dir string) (*Firmware, error) {
	const code, vars = "/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"
	_, err := os.Stat(code)
	b, verr := os.ReadFile(vars)
	if err = errors.Join(err, verr); err != nil {
		return nil, fmt.Errorf("no OVMF (apt-get install ovmf; run ./scripts/deps test): %w", err)
	}
	v := filepath.Join(dir, "OVMF_VARS.fd")
	if err := os.WriteFile(v, b, 0o644); err != nil {
		return nil, err
	}
	return &Firmware{Code: code, Vars: v}, nil
}

// Line is one line of console output and when its end arrived, counted
// from the start of QEMU.
type Line struct {
	At   time.Duration
	Text string
}

// Machine is one running QEMU.
type Machine struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	start   time.Time
	LogPath string // the console log file

	mu      sync.Mutex
	changed chan struct{} // closed and replaced on new output or exit
	buf     []byte        // all console output, \r removed
	chunks  []chunk       // arrival time of each piece of buf
	cursor  int           // where the next Expect starts looking
	partial []byte        // the unfinished last line
	lines   []Line
	exited  bool
	waitErr error
	stderr  bytes.Buffer
	done    chan struct{} // closed when QEMU has exited and output is read

	reapMu sync.Mutex
	reaped bool
}

type chunk struct {
	end int
	at  time.Duration
}

// maxConsole bounds the console output kept in memory.
const maxConsole = 64 << 20

// Args is QEMU's command line for c (without the program name).
func Args(c Config) []string {
	mem := c.Memory
	if mem == "" {
		mem = "512M"
	}
	cpus := c.CPUs
	if cpus <= 0 {
		cpus = 2
	}
	app := c.Append
	if !strings.Contains(" "+app, " console=") {
		app = strings.TrimSpace("console=ttyS0 " + app)
	}
	args := []string{
		"-M", "pc", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-m", mem, "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none",
		"-serial", "stdio", "-monitor", "none",
	}
	if c.Firmware != nil {
		args = append(args, "-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+escape(c.Firmware.Code),
			"-drive", "if=pflash,format=raw,unit=1,file="+escape(c.Firmware.Vars))
	}
	if c.Kernel != "" {
		args = append(args, "-kernel", c.Kernel, "-append", app)
		if c.Initrd != "" {
			args = append(args, "-initrd", c.Initrd)
		}
	}
	if c.NoReboot {
		args = append(args, "-no-reboot")
	}
	for _, d := range c.Disks {
		args = append(args, "-drive", "file="+escape(d)+",if=virtio,format=raw,cache=unsafe")
	}
	if c.Net != nil {
		nd := "user,id=n0"
		for _, f := range c.Net.HostFwd {
			nd += ",hostfwd=" + escape(f)
		}
		for _, f := range c.Net.GuestFwd {
			nd += ",guestfwd=" + escape(f)
		}
		// No PXE option ROM: the kernel is booted directly, and loading
		// the ROM costs time under emulation.
		args = append(args, "-netdev", nd, "-device", "virtio-net-pci,netdev=n0,romfile=")
	}
	return append(args, c.ExtraArgs...)
}

// escape doubles commas, QEMU's option separator.
func escape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// Start boots c. QEMU is killed at the end of the test if it still runs,
// and the console goes to the test log if the test failed.
func Start(t testing.TB, c Config) *Machine {
	t.Helper()
	if c.Kernel == "" && c.Firmware == nil {
		t.Fatal("qemutest: Config.Kernel is empty (use Require(t).Kernel)")
	}
	m, err := Boot(c, filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatalf("qemutest: %v", err)
	}
	t.Logf("qemutest: %s %s (console: %s)", QEMU, strings.Join(m.cmd.Args[1:], " "), m.LogPath)
	t.Cleanup(func() {
		m.Kill()
		if t.Failed() {
			logConsole(t, m)
		}
	})
	return m
}

// Boot starts QEMU for c with the console copied to logPath, for callers
// without a *testing.T (benchmarks). The caller must Kill the machine.
func Boot(c Config, logPath string) (*Machine, error) {
	if c.Kernel == "" && c.Firmware == nil {
		return nil, errors.New("no kernel to boot")
	}
	if !c.BzImage && c.Kernel != "" {
		if k, err := PVHKernel(c.Kernel); err == nil {
			c.Kernel = k
		}
	}
	m := &Machine{changed: make(chan struct{}), done: make(chan struct{}), LogPath: logPath}
	logf, err := os.Create(m.LogPath)
	if err != nil {
		return nil, fmt.Errorf("create console log: %w", err)
	}
	cmd := exec.Command(QEMU, Args(c)...)
	// Its own process group, so cleanup kills QEMU and anything it runs
	// (guestfwd cmd: helpers); the parent's death kills it too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Stderr = &lockedWriter{mu: &m.mu, w: &m.stderr}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	m.cmd, m.stdin = cmd, stdin
	m.start = time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", QEMU, err)
	}
	go m.read(stdout, logf)
	return m, nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.w.Len() < 1<<20 {
		l.w.Write(p)
	}
	return len(p), nil
}

// read copies the console into the log and the buffer until QEMU closes
// it, then reaps QEMU.
func (m *Machine) read(r io.Reader, logf *os.File) {
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		b := make([]byte, 32<<10)
		for {
			n, err := r.Read(b)
			if n > 0 {
				at := time.Since(m.start)
				_, _ = logf.Write(b[:n])
				m.add(b[:n], at)
			}
			if err != nil {
				return
			}
		}
	}()
	// Wait for the exit without reaping, so QEMU's pid (its group's id)
	// stays taken while helpers left in the group, which may hold the
	// console pipe open, are killed.
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, m.cmd.Process.Pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if err != unix.EINTR {
			break
		}
	}
	_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	<-readDone
	logf.Close()
	m.reapMu.Lock()
	werr := m.cmd.Wait()
	m.reaped = true
	m.reapMu.Unlock()
	m.mu.Lock()
	if len(m.partial) > 0 {
		m.lines = append(m.lines, Line{At: time.Since(m.start), Text: string(m.partial)})
		m.partial = nil
	}
	m.exited, m.waitErr = true, werr
	m.notify()
	m.mu.Unlock()
	close(m.done)
}

func (m *Machine) add(p []byte, at time.Duration) {
	p = bytes.ReplaceAll(p, []byte("\r"), nil)
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.buf)+len(p) <= maxConsole {
		m.buf = append(m.buf, p...)
		m.chunks = append(m.chunks, chunk{end: len(m.buf), at: at})
	}
	m.partial = append(m.partial, p...)
	for {
		i := bytes.IndexByte(m.partial, '\n')
		if i < 0 {
			break
		}
		m.lines = append(m.lines, Line{At: at, Text: string(m.partial[:i])})
		m.partial = m.partial[i+1:]
	}
	m.partial = bytes.Clone(m.partial)
	m.notify()
}

// notify wakes every waiter; m.mu is held.
func (m *Machine) notify() {
	close(m.changed)
	m.changed = make(chan struct{})
}

// Expect waits until the console output after the previous match matches
// re and returns the match and its submatches. Output that arrived before
// the call is searched too: nothing is lost between calls.
func (m *Machine) Expect(re *regexp.Regexp, timeout time.Duration) ([]string, error) {
	match, _, err := m.ExpectAt(re, timeout)
	return match, err
}

// ExpectAt is Expect that also says when the end of the match arrived,
// counted from the start of QEMU (for boot timing).
func (m *Machine) ExpectAt(re *regexp.Regexp, timeout time.Duration) ([]string, time.Duration, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		m.mu.Lock()
		if loc := re.FindSubmatchIndex(m.buf[m.cursor:]); loc != nil {
			base := m.cursor
			match := make([]string, len(loc)/2)
			for i := range match {
				if loc[2*i] >= 0 {
					match[i] = string(m.buf[base+loc[2*i] : base+loc[2*i+1]])
				}
			}
			m.cursor = base + loc[1]
			at := m.arrival(m.cursor)
			m.mu.Unlock()
			return match, at, nil
		}
		if m.exited {
			err := m.waitErr
			m.mu.Unlock()
			return nil, 0, fmt.Errorf("qemu exited (%v) before the console matched %q; last lines:\n%s", exitText(err), re, m.tail(20))
		}
		ch := m.changed
		m.mu.Unlock()
		select {
		case <-ch:
		case <-deadline.C:
			return nil, 0, fmt.Errorf("console did not match %q within %s; last lines:\n%s", re, timeout, m.tail(20))
		}
	}
}

// arrival is when byte off-1 of buf arrived; m.mu is held.
func (m *Machine) arrival(off int) time.Duration {
	i := sort.Search(len(m.chunks), func(i int) bool { return m.chunks[i].end >= off })
	if i == len(m.chunks) {
		return time.Since(m.start)
	}
	return m.chunks[i].at
}

func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// tail is the last n lines of the console, for error messages.
func (m *Machine) tail(n int) string {
	lines := m.Lines()
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	var b strings.Builder
	for _, l := range lines {
		fmt.Fprintf(&b, "  [%7.3fs] %s\n", l.At.Seconds(), l.Text)
	}
	return b.String()
}

// Send types line and a newline on the serial console.
func (m *Machine) Send(line string) error {
	if _, err := io.WriteString(m.stdin, line+"\n"); err != nil {
		return fmt.Errorf("send %q to the guest console: %w", line, err)
	}
	return nil
}

// Lines is a copy of the complete console lines so far, with arrival
// times counted from the start of QEMU.
func (m *Machine) Lines() []Line {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Line(nil), m.lines...)
}

// Output is all console output so far (carriage returns removed).
func (m *Machine) Output() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.buf)
}

// ErrTimeout is returned by Wait when QEMU still runs at the deadline.
var ErrTimeout = errors.New("qemu still running")

// Wait waits for QEMU to exit (a guest poweroff, or a reboot with
// NoReboot) and returns nil when it exited with status 0. At the timeout
// QEMU keeps running and Wait returns an error wrapping ErrTimeout.
func (m *Machine) Wait(timeout time.Duration) error {
	select {
	case <-m.done:
	case <-time.After(timeout):
		return fmt.Errorf("%w after %s; last lines:\n%s", ErrTimeout, timeout, m.tail(20))
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.waitErr != nil {
		return fmt.Errorf("qemu: %v: %s", m.waitErr, strings.TrimSpace(m.stderr.String()))
	}
	return nil
}

// Kill ends QEMU and everything in its process group, and waits until it
// is gone. It is safe to call more than once and after QEMU exited.
func (m *Machine) Kill() {
	// Under reapMu the pid cannot be reaped (and reused) before the kill.
	m.reapMu.Lock()
	if !m.reaped {
		_ = syscall.Kill(-m.cmd.Process.Pid, syscall.SIGKILL)
	}
	m.reapMu.Unlock()
	<-m.done
	_ = m.stdin.Close()
}

// Pid is QEMU's process id (also its process group id).
func (m *Machine) Pid() int { return m.cmd.Process.Pid }

// Stderr is what QEMU wrote to its standard error so far.
func (m *Machine) Stderr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stderr.String()
}

func logConsole(t testing.TB, m *Machine) {
	t.Helper()
	m.mu.Lock()
	out, errs := string(m.buf), m.stderr.String()
	m.mu.Unlock()
	const max = 1 << 20
	if len(out) > max {
		out = "…" + out[len(out)-max:]
	}
	t.Logf("qemutest: console of the failed test (%s):\n%s", m.LogPath, out)
	if errs != "" {
		t.Logf("qemutest: qemu stderr:\n%s", errs)
	}
}

// Args is QEMU's command line as started (after the program name).
func (m *Machine) Args() []string { return append([]string(nil), m.cmd.Args[1:]...) }
