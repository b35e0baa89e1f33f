// Package spectest drives one machine by hand, as a runner would, for
// fuzz targets and table tests: Rig answers what the test tells it to and
// checks every output against the machine contract (spec/machine.go) as
// the simulator does; Prog reads a fuzzer's bytes as a program of
// operations.
package spectest

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// Rig drives one machine by hand, as a runner would, and checks every
// output against the machine contract (spec/machine.go) as the simulator
// does (sim.Violations): sends only on bound UDP sockets, dials with
// fresh ids below spec.AcceptedStream, writes, closes, aborts, pauses
// and resumes only on streams the runner holds, no write after close,
// event values that marshal to JSON, and emitted bytes never changed
// afterwards.
type Rig struct {
	T       testing.TB
	M       spec.Machine
	Now     spec.Time
	Out     []spec.Output
	Bound   map[spec.Sock]spec.Net
	Binds   []spec.Output // binds not answered yet
	Streams map[spec.Stream]*Stream
	Timers  map[spec.Timer]spec.Time
	Exited  bool
	Exit    string
	// What the last step did.
	ExitNow bool
	Sends   []spec.Output
	Events  []spec.Event
	Writes  map[spec.Stream][]byte
	Closes  map[spec.Stream]bool
	Aborts  map[spec.Stream]bool
	Dials   []spec.Output
	frozen  []frozen
}

// Stream is a stream as the runner sees it.
type Stream struct {
	Dialed, Connected bool
	Closed            bool // the machine closed its side
	EOF               bool // the peer closed its side
	Paused            bool // the machine stopped reading it
	Written           []byte
}

// frozen is emitted bytes and a copy, to check the machine never changes
// what it handed over.
type frozen struct{ ref, copy []byte }

// NewRig returns a rig for m, its clock at spec.SimEpoch.
func NewRig(t testing.TB, m spec.Machine) *Rig {
	return &Rig{T: t, M: m, Now: spec.SimEpoch, Bound: map[spec.Sock]spec.Net{},
		Streams: map[spec.Stream]*Stream{}, Timers: map[spec.Timer]spec.Time{}}
}

