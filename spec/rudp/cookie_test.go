package rudp_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/netspec/netspec/spec/spectest"
)

// cookieBench plays clients to one listening endpoint by hand: it sends
// SYNs, keeps the SYN-ACKs, and echoes their cookies when told, as a
// client's segment 0 does.
type cookieBench struct {
	t   *testing.T
	e   *rudp.Endpoint
	now spec.Time
}

func newCookieBench(t *testing.T, cfg rudp.Config) *cookieBench {
	return &cookieBench{t: t, e: rudp.NewEndpoint(cfg, sock, timerBase, true), now: spec.SimEpoch}
}

// handle delivers b from from and ends the step as a machine does; it
// returns the datagrams sent and whether a session was accepted.
func (b *cookieBench) handle(from netip.AddrPort, data []byte) (sent []rudp.Packet, raw [][]byte, accepted bool) {
	b.t.Helper()
	out, _ := b.e.Handle(b.now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: from, Data: data}, nil)
	for ev, ok := b.e.Next(); ok; ev, ok = b.e.Next() {
		accepted = accepted || ev.Kind == rudp.Accepted
	}
	for _, o := range b.e.Flush(b.now, out) {
		if o.Kind != spec.OutSend {
			continue
		}
		var p rudp.Packet
		if err := rudp.Decode(o.Data, &p); err != nil {
			b.t.Fatalf("the endpoint sent a datagram it cannot decode: %v", err)
		}
		sent, raw = append(sent, p), append(raw, o.Data)
	}
	return sent, raw, accepted
}

// syn sends a SYN from from with client id src and returns the SYN it
// sent and the SYN-ACK that answered it.
func (b *cookieBench) syn(from netip.AddrPort, src uint32) (syn, ack rudp.Packet) {
	b.t.Helper()
	syn = rudp.Packet{Type: rudp.TypeSYN, Src: src, MSS: 1452, Wnd: 64}
	sent, _, _ := b.handle(from, syn.Append(nil))
	if len(sent) != 1 || sent[0].Type != rudp.TypeSYNACK || sent[0].Dst != src {
		b.t.Fatalf("a SYN drew %+v, want one SYN-ACK", sent)
	}
	return syn, sent[0]
}

// echo0 is the segment 0 that echoes ack's cookie, which answered syn.
func echo0(syn, ack rudp.Packet) *rudp.Packet {
	return &rudp.Packet{Type: rudp.TypeSEG, Dst: ack.Src, Flags: rudp.FlagDATA | rudp.FlagCOOKIE, Wnd: syn.Wnd, Payload: []byte("hi"),
		Cookie: rudp.Cookie{TS: ack.TS, Src: syn.Src, MSS: syn.MSS, Wnd: syn.Wnd, MAC: ack.MAC}}
}

func (b *cookieBench) counter(name string) uint64 { return spectest.Counter(b.t, b.e, name) }

// A fresh cookie echo whose MAC differs from the server's in any one
// bit is dropped, without an answer, a session, or a trace but the
// counter, even though everything else (the session id, which is the
// MAC's first 4 bytes, the client's id, mss, window and timestamp) is
// what the server sent: the MAC alone is checked. The same echo with
// the MAC untouched opens the session, so the rest of it is right.
func TestCookieMACChecked(t *testing.T) {
	from := netip.MustParseAddrPort("10.9.9.9:1000")
	for i := 0; i < rudp.MACLen; i++ {
		for _, bit := range []byte{0x01, 0x80} {
			b := newCookieBench(t, rudp.Config{Seed: 3})
			syn, ack := b.syn(from, 7)
			forged := echo0(syn, ack)
			forged.Cookie.MAC[i] ^= bit
			sent, _, accepted := b.handle(from, forged.Append(nil))
			if accepted || b.e.Sessions() != 0 || len(sent) != 0 {
				t.Fatalf("MAC byte %d ^ %#x: accepted %v, %d sessions, answered %+v; want a silent drop", i, bit, accepted, b.e.Sessions(), sent)
			}
			if n := b.counter("rudp_cookies_bad"); n != 1 {
				t.Fatalf("MAC byte %d ^ %#x: rudp_cookies_bad = %d, want 1", i, bit, n)
			}
			if n := b.counter("rudp_cookies_stale"); n != 0 {
				t.Fatalf("MAC byte %d ^ %#x: rudp_cookies_stale = %d, want 0", i, bit, n)
			}
			if _, _, accepted := b.handle(from, echo0(syn, ack).Append(nil)); !accepted || b.e.Sessions() != 1 {
				t.Fatalf("the true cookie after the forged one: accepted %v, %d sessions; want the session open", accepted, b.e.Sessions())
			}
		}
	}
}

