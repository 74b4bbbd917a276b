// Package guest is the init (PID 1) of Strata's flake VMs: it loads the
// few kernel modules it needs, mounts the read-only root file system with
// a writable overlay, receives one command over the virtio-serial port,
// runs it with its stdin/stdout/stderr carried as frames, reports the exit
// code and powers the machine off.
package guest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake/vm"
	"github.com/stratalinux/strata/internal/flake/vm/fdutil"
	"github.com/stratalinux/strata/internal/fsmagic"
	"golang.org/x/sys/unix"
)

// Main is PID 1's body; it never returns normally (the machine is
// powered off).
func Main() {
	err := run()
	if err != nil {
		fmt.Fprintln(os.Stderr, "strata-guest-init:", err)
	}
	unix.Sync()
	_ = unix.Reboot(unix.LINUX_REBOOT_CMD_RESTART)
	select {}
}

func run() error {
	_ = os.MkdirAll("/dev", 0o755)
	_ = unix.Mount("devtmpfs", "/dev", "devtmpfs", 0, "")
	_ = os.MkdirAll("/proc", 0o755)
	_ = unix.Mount("proc", "/proc", "proc", 0, "")
	_ = os.MkdirAll("/sys", 0o755)
	_ = unix.Mount("sysfs", "/sys", "sysfs", 0, "")
	cmdline, _ := os.ReadFile("/proc/cmdline")
	trace := tracer(string(cmdline))
	trace("init started")
	netCfg, withNet, netErr := vm.NetFromCmdline(string(cmdline))
	load := groupLoader(string(cmdline), trace)
	load("base")
	if withNet {
		// Only a VM with a NIC pays for its driver.
		load("net")
	}
	port, err := openPort(10 * time.Second)
	if err != nil {
		return err
	}
	defer port.Close()
	resume := strings.Contains(" "+string(cmdline)+" ", " strata.resume=1 ")
	var wmu sync.Mutex
	send := func(typ byte, p []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return vm.WriteFrame(port, typ, p)
	}
	trace("channel open")
	root, rootErr := mountRoot(string(cmdline), load)
	trace("root mounted")
	if err := setupLoopback(); err != nil && netErr == nil {
		netErr = err
	}
	if withNet && rootErr == nil && netErr == nil {
		netErr = setupEth0(netCfg, root)
	}
	if rootErr == nil && netErr != nil {
		rootErr = fmt.Errorf("network: %w", netErr)
	}
	trace("network configured")
	frames := make(chan frame, 64)
	go readFrames(port, frames, resume)
	if err := send(vm.FrameReady, nil); err != nil {
		return err
	}
	out := lockedWriter{&wmu, port}
	for {
		var req vm.Request
		got := false
		for f := range frames {
			if f.typ != vm.FrameRun {
				continue // leftovers of an earlier session
			}
			if err := json.Unmarshal(f.p, &req); err != nil || len(req.Argv) == 0 {
				_ = send(vm.FrameError, []byte(fmt.Sprintf("bad run request: %v", err)))
				continue
			}
			got = true
			break
		}
		if !got {
			return errors.New("the host closed the channel")
		}
		var code int
		err := rootErr
		if err == nil {
			code, err = runOne(req, root, frames, out)
		}
		if err != nil {
			_ = send(vm.FrameError, []byte(err.Error()))
		} else {
			unix.Sync()
			_ = send(vm.FrameExit, vm.ExitPayload(code))
		}
		if !resume {
			return err
		}
	}
}

// tracer returns what logs the init's steps with the guest's uptime to
// the console (the VM's console log on the host) when the kernel command
// line has strata.debug=1, and does nothing otherwise.
func tracer(cmdline string) func(step string) {
	if !strings.Contains(" "+cmdline+" ", " strata.debug=1 ") {
		return func(string) {}
	}
	return func(step string) {
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts)
		fmt.Fprintf(os.Stderr, "strata-guest-init: %d.%03d %s\n", ts.Sec, ts.Nsec/1e6, step)
	}
}

type frame struct {
	typ byte
	p   []byte
}

