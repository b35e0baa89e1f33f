package cs

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"net/netip"
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
	fuzzServer = netip.MustParseAddrPort("10.0.0.1:52000")
	fuzzFile   = FileSpec{Seed: 7}
)

func peerAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 40000+uint16(i))
}

// fuzzData is the first size bytes of the file the fuzz targets serve.
func fuzzData(t *testing.T, size int) []byte {
	f := fuzzFile
	f.Size = int64(size)
	b, err := Generate(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// owed is what the server owes one client.
type owed struct {
	sent    int // bytes of the file written
	pending int // bytes written since the transport last took everything
}

// FuzzServer gives the server a hostile sequence of connections,
// writability, client bytes, half-closes, resets (also of connections
// not yet accepted, and of ones it has finished with) and stale inputs.
// It writes each client nothing but the file, from its first byte, in
// order: never more than the file, never a byte that is not the file's,
// never more than one piece ahead of the transport, nothing at all for
// what a client sends; it closes a connection exactly when the whole
// file is written, with a "served" event of the file's size; it refuses
// connections beyond MaxStreams, ignores connections reset before their
// accept, never touches a stream the runner no longer holds, and holds
// state only for downloads in progress and for resets of connections
// still to be accepted.
func FuzzServer(f *testing.F) {
	const accept, writable, data, fin, reset, early, stale = 0, 1, 2, 3, 4, 5, 6
	f.Add(seq(accept, writable, 0, writable, 0, writable, 0, writable, 0), uint16(3000), uint16(1000), uint8(0))
	f.Add(seq(accept, accept, data, 0, "CHEL 51000\r\n", fin, 1, writable, 1, writable, 0, reset, 0, writable, 1, writable, 1,
		reset, 1, stale, 0, 0, "x"), uint16(2500), uint16(1200), uint8(1))
	f.Add(seq(early, accept, accept, writable, 1, early, early, accept, accept, writable, 0, writable, 0, fin, 0),
		uint16(100), uint16(60), uint8(2))
	f.Add(seq(accept, accept, accept, writable, 0, writable, 0, accept, writable, 3, writable, 3), uint16(0), uint16(1), uint8(1))
	f.Add(seq(accept, accept, accept, writable, 0, writable, 0, writable, 0, accept, writable, 1, writable, 3), uint16(30), uint16(9), uint8(1))
	f.Add(seq(accept, data, 0, "\x00\xff", fin, 0, writable, 0, writable, 0, writable, 0, reset, 0, stale, 3, 1, stale, 4, 2),
		uint16(1), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, program []byte, size, piece uint16, maxStreams uint8) {
		file := fuzzData(t, int(size%5000))
		cfg := ServerConfig{Addr: fuzzServer, Piece: 1 + int(piece%1500), MaxStreams: 1 + int(maxStreams%3)}
		s := NewServer(cfg, file)
		r := newRig(t, s)
		r.step(spec.Input{Kind: spec.InStart})
		r.answerBinds()
		if r.bound[sockListen] != spec.TCP || r.exited {
			t.Fatalf("the server did not listen: bound %v, exited %v %q", r.bound, r.exited, r.exit)
		}
		held := map[spec.Stream]*owed{}
		dead := map[spec.Stream]bool{} // reset before their accept
		var ids []spec.Stream
		accepted := 0
		var served uint64
		// wrote checks what the last step wrote on id: the next bytes of
		// the file, at most a piece ahead of the transport, then a close
		// exactly when the file is all written.
		wrote := func(id spec.Stream, what string) {
			t.Helper()
			d := held[id]
			w := r.writes[id]
			if d.sent+len(w) > len(file) || !bytes.Equal(w, file[d.sent:d.sent+len(w)]) {
				t.Fatalf("%s: wrote %d bytes at offset %d that are not the %d-byte file's", what, len(w), d.sent, len(file))
			}
			d.sent += len(w)
			d.pending += len(w)
			if d.pending > cfg.Piece {
				t.Fatalf("%s: %d bytes written ahead of the transport, the piece is %d", what, d.pending, cfg.Piece)
			}
			var servedNow []Served
			for _, ev := range r.events {
				if ev.Name == "served" {
					servedNow = append(servedNow, ev.Value.(Served))
				}
			}
			if r.closes[id] {
				if d.sent != len(file) || len(servedNow) != 1 || servedNow[0].Bytes != int64(len(file)) {
					t.Fatalf("%s: closed after %d of %d bytes, served %v", what, d.sent, len(file), servedNow)
				}
				served++
				delete(held, id)
			} else if len(w) == 0 || len(servedNow) > 0 {
				t.Fatalf("%s: neither wrote nor closed (served %v), %d of %d bytes written", what, servedNow, d.sent, len(file))
			}
		}
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
			case accept:
				accepted++
				id := spec.AcceptedStream | spec.Stream(accepted)
				ids = append(ids, id)
				if dead[id] {
					// The runner reported it reset before its accept.
					delete(dead, id)
					r.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: id, Addr: peerAddr(accepted)})
					r.only("the accept of a connection already reset")
					break
				}
				r.streams[id] = &rstream{}
				full := len(held) >= cfg.MaxStreams
				r.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: id, Addr: peerAddr(accepted)})
				if full != r.aborts[id] {
					t.Fatalf("connection %d with %d downloads (limit %d): refused %v", accepted, len(held), cfg.MaxStreams, r.aborts[id])
				}
				if !full {
					held[id] = &owed{}
					wrote(id, "accept")
				}
			case writable:
				id := pick(&p)
				if r.streams[id] == nil {
					continue
				}
				r.step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				if held[id] == nil {
					r.only("writable after the download")
					continue
				}
				held[id].pending = 0
				wrote(id, "writable")
			case data:
				id := pick(&p)
				st := r.streams[id]
				d := p.chunk(64)
				if st == nil || st.eof {
					continue
				}
				r.step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
				r.only("bytes from a client")
			case fin: // the client half-closes: it still gets the file
				id := pick(&p)
				st := r.streams[id]
				if st == nil || st.eof {
					continue
				}
				st.eof = true
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				r.only("a half-close")
			case reset: // also of a connection the server has finished with
				id := pick(&p)
				if r.streams[id] == nil {
					continue
				}
				delete(r.streams, id)
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.only("a reset")
				delete(held, id)
			case early: // the next connection is reset before its accept
				id := spec.AcceptedStream | spec.Stream(accepted+1)
				if dead[id] {
					continue
				}
				dead[id] = true
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.only("a reset before the accept")
			case stale: // input on a stream the runner does not hold
				id := spec.AcceptedStream | spec.Stream(int(p.byte())%(accepted+1)+1)
				if r.streams[id] != nil || dead[id] || int(id&^spec.AcceptedStream) > accepted {
					continue
				}
				switch p.byte() % 3 {
				case 0:
					r.step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: p.chunk(16)})
				case 1:
					r.step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				default:
					r.step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				}
				r.only("stale input")
			}
			// The server holds exactly the downloads in progress, and
			// remembers only resets of connections still to be accepted.
			if len(s.streams) != len(held) {
				t.Fatalf("the server holds %d downloads, %d are in progress", len(s.streams), len(held))
			}
			for id := range held {
				if s.streams[id] == nil {
					t.Fatalf("the server forgot the download on %#x", uint64(id))
				}
			}
			for id := range s.dead {
				if !dead[id] {
					t.Fatalf("the server remembers a reset of %#x, which is not a connection still to be accepted", uint64(id))
				}
			}
		}
		if c := s.Counters(); c[1].Value != served {
			t.Fatalf("counters %v, %d downloads served", c, served)
		}
		r.step(spec.Input{Kind: spec.InStop})
		if !r.exited || r.exit != "" {
			t.Fatalf("stop: exited %v %q", r.exited, r.exit)
		}
		r.checkFrozen()
	})
}

