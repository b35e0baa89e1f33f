package impl

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The control message that sends from an address reads back as that
// address, the kernel's received form being the same layout; a
// link-local IPv6 address keeps its interface in the zone.
func TestPktinfoRoundTrip(t *testing.T) {
	for _, a := range []string{"127.0.0.2", "10.1.2.3", "::1", "2001:db8::7", "fe80::1%3"} {
		want := netip.MustParseAddr(a)
		got := parsePktinfo(pktinfoControl(nil, want))
		if got != want {
			t.Errorf("%v came back as %v", want, got)
		}
	}
	if got := parsePktinfo(pktinfoControl(nil, netip.MustParseAddr("ff02::1"))); got.IsValid() {
		t.Errorf("a multicast destination gave Local %v", got)
	}
	// Behind another control message, and cut short.
	b := append(gsoControl(1200), pktinfoControl(nil, netip.MustParseAddr("127.0.0.9"))...)
	if got := parsePktinfo(b); got != netip.MustParseAddr("127.0.0.9") {
		t.Errorf("after a segmentation message: %v", got)
	}
	for n := 0; n < len(b); n++ {
		_ = parsePktinfo(b[:n]) // must not panic
	}
	if got := parsePktinfo(make([]byte, unix.SizeofCmsghdr)); got.IsValid() {
		t.Errorf("an empty header gave %v", got)
	}
}

// On a dual-stack socket an IPv4 datagram brings IPV6_PKTINFO (its
// v4-mapped destination, here a broadcast) before IP_PKTINFO (spec_dst,
// the interface's address): the latter is the source to answer from.
func TestPktinfoPrefersSpecDst(t *testing.T) {
	mapped := make([]byte, unix.CmsgSpace(unix.SizeofInet6Pktinfo))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&mapped[0]))
	h.Level, h.Type = unix.IPPROTO_IPV6, unix.IPV6_PKTINFO
	h.SetLen(unix.CmsgLen(unix.SizeofInet6Pktinfo))
	bc := netip.AddrFrom16(netip.MustParseAddr("::ffff:255.255.255.255").As16()).As16()
	copy(mapped[unix.CmsgLen(0):], bc[:])
	if got := parsePktinfo(mapped); got.IsValid() {
		t.Errorf("a broadcast destination alone gave Local %v", got)
	}
	both := pktinfoControl(append([]byte(nil), mapped...), netip.MustParseAddr("192.0.2.2"))
	if got := parsePktinfo(both); got != netip.MustParseAddr("192.0.2.2") {
		t.Errorf("got Local %v, want spec_dst 192.0.2.2", got)
	}
	if len(both) > oobSize {
		t.Errorf("the two messages take %d bytes, the read buffer has %d", len(both), oobSize)
	}
}

func TestSourceFor(t *testing.T) {
	for _, tc := range []struct{ from, to, want string }{
		{"127.0.0.2", "127.0.0.1", "127.0.0.2"},
		{"::ffff:127.0.0.2", "127.0.0.1", "127.0.0.2"},
		{"::1", "127.0.0.1", ""},
		{"127.0.0.2", "::1", ""},
		{"127.0.0.2", "::ffff:127.0.0.1", "127.0.0.2"},
		{"255.255.255.255", "127.0.0.1", ""},
		{"224.0.0.1", "127.0.0.1", ""},
		{"0.0.0.0", "127.0.0.1", ""},
		{"fe80::1%2", "fe80::2%2", "fe80::1%2"},
	} {
		got := sourceFor(netip.MustParseAddr(tc.from), netip.MustParseAddr(tc.to))
		want := netip.Addr{}
		if tc.want != "" {
			want = netip.MustParseAddr(tc.want)
		}
		if got != want {
			t.Errorf("sourceFor(%s, %s) = %v, want %v", tc.from, tc.to, got, want)
		}
	}
}

// Whatever control bytes a read brings, parsing them never panics and
// never gives a source that cannot be one. And the control message that
// sends from an address made of the same bytes (their first 4 as IPv4;
// their first 16 as IPv6, a link-local one zoned by the next 4 as an
// interface index) reads back as that address, or as none if it cannot
// be a source: the kernel's received form has the same layout.
func FuzzParsePktinfo(f *testing.F) {
	f.Add(pktinfoControl(nil, netip.MustParseAddr("127.0.0.2")))
	f.Add(pktinfoControl(nil, netip.MustParseAddr("fe80::1%3")))
	f.Add(append(gsoControl(1200), pktinfoControl(nil, netip.MustParseAddr("10.0.0.1"))...))
	f.Add([]byte{})
	f.Add(append(netip.MustParseAddr("fe80::1").AsSlice(), 0xff, 0xff, 0xff, 0xff))
	f.Add(netip.MustParseAddr("::ffff:192.0.2.1").AsSlice())
	f.Add(netip.MustParseAddr("2001:db8::1").AsSlice())
	f.Add([]byte{255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, oob []byte) {
		a := parsePktinfo(oob)
		if a.IsValid() && (a.IsMulticast() || a.IsUnspecified() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})) {
			t.Fatalf("Local %v from %x", a, oob)
		}
		var addrs []netip.Addr
		if len(oob) >= 4 {
			addrs = append(addrs, netip.AddrFrom4([4]byte(oob[:4])))
		}
		if len(oob) >= 16 {
			a6 := netip.AddrFrom16([16]byte(oob[:16]))
			if a6.IsLinkLocalUnicast() {
				var ifindex uint32
				if len(oob) >= 20 {
					ifindex = binary.NativeEndian.Uint32(oob[16:20])
				}
				a6 = a6.WithZone(strconv.FormatUint(uint64(ifindex), 10))
			}
			addrs = append(addrs, a6)
		}
		for _, src := range addrs {
			want := src.Unmap()
			if want.IsMulticast() || want.IsUnspecified() || want == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
				want = netip.Addr{}
			}
			ctl := pktinfoControl(nil, src)
			if got := parsePktinfo(ctl); got != want {
				t.Fatalf("sending from %v reads back as %v, want %v (% x)", src, got, want, ctl)
			}
			if len(ctl) > oobSize {
				t.Fatalf("sending from %v takes %d control bytes, a read has room for %d", src, len(ctl), oobSize)
			}
			// And behind another control message.
			if got := parsePktinfo(append(gsoControl(1200), ctl...)); got != want {
				t.Fatalf("after a segmentation message, %v reads back as %v, want %v", src, got, want)
			}
		}
	})
}
