package impl

import (
	"net/netip"
	"testing"

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