// readFrames feeds frames from the port to ch. In resume mode a host
// that went away is waited for (the port reads end-of-file until the
// next launcher connects).
func readFrames(port io.Reader, ch chan<- frame, resume bool) {
	for {
		typ, p, err := vm.ReadFrame(port)
		if err != nil {
			if !resume {
				close(ch)
				return
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		ch <- frame{typ, p}
	}
}

// runOne runs one request with stdin, signals and (on a terminal) window
// sizes taken from frames until the command exits.
func runOne(req vm.Request, root string, frames <-chan frame, out io.Writer) (int, error) {
	c := exec.Command(req.Argv[0], req.Argv[1:]...)
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if root != "/" {
		c.SysProcAttr.Chroot = root
		// Resolve the program inside the new root.
		if !strings.Contains(req.Argv[0], "/") {
			c.Path = lookIn(root, req.Argv[0])
		} else {
			c.Path = req.Argv[0]
		}
		c.Err = nil
	}
	c.Env = append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=dumb"}, req.Env...)
	c.Dir = "/"
	if req.Dir != "" {
		c.Dir = req.Dir
	}
	var cio commandIO
	var err error
	if req.TTY {
		cio, err = startOnPTY(c, root, req, out)
	} else {
		cio, err = startOnPipes(c, out)
	}
	if err != nil {
		return 0, fmt.Errorf("run %s: %w", req.Argv[0], err)
	}
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		for {
			select {
			case <-done:
				return
			case f, ok := <-frames:
				if !ok {
					cio.closeInput()
					return
				}
				switch f.typ {
				case vm.FrameStdin:
					if len(f.p) == 0 {
						cio.closeInput()
						continue
					}
					_, _ = cio.input.Write(f.p)
				case vm.FrameSignal:
					if len(f.p) == 1 {
						_ = c.Process.Signal(syscall.Signal(f.p[0]))
					}
				case vm.FrameResize:
					if rows, cols, err := vm.DecodeWinsize(f.p); err == nil && cio.resize != nil {
						cio.resize(rows, cols)
					}
				}
			}
		}
	}()
	err = c.Wait()
	close(done)
	// The next request may only be read once this command's input
	// handler has stopped taking frames.
	<-finished
	cio.finish()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	case err != nil:
		return 0, err
	}
	return 0, nil
}

// commandIO is how a running command's input reaches it.
type commandIO struct {
	input      io.Writer
	closeInput func()
	resize     func(rows, cols int)
	// finish waits until the command's output has been sent and
	// releases what the command used.
	finish func()
}

// startOnPipes starts the command with stdout and stderr as separate
// frame streams.
func startOnPipes(c *exec.Cmd, out io.Writer) (commandIO, error) {
	stdin, err := c.StdinPipe()
	if err != nil {
		return commandIO{}, err
	}
	c.Stdout = vm.FrameWriter{W: out, Typ: vm.FrameStdout}
	c.Stderr = vm.FrameWriter{W: out, Typ: vm.FrameStderr}
	if err := c.Start(); err != nil {
		return commandIO{}, err
	}
	var once sync.Once
	closeIn := func() { once.Do(func() { stdin.Close() }) }
	return commandIO{input: stdin, closeInput: closeIn, finish: closeIn}, nil
}

// ptyDrain bounds how long output is read after the command exited: a
// background child that keeps the terminal open must not hold the exit
// code back.
const ptyDrain = 2 * time.Second

