package echo

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// rig drives one machine by hand, as a runner would, and checks every
// output against the machine contract (spec/machine.go) as the simulator
// does (sim.Violations): sends only on bound UDP sockets, dials with
// fresh ids below spec.AcceptedStream, writes, closes and aborts only on
// streams the runner holds, no write after close, event values that
// marshal to JSON, and emitted bytes never changed afterwards.
type rig struct {
	t       *testing.T
	m       spec.Machine
	now     spec.Time
	out     []spec.Output
	bound   map[spec.Sock]spec.Net
	binds   []spec.Output // binds not answered yet
	streams map[spec.Stream]*rstream
	timers  map[spec.Timer]spec.Time
	exited  bool
	exit    string
	// What the last step did.
	exitNow bool
	sends   []spec.Output
	events  []spec.Event
	writes  map[spec.Stream][]byte
	closes  map[spec.Stream]bool
	aborts  map[spec.Stream]bool
	dials   []spec.Output
	frozen  []frozen
}

// rstream is a stream as the runner sees it.
type rstream struct {
	dialed, connected bool
	closed            bool // the machine closed its side
	eof               bool // the peer closed its side
	written           []byte
}

// frozen is emitted bytes and a copy, to check the machine never changes
// what it handed over.
type frozen struct{ ref, copy []byte }

func newRig(t *testing.T, m spec.Machine) *rig {
	return &rig{t: t, m: m, now: spec.SimEpoch, bound: map[spec.Sock]spec.Net{},
		streams: map[spec.Stream]*rstream{}, timers: map[spec.Timer]spec.Time{}}
}

