package chat_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// A stranger's source is not validated, so whatever strangers send, the
// server sends none of them more bytes than it received from it, and
// answers them within the strangers' budget (JoinBurst at once): a full
// chat is no reflector, and neither is a quit from a non-member or one
// that meets a closed session.
func TestStrangersDrawNoMoreThanTheySend(t *testing.T) {
	long := strings.Repeat(" ", 80) // room for any answer
	closedAt := netipMust("10.0.2.1:5000")
	// The budget is a burst of 50 at once; the member took one.
	const budget = 50 - 1
	for _, tc := range []struct {
		name string
		data func(i int) string
		// closed sends every datagram from closedAt, where session 77
		// has quit; otherwise each comes from another address.
		closed bool
		// answered is how many of the 1,000 strangers get an answer.
		answered int
	}{
		{"one byte to a full chat", func(int) string { return "x" }, false, 0},
		{"a typed line to a full chat", func(int) string { return "let me in, please\n" }, false, budget},
		{"plain quit", func(int) string { return "quit\n" }, false, 0},
		{"sequenced quit", func(i int) string { return hdr(uint64(1000+i), 1) + "quit" }, false, 0},
		{"padded sequenced quit", func(i int) string { return hdr(uint64(1000+i), 1) + "quit\n" + long }, false, budget},
		{"quit of a closed session", func(int) string { return hdr(77, 2) + "quit" }, true, 0},
		{"padded quit of a closed session", func(int) string { return hdr(77, 2) + "quit\n" + long }, true, budget},
		{"a server's notice", func(int) string { return "*** chat is full (1 members); try again later\n" + long }, false, 0},
		{"a server's header", func(int) string { return shdr(77, 5, 1) + "[bob] hi\n" + long }, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, srv := newServer(t, chat.ServerConfig{MaxMembers: 1, JoinRate: 20, JoinBurst: 50})
			b.dgram(0, addr(1), "hello")
			b.dgram(0, closedAt, hdr(77, 1)+"quit") // closes session 77 there
			in, out, answered := 0, 0, 0
			for i := 0; i < 1000; i++ {
				from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, byte(i >> 8), byte(i)}), 40000)
				if tc.closed {
					from = closedAt
				}
				d := tc.data(i)
				got := b.dgram(0, from, d)
				for to, ds := range got {
					if to != from {
						t.Fatalf("a stranger's datagram drew sends to %v: %q", to, ds)
					}
					if len(ds) > 1 || len(ds[0]) > len(d) {
						t.Fatalf("a %d-byte datagram %q drew %q", len(d), d, ds)
					}
					answered++
					out += len(ds[0])
				}
				in += len(d)
			}
			if answered != tc.answered || out > in {
				t.Errorf("1,000 strangers: %d answered (want %d), %d bytes in, %d out", answered, tc.answered, in, out)
			}
			if srv.Len() != 1 {
				t.Errorf("%d members", srv.Len())
			}
		})
	}
}

// Two chat servers, each with a member that keeps heartbeating, and one
// datagram forged in one server's name to the other: the servers must not
// go on talking to each other. (A full server used to answer "chat is
// full" to every stranger, so the two answered each other for ever.)
func TestServersDoNotTalkForEver(t *testing.T) {
	for _, full := range []bool{true, false} {
		t.Run(fmt.Sprintf("full=%v", full), func(t *testing.T) {
			a := netip.MustParseAddrPort("10.0.0.1:9000")
			b := netip.MustParseAddrPort("10.0.0.2:9000")
			between := 0
			var last spec.Time
			s := sim.New(sim.Config{Seed: 1, Link: sim.Symmetric(sim.Dir{Delay: time.Millisecond}), OnNet: func(ev sim.NetEvent) {
				if ev.Kind == sim.NetSend && (ev.From == a && ev.To == b || ev.From == b && ev.To == a) {
					between++
					last = ev.T
				}
			}})
			for _, ap := range []netip.AddrPort{a, b} {
				cfg := chat.ServerConfig{Addr: ap}
				if full {
					cfg.MaxMembers = 1
				}
				s.MustAddNode(sim.NodeSpec{Name: ap.Addr().String(), Addr: ap.Addr(), Protocol: "chat", Role: "server", Config: cfg,
					New: func() spec.Machine { return chat.NewServer(cfg) }})
			}
			for at := time.Millisecond; at < 60*time.Second; at += 3 * time.Second {
				s.Inject(at, netip.MustParseAddrPort("10.0.0.1:40000"), a, []byte("^hb^"))
				s.Inject(at, netip.MustParseAddrPort("10.0.0.2:40000"), b, []byte("^hb^"))
			}
			s.Inject(10*time.Millisecond, a, b, []byte("hi there, anyone home?\n"))
			s.Run(60 * time.Second)
			if between > 0 && last.Sub(spec.SimEpoch) > 5*time.Second {
				t.Errorf("%d datagrams between the servers; the last at %v", between, last.Sub(spec.SimEpoch))
			}
		})
	}
}

