package vm

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake"
)

// FirecrackerConfig is the JSON flake-pilot renders from
// /etc/flakes/firecracker.json for "firecracker --no-api --config-file".
type FirecrackerConfig struct {
	BootSource struct {
		KernelImagePath string `json:"kernel_image_path"`
		InitrdPath      string `json:"initrd_path,omitempty"`
		BootArgs        string `json:"boot_args"`
	} `json:"boot-source"`
	Drives            []FirecrackerDrive `json:"drives"`
	NetworkInterfaces []FirecrackerNIC   `json:"network-interfaces"`
	MachineConfig     struct {
		VcpuCount  int `json:"vcpu_count"`
		MemSizeMiB int `json:"mem_size_mib"`
	} `json:"machine-config"`
	Vsock struct {
		GuestCID int    `json:"guest_cid"`
		UDSPath  string `json:"uds_path"`
	} `json:"vsock"`
}

// FirecrackerDrive is one block device.
type FirecrackerDrive struct {
	DriveID      string `json:"drive_id"`
	PathOnHost   string `json:"path_on_host"`
	IsRootDevice bool   `json:"is_root_device"`
	IsReadOnly   bool   `json:"is_read_only"`
	CacheType    string `json:"cache_type"`
}

// FirecrackerNIC is the guest's network interface.
type FirecrackerNIC struct {
	IfaceID     string `json:"iface_id"`
	GuestMAC    string `json:"guest_mac"`
	HostDevName string `json:"host_dev_name"`
}

// FirecrackerInputs are the values the config is rendered from.
type FirecrackerInputs struct {
	MetaName string // name[@instance]
	VM       *flake.VM
	Overlay  string
	Socket   string
	Term     string
	Rows     int
	Cols     int
	Debug    bool
	Argv     []string
}

// IFNAMSIZ-1: Linux's limit on interface names.
const maxIfName = 15

// ErrTapName means a tap device name Linux would refuse.
var ErrTapName = errors.New("invalid tap device name")

// TapName is flake-pilot's tap-NAME[@id], refused when Linux would: at
// most 15 bytes (IFNAMSIZ-1), no '/', ':' or white space.
func TapName(meta string) (string, error) {
	t := "tap-" + meta
	if len(t) > maxIfName {
		return "", fmt.Errorf("%w: %q is %d bytes, Linux allows %d (IFNAMSIZ)", ErrTapName, t, len(t), maxIfName)
	}
	if strings.ContainsAny(t, "/: \t\n") {
		return "", fmt.Errorf("%w: %q contains '/', ':' or white space", ErrTapName, t)
	}
	return t, nil
}

