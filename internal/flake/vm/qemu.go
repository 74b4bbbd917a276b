package vm

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/archive"
	"github.com/stratalinux/strata/internal/flake"
)

// QemuPlan is the decided qemu command line for one launch.
type QemuPlan struct {
	Args    []string
	Socket  string
	Console string
}

// QemuInputs are the values PlanQemu decides from.
type QemuInputs struct {
	Kernel, Initramfs, Rootfs, Overlay string
	MemMiB, CPUs                       int
	KVM                                bool
	Dir                                string // instance directory
	BootArgs                           []string
	// Net gives the VM a virtio NIC on qemu's user-mode network, which
	// the guest init configures as UserNet. Without it the VM has no NIC
	// at all (only lo).
	Net bool
}

// PlanQemu builds the qemu command line: the rootfs as a read-only
// virtio disk, the overlay (if any) as a second, writable one, and the
// framed channel on a virtio-serial port whose host side is a unix socket
// qemu waits on before it boots.
//
// With KVM the machine is a microvm (virtio-mmio devices found through
// its ACPI tables). Under software emulation Debian's kernel never gets a
// timer interrupt on an ACPI microvm, and without ACPI it cannot find
// virtio-mmio devices (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES is off), so TCG
// uses the "pc" machine with virtio-pci devices instead.
//
// The network is qemu's user mode (slirp): no tap, no privileges, the
// host reachable at 10.0.2.2 (its loopback included) and outbound
// connections NATed through the host's sockets. The NIC's PXE option ROM
// is left out: the kernel is booted directly, and loading the ROM costs
// boot time under emulation.
func PlanQemu(in QemuInputs) QemuPlan {
	p := QemuPlan{Socket: filepath.Join(in.Dir, "channel.sock"), Console: filepath.Join(in.Dir, "console.log")}
	mem, cpus := in.MemMiB, in.CPUs
	if mem <= 0 {
		mem = 512
	}
	if cpus <= 0 {
		cpus = 1
	}
	machine, accel, cpu, bus := "microvm,x-option-roms=off,rtc=on", "kvm", "host", "device"
	if !in.KVM {
		machine, accel, cpu, bus = "pc", "tcg", "max", "pci"
	}
	args := []string{"-M", machine, "-accel", accel, "-cpu", cpu,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "file:" + p.Console,
		"-kernel", in.Kernel, "-initrd", in.Initramfs}
	boot := append([]string{}, in.BootArgs...)
	// The guest waits for the overlay disk only when there is one.
	if in.Overlay != "" {
		boot = append(boot, OverlayBootArg+"=1")
	} else {
		boot = append(boot, OverlayBootArg+"=0")
	}
	if in.Net {
		boot = append(boot, NetBootArg+"="+UserNet.String())
	}
	args = append(args, "-append", strings.Join(append(boot, "rdinit=/init"), " "))
	if in.Rootfs != "" {
		args = append(args, "-drive", "id=root,file="+in.Rootfs+",format=raw,if=none,readonly=on", "-device", "virtio-blk-"+bus+",drive=root")
	}
	if in.Overlay != "" {
		args = append(args, "-drive", "id=overlay,file="+in.Overlay+",format=raw,if=none", "-device", "virtio-blk-"+bus+",drive=overlay")
	}
	if in.Net {
		nic := "virtio-net-" + bus + ",netdev=n0"
		if bus == "pci" {
			nic += ",romfile="
		}
		args = append(args, "-netdev", "user,id=n0", "-device", nic)
	}
	args = append(args, "-device", "virtio-serial-"+bus,
		"-chardev", "socket,id=flake,path="+p.Socket+",server=on,wait=on",
		"-device", "virtserialport,chardev=flake,name="+PortName)
	p.Args = args
	return p
}

func kvmUsable(getenv func(string) string) bool {
	if getenv != nil && getenv("STRATA_VM_ACCEL") == "tcg" {
		return false
	}
	return kvmWorks()
}

var (
	kvmOnce sync.Once
	kvmOK   bool
)

// kvmWorks opens /dev/kvm and creates a VM: nested setups often have the
// device but cannot run a guest (qemu then aborts on the first MSR).
func kvmWorks() bool {
	kvmOnce.Do(func() {
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR|syscall.O_CLOEXEC, 0)
		if err != nil {
			return
		}
		defer f.Close()
		const kvmCreateVM = 0xAE01
		fd, _, errno := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), kvmCreateVM, 0)
		if errno != 0 {
			return
		}
		syscall.Close(int(fd))
		kvmOK = os.Getenv("STRATA_VM_ACCEL") != "tcg"
	})
	return kvmOK
}