// startOnPTY starts the command as a session leader on a new
// pseudo-terminal of the root's devpts, sized as the host's terminal;
// everything it writes travels as FrameStdout.
func startOnPTY(c *exec.Cmd, root string, req vm.Request, out io.Writer) (commandIO, error) {
	master, slave, err := openPTY(root)
	if err != nil {
		return commandIO{}, err
	}
	resize := func(rows, cols int) {
		if rows <= 0 || cols <= 0 {
			return
		}
		ws := &unix.Winsize{Row: uint16(min(rows, 0xffff)), Col: uint16(min(cols, 0xffff))}
		_ = fdutil.Control(master, func(fd int) error { return unix.IoctlSetWinsize(fd, unix.TIOCSWINSZ, ws) })
	}
	resize(req.Rows, req.Cols)
	c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
	c.SysProcAttr.Setctty, c.SysProcAttr.Ctty = true, 0
	err = c.Start()
	slave.Close()
	if err != nil {
		master.Close()
		return commandIO{}, err
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		// Ends with EIO once the last holder of the terminal is gone.
		_, _ = io.Copy(vm.FrameWriter{W: out, Typ: vm.FrameStdout}, master)
	}()
	eof := func() {
		// A terminal has no end of input; the line discipline's EOF
		// character is what a reader sees at end of input.
		_, _ = master.Write([]byte{4})
	}
	finish := func() {
		select {
		case <-copied:
		case <-time.After(ptyDrain):
			_ = master.SetReadDeadline(time.Now())
			<-copied
		}
		master.Close()
	}
	return commandIO{input: master, closeInput: eof, resize: resize, finish: finish}, nil
}

// openPTY opens a new terminal pair on ROOT/dev/pts: the master through
// the devpts's own ptmx, the slave with TIOCGPTPEER (no path lookup).
func openPTY(root string) (master, slave *os.File, err error) {
	master, err = os.OpenFile(filepath.Join(root, "dev", "pts", "ptmx"), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open a pseudo-terminal (is devpts mounted?): %w", err)
	}
	var peer int
	err = fdutil.Control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return err
		}
		r, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		if errno != 0 {
			return errno
		}
		peer = int(r)
		return nil
	})
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open the pseudo-terminal's slave: %w", err)
	}
	return master, os.NewFile(uintptr(peer), "pty-slave"), nil
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func lookIn(root, name string) string {
	for _, d := range []string{"/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"} {
		if fi, err := os.Stat(filepath.Join(root, d, name)); err == nil && !fi.IsDir() {
			return filepath.Join(d, name)
		}
	}
	return name
}

// groupLoader returns what loads a module group (/modules.NAME, written
// by the host) the first time it is asked for.
func groupLoader(cmdline string, trace func(string)) func(group string) {
	loaded := map[string]bool{}
	return func(group string) {
		if loaded[group] {
			return
		}
		loaded[group] = true
		loadModules("/modules."+group, cmdline)
		trace("modules loaded: " + group)
	}
}

// loadModules loads the modules listed in the file (in order), passing
// module parameters found on the kernel command line (qemu's microvm puts
// virtio_mmio.device=… there; the kernel leaves those to whoever loads
// the module).
func loadModules(listFile, cmdline string) {
	list, err := os.ReadFile(listFile)
	if err != nil {
		return
	}
	params := map[string][]string{}
	for _, f := range strings.Fields(cmdline) {
		mod, kv, ok := strings.Cut(f, ".")
		if ok && strings.Contains(kv, "=") && !strings.Contains(mod, "=") {
			mod = strings.ReplaceAll(mod, "-", "_")
			params[mod] = append(params[mod], kv)
		}
	}
	for _, p := range strings.Fields(string(list)) {
		name := filepath.Base(p)
		if i := strings.IndexByte(name, '-'); i >= 0 {
			name = name[i+1:]
		}
		name = strings.ReplaceAll(strings.TrimSuffix(name, ".ko"), "-", "_")
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		err = unix.FinitModule(int(f.Fd()), strings.Join(params[name], " "), 0)
		f.Close()
		if err != nil && !errors.Is(err, unix.EEXIST) {
			fmt.Fprintf(os.Stderr, "strata-guest-init: module %s: %v\n", name, err)
		}
	}
}

