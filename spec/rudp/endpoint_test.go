package rudp_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
	"pgregory.net/rapid"
)

// spoofWorld is what TestSpoofedOpensCostNothing observes of one run.
type spoofWorld struct {
	sent        map[netip.AddrPort]int // bytes injected from each forged source
	answered    map[netip.AddrPort]int // bytes the server sent to it
	forged      map[netip.AddrPort]bool
	srv         *sim.Node
	maxSessions int
}

func newSpoofWorld() *spoofWorld {
	return &spoofWorld{sent: map[netip.AddrPort]int{}, answered: map[netip.AddrPort]int{}, forged: map[netip.AddrPort]bool{}}
}

// observe points cfg's observers at w.
func (w *spoofWorld) observe(cfg *sim.Config) {
	cfg.OnNet = func(ev sim.NetEvent) {
		if ev.Kind == sim.NetSend && ev.From.Addr() == serverAddr.Addr() && w.forged[ev.To] {
			w.answered[ev.To] += len(ev.Data)
		}
		if w.srv != nil {
			if m, ok := w.srv.Machine().(*sink); ok {
				w.maxSessions = max(w.maxSessions, m.ep.Sessions())
			}
		}
	}
}

// forge records a datagram injected from a forged source.
func (w *spoofWorld) forge(from netip.AddrPort, b []byte) {
	w.forged[from] = true
	w.sent[from] += len(b)
}

// judge runs s and judges the run as TestSpoofedOpensCostNothing does,
// for the property and for the runs kept under testdata/regressions.
func (w *spoofWorld) judge(t fataler, s *sim.Sim) {
	s.Run(time.Minute)
	for from, got := range w.answered {
		if got > w.sent[from] {
			t.Fatalf("server sent %d bytes to forged %v, which sent %d", got, from, w.sent[from])
		}
	}
	if w.maxSessions > 1 {
		t.Fatalf("forged opens created sessions: at most %d at once, only one client is real", w.maxSessions)
	}
	if ok, err := s.Node("client").Exited(); !ok || err != "" {
		t.Fatalf("the real client did not finish cleanly among the forgeries: exited=%v %q", ok, err)
	}
}

// Spoofed opens (SYNs and cookie echoes from forged addresses, injected
// at the network's core) allocate nothing, and the server sends no more
// bytes to a forged address than it was sent from it, while a real
// client next to them is served.
func TestSpoofedOpensCostNothing(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		w := newSpoofWorld()
		cfg := sim.Config{
			Seed:     rapid.Uint64().Draw(t, "seed"),
			Link:     sim.Symmetric(sim.Dir{Rate: 100e6, Delay: time.Millisecond}),
			Protocol: machines.Name,
		}
		w.observe(&cfg)
		s := net.New(cfg)
		sk := sinkConfig{Addr: serverAddr, Session: rudp.Config{Seed: 1, MaxSessions: 4}}
		w.srv = s.MustAddNode(sim.NodeSpec{Name: "server", Addr: serverAddr.Addr(), Protocol: machines.Name, Role: "sink", Config: sk, New: func() spec.Machine {
			return newSink(sk.Addr, sk.Session)
		}})
		src := sourceConfig{Server: serverAddr, Payload: payload(9, 50_000), Session: rudp.Config{Seed: 2}}
		s.MustAddNode(sim.NodeSpec{Name: "client", Protocol: machines.Name, Role: "source", Config: src,
			New: func() spec.Machine { return newSource(src.Server, src.Payload, src.Session) }})
		n := rapid.IntRange(1, 300).Draw(t, "forgeries")
		for i := 0; i < n; i++ {
			from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(rapid.IntRange(1, 254).Draw(t, "host"))}), uint16(rapid.IntRange(1, 65535).Draw(t, "port")))
			var b []byte
			switch rapid.IntRange(0, 3).Draw(t, "kind") {
			case 0: // a well-formed SYN
				b = (&rudp.Packet{Type: rudp.TypeSYN, Src: rapid.Uint32Range(1, 1<<32-1).Draw(t, "src"), MSS: 1452, Wnd: 64}).Append(nil)
			case 1: // a cookie echo with a guessed MAC
				p := rudp.Packet{Type: rudp.TypeSEG, Dst: rapid.Uint32().Draw(t, "dst"), Flags: rudp.FlagDATA | rudp.FlagCOOKIE,
					Cookie: rudp.Cookie{TS: uint32(uint64(spec.SimEpoch) / 1e6 % (1 << 32)), Src: 7, MSS: 1452, Wnd: 64}}
				binary.BigEndian.PutUint64(p.Cookie.MAC[:], rapid.Uint64().Draw(t, "mac"))
				b = p.Append(nil)
			case 2: // a segment for a guessed session that claims to have heard from us
				b = (&rudp.Packet{Type: rudp.TypeSEG, Dst: rapid.Uint32().Draw(t, "dst"), Ack: 5, Flags: rudp.FlagPING}).Append(nil)
			default: // garbage
				b = rapid.SliceOfN(rapid.Byte(), 0, 200).Draw(t, "garbage")
			}
			w.forge(from, b)
			s.Inject(time.Duration(i)*time.Millisecond, from, serverAddr, b)
		}
		w.judge(t, s)
	}, nil)
}

