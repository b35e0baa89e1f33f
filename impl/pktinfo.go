package impl

import (
	"encoding/binary"
	"net"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"
)

// A socket bound to an unspecified address answers from whatever source
// the kernel's routing picks, which on a host with several addresses
// need not be the one the client sent to; a client whose socket is
// connected (nc -u) or behind a stateful firewall then never sees the
// answer. The runner asks the kernel for each datagram's destination
// (IP_PKTINFO, IPV6_RECVPKTINFO), reports it as Input.Local, and sends
// with the machine's Output.Local as the source, as quinn-proto's
// local_ip and src_ip do.

// oobSize holds the control messages a read may carry: on a dual-stack
// socket an IPv4 datagram brings both IPV6_PKTINFO and IP_PKTINFO, with
// room to spare (a short buffer truncates them, MSG_CTRUNC).
var oobSize = 2 * (unix.CmsgSpace(unix.SizeofInet6Pktinfo) + unix.CmsgSpace(unix.SizeofInet4Pktinfo))

// enablePktinfo asks the kernel to report each datagram's destination
// on c, for both families on a dual-stack socket.
func enablePktinfo(c *net.UDPConn, v4only bool) bool {
	rc, err := c.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	_ = rc.Control(func(fd uintptr) {
		if unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil {
			ok = true
		}
		if !v4only && unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil {
			ok = true
		}
	})
	return ok
}

// parsePktinfo finds a datagram's local address in its control messages.
// IPv4's is the kernel's spec_dst, the local address a reply should come
// from (for a datagram sent to a broadcast address, the interface's own
// address), preferred to the v4-mapped destination that a dual-stack
// socket's IPV6_PKTINFO also gives. A destination that cannot be a
// source (multicast, broadcast, unspecified) gives none.
func parsePktinfo(oob []byte) netip.Addr {
	var v6 netip.Addr
	for len(oob) >= unix.SizeofCmsghdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		l := int(h.Len)
		if l < unix.SizeofCmsghdr || l > len(oob) {
			break
		}
		data := oob[unix.CmsgLen(0):l]
		switch {
		case h.Level == unix.IPPROTO_IP && h.Type == unix.IP_PKTINFO && len(data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo { int ifindex; in_addr spec_dst; in_addr addr; }
			return unicast(netip.AddrFrom4([4]byte(data[4:8])))
		case h.Level == unix.IPPROTO_IPV6 && h.Type == unix.IPV6_PKTINFO && len(data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo { in6_addr addr; int ifindex; }
			a := netip.AddrFrom16([16]byte(data[:16])).Unmap()
			if a.Is6() && a.IsLinkLocalUnicast() {
				// A link-local address means nothing without its link:
				// the zone carries the interface index back to the send.
				a = a.WithZone(strconv.FormatUint(uint64(binary.NativeEndian.Uint32(data[16:20])), 10))
			}
			v6 = unicast(a)
		}
		next := unix.CmsgSpace(l - unix.CmsgLen(0))
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return v6
}

// unicast is a, or zero if a cannot be a datagram's source.
func unicast(a netip.Addr) netip.Addr {
	if a.IsMulticast() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return netip.Addr{}
	}
	return a
}

// pktinfoControl appends the control message that sends from src: IPv4
// sources as IP_PKTINFO (which a dual-stack socket takes for an IPv4
// destination too), IPv6 ones as IPV6_PKTINFO.
func pktinfoControl(b []byte, src netip.Addr) []byte {
	src = src.Unmap()
	if src.Is4() {
		off := len(b)
		b = append(b, make([]byte, unix.CmsgSpace(unix.SizeofInet4Pktinfo))...)
		h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
		h.Level, h.Type = unix.IPPROTO_IP, unix.IP_PKTINFO
		h.SetLen(unix.CmsgLen(unix.SizeofInet4Pktinfo))
		a := src.As4()
		copy(b[off+unix.CmsgLen(0)+4:], a[:]) // spec_dst
		return b
	}
	off := len(b)
	b = append(b, make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))...)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[off]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	a := src.As16()
	copy(b[off+unix.CmsgLen(0):], a[:])
	ifindex, _ := strconv.ParseUint(src.Zone(), 10, 32) // 0: any interface
	binary.NativeEndian.PutUint32(b[off+unix.CmsgLen(0)+16:], uint32(ifindex))
	return b
}