// qemuBinary is the system emulator for this machine.
func qemuBinary() (string, error) {
	name := "qemu-system-x86_64"
	if runtime.GOARCH != "amd64" {
		return "", fmt.Errorf("the qemu microvm engine runs on x86-64 hosts only")
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", errors.New("qemu is not installed (apt-get install qemu-system-x86): the flake's VM engine needs it")
	}
	return p, nil
}

// GuestInit finds the strata-guest-init binary: $STRATA_GUEST_INIT, next
// to the strata binary, /usr/lib/strata, or PATH.
func GuestInit(getenv func(string) string) (string, error) {
	if getenv != nil {
		if p := getenv("STRATA_GUEST_INIT"); p != "" {
			return p, nil
		}
	}
	var cands []string
	if self, err := os.Executable(); err == nil {
		cands = append(cands, filepath.Join(filepath.Dir(self), "strata-guest-init"))
	}
	cands = append(cands, "/usr/lib/strata/strata-guest-init")
	for _, c := range cands {
		if _, err := os.Stat(c); err == nil {
			return c, nil
		}
	}
	if p, err := exec.LookPath("strata-guest-init"); err == nil {
		return p, nil
	}
	return "", errors.New("strata-guest-init is not installed (build it with: CGO_ENABLED=0 go build -o /usr/lib/strata/strata-guest-init ./cmd/strata-guest-init)")
}

// KernelVersion reads the release string from a bzImage's setup header.
func KernelVersion(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	hdr := make([]byte, 0x210)
	if _, err := io.ReadFull(f, hdr); err != nil {
		return "", fmt.Errorf("%s: not a bzImage kernel: %w", path, err)
	}
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("%s: not a bzImage kernel (no HdrS header)", path)
	}
	off := int64(hdr[0x20e]) | int64(hdr[0x20f])<<8
	buf := make([]byte, 256)
	if _, err := f.ReadAt(buf, off+0x200); err != nil && !errors.Is(err, io.EOF) {
		return "", err
	}
	v, _, _ := bytes.Cut(buf, []byte{' '})
	v, _, _ = bytes.Cut(v, []byte{0})
	return string(v), nil
}