// Opens that a session limit refuses get a busy RST and, at most once a
// second, a warning that names the limit and counts the refusals since
// the last (they were counted but never logged).
func TestBusyRefusalsLogged(t *testing.T) {
	e := rudp.NewEndpoint(rudp.Config{Seed: 3, MaxSessions: 1}, 1, 1<<32, true)
	now := spec.SimEpoch
	handle := func(from netip.AddrPort, b []byte) []spec.Output {
		out, _ := e.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: b}, nil)
		for _, ok := e.Next(); ok; _, ok = e.Next() {
		}
		return e.Flush(now, out)
	}
	syn := rudp.Packet{Type: rudp.TypeSYN, Src: 7, MSS: 1452, Wnd: 64}
	a := netip.MustParseAddrPort("10.9.9.9:1000")
	var ack rudp.Packet
	for _, o := range handle(a, syn.Append(nil)) {
		if o.Kind == spec.OutSend && rudp.Decode(o.Data, &ack) == nil && ack.Type == rudp.TypeSYNACK {
			break
		}
	}
	handle(a, (&rudp.Packet{Type: rudp.TypeSEG, Dst: ack.Src, Flags: rudp.FlagDATA | rudp.FlagCOOKIE, Payload: []byte("x"),
		Cookie: rudp.Cookie{TS: ack.TS, Src: syn.Src, MSS: syn.MSS, Wnd: syn.Wnd, MAC: ack.MAC}}).Append(nil))
	if e.Sessions() != 1 {
		t.Fatalf("%d sessions after the handshake, want 1", e.Sessions())
	}
	var warns []spec.Output
	for i := range 5 {
		if i == 4 {
			now = now.Add(time.Second)
		}
		from := netip.AddrPortFrom(a.Addr(), uint16(2000+i))
		for _, o := range handle(from, syn.Append(nil)) {
			var p rudp.Packet
			switch {
			case o.Kind == spec.OutLog && o.Log.Level >= slog.LevelWarn:
				warns = append(warns, o)
			case o.Kind == spec.OutSend && (rudp.Decode(o.Data, &p) != nil || p.Type != rudp.TypeRST || p.Reason != rudp.ReasonBusy):
				t.Fatalf("a refused open drew %+v, want a busy RST", p)
			}
		}
	}
	if len(warns) != 2 || !strings.Contains(warns[0].Log.Msg, "session limit") || !strings.Contains(fmt.Sprint(warns[1].Log.Attrs), "refused=4") {
		t.Fatalf("warnings %+v; want the first refusal's and, a second later, one counting 4", warns)
	}
}

