package main

import (
	"encoding/binary"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// ip6tSOOriginalDst is IP6T_SO_ORIGINAL_DST from linux/netfilter_ipv6/ip6_tables.h, which
// golang.org/x/sys/unix does not define.
const ip6tSOOriginalDst = 80

// originalDst asks netfilter where a redirected connection was headed before iptables sent it to
// this port, as Envoy's original_dst listener filter does.
func originalDst(c *net.TCPConn) (netip.AddrPort, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return netip.AddrPort{}, err
	}
	var dst netip.AddrPort
	var opErr error
	err = raw.Control(func(fd uintptr) {
		domain, err := unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_DOMAIN)
		if err != nil {
			opErr = err
			return
		}
		if domain == unix.AF_INET {
			// The kernel writes a 16-byte sockaddr_in; IPv6Mreq is just a buffer that holds it.
			m, err := unix.GetsockoptIPv6Mreq(int(fd), unix.SOL_IP, unix.SO_ORIGINAL_DST)
			if err != nil {
				opErr = err
				return
			}
			b := m.Multiaddr // family, port (network order), address
			dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), binary.BigEndian.Uint16(b[2:4]))
			return
		}
		// The kernel writes a sockaddr_in6, which IPv6MTUInfo begins with.
		info, err := unix.GetsockoptIPv6MTUInfo(int(fd), unix.SOL_IPV6, ip6tSOOriginalDst)
		if err != nil {
			opErr = err
			return
		}
		var port [2]byte // Port holds the bytes in network order, read as a host integer
		binary.NativeEndian.PutUint16(port[:], info.Addr.Port)
		dst = netip.AddrPortFrom(netip.AddrFrom16(info.Addr.Addr), binary.BigEndian.Uint16(port[:]))
	})
	if err == nil {
		err = opErr
	}
	return dst, err
}
