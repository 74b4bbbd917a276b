package vm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake"
)

func TestFrames(t *testing.T) {
	var b bytes.Buffer
	WriteFrame(&b, FrameStdout, []byte("hello"))
	WriteFrame(&b, FrameExit, ExitPayload(-3))
	typ, p, err := ReadFrame(&b)
	if err != nil || typ != FrameStdout || string(p) != "hello" {
		t.Fatalf("%q %q %v", typ, p, err)
	}
	typ, p, err = ReadFrame(&b)
	code, _ := DecodeExit(p)
	if err != nil || typ != FrameExit || code != -3 {
		t.Fatalf("%q %d %v", typ, code, err)
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{'O', 0xff, 0, 0, 0})); err == nil {
		t.Fatal("oversized frame accepted")
	}
	if _, _, err := ReadFrame(bytes.NewReader([]byte{'O', 0, 0, 0, 9, 'a'})); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte{'O', 0, 0, 0, 1, 'x'})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		for {
			typ, p, err := ReadFrame(r)
			if err != nil {
				return
			}
			var b bytes.Buffer
			WriteFrame(&b, typ, p)
			if t2, p2, err := ReadFrame(&b); err != nil || t2 != typ || !bytes.Equal(p, p2) {
				t.Fatal("frame does not round-trip")
			}
		}
	})
}

func testVM(resume, vsock, noNet bool) *flake.VM {
	return &flake.VM{Name: "leap", TargetAppPath: "/bin/bash", HostAppPath: "/usr/bin/fireshell",
		Runtime: &flake.VMRuntime{RunAs: "root", Resume: resume, ForceVsock: vsock, NoNet: noNet, Firecracker: &flake.Firecracker{
			BootArgs:        flake.DefaultBootArgs(flake.EngineFirecracker, noNet, resume, vsock),
			RootfsImagePath: "/var/lib/firecracker/images/leap/rootfs", KernelImagePath: "/var/lib/firecracker/images/leap/kernel",
			InitrdPath: "/var/lib/firecracker/images/leap/initrd"}}}
}

func TestRenderFirecrackerMatchesFlakePilot(t *testing.T) {
	cfg, err := RenderFirecracker(FirecrackerInputs{MetaName: "fireshell", VM: testVM(false, false, false),
		Overlay: "/home/u/.config/flakes/firecracker/storage/fireshell.ext2", Socket: "/run/flakes/sci_cmd_fireshell.sock",
		Term: "xterm-256color", Rows: 50, Cols: 200, Argv: []string{"/bin/bash", "-c", "ls"}})
	if err != nil {
		t.Fatal(err)
	}
	want := `overlay_root=/dev/vdb sci_term=xterm-256color sci_lines=50 sci_columns=200 init=/usr/sbin/sci console=ttyS0 root=/dev/vda acpi=off rd.neednet=1 ip=dhcp quiet run="/bin/bash \-c ls"`
	if cfg.BootSource.BootArgs != want {
		t.Fatalf("boot args\n got %s\nwant %s", cfg.BootSource.BootArgs, want)
	}
	b, _ := json.Marshal(cfg)
	for _, s := range []string{`"boot-source"`, `"is_read_only":true`, `"host_dev_name":"tap-fireshell"`, `"guest_cid":3`, `"mem_size_mib":4096`, `"drive_id":"overlay"`} {
		if !strings.Contains(string(b), s) {
			t.Errorf("config lacks %s: %s", s, b)
		}
	}
	cfg, err = RenderFirecracker(FirecrackerInputs{MetaName: "fireshell", VM: testVM(true, false, true), Socket: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(cfg.BootSource.BootArgs, "sci_resume=1 run=vsock") || strings.Contains(cfg.BootSource.BootArgs, "ip=") ||
		!strings.Contains(cfg.BootSource.BootArgs, "console= ") {
		t.Fatalf("resume/no-net boot args: %s", cfg.BootSource.BootArgs)
	}
	if b, _ := json.Marshal(cfg); len(cfg.NetworkInterfaces) != 0 || !strings.Contains(string(b), `"network-interfaces":[]`) {
		t.Fatalf("--no-net config has a NIC: %s", b)
	}
	if _, err := RenderFirecracker(FirecrackerInputs{MetaName: "a-very-long-flake@instance", VM: testVM(false, false, false)}); err == nil ||
		!strings.Contains(err.Error(), "tap device name") {
		t.Fatalf("over-long tap name: %v", err)
	}
}

// A fake Firecracker vsock muxer speaks the host side of the protocol.
func TestVsockConnectAndSciCommand(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "v.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		line, _ := r.ReadString('\n')
		if line != "CONNECT 52\n" {
			io.WriteString(c, "ERR\n")
			return
		}
		io.WriteString(c, "OK 1073741824\n")
		cmd, _ := r.ReadString('\n')
		got <- cmd
	}()
	c, err := VsockConnect(sock, SciPort)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, SciCommand([]string{"/bin/bash", "-c", "ls -l; echo 'x'"}, 49300))
	c.Close()
	if cmd := <-got; cmd != `/bin/bash -c 'ls -l; echo '\''x'\''' 49300`+"\n" {
		t.Fatalf("sci command %q", cmd)
	}
}

func TestPlanQemu(t *testing.T) {
	p := PlanQemu(QemuInputs{Kernel: "/k", Initramfs: "/i", Rootfs: "/r", Overlay: "/o", Dir: "/d", BootArgs: []string{"quiet"}})
	s := strings.Join(p.Args, " ")
	for _, want := range []string{"-M pc", "-accel tcg", "virtio-blk-pci", "file=/r,format=raw,if=none,readonly=on", "file=/o,format=raw,if=none -device",
		"path=/d/channel.sock,server=on,wait=on", "name=" + PortName, "-append quiet strata.overlay=1 rdinit=/init", "-no-reboot"} {
		if !strings.Contains(s, want) {
			t.Errorf("qemu args lack %q: %s", want, s)
		}
	}
}

func TestSizes(t *testing.T) {
	for in, want := range map[string]int64{"20GiB": 20 << 30, "20g": 20 << 30, "512MB": 512e6, "64m": 64 << 20, "100": 100} {
		if got, err := flake.ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %d %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "g", "-1g", "20 parsecs"} {
		if _, err := flake.ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestFirecrackerMissingIsClear(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	e := &Engine{StateDir: t.TempDir()}
	_, err := e.Launch(t.Context(), Spec{Name: "fc", Engine: flake.EngineFirecracker, VM: testVM(false, false, false)})
	if err == nil || !strings.Contains(err.Error(), "firecracker is not installed") {
		t.Fatalf("got %v", err)
	}
	_, err = e.Launch(t.Context(), Spec{Name: "q", Engine: flake.EngineVM, VM: testVM(false, false, false)})
	if err == nil || !strings.Contains(err.Error(), "qemu is not installed") {
		t.Fatalf("got %v", err)
	}
}