// FuzzClient gives the client a hostile download: a connection that
// succeeds or fails, the file's bytes or others in any pieces, an EOF or a
// reset at any point, silences, timers, a stop. It reports exactly the
// bytes that arrived ("data" events, the kept "file", the byte count and
// MD5 of "done"), says the download matches exactly when they are the
// expected file, reports "done" only at EOF, keeps no more than MaxSize,
// always has a timer set while it waits (so a silent server cannot hang
// it), exits exactly once, and exits cleanly only with the exact file.
func FuzzClient(f *testing.F) {
	const connect, good, bad, fin, reset, timer, wait, stop = 0, 1, 2, 3, 4, 5, 6, 7
	f.Add(seq(connect, good, 255, good, 255, good, 255, good, 235, fin), uint16(1000), true, uint16(0), uint8(100), false)
	f.Add(seq(connect, good, 16, bad, "junk", good, 16, fin, timer), uint16(40), true, uint16(0), uint8(0), true)
	f.Add(seq(connect, good, 48, wait, 50, good, 1, timer, wait, 250, timer, timer), uint16(200), false, uint16(0), uint8(7), false)
	f.Add(seq(connect, good, 255, good, 255, fin), uint16(1000), true, uint16(300), uint8(0), false)
	f.Add(seq(reset), uint16(10), false, uint16(0), uint8(0), false)
	f.Add(seq(connect, good, 5, reset, stop), uint16(10), true, uint16(0), uint8(1), true)
	f.Add(seq(connect, fin, timer, reset, timer), uint16(0), true, uint16(0), uint8(0), true)
	f.Add(seq(connect, good, 10, good, 10, bad, "extra", fin), uint16(20), true, uint16(0), uint8(3), false)
	f.Add(seq(connect, good, 10, fin, stop), uint16(10), false, uint16(0), uint8(0), true)
	f.Add(seq(stop), uint16(10), false, uint16(0), uint8(0), false)
	f.Fuzz(func(t *testing.T, program []byte, size uint16, keep bool, maxSize uint16, progress uint8, linger bool) {
		want := fuzzData(t, int(size%3000))
		expect := fuzzFile
		expect.Size = int64(len(want))
		cfg := ClientConfig{Server: fuzzServer, Keep: keep, Expect: &expect, Idle: time.Second, ProgressEvery: int64(progress % 64), Emit: true}
		if keep && maxSize > 0 {
			cfg.MaxSize = int64(maxSize % 4000)
		}
		if linger {
			cfg.Linger = 50 * time.Millisecond
		}
		c := NewClient(cfg, want)
		r := newRig(t, c)
		var got, emitted []byte
		var connected, eof, done, failed bool
		var last int64 // the last "progress" value
		checkEvents := func(what string) {
			t.Helper()
			for _, ev := range r.events {
				switch ev.Name {
				case "connected":
				case "data":
					emitted = append(emitted, ev.Data...)
				case "progress":
					v := ev.Value.(int64)
					if v <= last || v != int64(len(got)) {
						t.Fatalf("%s: progress %d after %d, %d bytes received", what, v, last, len(got))
					}
					last = v
				case "file":
					if !keep || !bytes.Equal(ev.Data, got) {
						t.Fatalf("%s: a %d-byte file event (keep %v), %d bytes received", what, len(ev.Data), keep, len(got))
					}
				case "done":
					d := ev.Value.(Done)
					sum := md5.Sum(got)
					match := bytes.Equal(got, want)
					if !eof || done || d.Bytes != int64(len(got)) || d.MD5 != hex.EncodeToString(sum[:]) || d.Match == nil || *d.Match != match {
						t.Fatalf("%s: done %+v (match %v) after %d bytes, eof %v, done before %v", what, d, d.Match != nil && *d.Match, len(got), eof, done)
					}
					done = true
					failed = !match
				default:
					t.Fatalf("%s: unexpected event %q", what, ev.Name)
				}
			}
			if !bytes.Equal(emitted, got) {
				t.Fatalf("%s: %d bytes received, %d reported as data", what, len(got), len(emitted))
			}
			if r.exitNow && r.exit == "" && (!done || failed) {
				t.Fatalf("%s: a clean exit, done %v, the file differs %v", what, done, failed)
			}
			if !r.exited && !done {
				if _, ok := r.timers[idleTimer]; !ok {
					t.Fatalf("%s: waiting for the file with no timer set", what)
				}
			}
		}
		r.step(spec.Input{Kind: spec.InStart})
		if len(r.dials) != 1 || r.dials[0].Addr != fuzzServer || r.dials[0].Stream != stream {
			t.Fatalf("start dialled %v", r.dials)
		}
		checkEvents("start")
		p := prog(program)
		for len(p) > 0 && !r.exited {
			r.now = r.now.Add(time.Millisecond)
			r.clear()
			st := r.streams[stream]
			switch op := p.byte() % 8; op {
			case connect:
				if st == nil || connected {
					continue
				}
				connected = true
				r.step(spec.Input{Kind: spec.InConnected, Stream: stream, Addr: fuzzServer})
			case good, bad:
				var d []byte
				if op == good { // the next bytes of the file, as many as the next byte says
					n := int(p.byte())
					d = want[min(len(got), len(want)):min(len(got)+n, len(want))]
				} else {
					d = p.chunk(255)
				}
				if st == nil || !connected || eof {
					continue
				}
				too := keep && int64(len(got)+len(d)) > c.cfg.MaxSize
				r.step(spec.Input{Kind: spec.InStreamData, Stream: stream, Data: d})
				if too != r.aborts[stream] || too != (r.exitNow && r.exit != "") {
					t.Fatalf("%d bytes past %d received, MaxSize %d (keep %v): abort %v, exit %q", len(d), len(got), c.cfg.MaxSize, keep, r.aborts[stream], r.exit)
				}
				if !too {
					got = append(got, d...)
				}
			case fin:
				if st == nil || !connected || eof {
					continue
				}
				eof = true
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: stream})
				if !r.closes[stream] {
					t.Fatalf("EOF did not close the client's side")
				}
				if match := bytes.Equal(got, want); !match != (r.exitNow && r.exit != "") || !linger && match && !r.exitNow {
					t.Fatalf("EOF after %d bytes (match %v, linger %v): exit %v %q", len(got), match, linger, r.exitNow, r.exit)
				}
			case reset:
				if st == nil {
					continue
				}
				delete(r.streams, stream)
				r.step(spec.Input{Kind: spec.InStreamClosed, Stream: stream, Err: "connection reset by peer"})
				if !done && (!r.exitNow || r.exit == "") {
					t.Fatalf("a reset during the download: exit %v %q", r.exitNow, r.exit)
				}
			case timer:
				r.fire()
			case wait:
				r.now = r.now.Add(time.Duration(p.byte()) * 10 * time.Millisecond)
			case stop:
				r.step(spec.Input{Kind: spec.InStop})
				if !r.exited || (r.exit == "") != done {
					t.Fatalf("stop, done %v: exited %v %q", done, r.exited, r.exit)
				}
			}
			checkEvents("step")
		}
		// Silence: the client gives up, or lingers and leaves.
		for i := 0; i < 10 && !r.exited && r.fire(); i++ {
			checkEvents("timer")
		}
		if !r.exited {
			t.Fatalf("the client never exited; timers %v", r.timers)
		}
		r.checkFrozen()
	})
}