// step gives the machine one input and checks what it asks for.
func (r *rig) step(in spec.Input) {
	r.t.Helper()
	r.clear()
	if r.exited {
		return
	}
	r.out = r.m.Step(r.now, in, r.out[:0])
	for _, o := range r.out {
		if len(o.Data) > 0 {
			r.frozen = append(r.frozen, frozen{o.Data, bytes.Clone(o.Data)})
		}
		switch o.Kind {
		case spec.OutBind:
			if _, dup := r.bound[o.Sock]; dup {
				r.t.Fatalf("bind of socket %d, already bound", o.Sock)
			}
			if o.Net != spec.UDP && o.Net != spec.TCP {
				r.t.Fatalf("bind of socket %d with transport %v", o.Sock, o.Net)
			}
			r.bound[o.Sock] = o.Net
			r.binds = append(r.binds, o)
		case spec.OutUnbind:
			delete(r.bound, o.Sock)
		case spec.OutSend:
			if r.bound[o.Sock] != spec.UDP {
				r.t.Fatalf("send on socket %d, which is not a bound UDP socket", o.Sock)
			}
			if len(o.Data) > 65507 {
				r.t.Fatalf("send of a %d-byte datagram", len(o.Data))
			}
			r.sends = append(r.sends, o)
		case spec.OutDial:
			if o.Stream == 0 || o.Stream&spec.AcceptedStream != 0 {
				r.t.Fatalf("dial with stream id %#x", uint64(o.Stream))
			}
			if r.streams[o.Stream] != nil {
				r.t.Fatalf("dial reuses stream %d", o.Stream)
			}
			r.streams[o.Stream] = &rstream{dialed: true}
			r.dials = append(r.dials, o)
		case spec.OutWrite:
			st := r.streams[o.Stream]
			if st == nil {
				r.t.Fatalf("write on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			if st.closed {
				r.t.Fatalf("write after close on stream %#x", uint64(o.Stream))
			}
			st.written = append(st.written, o.Data...)
			r.writes[o.Stream] = append(r.writes[o.Stream], o.Data...)
		case spec.OutClose:
			st := r.streams[o.Stream]
			if st == nil {
				r.t.Fatalf("close on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			st.closed = true
			r.closes[o.Stream] = true
		case spec.OutAbort:
			if r.streams[o.Stream] == nil {
				r.t.Fatalf("abort on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			delete(r.streams, o.Stream)
			r.aborts[o.Stream] = true
		case spec.OutSetTimer:
			r.timers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(r.timers, o.Timer)
		case spec.OutEvent:
			if _, err := json.Marshal(o.Event.Value); err != nil {
				r.t.Fatalf("event %q: value does not marshal: %v", o.Event.Name, err)
			}
			r.events = append(r.events, o.Event)
		case spec.OutLog:
		case spec.OutExit:
			r.exited, r.exit, r.exitNow = true, o.Err, true
		default:
			r.t.Fatalf("unknown output kind %d", o.Kind)
		}
		if r.exited {
			break // runners stop the machine at its exit
		}
	}
}

// clear forgets what the last step did.
func (r *rig) clear() {
	r.out = r.out[:0]
	r.sends, r.events, r.dials, r.exitNow = nil, nil, nil, false
	r.writes, r.closes, r.aborts = map[spec.Stream][]byte{}, map[spec.Stream]bool{}, map[spec.Stream]bool{}
}

// answerBinds answers every pending bind with success.
func (r *rig) answerBinds() {
	for len(r.binds) > 0 && !r.exited {
		b := r.binds[0]
		r.binds = r.binds[1:]
		a := b.Addr
		if a.Port() == 0 {
			a = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 49152+uint16(b.Sock))
		}
		r.step(spec.Input{Kind: spec.InBound, Sock: b.Sock, Addr: a})
	}
}

// fire advances the clock to the earliest timer and fires it; false if
// none is set.
func (r *rig) fire() bool {
	var first spec.Timer
	var at spec.Time
	for k, v := range r.timers {
		if at == 0 || v < at || v == at && k < first {
			first, at = k, v
		}
	}
	if at == 0 {
		return false
	}
	delete(r.timers, first)
	r.now = max(r.now, at)
	r.step(spec.Input{Kind: spec.InTimer, Timer: first})
	return true
}

// checkFrozen fails if the machine changed bytes it had emitted.
func (r *rig) checkFrozen() {
	for _, f := range r.frozen {
		if !bytes.Equal(f.ref, f.copy) {
			r.t.Fatalf("the machine changed %d bytes after emitting them", len(f.copy))
		}
	}
}

// only fails if the last step did anything but log.
func (r *rig) only(what string) {
	r.t.Helper()
	for _, o := range r.out {
		if o.Kind != spec.OutLog {
			r.t.Fatalf("%s drew %v", what, o.Kind)
		}
	}
}

// prog reads a fuzzer's bytes as a program of operations.
type prog []byte

func (p *prog) byte() byte {
	if len(*p) == 0 {
		return 0
	}
	b := (*p)[0]
	*p = (*p)[1:]
	return b
}

// chunk takes up to max bytes, as many as the next byte says.
func (p *prog) chunk(max int) []byte {
	n := min(int(p.byte())%(max+1), len(*p))
	c := (*p)[:n:n]
	*p = (*p)[n:]
	return c
}

// seq builds a seed program: a byte is itself, a string is a chunk (its
// length, then its bytes).
func seq(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case int:
			b = append(b, byte(p))
		case string:
			b = append(append(b, byte(len(p))), p...)
		}
	}
	return b
}

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
// bytes, to its source, or (from port 0 or a well-known port) with
// nothing; it never does anything else.
func FuzzServerUDP(f *testing.F) {
	f.Add([]byte("233\n"), uint16(40000), false)
	f.Add([]byte(""), uint16(50000), false)
	f.Add([]byte("hello\xff\xffworld\xff\xff\xff\xff\x00"), uint16(1023), false)
	f.Add([]byte("from the echo port\xff\xffagain"), uint16(7), true)
	f.Add([]byte("source port zero"), uint16(0), true)
	f.Add(bytes.Repeat([]byte{0xa5}, 65507), uint16(65535), false)
	f.Add([]byte("\xff\xff\xff\xff\xff"), uint16(1024), false)
	f.Fuzz(func(t *testing.T, data []byte, port uint16, allowLow bool) {
		s := NewServer(ServerConfig{UDP: fuzzServer, TCP: fuzzServer, AllowLowPorts: allowLow})
		r := newRig(t, s)
		r.step(spec.Input{Kind: spec.InStart})
		r.answerBinds()
		if r.bound[sockUDP] != spec.UDP || r.exited {
			t.Fatalf("the server did not bind its UDP socket: bound %v, exited %v %q", r.bound, r.exited, r.exit)
		}
		var echoed, dropped uint64
		for i, d := range splitDatagrams(data) {
			d = d[:min(len(d), 65507)] // the most a UDP datagram over IPv4 holds
			from := netip.AddrPortFrom(peerAddr(i).Addr(), port+uint16(i)*997)
			r.now = r.now.Add(time.Millisecond)
			r.step(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: from, Data: d})
			answer := from.Port() != 0 && (from.Port() >= 1024 || allowLow)
			if !answer {
				dropped++
				r.only("a datagram from port " + from.String())
				continue
			}
			echoed++
			if len(r.sends) != 1 || r.sends[0].Addr != from || r.sends[0].Sock != sockUDP || !bytes.Equal(r.sends[0].Data, d) {
				t.Fatalf("a %d-byte datagram from %v drew %d sends %v, want its bytes back once", len(d), from, len(r.sends), r.sends)
			}
			for _, o := range r.out {
				if o.Kind != spec.OutLog && o.Kind != spec.OutSend {
					t.Fatalf("a datagram drew %v", o.Kind)
				}
			}
		}
		c := s.Counters()
		if c[0].Value != echoed+dropped || c[1].Value != echoed || c[2].Value != dropped {
			t.Fatalf("counters %v, want %d datagrams, %d echoed, %d dropped", c, echoed+dropped, echoed, dropped)
		}
		r.step(spec.Input{Kind: spec.InStop})
		if !r.exited || r.exit != "" {
			t.Fatalf("stop: exited %v %q", r.exited, r.exit)
		}
		r.checkFrozen()
	})
}

// tcpModel is what the TCP server should hold for a connection.
type tcpModel struct {
	got    []byte // bytes received while the server held the connection
	unread int    // echoed bytes since the last "writable"
}

// FuzzServerTCP gives the server a hostile sequence of connections,
// bytes, half-closes, resets, writability and stale inputs (for streams
// it reset or never had). On every connection it holds, what it wrote is
// exactly what it received, in order, at once; it closes after the peer's
// FIN; it resets a connection exactly when more than MaxUnread echoed
// bytes wait for the client, and refuses connections beyond MaxStreams;
// it never writes to a stream it does not hold, and holds no state for
// connections that are gone.
func FuzzServerTCP(f *testing.F) {
	const accept, data, writable, fin, reset, stale = 0, 1, 3, 4, 5, 6
	f.Add(seq(accept, data, 0, "hello", fin, 0), uint8(0), uint16(100))
	f.Add(seq(accept, accept, data, 1, "abcdefghijklmnop", data, 0, "abcdefghijklmnop", writable, 1, data, 1, "x",
		reset, 1, stale, 1, 0, "zz", fin, 0, data, 0, "after FIN"), uint8(1), uint16(20))
	f.Add(seq(accept, data, 0, strings.Repeat("x", 63), writable, 0, data, 0, strings.Repeat("y", 63),
		data, 0, strings.Repeat("z", 63), accept, data, 1, "!"), uint8(3), uint16(70))
	f.Add(seq(accept, accept, accept, data, 2, "refused?", fin, 1, accept, data, 3, "ok", stale, 7, 1, stale, 2, 2), uint8(1), uint16(1))
	f.Add(seq(accept, data, 0, "", writable, 0, data, 0, "zz", reset, 0, accept, data, 1, "z"), uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, program []byte, maxStreams uint8, maxUnread uint16) {
		cfg := ServerConfig{TCP: fuzzServer, MaxStreams: 1 + int(maxStreams%4), MaxUnread: 1 + int(maxUnread%512)}
		s := NewServer(cfg)
		r := newRig(t, s)
		r.step(spec.Input{Kind: spec.InStart})
		r.answerBinds()
		held := map[spec.Stream]*tcpModel{} // connections the server holds
		var ids []spec.Stream               // every accepted id, in order
		accepted := 0
		pick := func(p *prog) spec.Stream {
			if len(ids) == 0 {
				return spec.AcceptedStream | 1
			}
			return ids[int(p.byte())%len(ids)]
		}
		p := prog(program)
		for len(p) > 0 && !r.exited {
			r.now = r.now.Add(time.Millisecond)
			switch op := p.byte() % 7; op {
			case accept: // a new connection
				accepted++
				id := spec.AcceptedStream | spec.Stream(accepted)
				ids = append(ids, id)
				r.streams[id] = &rstream{}
				full := len(held) >= cfg.MaxStreams
				r.step(spec.Input{Kind: spec.InAccepted, Sock: sockTCP, Stream: id, Addr: peerAddr(accepted)})
				if full != r.aborts[id] {
					t.Fatalf("connection %d with %d held (limit %d): refused %v", accepted, len(held), cfg.MaxStreams, r.aborts[id])
				}
				if !full {
					held[id] = &tcpModel{}
				}
			case data, data + 1: // bytes from the client
				id := pick(&p)
				st := r.streams[id]
				d := p.chunk(80)
				if st == nil || st.eof {
					continue // the runner has nothing more for this stream
				}
				r.step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
				m := held[id]
				if m == nil {
					r.only("bytes on a connection the server let go")
					continue
				}
				m.got = append(m.got, d...)
				m.unread += len(d)
				if m.unread > cfg.MaxUnread {
					if !r.aborts[id] {
						t.Fatalf("%d echoed bytes unread (limit %d), and the connection was not reset", m.unread, cfg.MaxUnread)
					}
					delete(held, id)
					continue
				}
				if r.aborts[id] || !bytes.Equal(r.writes[id], d) {
					t.Fatalf("%d bytes in drew %q (reset %v), want them echoed", len(d), r.writes[id], r.aborts[id])
				}
			case writable: // the transport took what was written
				id := pick(&p)
				if r.streams[id] == nil {
					continue
				}
				r.step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				r.only("writable")
				if m := held[id]; m != nil {
					m.unread = 0
				}
			case fin: // the client's FIN
				id := pick(&p)
				st := r.streams[id]
				if st == nil || st.eof {
					continue
				}
				st.eof = true
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				if held[id] != nil != r.closes[id] || len(r.writes) > 0 || len(r.aborts) > 0 {
					t.Fatalf("FIN on a connection held %v: closed %v, wrote %d streams, reset %v", held[id] != nil, r.closes[id], len(r.writes), r.aborts)
				}
				delete(held, id)
			case reset:
				id := pick(&p)
				if r.streams[id] == nil {
					continue
				}
				delete(r.streams, id)
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.only("a reset")
				delete(held, id)
			case stale: // input on a stream the runner no longer holds
				id := spec.AcceptedStream | spec.Stream(int(p.byte())%(accepted+2)+1)
				if r.streams[id] != nil {
					continue
				}
				switch p.byte() % 3 {
				case 0:
					r.step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: p.chunk(16)})
				case 1:
					r.step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				default:
					r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				}
				r.only("stale input")
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
				if st := r.streams[id]; st == nil || !bytes.Equal(st.written, m.got) {
					t.Fatalf("connection %#x: %d bytes received, %d echoed", uint64(id), len(m.got), len(st.written))
				}
			}
		}
		r.step(spec.Input{Kind: spec.InStop})
		if !r.exited || r.exit != "" {
			t.Fatalf("stop: exited %v %q", r.exited, r.exit)
		}
		r.checkFrozen()
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
	f.Add(seq(send, "hello", bound, echoOf, 0, closeCmd), false, uint8(2), uint16(100))
	f.Add(seq(bound, send, "abc", send, "abc", echoOf, 1, timer, timer, junk, "abc", stranger, 9, "abc", echoOf, 0,
		send, "", echoOf, 2, timer, timer, timer, closeCmd, timer), false, uint8(0), uint16(10))
	f.Add(seq(send, "queued", closeCmd, wait, 200, bound, timer, echoOf, 0), false, uint8(3), uint16(10))
	f.Add(seq(send, "ping", closeCmd, connect, 0, echoBack, 0, "", fin, 0), true, uint8(1), uint16(100))
	f.Add(seq(send, "ping", send, "hi", connect, 1, answer, 1, "other", fin, 1, reset, 0, connect, 0), true, uint8(3), uint16(3))
	f.Add(seq(send, "long reply", connect, 0, answer, 0, "0123456789", answer, 0, "0123456789", closeCmd), true, uint8(0), uint16(15))
	f.Add(seq(unknown, "bogus", send, "x", wait, 128, bound, closeCmd), false, uint8(1), uint16(0))
	f.Fuzz(func(t *testing.T, program []byte, tcp bool, retries uint8, maxReply uint16) {
		cfg := ClientConfig{Server: fuzzServer, TCP: tcp, Timeout: 100 * time.Millisecond, Retries: int(retries%4) - 1, MaxReply: 1 + int(maxReply%300)}
		c := NewClient(cfg)
		tries := 1 + c.cfg.Retries
		r := newRig(t, c)
		mdl := &clientModel{sends: map[string]int{}, tcp: map[spec.Stream]*tcpEcho{}}
		commanded := map[string]int{}
		r.step(spec.Input{Kind: spec.InStart})
		after := func(what string) {
			t.Helper()
			for _, o := range r.sends {
				if o.Addr != cfg.Server {
					t.Fatalf("%s: sent to %v, not the server", what, o.Addr)
				}
				mdl.sends[string(o.Data)]++
				if mdl.sends[string(o.Data)] > tries*commanded[string(o.Data)] {
					t.Fatalf("%s: a %d-byte message sent %d times, for %d commands of %d tries", what, len(o.Data), mdl.sends[string(o.Data)], commanded[string(o.Data)], tries)
				}
			}
			for _, d := range r.dials {
				if !tcp || d.Addr != cfg.Server {
					t.Fatalf("%s: dial to %v (tcp %v)", what, d.Addr, tcp)
				}
			}
			for _, ev := range r.events {
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
				default:
					t.Fatalf("%s: unexpected event %q", what, ev.Name)
				}
			}
			if !tcp && len(mdl.inflight) > 0 && !r.exited {
				if _, ok := r.timers[retryTimer]; !ok {
					t.Fatalf("%s: %d messages in flight and no timer set", what, len(mdl.inflight))
				}
			}
			if r.exitNow {
				if mdl.failures > 0 == (r.exit == "") {
					t.Fatalf("%s: exit %q after %d failures", what, r.exit, mdl.failures)
				}
			}
			idle := len(mdl.inflight) == 0 && len(mdl.tcp) == 0 && len(mdl.queued) == 0
			if mdl.closing && idle != r.exited {
				t.Fatalf("%s: closing, idle %v (%d in flight, %d connections), exited %v", what, idle, len(mdl.inflight), len(mdl.tcp), r.exited)
			}
			if !mdl.closing && r.exited {
				t.Fatalf("%s: exited %q before it was closed", what, r.exit)
			}
		}
		p := prog(program)
		for len(p) > 0 && !r.exited {
			r.now = r.now.Add(time.Millisecond)
			switch op := p.byte() % 14; op {
			case send:
				d := p.chunk(40)
				commanded[string(d)]++
				mdl.sent = append(mdl.sent, d)
				r.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "send", Data: d}})
				if tcp {
					if len(r.dials) != 1 {
						t.Fatalf("send over TCP drew %d dials", len(r.dials))
					}
					id := r.dials[0].Stream
					mdl.tcp[id] = &tcpEcho{sent: d}
					mdl.order = append(mdl.order, id)
				} else if r.bound[sockUDP] == spec.UDP && len(r.binds) == 0 {
					mdl.inflight = append(mdl.inflight, d)
					if len(r.sends) != 1 || !bytes.Equal(r.sends[0].Data, d) {
						t.Fatalf("send of %q drew %v", d, r.sends)
					}
				} else {
					mdl.queued = append(mdl.queued, d)
					if len(r.sends) != 0 {
						t.Fatalf("send before the socket was bound drew %v", r.sends)
					}
				}
				after("send")
			case closeCmd:
				mdl.closing = true
				r.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "close"}})
				after("close")
			case bound: // the socket is bound
				if len(r.binds) == 0 {
					continue
				}
				r.answerBinds()
				if len(r.sends) != len(mdl.queued) {
					t.Fatalf("bound with %d queued messages, sent %d", len(mdl.queued), len(r.sends))
				}
				mdl.inflight, mdl.queued = append(mdl.inflight, mdl.queued...), nil
				after("bound")
			case echoOf, junk, stranger: // a datagram: an echo, arbitrary bytes, or from a stranger
				if r.bound[sockUDP] != spec.UDP || len(r.binds) > 0 {
					continue
				}
				var d []byte
				from := cfg.Server
				switch {
				case op == echoOf && len(mdl.sent) > 0:
					d = mdl.sent[int(p.byte())%len(mdl.sent)]
				case op == stranger:
					from = peerAddr(int(p.byte()))
					fallthrough
				default:
					d = p.chunk(40)
				}
				wasInflight := slices.ContainsFunc(mdl.inflight, func(m []byte) bool { return bytes.Equal(m, d) })
				r.step(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: from, Data: d})
				var replies []spec.Event
				for _, ev := range r.events {
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
				if r.fire() {
					after("timer")
				}
			case connect, echoBack, answer, fin, reset: // a connection connects, echoes, answers other bytes, ends, fails
				if len(mdl.order) == 0 {
					continue
				}
				id := mdl.order[int(p.byte())%len(mdl.order)]
				st, e := r.streams[id], mdl.tcp[id]
				if st == nil || e == nil || st.eof {
					continue
				}
				switch {
				case op == connect && !st.connected:
					st.connected = true
					r.step(spec.Input{Kind: spec.InConnected, Stream: id, Addr: cfg.Server})
					if !bytes.Equal(r.writes[id], e.sent) || !r.closes[id] {
						t.Fatalf("connected: wrote %q and closed %v, want %q then close", r.writes[id], r.closes[id], e.sent)
					}
				case (op == echoBack || op == answer) && st.connected:
					d := p.chunk(40)
					if op == echoBack {
						d = e.sent[min(len(e.got), len(e.sent)):]
					}
					too := len(e.got)+len(d) > c.cfg.MaxReply
					r.step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
					if too {
						if !r.aborts[id] || len(r.events) != 1 || r.events[0].Name != "error" {
							t.Fatalf("a reply past MaxReply drew abort %v, events %v", r.aborts[id], r.events)
						}
						delete(mdl.tcp, id)
					} else {
						e.got = append(e.got, d...)
						r.only("echo bytes")
					}
				case op == fin && st.connected:
					st.eof = true
					r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
					if len(r.events) != 1 || r.events[0].Name != "reply" || !bytes.Equal(r.events[0].Data, e.got) ||
						r.events[0].Value.(Reply).Matched != bytes.Equal(e.got, e.sent) {
						t.Fatalf("EOF after %q (sent %q) drew %v", e.got, e.sent, r.events)
					}
					delete(mdl.tcp, id)
				case op == reset:
					delete(r.streams, id)
					r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection refused"})
					if len(r.events) != 1 || r.events[0].Name != "error" {
						t.Fatalf("a reset drew %v", r.events)
					}
					delete(mdl.tcp, id)
				default:
					continue
				}
				after("stream")
			case unknown: // a command it does not know
				r.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: string(p.chunk(8))}})
				r.only("an unknown command")
			case wait:
				r.now = r.now.Add(time.Duration(p.byte()) * time.Millisecond)
			}
		}
		// Let it finish: answer the bind, fire every timer, end every
		// connection with a faithful echo.
		mdl.closing = true
		if !r.exited {
			r.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "close"}})
			after("close")
		}
		if len(r.binds) > 0 && !r.exited {
			r.answerBinds()
			mdl.inflight, mdl.queued = append(mdl.inflight, mdl.queued...), nil
			after("bound")
		}
		for _, id := range mdl.order {
			st, e := r.streams[id], mdl.tcp[id]
			if st == nil || e == nil || r.exited {
				continue
			}
			if !st.connected {
				st.connected = true
				r.step(spec.Input{Kind: spec.InConnected, Stream: id, Addr: cfg.Server})
				after("connected")
			}
			st.eof = true
			delete(mdl.tcp, id)
			r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
			after("EOF")
		}
		for i := 0; i < 100 && !r.exited && r.fire(); i++ {
			after("timer")
		}
		if !r.exited {
			t.Fatalf("closed, and never exited: %d in flight, %d connections, timers %v", len(mdl.inflight), len(mdl.tcp), r.timers)
		}
		r.checkFrozen()
	})
}
