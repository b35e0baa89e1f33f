package echo

import (
	"bytes"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

var (
	fuzzServer = netip.MustParseAddrPort("10.0.0.1:7007")
	fuzzClient = netip.MustParseAddrPort("10.0.0.2:40000")
)

func peerAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 40000+uint16(i))
}

// splitDatagrams cuts b into datagrams at every 0xff 0xff.
func splitDatagrams(b []byte) [][]byte {
	var out [][]byte
	for {
		i := bytes.Index(b, []byte{0xff, 0xff})
		if i < 0 {
			return append(out, b)
		}
		out = append(out, b[:i:i])
		b = b[i+2:]
	}
}

// FuzzServerUDP: whatever datagrams arrive, from whatever port, the
// server answers each with exactly one datagram holding exactly its
// bytes, to its source, or, from port 0, a well-known port, its own port,
// a source address over its rate limit or one repeating a payload as a
// loop would, with nothing; it never does
// anything else. limit picks the rate limit and how many source
// addresses share it.
func FuzzServerUDP(f *testing.F) {
	f.Add([]byte("233\n"), uint16(40000), false, uint8(0))
	f.Add([]byte(""), uint16(50000), false, uint8(0))
	f.Add([]byte("hello\xff\xffworld\xff\xff\xff\xff\x00"), uint16(1023), false, uint8(17))
	f.Add([]byte("from the echo port\xff\xffagain"), uint16(7), true, uint8(3))
	f.Add([]byte("source port zero"), uint16(0), true, uint8(0))
	f.Add(bytes.Repeat([]byte{0xa5}, 65507), uint16(65535), false, uint8(0))
	f.Add([]byte("\xff\xff\xff\xff\xff"), uint16(1024), false, uint8(0))
	f.Add([]byte("from our own port"), fuzzServer.Port(), false, uint8(0))
	f.Add([]byte("a\xff\xffb\xff\xffc\xff\xffd\xff\xffe\xff\xfff\xff\xffg"), uint16(40000), false, uint8(0x11))
	f.Fuzz(func(t *testing.T, data []byte, port uint16, allowLow bool, limit uint8) {
		// One to four source addresses; a rate of 10 to 80 a second
		// (datagrams come 1 ms apart), bursts of 1 to 4.
		hosts := 1 + int(limit&3)
		rate, burst := 10*float64(1+limit>>2&7), 1+int(limit>>5&3)
		s := NewServer(ServerConfig{UDP: fuzzServer, TCP: fuzzServer, AllowLowPorts: allowLow, SourceRate: rate, SourceBurst: burst})
		r := spectest.NewRig(t, s)
		r.Step(spec.Input{Kind: spec.InStart})
		r.AnswerBinds()
		if r.Bound[sockUDP] != spec.UDP || r.Exited {
			t.Fatalf("the server did not bind its UDP socket: bound %v, exited %v %q", r.Bound, r.Exited, r.Exit)
		}
		// The rate limit's model: GCRA per source address; and the loop
		// guard's: a payload repeated MaxRepeats times in a row, each
		// within RepeatGap of the last, is dropped (before the rate
		// limit is charged), for each of a source's last RecentPayloads
		// payloads (a new one replaces the one that came longest ago;
		// at these rates, RecentPayloads is the table's size).
		every := time.Duration(float64(time.Second) / rate)
		tat := map[netip.Addr]spec.Time{}
		type last struct {
			data    []byte
			at      spec.Time
			repeats int
		}
		seen := map[netip.Addr][]*last{}
		var echoed, dropped uint64
		for i, d := range splitDatagrams(data) {
			d = d[:min(len(d), 65507)] // the most a UDP datagram over IPv4 holds
			from := netip.AddrPortFrom(peerAddr(i%hosts).Addr(), port+uint16(i)*997)
			r.Now = r.Now.Add(time.Millisecond)
			r.Step(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: from, Data: d})
			answer := from.Port() != 0 && (from.Port() >= 1024 || allowLow) && from.Port() != fuzzServer.Port()
			if answer {
				var l *last
				for _, e := range seen[from.Addr()] {
					if bytes.Equal(e.data, d) {
						l = e
					}
				}
				switch ls := seen[from.Addr()]; {
				case l != nil && r.Now.Sub(l.at) < RepeatGap:
					l.repeats++
				case l != nil:
					l.repeats = 0
				case len(ls) < RecentPayloads:
					l = &last{data: d}
					seen[from.Addr()] = append(ls, l)
				default:
					l = ls[0]
					for _, e := range ls {
						if e.at < l.at {
							l = e
						}
					}
					*l = last{data: d}
				}
				l.at = r.Now
				answer = l.repeats < MaxRepeats
			}
			if answer {
				t0 := max(tat[from.Addr()], r.Now)
				if answer = t0.Sub(r.Now) <= time.Duration(burst-1)*every; answer {
					tat[from.Addr()] = t0.Add(every)
				}
			}
			if !answer {
				dropped++
				r.Only("a datagram from " + from.String())
				continue
			}
			echoed++
			if len(r.Sends) != 1 || r.Sends[0].Addr != from || r.Sends[0].Sock != sockUDP || !bytes.Equal(r.Sends[0].Data, d) {
				t.Fatalf("a %d-byte datagram from %v drew %d sends %v, want its bytes back once", len(d), from, len(r.Sends), r.Sends)
			}
			for _, o := range r.Out {
				if o.Kind != spec.OutLog && o.Kind != spec.OutSend {
					t.Fatalf("a datagram drew %v", o.Kind)
				}
			}
		}
		c := s.Counters()
		if c[0].Value != echoed+dropped || c[1].Value != echoed || c[2].Value+c[3].Value+c[4].Value+c[5].Value != dropped {
			t.Fatalf("counters %v, want %d datagrams, %d echoed, %d dropped", c, echoed+dropped, echoed, dropped)
		}
		r.Step(spec.Input{Kind: spec.InStop})
		if !r.Exited || r.Exit != "" {
			t.Fatalf("stop: exited %v %q", r.Exited, r.Exit)
		}
		r.CheckFrozen()
	})
}