// openPort finds the virtio-serial port by name (no udev here).
func openPort(timeout time.Duration) (*os.File, error) {
	deadline := time.Now().Add(timeout)
	for {
		ents, _ := filepath.Glob("/sys/class/virtio-ports/*/name")
		for _, e := range ents {
			b, err := os.ReadFile(e)
			if err != nil || strings.TrimSpace(string(b)) != vm.PortName {
				continue
			}
			dev := "/dev/" + filepath.Base(filepath.Dir(e))
			return os.OpenFile(dev, os.O_RDWR, 0)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("virtio-serial port %s did not appear", vm.PortName)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// mountRoot mounts /dev/vda read-only with an overlay whose upper layer is
// /dev/vdb (ext2/ext4, kept by the host) or a tmpfs; without /dev/vda the
// initramfs itself is the root.
func mountRoot(cmdline string, load func(group string)) (string, error) {
	if !waitFor("/dev/vda", 3*time.Second) {
		mountDevpts("/")
		return "/", nil
	}
	var err error
	types := []string{"squashfs", "erofs", "ext4"}
	if t := fsType("/dev/vda"); t != "" {
		types = []string{t}
	}
	for _, fs := range types {
		load(fs)
		if err = unix.Mount("/dev/vda", "/newroot", fs, unix.MS_RDONLY, ""); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("mount the root file system /dev/vda: %w", err)
	}
	// The host says whether it attached an overlay disk; an older host
	// does not, and a disk is then waited for briefly.
	hint := bootArg(cmdline, vm.OverlayBootArg)
	wait := 500 * time.Millisecond
	if hint == "1" {
		wait = 3 * time.Second
	}
	upper := false
	if hint != "0" && waitFor("/dev/vdb", wait) {
		load("ext4")
		if e := unix.Mount("/dev/vdb", "/overlay", "ext4", 0, ""); e != nil {
			return "", fmt.Errorf("mount the overlay disk /dev/vdb: %w", e)
		}
		upper = true
	}
	if !upper {
		if err := unix.Mount("tmpfs", "/overlay", "tmpfs", 0, "mode=0755"); err != nil {
			return "", err
		}
	}
	for _, d := range []string{"/overlay/rootfs_upper", "/overlay/rootfs_work", "/overlay/rootfs"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	load("overlay")
	opts := "lowerdir=/newroot,upperdir=/overlay/rootfs_upper,workdir=/overlay/rootfs_work"
	if err := unix.Mount("overlay", "/overlay/rootfs", "overlay", 0, opts); err != nil {
		return "", fmt.Errorf("overlay over the root file system: %w", err)
	}
	root := "/overlay/rootfs"
	for _, m := range []struct{ src, dst, fs string }{{"proc", "proc", "proc"}, {"sysfs", "sys", "sysfs"}, {"devtmpfs", "dev", "devtmpfs"}} {
		dst := filepath.Join(root, m.dst)
		if fi, err := os.Stat(dst); err == nil && fi.IsDir() {
			_ = unix.Mount(m.src, dst, m.fs, 0, "")
		}
	}
	mountDevpts(root)
	return root, nil
}

// fsType names the file system on dev by its superblock's magic number
// (squashfs, erofs, or ext4 for any ext2/3/4), "" when it is none of
// them.
func fsType(dev string) string {
	f, err := os.Open(dev)
	if err != nil {
		return ""
	}
	defer f.Close()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return ""
	}
	if k, err := fsmagic.Detect(f, size); err == nil && k.IsFilesystem() {
		return string(k)
	}
	return ""
}

// bootArg is the value of key=value on the kernel command line.
func bootArg(cmdline, key string) string {
	for _, f := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(f, key+"="); ok {
			return v
		}
	}
	return ""
}

// mountDevpts gives the root a devpts for TTY launches (the guest init
// opens ROOT/dev/pts/ptmx; programs in the guest find it through the
// devtmpfs /dev/ptmx node, which resolves to the sibling pts directory).
func mountDevpts(root string) {
	pts := filepath.Join(root, "dev", "pts")
	if fi, err := os.Stat(filepath.Dir(pts)); err != nil || !fi.IsDir() {
		return
	}
	_ = os.MkdirAll(pts, 0o755)
	_ = unix.Mount("devpts", pts, "devpts", unix.MS_NOSUID|unix.MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
}

func waitFor(path string, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if _, err := os.Stat(path); err == nil {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}
