package vm

import (
	"errors"
	"strings"
	"testing"
)

func TestNetConfig(t *testing.T) {
	if got := UserNet.String(); got != "10.0.2.15/24,10.0.2.2,10.0.2.3" {
		t.Fatalf("UserNet renders as %q", got)
	}
	n, ok, err := NetFromCmdline("console=ttyS0 quiet strata.net=10.0.2.15/24,10.0.2.2,10.0.2.3 rdinit=/init")
	if err != nil || !ok || n != UserNet {
		t.Fatalf("from cmdline: %+v %v %v", n, ok, err)
	}
	if _, ok, err := NetFromCmdline("console=ttyS0 strata.resume=1"); ok || err != nil {
		t.Fatalf("no strata.net: %v %v", ok, err)
	}
	for _, bad := range []string{"", "10.0.2.15/24", "10.0.2.15,10.0.2.2,10.0.2.3", "10.0.2.15/24,10.0.3.2,10.0.2.3",
		"fd00::2/64,fd00::1,fd00::3", "10.0.2.15/24,10.0.2.2,dns", "10.0.2.15/24,10.0.2.2,10.0.2.3,x"} {
		if _, err := ParseNetConfig(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func FuzzParseNetConfig(f *testing.F) {
	f.Add(UserNet.String())
	f.Add("192.168.1.7/16,192.168.0.1,1.1.1.1")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseNetConfig(s)
		if err != nil {
			return
		}
		back, err := ParseNetConfig(n.String())
		if err != nil || back != n {
			t.Fatalf("%q → %q does not round-trip: %v", s, n.String(), err)
		}
		if !n.Addr.Masked().Contains(n.Gateway) {
			t.Fatalf("gateway %s off the subnet %s", n.Gateway, n.Addr)
		}
	})
}

// The network is all or nothing on the qemu command line: a NIC on
// user-mode networking and the guest's configuration, or no NIC at all.
func TestPlanQemuNetwork(t *testing.T) {
	in := QemuInputs{Kernel: "/k", Initramfs: "/i", Rootfs: "/r", Dir: "/d", BootArgs: []string{"quiet"}, Net: true}
	s := strings.Join(PlanQemu(in).Args, " ")
	for _, want := range []string{"-netdev user,id=n0", "-device virtio-net-pci,netdev=n0,romfile=", "-append quiet strata.overlay=0 strata.net=10.0.2.15/24,10.0.2.2,10.0.2.3 rdinit=/init"} {
		if !strings.Contains(s, want) {
			t.Errorf("qemu args lack %q: %s", want, s)
		}
	}
	in.KVM = true
	if s := strings.Join(PlanQemu(in).Args, " "); !strings.Contains(s, "-device virtio-net-device,netdev=n0 ") {
		t.Errorf("microvm NIC: %s", s)
	}
	in.Net = false
	for _, kvm := range []bool{false, true} {
		in.KVM = kvm
		s := strings.Join(PlanQemu(in).Args, " ")
		if strings.Contains(s, "netdev") || strings.Contains(s, "virtio-net") || strings.Contains(s, NetBootArg) {
			t.Errorf("--no-net VM has a network: %s", s)
		}
	}
}

func TestWinsizePayload(t *testing.T) {
	for _, c := range [][4]int{{24, 80, 24, 80}, {0, 0, 0, 0}, {70000, -1, 0xffff, 0}} {
		r, cl, err := DecodeWinsize(WinsizePayload(c[0], c[1]))
		if err != nil || r != c[2] || cl != c[3] {
			t.Errorf("%d×%d → %d×%d %v", c[0], c[1], r, cl, err)
		}
	}
	if _, _, err := DecodeWinsize([]byte{1, 2, 3}); err == nil {
		t.Error("short resize frame accepted")
	}
}

func TestTapName(t *testing.T) {
	if tap, err := TapName("fireshel@a1"); err != nil || tap != "tap-fireshel@a1" {
		t.Fatalf("%q %v", tap, err)
	}
	for _, bad := range []string{"twelve-chars", "a b", "x:y"} {
		if _, err := TapName(bad); !errors.Is(err, ErrTapName) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