// tcpModel is what the TCP server should hold for a connection.
type tcpModel struct {
	got      []byte // bytes received while the server held the connection
	unread   int    // echoed bytes since the last "writable"
	draining bool   // the peer half-closed with echo not yet taken by the transport
}

// FuzzServerTCP gives the server a hostile sequence of connections,
// bytes, half-closes, resets, writability and stale inputs (for streams
// it reset or never had). On every connection it holds, what it wrote is
// exactly what it received, in order, at once; it closes after the peer's
// FIN, and keeps counting the connection against MaxStreams until the
// transport has taken its echo ("writable"); it resets a connection
// exactly when more than MaxUnread echoed bytes wait for the client, and
// refuses connections beyond MaxStreams; it never writes to a stream it
// does not hold, and holds no state for connections that are gone.
func FuzzServerTCP(f *testing.F) {
	const accept, data, writable, fin, reset, stale = 0, 1, 3, 4, 5, 6
	f.Add(spectest.Seq(accept, data, 0, "hello", fin, 0), uint8(0), uint16(100))
	f.Add(spectest.Seq(accept, accept, data, 1, "abcdefghijklmnop", data, 0, "abcdefghijklmnop", writable, 1, data, 1, "x",
		reset, 1, stale, 1, 0, "zz", fin, 0, data, 0, "after FIN"), uint8(1), uint16(20))
	f.Add(spectest.Seq(accept, data, 0, strings.Repeat("x", 63), writable, 0, data, 0, strings.Repeat("y", 63),
		data, 0, strings.Repeat("z", 63), accept, data, 1, "!"), uint8(3), uint16(70))
	f.Add(spectest.Seq(accept, accept, accept, data, 2, "refused?", fin, 1, accept, data, 3, "ok", stale, 7, 1, stale, 2, 2), uint8(1), uint16(1))
	f.Add(spectest.Seq(accept, data, 0, "", writable, 0, data, 0, "zz", reset, 0, accept, data, 1, "z"), uint8(0), uint16(0))
	// Half-closed with echo waiting: still counted (the second accept is
	// refused) until writable, then forgotten (the third is taken).
	f.Add(spectest.Seq(accept, data, 0, "unread", fin, 0, accept, writable, 0, accept, data, 2, "ok", fin, 2), uint8(0), uint16(100))
	f.Add(spectest.Seq(accept, data, 0, "unread", fin, 0, reset, 0, accept, data, 1, "x"), uint8(0), uint16(100))
	f.Fuzz(func(t *testing.T, program []byte, maxStreams uint8, maxUnread uint16) {
		cfg := ServerConfig{TCP: fuzzServer, MaxStreams: 1 + int(maxStreams%4), MaxUnread: 1 + int(maxUnread%512)}
		s := NewServer(cfg)
		r := spectest.NewRig(t, s)
		r.Step(spec.Input{Kind: spec.InStart})
		r.AnswerBinds()
		held := map[spec.Stream]*tcpModel{} // connections the server holds
		var ids []spec.Stream               // every accepted id, in order
		accepted := 0
		p := spectest.Prog(program)
		for len(p) > 0 && !r.Exited {
			r.Now = r.Now.Add(time.Millisecond)
			switch op := p.Byte() % 7; op {
			case accept: // a new connection
				accepted++
				full := len(held) >= cfg.MaxStreams
				id := r.Accept(sockTCP, accepted, peerAddr(accepted), full)
				ids = append(ids, id)
				if !full {
					held[id] = &tcpModel{}
				}
			case data, data + 1: // bytes from the client
				id := p.Stream(ids)
				st := r.Streams[id]
				d := p.Chunk(80)
				if st == nil || st.EOF {
					continue // the runner has nothing more for this stream
				}
				r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
				m := held[id]
				if m == nil {
					r.Only("bytes on a connection the server let go")
					continue
				}
				m.got = append(m.got, d...)
				m.unread += len(d)
				if m.unread > cfg.MaxUnread {
					if !r.Aborts[id] {
						t.Fatalf("%d echoed bytes unread (limit %d), and the connection was not reset", m.unread, cfg.MaxUnread)
					}
					delete(held, id)
					continue
				}
				if r.Aborts[id] || !bytes.Equal(r.Writes[id], d) {
					t.Fatalf("%d bytes in drew %q (reset %v), want them echoed", len(d), r.Writes[id], r.Aborts[id])
				}
			case writable: // the transport took what was written
				id := p.Stream(ids)
				if r.Streams[id] == nil {
					continue
				}
				r.Step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				r.Only("writable")
				if m := held[id]; m != nil {
					m.unread = 0
					if m.draining {
						delete(held, id) // the last of its echo is with the transport
					}
				}
			case fin: // the client's FIN
				id := p.Stream(ids)
				st := r.Streams[id]
				if st == nil || st.EOF {
					continue
				}
				st.EOF = true
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				if held[id] != nil != r.Closes[id] || len(r.Writes) > 0 || len(r.Aborts) > 0 {
					t.Fatalf("FIN on a connection held %v: closed %v, wrote %d streams, reset %v", held[id] != nil, r.Closes[id], len(r.Writes), r.Aborts)
				}
				if m := held[id]; m != nil && m.unread > 0 {
					m.draining = true // still counts until its echo is taken
				} else {
					delete(held, id)
				}
			case reset:
				id := p.Stream(ids)
				if r.Streams[id] == nil {
					continue
				}
				delete(r.Streams, id)
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.Only("a reset")
				delete(held, id)
			case stale: // input on a stream the runner no longer holds
				id := spec.AcceptedStream | spec.Stream(int(p.Byte())%(accepted+2)+1)
				if r.Streams[id] != nil {
					continue
				}
				switch p.Byte() % 3 {
				case 0:
					r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: p.Chunk(16)})
				case 1:
					r.Step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				default:
					r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				}
				r.Only("stale input")
			}
			// The server holds exactly the connections it should, and on
			// each has echoed exactly what it received.
			if len(s.streams) != len(held) {
				t.Fatalf("the server holds %d connections, %d are open", len(s.streams), len(held))
			}
			for id, m := range held {
				if _, ok := s.streams[id]; !ok {
					t.Fatalf("the server forgot connection %#x", uint64(id))
				}
				if st := r.Streams[id]; st == nil || !bytes.Equal(st.Written, m.got) {
					t.Fatalf("connection %#x: %d bytes received, %d echoed", uint64(id), len(m.got), len(st.Written))
				}
			}
		}
		r.Step(spec.Input{Kind: spec.InStop})
		if !r.Exited || r.Exit != "" {
			t.Fatalf("stop: exited %v %q", r.Exited, r.Exit)
		}
		r.CheckFrozen()
	})
}