// FuzzEndpoint: bytes from anywhere never panic a listening endpoint and
// never make it hold more sessions than its limit. And as doc.go says of
// the handshake ("nothing the server answers is larger than what it was
// sent": a SYN-ACK or RST to a SYN, a RST to a segment), a source that
// has not opened a session is never answered more bytes than the
// datagram that drew the answer held, so in all it is never sent more
// than it sent.
//
// The bytes are datagrams split at 0xff 0xff, from source A, or from
// source B (same host, next port) if the datagram starts 0xfd. One that
// then starts 0xfe is sent as segment 0 echoing the cookie of the last
// SYN-ACK its source was sent, with the rest as payload, so the fuzzer
// can open sessions; one that starts 0xfc instead waits the next byte
// times 100 ms, firing the endpoint's timers.
func FuzzEndpoint(f *testing.F) {
	syn := (&rudp.Packet{Type: rudp.TypeSYN, Src: 0x1234, MSS: 1452, Wnd: 64}).Append(nil)
	sep := []byte{0xff, 0xff}
	join := func(parts ...[]byte) []byte { return bytes.Join(parts, sep) }
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 5, 0xac, 0, 0, 0, 0, 0, 64}, uint16(1000))
	f.Add((&rudp.Packet{Type: rudp.TypeSEG, Dst: 1, Ack: 3, Flags: rudp.FlagDATA | rudp.FlagFIN, NSACK: 1, SACK: [8]rudp.Block{{1, 9}}}).Append(nil), uint16(2))
	f.Add(join(syn, []byte("\xfehello"), []byte{0xfc, 20}, []byte("\xfd"+string(syn)), []byte("\xfd\xfe")), uint16(7000))
	f.Add(join(syn, []byte("\xfd"+string(syn)), syn, []byte("\xfe"), []byte("\xfd\xfe"), []byte("\xfe")), uint16(7000))
	f.Add(join((&rudp.Packet{Type: rudp.TypeSEG, Dst: 9, Ack: 1, Flags: rudp.FlagPING}).Append(nil), syn[:63]), uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, port uint16) {
		e := rudp.NewEndpoint(rudp.Config{Seed: 3, MaxSessions: 2}, 1, 1<<32, true)
		now := spec.SimEpoch
		srcs := [2]netip.AddrPort{
			netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), port),
			netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), port+1),
		}
		var (
			recv, sent [2]int          // bytes from and to each source
			opened     [2]bool         // the source has opened a session
			lastSYN    [2]rudp.Packet  // the last SYN each source sent
			lastAck    [2]*rudp.Packet // the SYN-ACK that answered it
			timers     = map[spec.Timer]spec.Time{}
		)
		// step ends a step: takes the events, sends, and checks what went
		// to each source against what drew it (drew[i] bytes from i).
		step := func(out []spec.Output, drew [2]int) {
			for ev, ok := e.Next(); ok; ev, ok = e.Next() {
				if ev.Kind == rudp.Accepted {
					for i, s := range srcs {
						if ev.Peer == s {
							opened[i] = true
						}
					}
				}
			}
			out = e.Flush(now, out)
			var answer [2]int
			for _, o := range out {
				switch o.Kind {
				case spec.OutSetTimer:
					timers[o.Timer] = o.At
				case spec.OutCancelTimer:
					delete(timers, o.Timer)
				case spec.OutSend:
					for i, s := range srcs {
						if o.Addr != s {
							continue
						}
						answer[i] += len(o.Data)
						var p rudp.Packet
						if rudp.Decode(o.Data, &p) == nil && p.Type == rudp.TypeSYNACK && p.Dst == lastSYN[i].Src {
							lastAck[i] = &p
						}
					}
				}
			}
			for i := range srcs {
				sent[i] += answer[i]
				if opened[i] {
					continue
				}
				if answer[i] > drew[i] {
					t.Fatalf("source %v, which has opened no session, was answered %d bytes to a datagram of %d", srcs[i], answer[i], drew[i])
				}
				if sent[i] > recv[i] {
					t.Fatalf("source %v, which has opened no session, was sent %d bytes in all and sent %d", srcs[i], sent[i], recv[i])
				}
			}
			if e.Sessions() > 2 {
				t.Fatalf("%d sessions, limit 2", e.Sessions())
			}
		}
		// wait fires every timer due by until, in deadline order.
		wait := func(until spec.Time) {
			for fired := 0; ; fired++ {
				if fired > 10000 {
					t.Fatalf("more than %d timers fired before %v", fired, until)
				}
				var next spec.Timer
				at := until + 1
				for tm, a := range timers {
					if a < at || a == at && tm < next {
						next, at = tm, a
					}
				}
				if at > until {
					break
				}
				delete(timers, next)
				now = max(now, at)
				out, _ := e.Handle(now, spec.Input{Kind: spec.InTimer, Timer: next}, nil)
				step(out, [2]int{})
			}
			now = until
		}
		for len(data) > 0 {
			n := len(data)
			if i := bytes.Index(data, sep); i >= 0 {
				n = i
			}
			d := data[:n]
			data = data[min(n+2, len(data)):]
			src := 0
			if len(d) > 0 && d[0] == 0xfd {
				src, d = 1, d[1:]
			}
			switch {
			case len(d) > 0 && d[0] == 0xfc:
				ms := 0
				if len(d) > 1 {
					ms = int(d[1]) * 100
				}
				wait(now.Add(time.Duration(ms) * time.Millisecond))
				continue
			case len(d) > 0 && d[0] == 0xfe:
				if lastAck[src] == nil {
					continue
				}
				a, s := lastAck[src], lastSYN[src]
				d = (&rudp.Packet{Type: rudp.TypeSEG, Dst: a.Src, Flags: rudp.FlagDATA | rudp.FlagCOOKIE, Payload: d[1:],
					Cookie: rudp.Cookie{TS: a.TS, Src: s.Src, MSS: s.MSS, Wnd: s.Wnd, MAC: a.MAC}}).Append(nil)
			}
			var p rudp.Packet
			if rudp.Decode(d, &p) == nil && p.Type == rudp.TypeSYN {
				lastSYN[src], lastAck[src] = p, nil
			}
			recv[src] += len(d)
			var drew [2]int
			drew[src] = len(d)
			out, _ := e.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: srcs[src], Data: d}, nil)
			step(out, drew)
			wait(now.Add(10 * time.Millisecond))
		}
	})
}

