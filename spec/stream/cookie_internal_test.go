package stream

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

func TestCookie(t *testing.T) {
	j := newCookieJar([]byte("key"), 10*time.Second)
	a := netip.MustParseAddrPort("192.0.2.1:5000")
	now := spec.SimEpoch.Add(1500 * time.Millisecond)
	c := j.cookie(now, a, 42)
	if len(c) != CookieSize {
		t.Fatalf("cookie is %d bytes", len(c))
	}
	tamper := append([]byte(nil), c...)
	tamper[10] ^= 1
	later := func(d time.Duration) spec.Time { return now.Add(d) }
	tests := []struct {
		name   string
		at     spec.Time
		addr   netip.AddrPort
		ssrc   uint32
		cookie []byte
		want   cookieVerdict
	}{
		{"good", now, a, 42, c, cookieOK},
		{"good 10s later", later(10 * time.Second), a, 42, c, cookieOK},
		{"expired", later(11 * time.Second), a, 42, c, cookieExpired},
		{"from the future", now.Add(-2 * time.Second), a, 42, c, cookieBad},
		{"other port", now, netip.MustParseAddrPort("192.0.2.1:5001"), 42, c, cookieBad},
		{"other address", now, netip.MustParseAddrPort("192.0.2.2:5000"), 42, c, cookieBad},
		{"other ssrc", now, a, 43, c, cookieBad},
		{"tampered", now, a, 42, tamper, cookieBad},
		{"short", now, a, 42, c[:19], cookieBad},
		{"other key", now, a, 42, newCookieJar([]byte("other"), time.Second).cookie(now, a, 42), cookieBad},
	}
	for _, tc := range tests {
		if got := j.check(tc.at, tc.addr, tc.ssrc, tc.cookie); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	if j.token(a, 42, now) == j.token(a, 43, now) || j.token(a, 42, now) == j.token(a, 42, now+1) {
		t.Error("tokens do not depend on SSRC and subscription time")
	}
}

// The RR cumulative-loss field saturates at 24 bits each way.
func TestClampLost(t *testing.T) {
	for _, tc := range []struct {
		in   int64
		want int32
	}{{0, 0}, {5, 5}, {-1, -1}, {0x7fffff, 0x7fffff}, {1 << 30, 0x7fffff}, {-0x800000, -0x800000}, {-1 << 40, -0x800000}} {
		if got := lost24(clampLost(tc.in)); got != tc.want {
			t.Errorf("clamp(%d) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