// clientModel is what a client owes its user.
type clientModel struct {
	sent     [][]byte // every "send" command
	queued   [][]byte // UDP messages sent before the socket was bound
	inflight [][]byte // UDP messages neither echoed nor given up
	sends    map[string]int
	failures int
	closing  bool
	tcp      map[spec.Stream]*tcpEcho // dialed connections not yet reported
	order    []spec.Stream
}

func removeOne(set [][]byte, b []byte) ([][]byte, bool) {
	for i, m := range set {
		if bytes.Equal(m, b) {
			return slices.Delete(set, i, i+1), true
		}
	}
	return set, false
}

// FuzzClient drives a UDP or TCP client with a hostile sequence of
// commands, datagrams (echoes of what it sent, arbitrary bytes, bytes from
// strangers), timers and, over TCP, connections that succeed or fail and
// answer with its bytes or others. It reports every datagram from the
// server as a "reply" carrying exactly those bytes, matched exactly when
// they equal a message still in flight, and nothing from strangers; over
// TCP, it reports exactly the bytes that came back, matched exactly when
// they equal what it sent, or an error. It sends only what it was given,
// each message at most 1+Retries times; while a message is in flight a
// timer is set; once closed it exits as soon as nothing is in flight,
// with an error exactly when something failed.
func FuzzClient(f *testing.F) {
	const (
		send, closeCmd, bound, echoOf, junk, stranger, timer = 0, 1, 2, 3, 4, 5, 6
		connect, echoBack, answer, fin, reset, unknown, wait = 7, 8, 9, 10, 11, 12, 13
	)
	f.Add(spectest.Seq(send, "hello", bound, echoOf, 0, closeCmd), false, uint8(2), uint16(100))
	f.Add(spectest.Seq(bound, send, "abc", send, "abc", echoOf, 1, timer, timer, junk, "abc", stranger, 9, "abc", echoOf, 0,
		send, "", echoOf, 2, timer, timer, timer, closeCmd, timer), false, uint8(0), uint16(10))
	f.Add(spectest.Seq(send, "queued", closeCmd, wait, 200, bound, timer, echoOf, 0), false, uint8(3), uint16(10))
	f.Add(spectest.Seq(send, "ping", closeCmd, connect, 0, echoBack, 0, "", fin, 0), true, uint8(1), uint16(100))
	f.Add(spectest.Seq(send, "ping", send, "hi", connect, 1, answer, 1, "other", fin, 1, reset, 0, connect, 0), true, uint8(3), uint16(3))
	f.Add(spectest.Seq(send, "long reply", connect, 0, answer, 0, "0123456789", answer, 0, "0123456789", closeCmd), true, uint8(0), uint16(15))
	f.Add(spectest.Seq(unknown, "bogus", send, "x", wait, 128, bound, closeCmd), false, uint8(1), uint16(0))
	f.Fuzz(func(t *testing.T, program []byte, tcp bool, retries uint8, maxReply uint16) {
		cfg := ClientConfig{Server: fuzzServer, TCP: tcp, Timeout: 100 * time.Millisecond, Retries: int(retries%4) - 1, MaxReply: 1 + int(maxReply%300)}
		c := NewClient(cfg)
		tries := 1 + c.cfg.Retries
		r := spectest.NewRig(t, c)
		mdl := &clientModel{sends: map[string]int{}, tcp: map[spec.Stream]*tcpEcho{}}
		commanded := map[string]int{}
		r.Step(spec.Input{Kind: spec.InStart})
		after := func(what string) {
			t.Helper()
			for _, o := range r.Sends {
				if o.Addr != cfg.Server {
					t.Fatalf("%s: sent to %v, not the server", what, o.Addr)
				}
				mdl.sends[string(o.Data)]++
				if mdl.sends[string(o.Data)] > tries*commanded[string(o.Data)] {
					t.Fatalf("%s: a %d-byte message sent %d times, for %d commands of %d tries", what, len(o.Data), mdl.sends[string(o.Data)], commanded[string(o.Data)], tries)
				}
			}
			for _, d := range r.Dials {
				if !tcp || d.Addr != cfg.Server {
					t.Fatalf("%s: dial to %v (tcp %v)", what, d.Addr, tcp)
				}
			}
			for _, ev := range r.Events {
				switch ev.Name {
				case "timeout":
					var ok bool
					if mdl.inflight, ok = removeOne(mdl.inflight, ev.Data); !ok {
						t.Fatalf("%s: timeout for a message not in flight", what)
					}
					mdl.failures++
				case "error":
					mdl.failures++
				case "reply":
					// Over TCP the reply is the whole echo: one that
					// differs is that message failing.
					if tcp && !ev.Value.(Reply).Matched {
						mdl.failures++
					}
				default:
					t.Fatalf("%s: unexpected event %q", what, ev.Name)
				}
			}
			if !tcp && len(mdl.inflight) > 0 && !r.Exited {
				if _, ok := r.Timers[retryTimer]; !ok {
					t.Fatalf("%s: %d messages in flight and no timer set", what, len(mdl.inflight))
				}
			}
			if r.ExitNow {
				if mdl.failures > 0 == (r.Exit == "") {
					t.Fatalf("%s: exit %q after %d failures", what, r.Exit, mdl.failures)
				}
			}
			idle := len(mdl.inflight) == 0 && len(mdl.tcp) == 0 && len(mdl.queued) == 0
			if mdl.closing && idle != r.Exited {
				t.Fatalf("%s: closing, idle %v (%d in flight, %d connections), exited %v", what, idle, len(mdl.inflight), len(mdl.tcp), r.Exited)
			}
			if !mdl.closing && r.Exited {
				t.Fatalf("%s: exited %q before it was closed", what, r.Exit)
			}
		}
		p := spectest.Prog(program)
		for len(p) > 0 && !r.Exited {
			r.Now = r.Now.Add(time.Millisecond)
			switch op := p.Byte() % 14; op {
			case send:
				d := p.Chunk(40)
				commanded[string(d)]++
				mdl.sent = append(mdl.sent, d)
				r.Step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "send", Data: d}})
				if tcp {
					if len(r.Dials) != 1 {
						t.Fatalf("send over TCP drew %d dials", len(r.Dials))
					}
					id := r.Dials[0].Stream
					mdl.tcp[id] = &tcpEcho{sent: d}
					mdl.order = append(mdl.order, id)
				} else if r.Bound[sockUDP] == spec.UDP && len(r.Binds) == 0 {
					mdl.inflight = append(mdl.inflight, d)
					if len(r.Sends) != 1 || !bytes.Equal(r.Sends[0].Data, d) {
						t.Fatalf("send of %q drew %v", d, r.Sends)
					}
				} else {
					mdl.queued = append(mdl.queued, d)
					if len(r.Sends) != 0 {
						t.Fatalf("send before the socket was bound drew %v", r.Sends)
					}
				}
				after("send")
			case closeCmd:
				mdl.closing = true
				r.Step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "close"}})
				after("close")
			case bound: // the socket is bound
				if len(r.Binds) == 0 {
					continue
				}
				r.AnswerBinds()
				if len(r.Sends) != len(mdl.queued) {
					t.Fatalf("bound with %d queued messages, sent %d", len(mdl.queued), len(r.Sends))
				}
				mdl.inflight, mdl.queued = append(mdl.inflight, mdl.queued...), nil
				after("bound")
			case echoOf, junk, stranger: // a datagram: an echo, arbitrary bytes, or from a stranger
				if r.Bound[sockUDP] != spec.UDP || len(r.Binds) > 0 {
					continue
				}
				var d []byte
				from := cfg.Server
				switch {
				case op == echoOf && len(mdl.sent) > 0:
					d = mdl.sent[int(p.Byte())%len(mdl.sent)]
				case op == stranger:
					from = peerAddr(int(p.Byte()))
					fallthrough
				default:
					d = p.Chunk(40)
				}
				wasInflight := slices.ContainsFunc(mdl.inflight, func(m []byte) bool { return bytes.Equal(m, d) })
				r.Step(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: from, Data: d})
				var replies []spec.Event
				for _, ev := range r.Events {
					if ev.Name == "reply" {
						replies = append(replies, ev)
					}
				}
				if from != cfg.Server {
					if len(replies) > 0 {
						t.Fatalf("a datagram from stranger %v was reported", from)
					}
				} else if len(replies) != 1 || !bytes.Equal(replies[0].Data, d) || replies[0].Value.(Reply).Matched != wasInflight {
					t.Fatalf("a %d-byte datagram (in flight %v) was reported as %v", len(d), wasInflight, replies)
				}
				if wasInflight && from == cfg.Server {
					mdl.inflight, _ = removeOne(mdl.inflight, d)
				}
				after("datagram")
			case timer:
				if r.Fire() {
					after("timer")
				}
			case connect, echoBack, answer, fin, reset: // a connection connects, echoes, answers other bytes, ends, fails
				if len(mdl.order) == 0 {
					continue
				}
				id := mdl.order[int(p.Byte())%len(mdl.order)]
				st, e := r.Streams[id], mdl.tcp[id]
				if st == nil || e == nil || st.EOF {
					continue
				}
				switch {
				case op == connect && !st.Connected:
					st.Connected = true
					r.Step(spec.Input{Kind: spec.InConnected, Stream: id, Addr: cfg.Server})
					if !bytes.Equal(r.Writes[id], e.sent) || !r.Closes[id] {
						t.Fatalf("connected: wrote %q and closed %v, want %q then close", r.Writes[id], r.Closes[id], e.sent)
					}
				case (op == echoBack || op == answer) && st.Connected:
					d := p.Chunk(40)
					if op == echoBack {
						d = e.sent[min(len(e.got), len(e.sent)):]
					}
					too := len(e.got)+len(d) > c.cfg.MaxReply
					r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
					if too {
						if !r.Aborts[id] || len(r.Events) != 1 || r.Events[0].Name != "error" {
							t.Fatalf("a reply past MaxReply drew abort %v, events %v", r.Aborts[id], r.Events)
						}
						delete(mdl.tcp, id)
					} else {
						e.got = append(e.got, d...)
						r.Only("echo bytes")
					}
				case op == fin && st.Connected:
					st.EOF = true
					r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
					if len(r.Events) != 1 || r.Events[0].Name != "reply" || !bytes.Equal(r.Events[0].Data, e.got) ||
						r.Events[0].Value.(Reply).Matched != bytes.Equal(e.got, e.sent) {
						t.Fatalf("EOF after %q (sent %q) drew %v", e.got, e.sent, r.Events)
					}
					delete(mdl.tcp, id)
				case op == reset:
					delete(r.Streams, id)
					r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection refused"})
					if len(r.Events) != 1 || r.Events[0].Name != "error" {
						t.Fatalf("a reset drew %v", r.Events)
					}
					delete(mdl.tcp, id)
				default:
					continue
				}
				after("stream")
			case unknown: // a command it does not know
				r.Step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: string(p.Chunk(8))}})
				r.Only("an unknown command")
			case wait:
				r.Now = r.Now.Add(time.Duration(p.Byte()) * time.Millisecond)
			}
		}
		// Let it finish: answer the bind, fire every timer, end every
		// connection with a faithful echo.
		mdl.closing = true
		if !r.Exited {
			r.Step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "close"}})
			after("close")
		}
		if len(r.Binds) > 0 && !r.Exited {
			r.AnswerBinds()
			mdl.inflight, mdl.queued = append(mdl.inflight, mdl.queued...), nil
			after("bound")
		}
		for _, id := range mdl.order {
			st, e := r.Streams[id], mdl.tcp[id]
			if st == nil || e == nil || r.Exited {
				continue
			}
			if !st.Connected {
				st.Connected = true
				r.Step(spec.Input{Kind: spec.InConnected, Stream: id, Addr: cfg.Server})
				after("connected")
			}
			if rest := e.sent[min(len(e.got), len(e.sent)):]; len(rest) > 0 && bytes.HasPrefix(e.sent, e.got) {
				// The faithful rest of the echo, then the EOF; past
				// MaxReply the client gives up on it (an error).
				too := len(e.got)+len(rest) > c.cfg.MaxReply
				r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: rest})
				if too {
					delete(mdl.tcp, id)
					after("echo past MaxReply")
					continue
				}
				e.got = append(e.got, rest...)
				r.Only("echo bytes")
			}
			st.EOF = true
			delete(mdl.tcp, id)
			r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
			after("EOF")
		}
		for i := 0; i < 100 && !r.Exited && r.Fire(); i++ {
			after("timer")
		}
		if !r.Exited {
			t.Fatalf("closed, and never exited: %d in flight, %d connections, timers %v", len(mdl.inflight), len(mdl.tcp), r.Timers)
		}
		r.CheckFrozen()
	})
}
