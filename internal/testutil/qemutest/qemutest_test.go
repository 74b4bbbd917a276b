package qemutest

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// busyboxInit prints a marker, echoes one line typed on the console, and
// powers off (or reboots, when the command line says so).
const busyboxInit = `#!/bin/sh
/bin/busybox mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
echo "QEMUTEST-READY uptime=$(cut -d' ' -f1 /proc/uptime)"
read -r line
echo "QEMUTEST-GOT[$line]"
case " $(cat /proc/cmdline) " in
*" qemutest.reboot "*) reboot -f ;;
esac
poweroff -f
`

// busyboxInitrd writes an initrd of the static busybox and busyboxInit.
func busyboxInitrd(t *testing.T) string { return BusyboxInitrd(t, busyboxInit) }

var (
	ready = regexp.MustCompile(`QEMUTEST-READY uptime=([0-9.]+)`)
	got   = regexp.MustCompile(`QEMUTEST-GOT\[([^\]]*)\]`)
)

// TestBootBusybox boots Debian's kernel with a busybox initrd, waits for
// the marker, types a line the guest echoes back, and checks that the
// guest's poweroff ends QEMU with status 0 and that the console log file
// holds the same output.
func TestBootBusybox(t *testing.T) {
	h := Require(t)
	m := Start(t, Config{Kernel: h.Kernel, Initrd: busyboxInitrd(t), Append: "quiet panic=-1"})
	match, at, err := m.ExpectAt(ready, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("marker after %s (guest uptime %ss)", at.Round(time.Millisecond), match[1])
	if at <= 0 || at > 2*time.Minute {
		t.Errorf("marker time %s out of range", at)
	}
	if err := m.Send("hello strata"); err != nil {
		t.Fatal(err)
	}
	if match, err := m.Expect(got, time.Minute); err != nil {
		t.Fatal(err)
	} else if match[1] != "hello strata" {
		t.Errorf("guest echoed %q, want %q", match[1], "hello strata")
	}
	if err := m.Wait(time.Minute); err != nil {
		t.Fatalf("qemu did not exit cleanly after the guest's poweroff: %v", err)
	}
	// The marker was consumed: a second Expect for it finds nothing and
	// reports QEMU's exit rather than waiting out its timeout.
	start := time.Now()
	if _, err := m.Expect(ready, time.Minute); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("Expect after exit: %v, want an error naming the exit", err)
	} else if time.Since(start) > 5*time.Second {
		t.Errorf("Expect after exit took %s", time.Since(start))
	}
	var line *Line
	for _, l := range m.Lines() {
		if strings.Contains(l.Text, "QEMUTEST-READY") {
			line = &l
			break
		}
	}
	if line == nil || line.At <= 0 || line.At > at+time.Second {
		t.Errorf("Lines() has no timed marker line near %s: %+v", at, line)
	}
	log, err := os.ReadFile(m.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	if !ready.Match(log) || !got.Match(log) {
		t.Errorf("console log %s lacks the markers:\n%s", m.LogPath, log)
	}
	assertGone(t, m.Pid())
	if !strings.Contains(strings.Join(m.Args(), " "), ".vmlinux") {
		t.Errorf("the kernel was not booted by PVH: %s", m.Args())
	}
}

// TestRebootWithNoRebootExits checks that a guest reboot ends QEMU when
// NoReboot is set, and that Kill on an exited machine is harmless. It
// boots the bzImage through the firmware, the path the others skip.
func TestRebootWithNoRebootExits(t *testing.T) {
	h := Require(t)
	m := Start(t, Config{Kernel: h.Kernel, BzImage: true, Initrd: busyboxInitrd(t), Append: "quiet panic=-1 qemutest.reboot", NoReboot: true})
	if _, err := m.Expect(ready, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Send("bye"); err != nil {
		t.Fatal(err)
	}
	if err := m.Wait(time.Minute); err != nil {
		t.Fatalf("guest reboot with -no-reboot: %v", err)
	}
	m.Kill()
	assertGone(t, m.Pid())
}

// TestKillLeavesNoProcess kills a running guest and checks that QEMU is
// gone and Wait reports the kill; Expect on a timeout says so.
func TestKillLeavesNoProcess(t *testing.T) {
	h := Require(t)
	m := Start(t, Config{Kernel: h.Kernel, Initrd: busyboxInitrd(t), Append: "quiet panic=-1"})
	if _, err := m.Expect(regexp.MustCompile(`never printed`), 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "within") {
		t.Errorf("Expect of missing output: %v, want a timeout", err)
	}
	if err := m.Wait(100 * time.Millisecond); !errors.Is(err, ErrTimeout) {
		t.Errorf("Wait on a running guest: %v, want ErrTimeout", err)
	}
	m.Kill()
	if err := m.Wait(time.Second); err == nil {
		t.Error("Wait after Kill: nil, want the kill reported")
	}
	assertGone(t, m.Pid())
}

func assertGone(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("qemu pid %d still exists after exit (kill 0: %v)", pid, err)
	}
}

func TestArgs(t *testing.T) {
	a := strings.Join(Args(Config{Kernel: "/k", Initrd: "/i", Append: "quiet", Disks: []string{"/d,1.img"},
		Net: &Net{HostFwd: []string{"tcp:127.0.0.1:2222-:22"}}, NoReboot: true, ExtraArgs: []string{"-S"}}), " ")
	for _, want := range []string{"-accel tcg,thread=multi", "-m 512M", "-smp 2", "-serial stdio",
		"-append console=ttyS0 quiet", "-initrd /i", "-no-reboot", "file=/d,,1.img,if=virtio,format=raw",
		"user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22", "virtio-net-pci", "-S"} {
		if !strings.Contains(a, want) {
			t.Errorf("args lack %q: %s", want, a)
		}
	}
	if a := strings.Join(Args(Config{Kernel: "/k", Append: "console=hvc0"}), " "); strings.Contains(a, "ttyS0") {
		t.Errorf("console added although Append names one: %s", a)
	}
}

// TestPVHKernel unpacks the host's kernel and checks the ELF and its PVH
// note, and that a file that is no kernel is refused by name.
func TestPVHKernel(t *testing.T) {
	h := Require(t)
	p, err := PVHKernel(h.Kernel)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkPVH(b); err != nil {
		t.Fatal(err)
	}
	if p2, err := PVHKernel(h.Kernel); err != nil || p2 != p {
		t.Errorf("second call: %q, %v; want the cached %q", p2, err, p)
	}
	bad := filepath.Join(t.TempDir(), "notakernel")
	os.WriteFile(bad, []byte("hello"), 0o644)
	if _, err := PVHKernel(bad); err == nil || !strings.Contains(err.Error(), bad) {
		t.Errorf("PVHKernel of a text file: %v, want an error naming it", err)
	}
}