// A cookie echoed CookieLifetime after its SYN-ACK still opens the
// session; one echoed a millisecond later is stale: it is answered with
// an 8-byte RST "stale cookie" to the client's id, counted, and opens
// nothing, however valid its MAC. A forged MAC as old draws the same RST
// (the age is checked first).
func TestCookieLifetime(t *testing.T) {
	for _, lifetime := range []time.Duration{0, 5 * time.Second} { // 0: the default, 60s
		b := newCookieBench(t, rudp.Config{Seed: 3, CookieLifetime: lifetime})
		lifetime = b.e.Config().CookieLifetime
		old, edge, forgedOld := netip.MustParseAddrPort("10.9.9.9:1000"), netip.MustParseAddrPort("10.9.9.9:1001"), netip.MustParseAddrPort("10.9.9.9:1002")
		oldSyn, oldAck := b.syn(old, 11)
		forgedSyn, forgedAck := b.syn(forgedOld, 13)
		b.now = b.now.Add(time.Millisecond)
		edgeSyn, edgeAck := b.syn(edge, 12)
		// The cookies of old and forgedOld are now lifetime + 1ms old,
		// edge's exactly lifetime.
		b.now = b.now.Add(lifetime)

		for _, tc := range []struct {
			name string
			from netip.AddrPort
			p    *rudp.Packet
		}{
			{"stale", old, echo0(oldSyn, oldAck)},
			{"stale and forged", forgedOld, func() *rudp.Packet {
				p := echo0(forgedSyn, forgedAck)
				p.Cookie.MAC[0] ^= 1
				return p
			}()},
		} {
			stale := b.counter("rudp_cookies_stale")
			sent, raw, accepted := b.handle(tc.from, tc.p.Append(nil))
			if accepted || b.e.Sessions() != 0 {
				t.Fatalf("lifetime %v, %s: a cookie %v old opened a session", lifetime, tc.name, lifetime+time.Millisecond)
			}
			if len(sent) != 1 || len(raw[0]) != rudp.RstLen || sent[0].Type != rudp.TypeRST || sent[0].Reason != rudp.ReasonCookie || sent[0].Dst != tc.p.Cookie.Src {
				t.Fatalf("lifetime %v, %s: answered %+v, want one 8-byte RST (stale cookie) to session %d", lifetime, tc.name, sent, tc.p.Cookie.Src)
			}
			if n := b.counter("rudp_cookies_stale"); n != stale+1 {
				t.Fatalf("lifetime %v, %s: rudp_cookies_stale %d -> %d, want one more", lifetime, tc.name, stale, n)
			}
		}
		if n := b.counter("rudp_cookies_bad"); n != 0 {
			t.Fatalf("lifetime %v: rudp_cookies_bad = %d, want 0 (stale echoes are not MAC failures)", lifetime, n)
		}
		if _, _, accepted := b.handle(edge, echo0(edgeSyn, edgeAck).Append(nil)); !accepted || b.e.Sessions() != 1 {
			t.Fatalf("lifetime %v: a cookie exactly %v old: accepted %v, %d sessions; want the session open", lifetime, lifetime, accepted, b.e.Sessions())
		}
	}
}

// The session limits hold when the cookies are echoed, not only when
// the SYNs come: SYNs take no state, so a client that collects SYN-ACKs
// while there is room (from many ports of one address, or from many
// addresses) and echoes them all later opens no more sessions than
// MaxPerAddr from one address and MaxSessions in all. Each echo beyond
// them is answered with a busy RST, no larger than the echo.
func TestLimitsHoldAtTheCookieEcho(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      rudp.Config
		from     func(i int) netip.AddrPort
		sessions int
	}{
		{"per address", rudp.Config{Seed: 3, MaxSessions: 10, MaxPerAddr: 2},
			func(i int) netip.AddrPort { return netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), uint16(1000+i)) }, 2},
		{"in all", rudp.Config{Seed: 3, MaxSessions: 2, MaxPerAddr: 10},
			func(i int) netip.AddrPort {
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 9, 9, byte(i)}), 1000)
			}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newCookieBench(t, tc.cfg)
			const n = 4
			var syns, acks [n]rudp.Packet
			for i := range n {
				syns[i], acks[i] = b.syn(tc.from(i), uint32(100+i))
			}
			opened := 0
			for i := range n {
				echo := echo0(syns[i], acks[i]).Append(nil)
				sent, raw, accepted := b.handle(tc.from(i), echo)
				if accepted {
					opened++
					continue
				}
				if len(sent) != 1 || sent[0].Type != rudp.TypeRST || sent[0].Reason != rudp.ReasonBusy || len(raw[0]) > len(echo) {
					t.Fatalf("echo %d past the limit drew %+v, want a busy RST", i, sent)
				}
			}
			if opened != tc.sessions || b.e.Sessions() != tc.sessions {
				t.Fatalf("%d cookies echoed: %d sessions opened (%d held), want %d", n, opened, b.e.Sessions(), tc.sessions)
			}
			if got := b.counter("rudp_syns_refused"); got != n-uint64(tc.sessions) {
				t.Errorf("rudp_syns_refused = %d, want %d", got, n-tc.sessions)
			}
		})
	}
}
