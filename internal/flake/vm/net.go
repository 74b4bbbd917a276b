package vm

import (
	"fmt"
	"net/netip"
	"strings"
)

// NetBootArg is the kernel command-line key that tells the guest init to
// configure eth0; its value is NetConfig.String(). Without it the guest
// brings up only lo and loads no network driver.
const NetBootArg = "strata.net"

// NetConfig is the guest's static IPv4 configuration.
type NetConfig struct {
	Addr    netip.Prefix // address and prefix on eth0
	Gateway netip.Addr   // default route
	DNS     netip.Addr   // written to /etc/resolv.conf
}

// UserNet is what qemu's user-mode network (slirp) expects by default:
// the guest at 10.0.2.15/24, the host (and its loopback) at 10.0.2.2, a
// DNS forwarder at 10.0.2.3. Static, so no DHCP round trip at boot.
var UserNet = NetConfig{
	Addr:    netip.MustParsePrefix("10.0.2.15/24"),
	Gateway: netip.MustParseAddr("10.0.2.2"),
	DNS:     netip.MustParseAddr("10.0.2.3"),
}

// String renders the configuration as the value of NetBootArg:
// ADDR/PREFIX,GATEWAY,DNS.
func (n NetConfig) String() string {
	return n.Addr.String() + "," + n.Gateway.String() + "," + n.DNS.String()
}

// ParseNetConfig reads a NetBootArg value. Only IPv4 is accepted, and the
// gateway must be on the address's subnet (the guest adds no on-link
// route for it).
func ParseNetConfig(s string) (NetConfig, error) {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return NetConfig{}, fmt.Errorf("%s=%q: want ADDR/PREFIX,GATEWAY,DNS", NetBootArg, s)
	}
	var n NetConfig
	var err error
	if n.Addr, err = netip.ParsePrefix(parts[0]); err != nil || !n.Addr.Addr().Is4() {
		return NetConfig{}, fmt.Errorf("%s: address %q is not an IPv4 ADDR/PREFIX", NetBootArg, parts[0])
	}
	if n.Gateway, err = netip.ParseAddr(parts[1]); err != nil || !n.Gateway.Is4() || !n.Addr.Masked().Contains(n.Gateway) {
		return NetConfig{}, fmt.Errorf("%s: gateway %q is not an IPv4 address in %s", NetBootArg, parts[1], n.Addr.Masked())
	}
	if n.DNS, err = netip.ParseAddr(parts[2]); err != nil || !n.DNS.Is4() {
		return NetConfig{}, fmt.Errorf("%s: DNS server %q is not an IPv4 address", NetBootArg, parts[2])
	}
	return n, nil
}

// NetFromCmdline finds NetBootArg on a kernel command line; ok is false
// when the VM has no network.
func NetFromCmdline(cmdline string) (n NetConfig, ok bool, err error) {
	for _, f := range strings.Fields(cmdline) {
		if v, found := strings.CutPrefix(f, NetBootArg+"="); found {
			n, err = ParseNetConfig(v)
			return n, err == nil, err
		}
	}
	return NetConfig{}, false, nil
}