// initramfs returns a cached initramfs for this guest init and kernel.
func (e *Engine) initramfs(kernel string) (string, error) {
	gi, err := GuestInit(e.Getenv)
	if err != nil {
		return "", err
	}
	ver, err := KernelVersion(kernel)
	if err != nil {
		return "", err
	}
	modDir := filepath.Join("/lib/modules", ver)
	h := sha256.New()
	fmt.Fprintf(h, "%q\n", moduleGroups)
	for _, p := range []string{gi, kernel, filepath.Join(modDir, "modules.dep")} {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(h, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
		}
	}
	dir := filepath.Join(e.StateDir, "vm")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	out := filepath.Join(dir, "initramfs-"+hex.EncodeToString(h.Sum(nil))[:24]+".cpio")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	var mods []ModuleGroup
	if _, err := os.Stat(filepath.Join(modDir, "modules.dep")); err == nil {
		if mods, err = ResolveModules(modDir, moduleGroups); err != nil {
			return "", err
		}
	}
	tmp, err := os.CreateTemp(dir, ".initramfs-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	if err := WriteInitramfs(tmp, gi, modDir, mods); err != nil {
		tmp.Close()
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	return out, os.Rename(tmp.Name(), out)
}

// overlayDisk makes a fresh ext4 overlay disk of the given size whose
// upper layer already holds the includes (mkfs.ext4 -d: no mount).
func overlayDisk(ctx context.Context, dir string, size int64, inc flake.Include) (string, error) {
	mkfs, err := exec.LookPath("mkfs.ext4")
	if err != nil {
		return "", errors.New("mkfs.ext4 is not installed (apt-get install e2fsprogs): the VM overlay needs it")
	}
	stage := filepath.Join(dir, "stage")
	upper := filepath.Join(stage, "rootfs_upper")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		return "", err
	}
	for _, t := range inc.Tar {
		if err := archive.ExtractFile(ctx, t, "", upper, archive.Options{}); err != nil {
			return "", fmt.Errorf("include tar %s: %w", t, err)
		}
	}
	for _, p := range inc.Path {
		if err := copyInto(p, upper); err != nil {
			return "", fmt.Errorf("include path %s: %w", p, err)
		}
	}
	img := filepath.Join(dir, "overlay.ext4")
	f, err := os.Create(img)
	if err != nil {
		return "", err
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	if out, err := exec.CommandContext(ctx, mkfs, "-q", "-F", "-d", stage, img).CombinedOutput(); err != nil {
		return "", fmt.Errorf("mkfs.ext4 overlay: %v: %s", err, bytes.TrimSpace(out))
	}
	return img, nil
}

func (e *Engine) qemu(ctx context.Context, s Spec) (int, error) {
	bin := e.Qemu
	if bin == "" {
		var err error
		if bin, err = qemuBinary(); err != nil {
			return 0, err
		}
	}
	fc := s.VM.Runtime.Firecracker
	for what, p := range map[string]string{"kernel": fc.KernelImagePath, "rootfs": fc.RootfsImagePath} {
		if _, err := os.Stat(p); err != nil {
			return 0, fmt.Errorf("flake %s: VM %s: %w", s.Name, what, err)
		}
	}
	initrd, err := e.initramfs(fc.KernelImagePath)
	if err != nil {
		return 0, fmt.Errorf("flake %s: %w", s.Name, err)
	}
	if err := os.MkdirAll(filepath.Join(e.StateDir, "vm"), 0o700); err != nil {
		return 0, err
	}
	target := s.VM.TargetAppPath
	if target == "" {
		target = s.VM.HostAppPath
	}
	req := Request{Argv: append([]string{target}, s.Args...)}
	if s.TTY && e.Stdin != nil && e.Stdout != nil {
		req.TTY = true
		req.Rows, req.Cols = e.termSize()
	}
	if t := e.getenv("TERM"); t != "" {
		req.Env = append(req.Env, "TERM="+t)
	}
	if s.VM.Runtime.Resume {
		return e.resumeQemu(ctx, bin, s, initrd, req)
	}
	dir, err := os.MkdirTemp(filepath.Join(e.StateDir, "vm"), s.Name+"-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	var overlay string
	if fc.OverlaySize != "" {
		size, err := flake.ParseSize(fc.OverlaySize)
		if err != nil {
			return 0, fmt.Errorf("flake %s: overlay_size: %w", s.Name, err)
		}
		if overlay, err = overlayDisk(ctx, dir, size, s.Include); err != nil {
			return 0, fmt.Errorf("flake %s: %w", s.Name, err)
		}
	}
	in := QemuInputs{Kernel: fc.KernelImagePath, Initramfs: initrd, Rootfs: fc.RootfsImagePath, Overlay: overlay,
		MemMiB: fc.MemSizeMiB, CPUs: fc.VcpuCount, KVM: kvmUsable(e.Getenv), Dir: dir, BootArgs: fc.BootArgs, Net: !s.VM.Runtime.NoNet}
	code, err := e.runQemu(ctx, bin, PlanQemu(in), req)
	if errors.Is(err, errEarlyExit) && in.KVM {
		// /dev/kvm can exist and still be unable to run this guest
		// (nested virtualization): fall back to software emulation.
		e.log().Debug("KVM failed, retrying under software emulation", "err", err)
		in.KVM = false
		return e.runQemu(ctx, bin, PlanQemu(in), req)
	}
	return code, err
}

var errEarlyExit = errors.New("qemu exited before the VM booted")

// vmState records a resumed VM so later launches find it.
type vmState struct {
	Pid      int    `json:"pid"`
	PidStart string `json:"pid_start"`
	Socket   string `json:"socket"`
	Console  string `json:"console"`
}

// resumeQemu runs the request in the instance's long-lived VM, booting it
// (detached, its overlay kept in the instance directory) when it does not
// run. The instance lock is held for the whole launch: the channel
// carries one session at a time.
func (e *Engine) resumeQemu(ctx context.Context, bin string, s Spec, initrd string, req Request) (int, error) {
	meta := s.Name
	if s.Instance != "" {
		meta += "@" + s.Instance
	}
	base := filepath.Join(e.StateDir, "vm", meta)
	lock, err := flake.LockInstance(ctx, base+".lock")
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	var st vmState
	if b, err := os.ReadFile(base + ".json"); err == nil && len(b) < 1<<16 {
		_ = json.Unmarshal(b, &st)
	}
	if st.Pid > 0 && st.PidStart != "" && flake.ProcStartTime(st.Pid) == st.PidStart {
		if conn, err := net.Dial("unix", st.Socket); err == nil {
			defer conn.Close()
			return e.session(conn, QemuPlan{Socket: st.Socket, Console: st.Console}, req)
		}
	}
	dir := base + ".d"
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	fc := s.VM.Runtime.Firecracker
	overlay := filepath.Join(dir, "overlay.ext4")
	if fc.OverlaySize != "" {
		if _, err := os.Stat(overlay); err != nil {
			size, err := flake.ParseSize(fc.OverlaySize)
			if err != nil {
				return 0, fmt.Errorf("flake %s: overlay_size: %w", s.Name, err)
			}
			tmp, err := os.MkdirTemp(dir, "new-")
			if err != nil {
				return 0, err
			}
			img, err := overlayDisk(ctx, tmp, size, s.Include)
			if err == nil {
				err = os.Rename(img, overlay)
			}
			os.RemoveAll(tmp)
			if err != nil {
				return 0, fmt.Errorf("flake %s: %w", s.Name, err)
			}
		}
	} else {
		overlay = ""
	}
	in := QemuInputs{Kernel: fc.KernelImagePath, Initramfs: initrd, Rootfs: fc.RootfsImagePath, Overlay: overlay,
		MemMiB: fc.MemSizeMiB, CPUs: fc.VcpuCount, KVM: kvmUsable(e.Getenv), Dir: dir,
		BootArgs: append(append([]string{}, fc.BootArgs...), "strata.resume=1"), Net: !s.VM.Runtime.NoNet}
	_ = os.Remove(filepath.Join(dir, "channel.sock"))
	plan := PlanQemu(in)
	q, conn, err := e.bootQemu(bin, plan, true)
	if errors.Is(err, errEarlyExit) && in.KVM {
		in.KVM = false
		_ = os.Remove(plan.Socket)
		plan = PlanQemu(in)
		q, conn, err = e.bootQemu(bin, plan, true)
	}
	if err != nil {
		return 0, fmt.Errorf("flake %s: %w", s.Name, err)
	}
	defer conn.Close()
	st = vmState{Pid: q.cmd.Process.Pid, PidStart: flake.ProcStartTime(q.cmd.Process.Pid), Socket: plan.Socket, Console: plan.Console}
	if b, err := json.Marshal(st); err == nil {
		tmp := base + ".json.tmp"
		if os.WriteFile(tmp, b, 0o600) == nil {
			_ = os.Rename(tmp, base+".json")
		}
	}
	return e.session(conn, plan, req)
}

func (e *Engine) log() *slog.Logger {
	if e.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return e.Log
}

func (e *Engine) getenv(k string) string {
	if e.Getenv == nil {
		return os.Getenv(k)
	}
	return e.Getenv(k)
}

// runQemu boots the planned VM, sends the request and relays frames until
// the guest reports the exit code; the VM is stopped afterwards.
func (e *Engine) runQemu(ctx context.Context, bin string, plan QemuPlan, req Request) (int, error) {
	vmProc, conn, err := e.bootQemu(bin, plan, false)
	if err != nil {
		return 0, err
	}
	defer vmProc.stop()
	defer conn.Close()
	return e.session(conn, plan, req)
}

type qemuProc struct {
	cmd    *exec.Cmd
	exited chan error
}

func (q *qemuProc) stop() {
	_ = q.cmd.Process.Kill()
	<-q.exited
}

// bootQemu starts qemu, connects to its channel and waits for the guest's
// ready frame. A detached VM (resume) survives the launcher.
func (e *Engine) bootQemu(bin string, plan QemuPlan, detached bool) (*qemuProc, net.Conn, error) {
	cmd := exec.Command(bin, plan.Args...)
	var qerr bytes.Buffer
	cmd.Stderr = &qerr
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if detached {
		// A VM that outlives the launcher writes its messages to a file,
		// not to a pipe that breaks when the launcher exits.
		logf, err := os.Create(filepath.Join(filepath.Dir(plan.Socket), "qemu.log"))
		if err != nil {
			return nil, nil, err
		}
		defer logf.Close()
		cmd.Stderr = logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	}
	if err := cmd.Start(); err != nil {
		return nil, nil, fmt.Errorf("start qemu: %w", err)
	}
	q := &qemuProc{cmd: cmd, exited: make(chan error, 1)}
	go func() { q.exited <- cmd.Wait() }()
	fail := func(err error) (*qemuProc, net.Conn, error) {
		q.stop()
		console, _ := os.ReadFile(plan.Console)
		return nil, nil, fmt.Errorf("%w: %v: %s; console: %s", errEarlyExit, err, strings.TrimSpace(qerr.String()), tail(console, 400))
	}
	var conn net.Conn
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("unix", plan.Socket)
		if err == nil {
			conn = c
			break
		}
		select {
		case err := <-q.exited:
			q.exited <- err
			if err == nil {
				err = errors.New("exit status 0")
			}
			return fail(err)
		default:
		}
		if time.Now().After(deadline) {
			return fail(errors.New("qemu did not open its channel socket"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Nothing is sent, and no stdin consumed, before the guest says it is
	// up: a VM that dies on boot can be retried.
	if typ, _, err := ReadFrame(conn); err != nil || typ != FrameReady {
		conn.Close()
		if err == nil {
			err = fmt.Errorf("unexpected frame %q", typ)
		}
		return fail(err)
	}
	return q, conn, nil
}

// session sends one request over an open channel and relays frames until
// the exit code arrives.
func (e *Engine) session(conn net.Conn, plan QemuPlan, req Request) (int, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return 0, err
	}
	w := &syncWriter{w: conn}
	var winch chan os.Signal
	if req.TTY {
		// The guest's terminal does the line editing and echo: the
		// host's passes every key through (^C included, as a byte) until
		// the session ends, whichever way it ends. Raw before the request
		// goes out, so no early keystroke is cooked; resizes are watched
		// from then on but sent only after the request.
		if restore, err := makeRaw(e.Stdin); err != nil {
			e.log().Debug("the terminal stays in cooked mode", "err", err)
		} else {
			defer restore()
		}
		winch = make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer func() { signal.Stop(winch); close(winch) }()
	}
	if err := WriteFrame(w, FrameRun, body); err != nil {
		return 0, fmt.Errorf("send the command to the VM: %w", err)
	}
	if winch != nil {
		go func() {
			for range winch {
				rows, cols := e.termSize()
				if rows > 0 && cols > 0 {
					_ = WriteFrame(w, FrameResize, WinsizePayload(rows, cols))
				}
			}
		}()
	}
	if e.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := e.Stdin.Read(buf)
				if n > 0 {
					if WriteFrame(w, FrameStdin, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					_ = WriteFrame(w, FrameStdin, nil)
					return
				}
			}
		}()
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer func() { signal.Stop(sigs); close(sigs) }()
	go func() {
		for sig := range sigs {
			if n, ok := sig.(syscall.Signal); ok && n < 256 {
				_ = WriteFrame(w, FrameSignal, []byte{byte(n)})
			}
		}
	}()
	for {
		typ, p, err := ReadFrame(conn)
		if err != nil {
			console, _ := os.ReadFile(plan.Console)
			return 0, fmt.Errorf("the VM ended without reporting an exit code (%v); console: %s", err, tail(console, 400))
		}
		switch typ {
		case FrameStdout:
			_, _ = e.Stdout.Write(p)
		case FrameStderr:
			_, _ = e.Stderr.Write(p)
		case FrameExit:
			return DecodeExit(p)
		case FrameError:
			return 0, fmt.Errorf("in the VM: %s", p)
		}
	}
}

func tail(b []byte, n int) string {
	s := strings.TrimSpace(string(b))
	if len(s) > n {
		s = "…" + s[len(s)-n:]
	}
	return strings.ReplaceAll(s, "\n", " | ")
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// copyInto copies the host path src (a file, link or tree) to the same
// absolute path below root, creating parents.
func copyInto(src, root string) error {
	src = filepath.Clean(src)
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		dst := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.IsDir():
			return os.MkdirAll(dst, fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(l, dst)
		case fi.Mode().IsRegular():
			in, err := os.Open(path)
			if err != nil {
				return err
			}
			defer in.Close()
			out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fi.Mode().Perm())
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, in); err != nil {
				out.Close()
				return err
			}
			return out.Close()
		}
		return nil
	})
}
