package chat_test

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
	"github.com/netspec/netspec/spec/spectest"
)

// A flood of strangers (forged sources, say) joins at most JoinBurst at
// once and JoinRate per second after that; the rest get no reply at all,
// so the limit cannot itself be used to reflect.
func TestJoinsAreRateLimited(t *testing.T) {
	addr := netip.MustParseAddrPort("10.0.0.1:9999")
	s := chat.NewServer(chat.ServerConfig{Addr: addr, JoinRate: 10, JoinBurst: 5})
	now := spec.SimEpoch
	out := s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	sendsTo := func(out []spec.Output, to netip.AddrPort) int {
		n := 0
		for _, o := range out {
			if o.Kind == spec.OutSend && o.Addr == to {
				n++
			}
		}
		return n
	}
	joined := 0
	for i := 0; i < 100; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte(fmt.Sprintf("hello %d\n", i))}, out[:0])
		if sendsTo(out, from) > 0 {
			joined++
		}
	}
	if joined != 5 {
		t.Fatalf("%d of 100 simultaneous strangers were answered, want the burst of 5", joined)
	}
	// After a quiet second the burst is available again; strangers that
	// arrive at the sustained rate (one per 100 ms) all get in.
	now = now.Add(time.Second)
	joined = 0
	for i := 100; i < 130; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("hi\n")}, out[:0])
		if sendsTo(out, from) > 0 {
			joined++
		}
	}
	if joined != 5 {
		t.Fatalf("%d strangers joined after a quiet second, want the burst of 5", joined)
	}
	for i := 130; i < 150; i++ {
		now = now.Add(100 * time.Millisecond)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("hi\n")}, out[:0])
		if sendsTo(out, from) == 0 {
			t.Fatalf("stranger %d, arriving at the sustained rate, was refused", i)
		}
	}
	var limited uint64
	for _, c := range s.Counters() {
		if c.Name == "joins_limited" {
			limited = c.Value
		}
	}
	if limited == 0 {
		t.Fatal("refused joins are not counted")
	}
}

// A flood of forged joins exhausts the join limit, which then turns
// away every stranger; but a sequenced client is answered with a
// stateless cookie no larger than its datagram, and comes back with it
// past the limit (forged sources never receive one): it joins, keeps
// its nick, and hears the chat, while an nc user arriving in the flood
// is still dropped. Measured before the cookie on loopback: 300 one-byte
// datagrams a second kept every new client out.
func TestClientJoinsThroughAFlood(t *testing.T) {
	srv, s := newServer(t, chat.ServerConfig{JoinRate: 20, JoinBurst: 50})
	flood := func(now time.Duration, n int) {
		for i := range n {
			from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(1024+now/time.Millisecond)+uint16(i))
			srv.dgram(now, from, "x\n")
		}
	}
	flood(0, 60)   // the burst of 50, and more
	srv.raw = true // the client answers its welcome itself
	cli, c, out := newClient(t, chat.ClientConfig{Nick: "legit", Interval: 10 * time.Second})
	// A small event loop: datagrams between the two, flooding before
	// each one the server gets so the limit never has room, and the
	// machines' timers when nothing is in flight.
	type timer struct {
		m  *bench
		id spec.Timer
	}
	timers := map[timer]spec.Time{}
	var inflight []spec.Output // sends, each from the other machine
	collect := func(m *bench, out []spec.Output) {
		for _, o := range out {
			switch o.Kind {
			case spec.OutSend:
				inflight = append(inflight, o)
			case spec.OutSetTimer:
				timers[timer{m, o.Timer}] = o.At
			case spec.OutCancelTimer:
				delete(timers, timer{m, o.Timer})
			}
		}
	}
	collect(cli, out)
	now, joined, biggest := time.Millisecond, false, 0
	for steps := 0; c.Nick() != "legit" || !joined; steps++ {
		if steps > 200 || now > time.Second {
			t.Fatalf("after %v the client is %q (joined %v)", now, c.Nick(), joined)
		}
		if len(inflight) > 0 {
			o := inflight[0]
			inflight = inflight[1:]
			if o.Addr == srvAddr {
				flood(now, 5)
				collect(srv, srv.step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: local, Data: o.Data}))
			} else if o.Addr == local {
				if c.Stats().Cookies == 0 {
					biggest = max(biggest, len(o.Data)) // an answer to an unproven stranger
				}
				got := cli.fromServer(now, string(o.Data))
				joined = joined || len(events(got, "joined")) > 0
				collect(cli, got)
			}
			continue
		}
		var next timer
		var when spec.Time
		for k, at := range timers {
			if when == 0 || at < when {
				next, when = k, at
			}
		}
		if when == 0 {
			t.Fatal("nothing left to happen")
		}
		delete(timers, next)
		now = max(now, time.Duration(when-at(0)))
		collect(next.m, next.m.step(now, spec.Input{Kind: spec.InTimer, Timer: next.id}))
	}
	if biggest > chat.StrangerPad {
		t.Fatalf("a %d-byte answer to a stranger that sends %d-byte datagrams", biggest, chat.StrangerPad)
	}
	counter := func(name string) uint64 { return spectest.Counter(t, s, name) }
	if counter("cookies") == 0 || counter("cookie_joins") != 1 || c.Stats().Cookies == 0 {
		t.Fatalf("cookies %d, cookie joins %d, client cookies %d: the client did not come in by a cookie", counter("cookies"), counter("cookie_joins"), c.Stats().Cookies)
	}
	// Plain strangers in the flood still get nothing: no cookie for nc.
	flood(now, 60)
	if got := srv.dgram(now, netipMust("10.0.9.9:5000"), strings.Repeat("let me in ", 20)+"\n"); len(got) != 0 {
		t.Fatalf("a plain stranger over the limit was answered: %q", got)
	}
	// A forged cookie (a source that never got one) is no way in.
	before := counter("joins")
	forged := chat.AppendHeader(nil, chat.Header{Session: 99})
	forged = append(forged, "^cookie 0123456789abcdef^\n^hb^\n"+strings.Repeat(" ", 80)...)
	srv.dgram(now, netipMust("10.0.9.10:5000"), string(forged))
	if counter("joins") != before || counter("bad_cookies") != 1 {
		t.Fatalf("a forged cookie: joins %d -> %d, bad cookies %d", before, counter("joins"), counter("bad_cookies"))
	}
}
