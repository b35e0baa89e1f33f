package chat_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/chat"
)

// With the strangers' budget spent, a sequenced stranger is sent a
// cookie only if it is no larger than the stranger's datagram: the
// source is unproven, so the cookie must not amplify. Datagrams of every
// size from a bare header to past the cookie's size, each from another
// forged address.
func TestJoinLimitCookieNeverAmplifies(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{JoinRate: 1, JoinBurst: 1})
	b.raw = true
	b.dgram(0, addr(1), "hi\n") // the budget's one unit
	cookies := 0
	for n := 0; n < 80; n++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(n)}), 40000)
		d := hdr(uint64(1000+n), 1) + "hi" + strings.Repeat(" ", n)
		for to, ds := range b.dgram(0, from, d) {
			if to != from {
				t.Fatalf("a stranger's datagram drew sends to %v: %q", to, ds)
			}
			if len(ds) != 1 || len(ds[0]) > len(d) {
				t.Fatalf("a %d-byte datagram over the join limit drew %q", len(d), ds)
			}
			if !strings.Contains(ds[0], "^cookie ") {
				t.Fatalf("a stranger over the join limit was sent %q", ds[0])
			}
			cookies++
		}
	}
	// The small ones get nothing, the large ones their cookie.
	if st := srv.Stats(); cookies == 0 || cookies == 80 || st.Cookies != uint64(cookies) || st.RepliesTooBig == 0 {
		t.Errorf("%d cookies sent to 80 strangers; counters %+v", cookies, st)
	}
}

// A member not yet validated (its source may be forged) draws one
// datagram back per datagram at most, no larger than it: not one small
// notice per line of a many-line datagram, nor a notice larger than the
// datagram it answers.
func TestUnvalidatedMemberRepliesFitTheDatagram(t *testing.T) {
	for _, tc := range []struct{ name, d string }{
		{"ten wrong tokens", strings.Repeat("/ok a\n", 10)},
		{"a wrong token padded short of its notice", "/ok a" + strings.Repeat("\n", 12)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, srv := newServer(t, chat.ServerConfig{})
			g := addr(2)
			b.raw = true
			b.dgram(0, g, "hi\n") // joins, unvalidated
			got := b.dgram(time.Second, g, tc.d)
			if len(got[g]) > 1 || (len(got[g]) == 1 && len(got[g][0]) > len(tc.d)) {
				t.Fatalf("an unvalidated member's %d-byte datagram drew %d datagrams back: %q", len(tc.d), len(got[g]), got[g])
			}
			if st := srv.Stats(); st.BadTokens == 0 || st.Withheld == 0 {
				t.Errorf("counters %+v", st)
			}
		})
	}
}

// Reminders of the token draw on the strangers' budget: members joined
// from forged sources and kept alive by heartbeats (4 bytes that draw a
// reminder ten times larger) are reminded no faster than the budget
// allows.
func TestRemindersDrawOnTheStrangersBudget(t *testing.T) {
	const joined = 150
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second, JoinRate: 1, JoinBurst: 200})
	b.raw = true
	from := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 40000)
	}
	for i := range joined {
		b.dgram(0, from(i), "hi\n")
	}
	if srv.Len() != joined {
		t.Fatalf("%d members, want %d", srv.Len(), joined)
	}
	// Half an interval on, the budget holds 200-150 units and 5 more.
	reminders, in, out := 0, 0, 0
	for i := range joined {
		in += len("^hb^")
		for to, ds := range b.dgram(5*time.Second, from(i), "^hb^") {
			for _, d := range ds {
				if to != from(i) || !strings.Contains(d, "/ok ") {
					t.Fatalf("a forged member's heartbeat sent %q to %v", d, to)
				}
				reminders++
				out += len(d)
			}
		}
	}
	if reminders == 0 || reminders > 200-joined+5+1 {
		t.Errorf("%d heartbeats of unvalidated members drew %d reminders (%d bytes for %d), want at most the budget's %d",
			joined, reminders, out, in, 200-joined+5)
	}
	if st := srv.Stats(); st.RepliesLimited == 0 {
		t.Errorf("reminders over the budget are not counted: %+v", st)
	}
}