// A hold-timer step at the instant a member expires sends it nothing:
// expiry comes first whichever timer the runner fires first.
func TestHoldStepSendsNothingToExpired(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{Interval: 10 * time.Second, Hold: 100 * time.Millisecond})
	a, bob, c := addr(1), addr(2), addr(3)
	const sess = 7
	b.dgram(0, c, "hello from c")
	b.dgram(50*time.Millisecond, bob, "hello from bob")
	b.dgram(60*time.Millisecond, a, hdr(sess, 1)+"/nick alice")
	b.dgram(5*time.Second, c, "^hb^")
	b.dgram(9*time.Second, a, hdr(sess, 0)+"^hb^")
	// alice's datagram 3 comes without 2: it waits Hold, until 10.05 s,
	// the instant bob (heard at 0.05 s) expires.
	b.dgram(9950*time.Millisecond, a, hdr(sess, 3)+"late message")
	b.step(10*time.Second, spec.Input{Kind: spec.InTimer, Timer: 1}) // c's deadline: re-armed for bob's
	out := b.step(10050*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 2})
	if got := sends(out)[bob]; len(got) > 0 {
		t.Errorf("at 10.05 s (bob heard at 0.05 s, Interval 10 s) the hold step sent bob %q", got)
	}
	if ev := events(out, "leave"); len(ev) != 1 || ev[0].Value.(chat.MemberEvent).Addr != bob {
		t.Errorf("bob's expiry was not in the hold step: %v", ev)
	}
	if got := sends(out)[c]; strings.Join(got, "") != "*** guest2 timed out\n[alice] late message\n" {
		t.Errorf("c got %q", got)
	}
}

// Members are kept in join order, and broadcasts go out in it, also after
// members in the middle leave or expire.
func TestBroadcastsGoInJoinOrder(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{Interval: 10 * time.Second})
	for i := 1; i <= 6; i++ {
		b.dgram(time.Duration(i)*time.Millisecond, addr(i), "hi")
	}
	b.dgram(time.Second, addr(2), "quit")
	// 3 and 5 keep talking; 1, 4 and 6 expire together at 10.006 s.
	b.dgram(5*time.Second, addr(3), "^hb^")
	b.dgram(5*time.Second, addr(5), "^hb^")
	b.dgram(5*time.Second, addr(1), "^hb^")
	b.step(10006*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 1})
	b.dgram(10007*time.Millisecond, addr(7), "hi")
	out := b.step(10008*time.Millisecond, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: addr(5), Data: []byte("order?")})
	var order []netip.AddrPort
	for _, o := range out {
		if o.Kind == spec.OutSend {
			order = append(order, o.Addr)
		}
	}
	want := []netip.AddrPort{addr(1), addr(3), addr(5), addr(7)}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("broadcast went to %v, want join order %v", order, want)
	}
}

// Any datagram from a member refreshes it, even one over MaxDatagram,
// which is refused with a notice: the member is evidently there.
func TestOversizedDatagramRefreshes(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second, MaxDatagram: 100})
	a := addr(1)
	b.dgram(0, a, "hi")
	got := b.dgram(9*time.Second, a, strings.Repeat("x", 101))
	if len(got[a]) != 1 || !strings.Contains(got[a][0], "over the limit") {
		t.Fatalf("oversized datagram drew %q", got)
	}
	if ms := srv.Members(); len(ms) != 1 || ms[0].Heard != at(9*time.Second) {
		t.Fatalf("members %+v, want a heard at 9 s", ms)
	}
}
