package vm

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stratalinux/strata/internal/flake"
	"github.com/stratalinux/strata/internal/testutil/privtest"
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

	spec := Spec{Name: "vmsh", Engine: flake.EngineVM, Args: []string{"-c", "read l; echo out:$l; echo err >&2; cat " + inc + "; echo w > /written; cat /written; exit 7"},
		Include: flake.Include{Path: []string{inc}},
		VM: &flake.VM{Name: "vmsh", TargetAppPath: "/bin/sh", Runtime: &flake.VMRuntime{Engine: "qemu", Firecracker: &flake.Firecracker{
			KernelImagePath: kernel, RootfsImagePath: rootfs, OverlaySize: "32m", MemSizeMiB: 256,
			BootArgs: flake.DefaultBootArgs(flake.EngineVM, true, false, false)}}}}
	stdinR, stdinW, _ := os.Pipe()
	stdinW.WriteString("hello\n")
	stdinW.Close()
	outF, _ := os.Create(filepath.Join(dir, "stdout"))
	errF, _ := os.Create(filepath.Join(dir, "stderr"))
	env := map[string]string{"STRATA_GUEST_INIT": gi, "STRATA_VM_ACCEL": os.Getenv("STRATA_VM_ACCEL")}
	e := &Engine{StateDir: filepath.Join(dir, "state"), Stdin: stdinR, Stdout: outF, Stderr: errF, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	start := time.Now()
	code, err := e.Launch(ctx, spec)
	t.Logf("VM launch to exit: %v", time.Since(start))
	outF.Close()
	errF.Close()
	if err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
	errs, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	if code != 7 || string(out) != "out:hello\nincluded\nw\n" || string(errs) != "err\n" {
		t.Fatalf("code %d stdout %q stderr %q", code, out, errs)
	}
	if strings.Contains(string(out), "Linux version") {
		t.Fatal("kernel messages in the output")
	}
	// The instance directory is gone; the cached initramfs stays.
	left, _ := filepath.Glob(filepath.Join(dir, "state", "vm", "vmsh-*"))
	if len(left) != 0 {
		t.Fatalf("instance dirs left: %v", left)
	}

	// Resume: the first launch boots the VM, the second runs in it (the
	// overlay's state is still there) without booting.
	spec.VM.Runtime.Resume = true
	t.Cleanup(func() { // the resumed VM outlives its launches
		var st vmState
		if b, err := os.ReadFile(filepath.Join(dir, "state", "vm", "vmsh.json")); err == nil && json.Unmarshal(b, &st) == nil && st.Pid > 0 {
			syscall.Kill(st.Pid, syscall.SIGKILL)
		}
	})
	run := func(args ...string) (string, int, time.Duration) {
		t.Helper()
		spec.Args = args
		outF, _ := os.Create(filepath.Join(dir, "stdout"))
		e.Stdout, e.Stdin = outF, nil
		start := time.Now()
		code, err := e.Launch(ctx, spec)
		took := time.Since(start)
		outF.Close()
		if err != nil {
			t.Fatal(err)
		}
		out, _ := os.ReadFile(filepath.Join(dir, "stdout"))
		return string(out), code, took
	}
	out1, code1, t1 := run("-c", "echo one > /state; echo booted")
	out2, code2, t2 := run("-c", "cat /state; exit 3")
	t.Logf("resumed VM: first launch %v, second %v", t1, t2)
	if out1 != "booted\n" || code1 != 0 || out2 != "one\n" || code2 != 3 {
		t.Fatalf("resume: %q %d, %q %d", out1, code1, out2, code2)
	}
	var st vmState
	b, err := os.ReadFile(filepath.Join(dir, "state", "vm", "vmsh.json"))
	if err != nil || json.Unmarshal(b, &st) != nil || st.Pid == 0 {
		t.Fatalf("resume state: %s %v", b, err)
	}
}
