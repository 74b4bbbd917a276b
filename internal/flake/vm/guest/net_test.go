package guest

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stratalinux/strata/internal/flake/vm"
	"github.com/stratalinux/strata/internal/testutil/privtest"
	"golang.org/x/sys/unix"
)

// The rtnetlink messages the guest init sends, carried out by the host's
// kernel in a private network namespace: lo comes up, and a dummy
// interface gets the address and the default route, as eth0 does in a VM.
func TestNetlinkConfiguresInterfaces(t *testing.T) {
	privtest.RequireRoot(t)
	type result struct {
		lo    net.Flags
		addrs []string
		route string
		err   error
	}
	ch := make(chan result, 1)
	go func() {
		// The namespace belongs to this thread, which is never handed
		// back to the scheduler (it ends with the goroutine).
		runtime.LockOSThread()
		var r result
		defer func() { ch <- r }()
		if r.err = unix.Unshare(unix.CLONE_NEWNET); r.err != nil {
			return
		}
		if r.err = setupLoopback(); r.err != nil {
			return
		}
		lo, err := net.InterfaceByName("lo")
		if r.err = err; err != nil {
			return
		}
		r.lo = lo.Flags
		// The address and route requests need an interface that is not
		// loopback; a tap device stands in for eth0 while tun is open.
		tun, err := newTap("eth0")
		if err != nil {
			r.err = fmt.Errorf("/dev/net/tun: %w", err)
			return
		}
		defer unix.Close(tun)
		cfg := vm.NetConfig{Addr: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2"), DNS: netip.MustParseAddr("10.0.2.3")}
		root := t.TempDir()
		if r.err = setupEth0(cfg, root); r.err != nil {
			return
		}
		eth, _ := net.InterfaceByName("eth0")
		as, _ := eth.Addrs()
		for _, a := range as {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil { // not the kernel's IPv6 link-local one
				r.addrs = append(r.addrs, a.String()+" "+eth.Flags.String())
			}
		}
		b, _ := os.ReadFile("/proc/thread-self/net/route")
		r.route = string(b)
		rc, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
		r.addrs = append(r.addrs, strings.TrimSpace(string(rc)))
	}()
	r := <-ch
	if r.err != nil {
		if strings.Contains(r.err.Error(), "/dev/net/tun") {
			privtest.Missing(t, "no tap devices here: %v", r.err)
		}
		t.Fatal(r.err)
	}
	if r.lo&net.FlagUp == 0 {
		t.Errorf("lo is not up: %v", r.lo)
	}
	if len(r.addrs) != 2 || !strings.HasPrefix(r.addrs[0], "10.0.2.15/24 up|") || r.addrs[1] != "nameserver 10.0.2.3" {
		t.Errorf("eth0: %q", r.addrs)
	}
	// Destination 0, gateway 10.0.2.2 (little-endian hex in /proc).
	if !strings.Contains(r.route, "eth0\t00000000\t0202000A") {
		t.Errorf("no default route via 10.0.2.2:\n%s", r.route)
	}
}

// newTap creates a tap device in the calling thread's network namespace
// (test only: the guest's eth0 is a real virtio NIC).
func newTap(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI)
	if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// A resolv.conf that is a symbolic link (systemd-resolved's stub) is
// replaced, never written through.
func TestWriteResolvConfReplacesLink(t *testing.T) {
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "stub-resolv.conf")
	os.WriteFile(outside, []byte("nameserver 127.0.0.53\n"), 0o644)
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.Symlink(outside, filepath.Join(root, "etc", "resolv.conf"))
	if err := writeResolvConf(root, vm.UserNet); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(filepath.Join(root, "etc", "resolv.conf"))
	got, _ := os.ReadFile(filepath.Join(root, "etc", "resolv.conf"))
	kept, _ := os.ReadFile(outside)
	if err != nil || !fi.Mode().IsRegular() || string(got) != "nameserver 10.0.2.3\n" || string(kept) != "nameserver 127.0.0.53\n" {
		t.Fatalf("resolv.conf %v %q, link target now %q", fi.Mode(), got, kept)
	}
	// A root without /etc gets one.
	bare := t.TempDir()
	if err := writeResolvConf(bare, vm.UserNet); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(bare, "etc", "resolv.conf")); string(b) != "nameserver 10.0.2.3\n" {
		t.Fatalf("bare root: %q", b)
	}
}