// A session the server has dropped (an abort whose RST was lost) tells
// the client so at its next segment, rather than letting it retransmit
// into silence until it gives up; the tombstone that keeps replayed
// cookies out answers with a RST, 8 bytes to a segment's 24 or more.
func TestDroppedSessionAnswersWithRST(t *testing.T) {
	client := netip.MustParseAddrPort("10.0.0.2:7000")
	srv := rudp.NewEndpoint(rudp.Config{Seed: 1}, sock, timerBase, true)
	cli := rudp.NewEndpoint(rudp.Config{Seed: 2}, sock, timerBase, false)
	now := spec.SimEpoch
	var srvEvents, cliEvents []rudp.Event
	// exchange runs the two endpoints until neither has anything to
	// send, passing datagrams unless drop says no.
	exchange := func(toSrv, toCli []spec.Output, drop func(p rudp.Packet) bool) {
		for round := 0; round < 50 && len(toSrv)+len(toCli) > 0; round++ {
			now = now.Add(time.Millisecond)
			var nextSrv, nextCli []spec.Output
			for _, o := range toSrv {
				if o.Kind != spec.OutSend {
					continue
				}
				nextCli, _ = srv.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: client, Data: o.Data}, nextCli)
			}
			for ev, ok := srv.Next(); ok; ev, ok = srv.Next() {
				srvEvents = append(srvEvents, ev)
			}
			nextCli = srv.Flush(now, nextCli)
			for _, o := range toCli {
				if o.Kind != spec.OutSend {
					continue
				}
				var p rudp.Packet
				if err := rudp.Decode(o.Data, &p); err == nil && drop != nil && drop(p) {
					continue
				}
				nextSrv, _ = cli.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: serverAddr, Data: o.Data}, nextSrv)
			}
			for ev, ok := cli.Next(); ok; ev, ok = cli.Next() {
				cliEvents = append(cliEvents, ev)
			}
			nextSrv = cli.Flush(now, nextSrv)
			toSrv, toCli = nextSrv, nextCli
		}
	}
	id := cli.Dial(now, serverAddr)
	if err := cli.Write(id, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	exchange(cli.Flush(now, nil), nil, nil)
	var sid rudp.ConnID
	for _, ev := range srvEvents {
		if ev.Kind == rudp.Data {
			sid = ev.Conn
		}
	}
	if sid == 0 {
		t.Fatalf("the server never got the data: %v", srvEvents)
	}
	// The server aborts; its RST is lost.
	srv.Abort(sid, "test")
	exchange(nil, srv.Flush(now, nil), func(p rudp.Packet) bool { return p.Type == rudp.TypeRST })
	if srv.Sessions() != 0 {
		t.Fatalf("server still has %d sessions", srv.Sessions())
	}
	for _, ev := range cliEvents {
		if ev.Kind == rudp.Closed {
			t.Fatalf("the client heard of the abort already: %v", ev)
		}
	}
	// The client's next segment draws a RST from the tombstone.
	if err := cli.Write(id, []byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	exchange(cli.Flush(now, nil), nil, nil)
	for _, ev := range cliEvents {
		if ev.Kind == rudp.Closed && strings.Contains(ev.Err, rudp.ReasonText(rudp.ReasonAbort)) {
			return
		}
	}
	t.Fatalf("the client was not told its session was aborted: %v", cliEvents)
}

// Everything a listening endpoint sends to a session's peer leaves from
// the address the peer sent to: the SYN-ACK and acknowledgments answered
// at once, and the RST of an abort, sent later from Flush.
func TestSessionAnswersFromLocal(t *testing.T) {
	client := netip.MustParseAddrPort("10.0.0.2:7000")
	local := netip.MustParseAddr("10.0.0.7")
	srv := rudp.NewEndpoint(rudp.Config{Seed: 1}, sock, timerBase, true)
	cli := rudp.NewEndpoint(rudp.Config{Seed: 2}, sock, timerBase, false)
	now := spec.SimEpoch
	sent, wrong := 0, 0
	var sid rudp.ConnID
	// run passes datagrams both ways until neither endpoint sends.
	run := func(toSrv, toCli []spec.Output) {
		for round := 0; round < 50 && len(toSrv)+len(toCli) > 0; round++ {
			now = now.Add(time.Millisecond)
			var nextSrv, nextCli []spec.Output
			for _, o := range toSrv {
				if o.Kind == spec.OutSend {
					nextCli, _ = srv.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: client, Local: local, Data: o.Data}, nextCli)
				}
			}
			for ev, ok := srv.Next(); ok; ev, ok = srv.Next() {
				if ev.Kind == rudp.Accepted {
					sid = ev.Conn
				}
			}
			nextCli = srv.Flush(now, nextCli)
			for _, o := range nextCli {
				if o.Kind == spec.OutSend {
					sent++
					if o.Local != local {
						wrong++
					}
				}
			}
			for _, o := range toCli {
				if o.Kind == spec.OutSend {
					nextSrv, _ = cli.Handle(now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: serverAddr, Data: o.Data}, nextSrv)
				}
			}
			for _, ok := cli.Next(); ok; _, ok = cli.Next() {
			}
			nextSrv = cli.Flush(now, nextSrv)
			toSrv, toCli = nextSrv, nextCli
		}
	}
	id := cli.Dial(now, serverAddr)
	if err := cli.Write(id, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	run(cli.Flush(now, nil), nil)
	if sid == 0 || sent < 2 {
		t.Fatalf("no session opened (%d datagrams from the server)", sent)
	}
	before := sent
	srv.Abort(sid, "test")
	out := srv.Flush(now, nil)
	for _, o := range out {
		if o.Kind == spec.OutSend {
			sent++
			if o.Local != local {
				wrong++
			}
		}
	}
	if sent == before {
		t.Fatal("the abort sent no RST")
	}
	if wrong > 0 {
		t.Fatalf("%d of %d datagrams from the server left without Local %v", wrong, sent, local)
	}
}