var termOK = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9._+-]{1,32}$`) })

// RenderFirecracker builds flake-pilot's Firecracker config and boot
// arguments, in its order: PILOT_DEBUG, overlay_root, sci_term,
// sci_lines/sci_columns, the registered boot_args (console= emptied for
// vsock mode), then run=vsock or run="…".
func RenderFirecracker(in FirecrackerInputs) (*FirecrackerConfig, error) {
	rt := in.VM.Runtime
	fc := rt.Firecracker
	vsock := rt.Resume || rt.ForceVsock
	var args []string
	if in.Debug {
		args = append(args, "PILOT_DEBUG=1")
	}
	if in.Overlay != "" {
		args = append(args, "overlay_root=/dev/vdb")
	}
	if termOK().MatchString(in.Term) {
		args = append(args, "sci_term="+in.Term)
	}
	if in.Rows > 0 && in.Cols > 0 {
		args = append(args, "sci_lines="+strconv.Itoa(in.Rows), "sci_columns="+strconv.Itoa(in.Cols))
	}
	for _, a := range fc.BootArgs {
		if vsock && !in.Debug && strings.HasPrefix(a, "console=") {
			a = "console="
		}
		if rt.NoNet && strings.HasPrefix(a, "ip=") {
			continue
		}
		args = append(args, a)
	}
	if vsock {
		args = append(args, "run=vsock")
	} else {
		var q []string
		for _, a := range in.Argv {
			if strings.ContainsAny(a, "\"\n") {
				return nil, fmt.Errorf("argument %q cannot travel on a kernel command line; register with --force-vsock", a)
			}
			q = append(q, strings.ReplaceAll(a, "-", `\-`))
		}
		args = append(args, `run="`+strings.Join(q, " ")+`"`)
	}
	c := &FirecrackerConfig{}
	c.BootSource.KernelImagePath = fc.KernelImagePath
	c.BootSource.InitrdPath = fc.InitrdPath
	c.BootSource.BootArgs = strings.Join(args, " ")
	c.Drives = []FirecrackerDrive{{DriveID: "rootfs", PathOnHost: fc.RootfsImagePath, IsRootDevice: true, IsReadOnly: true, CacheType: "Writeback"}}
	if in.Overlay != "" {
		ct := fc.CacheType
		if ct == "" {
			ct = "Writeback"
		}
		c.Drives = append(c.Drives, FirecrackerDrive{DriveID: "overlay", PathOnHost: in.Overlay, CacheType: ct})
	}
	if !rt.NoNet {
		tap, err := TapName(in.MetaName)
		if err != nil {
			return nil, fmt.Errorf("%w; use a shorter flake or @instance name, or register with --no-net", err)
		}
		c.NetworkInterfaces = []FirecrackerNIC{{IfaceID: "eth0", GuestMAC: "AA:FC:00:00:00:01", HostDevName: tap}}
	} else {
		c.NetworkInterfaces = []FirecrackerNIC{}
	}
	c.MachineConfig.VcpuCount, c.MachineConfig.MemSizeMiB = fc.VcpuCount, fc.MemSizeMiB
	if c.MachineConfig.VcpuCount == 0 {
		c.MachineConfig.VcpuCount = 2
	}
	if c.MachineConfig.MemSizeMiB == 0 {
		c.MachineConfig.MemSizeMiB = 4096
	}
	c.Vsock.GuestCID = 3
	c.Vsock.UDSPath = in.Socket
	return c, nil
}

// SciPort is the vsock port sci listens on in the guest.
const SciPort = 52

// VsockConnect opens Firecracker's host-side vsock socket and asks for a
// guest port ("CONNECT 52\n" → "OK <id>\n").
func VsockConnect(udsPath string, port int) (net.Conn, error) {
	c, err := net.Dial("unix", udsPath)
	if err != nil {
		return nil, err
	}
	if _, err := fmt.Fprintf(c, "CONNECT %d\n", port); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReaderSize(c, 64).ReadString('\n')
	_ = c.SetReadDeadline(time.Time{})
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("vsock CONNECT %d: %w", port, err)
	}
	if !strings.HasPrefix(line, "OK ") {
		c.Close()
		return nil, fmt.Errorf("vsock CONNECT %d: %q", port, strings.TrimSpace(line))
	}
	return c, nil
}

// SciCommand is what the host sends sci: the argv joined the way sci's
// shell_words splits it back, then the port sci dials back on.
func SciCommand(argv []string, port int) string {
	q := make([]string, 0, len(argv)+1)
	for _, a := range argv {
		q = append(q, shellQuote(a))
	}
	return strings.Join(append(q, strconv.Itoa(port)), " ") + "\n"
}

func shellQuote(s string) string {
	if s != "" && !strings.ContainsAny(s, " \t\n'\"\\$`;&|<>()*?[]#~!{}") {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// firecracker runs a flake-pilot Firecracker flake: serial mode with the
// console as the app's terminal, or vsock mode with sci's protocol.
func (e *Engine) firecracker(ctx context.Context, bin string, s Spec) (int, error) {
	meta := s.Name
	if s.Instance != "" {
		meta += "@" + s.Instance
	}
	if err := os.MkdirAll(e.StateDir, 0o700); err != nil {
		return 0, err
	}
	sock := filepath.Join(e.StateDir, "sci_cmd_"+meta+".sock")
	target := s.VM.TargetAppPath
	if target == "" {
		target = s.VM.HostAppPath
	}
	argv := append([]string{target}, s.Args...)
	cfg, err := RenderFirecracker(FirecrackerInputs{MetaName: meta, VM: s.VM, Socket: sock, Term: e.getenv("TERM"), Argv: argv,
		Debug: e.getenv("PILOT_DEBUG") != ""})
	if err != nil {
		return 0, fmt.Errorf("flake %s: %w", s.Name, err)
	}
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return 0, err
	}
	cfgPath := filepath.Join(e.StateDir, meta+".firecracker.json")
	if err := os.WriteFile(cfgPath, data, 0o600); err != nil {
		return 0, err
	}
	defer os.Remove(cfgPath)
	_ = os.Remove(sock)
	cmd := exec.CommandContext(ctx, bin, "--no-api", "--id", strconv.Itoa(os.Getpid()), "--config-file", cfgPath)
	vsock := s.VM.Runtime.Resume || s.VM.Runtime.ForceVsock
	if !vsock {
		cmd.Stdin, cmd.Stdout, cmd.Stderr = e.Stdin, e.Stdout, e.Stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode(), nil
		}
		return 0, err
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	port := 49200 + os.Getpid()%10000
	ln, err := net.Listen("unix", fmt.Sprintf("%s_%d", sock, port))
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	var conn net.Conn
	for i := 0; i < 600; i++ {
		if conn, err = VsockConnect(sock, SciPort); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if conn == nil {
		return 0, fmt.Errorf("flake %s: the guest's sci did not answer on vsock port %d: %v", s.Name, SciPort, err)
	}
	_, err = io.WriteString(conn, SciCommand(argv, port))
	conn.Close()
	if err != nil {
		return 0, err
	}
	back, err := ln.Accept()
	if err != nil {
		return 0, err
	}
	defer back.Close()
	go func() { _, _ = io.Copy(back, e.Stdin) }()
	_, _ = io.Copy(e.Stdout, back)
	// sci reports no exit code; flake-pilot guests therefore exit 0.
	return 0, nil
}
