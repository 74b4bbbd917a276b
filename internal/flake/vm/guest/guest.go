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
	loadModules(string(cmdline))
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
	root, rootErr := mountRoot()
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

// runOne runs one request with stdin and signals taken from frames until
// the command exits.
func runOne(req vm.Request, root string, frames <-chan frame, out io.Writer) (int, error) {
	c := exec.Command(req.Argv[0], req.Argv[1:]...)
	if root != "/" {
		c.SysProcAttr = &syscall.SysProcAttr{Chroot: root, Setsid: true}
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
	stdin, err := c.StdinPipe()
	if err != nil {
		return 0, err
	}
	c.Stdout = vm.FrameWriter{W: out, Typ: vm.FrameStdout}
	c.Stderr = vm.FrameWriter{W: out, Typ: vm.FrameStderr}
	if err := c.Start(); err != nil {
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
					stdin.Close()
					return
				}
				switch f.typ {
				case vm.FrameStdin:
					if len(f.p) == 0 {
						stdin.Close()
						continue
					}
					_, _ = stdin.Write(f.p)
				case vm.FrameSignal:
					if len(f.p) == 1 {
						_ = c.Process.Signal(syscall.Signal(f.p[0]))
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
	stdin.Close()
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

// loadModules loads /modules.order, passing module parameters found on
// the kernel command line (qemu's microvm puts virtio_mmio.device=… there;
// the kernel leaves those to whoever loads the module).
func loadModules(cmdline string) {
	list, err := os.ReadFile("/modules.order")
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
func mountRoot() (string, error) {
	if !waitFor("/dev/vda", 3*time.Second) {
		return "/", nil
	}
	var err error
	for _, fs := range []string{"squashfs", "erofs", "ext4"} {
		if err = unix.Mount("/dev/vda", "/newroot", fs, unix.MS_RDONLY, ""); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("mount the root file system /dev/vda: %w", err)
	}
	upper := false
	if waitFor("/dev/vdb", 500*time.Millisecond) {
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
	return root, nil
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
