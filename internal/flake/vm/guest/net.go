package guest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stratalinux/strata/internal/flake/vm"
	"golang.org/x/sys/unix"
)

// The guest has no ip binary and no DHCP client: the init configures its
// interfaces itself with rtnetlink messages, which it builds here.

// nlRequest is one rtnetlink request: the message type, the flags beyond
// NLM_F_REQUEST|NLM_F_ACK, and the body (family header and attributes).
type nlRequest struct {
	typ   uint16
	flags uint16
	body  []byte
}

func (r nlRequest) encode(seq uint32) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(r.body))
	binary.NativeEndian.PutUint32(b[0:], uint32(unix.NLMSG_HDRLEN+len(r.body)))
	binary.NativeEndian.PutUint16(b[4:], r.typ)
	binary.NativeEndian.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|r.flags)
	binary.NativeEndian.PutUint32(b[8:], seq)
	return append(b, r.body...)
}

// attr appends one rtattr (length, type, payload padded to 4 bytes).
func attr(b []byte, typ uint16, payload []byte) []byte {
	var h [unix.SizeofRtAttr]byte
	binary.NativeEndian.PutUint16(h[0:], uint16(unix.SizeofRtAttr+len(payload)))
	binary.NativeEndian.PutUint16(h[2:], typ)
	b = append(append(b, h[:]...), payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

// linkUp sets IFF_UP on the interface.
func linkUp(index int) nlRequest {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], unix.IFF_UP)  // flags
	binary.NativeEndian.PutUint32(b[12:], unix.IFF_UP) // change mask
	return nlRequest{typ: unix.RTM_NEWLINK, body: b}
}

// addAddr puts cfg.Addr on the interface (which also adds the subnet's
// on-link route).
func addAddr(index int, cfg vm.NetConfig) nlRequest {
	b := make([]byte, unix.SizeofIfAddrmsg)
	b[0] = unix.AF_INET
	b[1] = byte(cfg.Addr.Bits())
	b[3] = unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	ip := cfg.Addr.Addr().As4()
	b = attr(b, unix.IFA_LOCAL, ip[:])
	b = attr(b, unix.IFA_ADDRESS, ip[:])
	return nlRequest{typ: unix.RTM_NEWADDR, flags: unix.NLM_F_CREATE | unix.NLM_F_EXCL, body: b}
}

// defaultRoute routes everything through cfg.Gateway on the interface.
func defaultRoute(index int, cfg vm.NetConfig) nlRequest {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET
	b[4] = unix.RT_TABLE_MAIN
	b[5] = unix.RTPROT_BOOT
	b[6] = unix.RT_SCOPE_UNIVERSE
	b[7] = unix.RTN_UNICAST
	gw := cfg.Gateway.As4()
	b = attr(b, unix.RTA_GATEWAY, gw[:])
	b = attr(b, unix.RTA_OIF, u32(uint32(index)))
	return nlRequest{typ: unix.RTM_NEWROUTE, flags: unix.NLM_F_CREATE | unix.NLM_F_EXCL, body: b}
}

// rtnetlink sends requests one by one and waits for each one's ack.
func rtnetlink(reqs ...nlRequest) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return fmt.Errorf("netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("netlink bind: %w", err)
	}
	buf := make([]byte, 8192)
	for i, r := range reqs {
		seq := uint32(i + 1)
		if err := unix.Sendto(fd, r.encode(seq), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return fmt.Errorf("netlink send: %w", err)
		}
		if err := readAck(fd, buf, seq); err != nil {
			return err
		}
	}
	return nil
}

// readAck reads until the NLMSG_ERROR answering seq (error 0 is the ack).
func readAck(fd int, buf []byte, seq uint32) error {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return fmt.Errorf("netlink answer: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq || m.Header.Type != unix.NLMSG_ERROR {
				continue
			}
			if len(m.Data) < 4 {
				return errors.New("netlink: short error message")
			}
			if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
				return unix.Errno(-code)
			}
			return nil
		}
	}
}

// ifIndex asks the kernel for an interface's index (SIOCGIFINDEX: one
// ioctl, where a netlink dump of every link costs tens of milliseconds
// under emulation).
func ifIndex(name string) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return 0, err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return int(ifr.Uint32()), nil
}

// setupLoopback brings lo up: every VM has it, with or without a NIC.
func setupLoopback() error {
	idx, err := ifIndex("lo")
	if err != nil {
		return fmt.Errorf("loopback: %w", err)
	}
	if err := rtnetlink(linkUp(idx)); err != nil {
		return fmt.Errorf("bring lo up: %w", err)
	}
	return nil
}

// setupEth0 configures eth0 statically and writes resolv.conf into the
// root the command runs in (the overlay's upper layer or a tmpfs, never
// the read-only image).
func setupEth0(cfg vm.NetConfig, root string) error {
	var idx int
	// The driver was just loaded; its probe may still be registering
	// the device.
	for deadline := time.Now().Add(3 * time.Second); ; {
		var err error
		if idx, err = ifIndex("eth0"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the network interface eth0 did not appear: %w", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := rtnetlink(linkUp(idx), addAddr(idx, cfg), defaultRoute(idx, cfg)); err != nil {
		return fmt.Errorf("configure eth0 (%s via %s): %w", cfg.Addr, cfg.Gateway, err)
	}
	return writeResolvConf(root, cfg)
}

// writeResolvConf replaces ROOT/etc/resolv.conf with a regular file. A
// symbolic link there (to systemd-resolved's stub, say) is removed, not
// followed: its target would resolve against the init's root, not the
// guest's.
func writeResolvConf(root string, cfg vm.NetConfig) error {
	etc := filepath.Join(root, "etc")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	p := filepath.Join(etc, "resolv.conf")
	if fi, err := os.Lstat(p); err == nil && !fi.Mode().IsRegular() {
		if err := os.Remove(p); err != nil {
			return fmt.Errorf("resolv.conf: %w", err)
		}
	}
	tmp := p + ".strata"
	if err := os.WriteFile(tmp, []byte("nameserver "+cfg.DNS.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("resolv.conf: %w", err)
	}
	return os.Rename(tmp, p)
}