// Step gives the machine one input and checks what it asks for.
func (r *Rig) Step(in spec.Input) {
	r.T.Helper()
	r.Clear()
	if r.Exited {
		return
	}
	r.Out = r.M.Step(r.Now, in, r.Out[:0])
	for _, o := range r.Out {
		if len(o.Data) > 0 {
			r.frozen = append(r.frozen, frozen{o.Data, bytes.Clone(o.Data)})
		}
		switch o.Kind {
		case spec.OutBind:
			if _, dup := r.Bound[o.Sock]; dup {
				r.T.Fatalf("bind of socket %d, already bound", o.Sock)
			}
			if o.Net != spec.UDP && o.Net != spec.TCP {
				r.T.Fatalf("bind of socket %d with transport %v", o.Sock, o.Net)
			}
			r.Bound[o.Sock] = o.Net
			r.Binds = append(r.Binds, o)
		case spec.OutUnbind:
			delete(r.Bound, o.Sock)
		case spec.OutSend:
			if r.Bound[o.Sock] != spec.UDP {
				r.T.Fatalf("send on socket %d, which is not a bound UDP socket", o.Sock)
			}
			if len(o.Data) > 65507 {
				r.T.Fatalf("send of a %d-byte datagram", len(o.Data))
			}
			r.Sends = append(r.Sends, o)
		case spec.OutDial:
			if o.Stream == 0 || o.Stream&spec.AcceptedStream != 0 {
				r.T.Fatalf("dial with stream id %#x", uint64(o.Stream))
			}
			if r.Streams[o.Stream] != nil {
				r.T.Fatalf("dial reuses stream %d", o.Stream)
			}
			r.Streams[o.Stream] = &Stream{Dialed: true}
			r.Dials = append(r.Dials, o)
		case spec.OutWrite:
			st := r.Streams[o.Stream]
			if st == nil {
				r.T.Fatalf("write on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			if st.Closed {
				r.T.Fatalf("write after close on stream %#x", uint64(o.Stream))
			}
			st.Written = append(st.Written, o.Data...)
			r.Writes[o.Stream] = append(r.Writes[o.Stream], o.Data...)
		case spec.OutClose:
			st := r.Streams[o.Stream]
			if st == nil {
				r.T.Fatalf("close on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			st.Closed = true
			r.Closes[o.Stream] = true
		case spec.OutAbort:
			if r.Streams[o.Stream] == nil {
				r.T.Fatalf("abort on stream %#x, which the runner does not hold", uint64(o.Stream))
			}
			delete(r.Streams, o.Stream)
			r.Aborts[o.Stream] = true
		case spec.OutPause, spec.OutResume:
			st := r.Streams[o.Stream]
			if st == nil {
				r.T.Fatalf("%s on stream %#x, which the runner does not hold", o.Kind, uint64(o.Stream))
			}
			st.Paused = o.Kind == spec.OutPause
		case spec.OutSetTimer:
			r.Timers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(r.Timers, o.Timer)
		case spec.OutEvent:
			if _, err := json.Marshal(o.Event.Value); err != nil {
				r.T.Fatalf("event %q: value does not marshal: %v", o.Event.Name, err)
			}
			r.Events = append(r.Events, o.Event)
		case spec.OutLog:
		case spec.OutExit:
			r.Exited, r.Exit, r.ExitNow = true, o.Err, true
		default:
			r.T.Fatalf("unknown output kind %d", o.Kind)
		}
		if r.Exited {
			break // runners stop the machine at its exit
		}
	}
}

// Clear forgets what the last step did.
func (r *Rig) Clear() {
	r.Out = r.Out[:0]
	r.Sends, r.Events, r.Dials, r.ExitNow = nil, nil, nil, false
	r.Writes, r.Closes, r.Aborts = map[spec.Stream][]byte{}, map[spec.Stream]bool{}, map[spec.Stream]bool{}
}

// AnswerBinds answers every pending bind with success.
func (r *Rig) AnswerBinds() {
	for len(r.Binds) > 0 && !r.Exited {
		b := r.Binds[0]
		r.Binds = r.Binds[1:]
		a := b.Addr
		if a.Port() == 0 {
			a = netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), 49152+uint16(b.Sock))
		}
		r.Step(spec.Input{Kind: spec.InBound, Sock: b.Sock, Addr: a})
	}
}

// Fire advances the clock to the earliest timer and fires it; false if
// none is set.
func (r *Rig) Fire() bool {
	first, at, ok := Earliest(r.Timers)
	if !ok {
		return false
	}
	delete(r.Timers, first)
	r.Now = max(r.Now, at)
	r.Step(spec.Input{Kind: spec.InTimer, Timer: first})
	return true
}

// Earliest finds the timer due first among timers (set timer -> when),
// the lowest id among those due together, so that replays are
// deterministic whatever the map's order.
func Earliest(timers map[spec.Timer]spec.Time) (spec.Timer, spec.Time, bool) {
	var first spec.Timer
	var at spec.Time
	for k, v := range timers {
		if at == 0 || v < at || v == at && k < first {
			first, at = k, v
		}
	}
	return first, at, at != 0
}

// CheckFrozen fails if the machine changed bytes it had emitted.
func (r *Rig) CheckFrozen() {
	for _, f := range r.frozen {
		if !bytes.Equal(f.ref, f.copy) {
			r.T.Fatalf("the machine changed %d bytes after emitting them", len(f.copy))
		}
	}
}

// Accept gives the machine the n-th accepted connection, id
// spec.AcceptedStream|n on listening socket sock from addr, and fails the
// test unless the machine refuses it (aborts it at once) exactly when
// full, the model's "at its connection limit".
func (r *Rig) Accept(sock spec.Sock, n int, addr netip.AddrPort, full bool) spec.Stream {
	r.T.Helper()
	id := spec.AcceptedStream | spec.Stream(n)
	r.Streams[id] = &Stream{}
	r.Step(spec.Input{Kind: spec.InAccepted, Sock: sock, Stream: id, Addr: addr})
	if full != r.Aborts[id] {
		r.T.Fatalf("connection %d (at the limit: %v): refused %v", n, full, r.Aborts[id])
	}
	return id
}

// Only fails if the last step did anything but log.
func (r *Rig) Only(what string) {
	r.T.Helper()
	for _, o := range r.Out {
		if o.Kind != spec.OutLog {
			r.T.Fatalf("%s drew %v", what, o.Kind)
		}
	}
}

// Prog reads a fuzzer's bytes as a program of operations.
type Prog []byte

func (p *Prog) Byte() byte {
	if len(*p) == 0 {
		return 0
	}
	b := (*p)[0]
	*p = (*p)[1:]
	return b
}

// Chunk takes up to max bytes, as many as the next byte says.
func (p *Prog) Chunk(max int) []byte {
	n := min(int(p.Byte())%(max+1), len(*p))
	c := (*p)[:n:n]
	*p = (*p)[n:]
	return c
}

// Stream picks, as the next byte says, one of the streams accepted so
// far (ids, in accept order), or the first one to come if there is none.
func (p *Prog) Stream(ids []spec.Stream) spec.Stream {
	if len(ids) == 0 {
		return spec.AcceptedStream | 1
	}
	return ids[int(p.Byte())%len(ids)]
}

// Seq builds a seed program: a byte is itself, a string is a chunk (its
// length, then its bytes).
func Seq(parts ...any) []byte {
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

// Counter returns m's counter name, and fails the test if m has none:
// a misspelt name must not read as a zero.
func Counter(t testing.TB, m spec.Inspector, name string) uint64 {
	t.Helper()
	for _, c := range m.Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	t.Fatalf("no counter %q", name)
	return 0
}
