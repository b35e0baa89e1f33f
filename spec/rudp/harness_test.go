package rudp_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/netspec/netspec/spec/spectest"
)

// harness drives one dialing endpoint directly, with explicit times, and
// lets the test play its peer by hand: it records every datagram the
// endpoint sends and delivers packets the test builds, so a test decides
// exactly which segments arrive, which are lost and when acknowledgements
// come. It stands in for the embedding machine: every input is followed
// by draining the events and a Flush, and it keeps the endpoint's timers.
type harness struct {
	t      *testing.T
	ep     *rudp.Endpoint
	cfg    rudp.Config // with defaults
	now    spec.Time
	timers map[spec.Timer]spec.Time
	sent   []sentPkt // datagrams sent since the last take
	events []rudp.Event
	evAt   []spec.Time
	id     rudp.ConnID
	wnd    uint32 // the window the fake peer announces
}

// sentPkt is one datagram the endpoint sent, decoded, and when.
type sentPkt struct {
	at  spec.Time
	p   rudp.Packet
	raw []byte
}

func (s sentPkt) String() string {
	return fmt.Sprintf("%v: %s", s.at.Sub(spec.SimEpoch), rudp.Describe(s.raw))
}

var hPeer = netip.MustParseAddrPort("10.0.0.2:7000")

// hPeerID is the fake peer's session id.
const hPeerID uint32 = 0x5eed0001

// segRoom is a data segment's payload at the default datagram size and
// without SACK blocks: 1452 - 24.
const segRoom = 1452 - rudp.SegHeaderLen

func newHarness(t *testing.T, cfg rudp.Config) *harness {
	t.Helper()
	ep := rudp.NewEndpoint(cfg, sock, timerBase, false)
	return &harness{t: t, ep: ep, cfg: ep.Config(), now: spec.SimEpoch, timers: map[spec.Timer]spec.Time{}, wnd: 64}
}

func (h *harness) apply(out []spec.Output) {
	h.t.Helper()
	for _, o := range out {
		switch o.Kind {
		case spec.OutSend:
			if o.Addr != hPeer {
				h.t.Fatalf("sent to %v, the peer is %v", o.Addr, hPeer)
			}
			var p rudp.Packet
			if err := rudp.Decode(o.Data, &p); err != nil {
				h.t.Fatalf("the endpoint sent a datagram it cannot decode: %v", err)
			}
			h.sent = append(h.sent, sentPkt{h.now, p, o.Data})
		case spec.OutSetTimer:
			if o.At < h.now {
				h.t.Fatalf("timer set in the past: %v before now", h.now.Sub(o.At))
			}
			h.timers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(h.timers, o.Timer)
		}
	}
}

// settle ends a step as an embedding machine does: events, then Flush.
func (h *harness) settle(out []spec.Output) {
	h.t.Helper()
	h.drain()
	out = h.ep.Flush(h.now, out)
	h.drain()
	h.apply(out)
}

func (h *harness) drain() {
	for ev, ok := h.ep.Next(); ok; ev, ok = h.ep.Next() {
		h.events = append(h.events, ev)
		h.evAt = append(h.evAt, h.now)
	}
}

// advance moves the clock to to, firing every timer due on the way at
// its exact time.
func (h *harness) advance(to spec.Time) {
	h.t.Helper()
	same, last := 0, spec.Time(0)
	for {
		var tm spec.Timer
		at := spec.Time(0)
		for k, v := range h.timers {
			if at == 0 || v < at || (v == at && k < tm) {
				tm, at = k, v
			}
		}
		if at == 0 || at > to {
			break
		}
		delete(h.timers, tm)
		h.now = max(h.now, at)
		if h.now == last {
			if same++; same > 100 {
				h.t.Fatalf("timer livelock: fired 100 times at %v", h.now.Sub(spec.SimEpoch))
			}
		} else {
			same, last = 0, h.now
		}
		out, ok := h.ep.Handle(h.now, spec.Input{Kind: spec.InTimer, Timer: tm}, nil)
		if !ok {
			h.t.Fatalf("the endpoint does not own timer %d it set", tm)
		}
		h.settle(out)
	}
	h.now = max(h.now, to)
}

// wait advances the clock by d.
func (h *harness) wait(d time.Duration) { h.t.Helper(); h.advance(h.now.Add(d)) }

// deliver hands the endpoint p from the peer (a SEG to our session
// unless p says otherwise).
func (h *harness) deliver(p rudp.Packet) {
	h.t.Helper()
	if p.Type == 0 {
		p.Type = rudp.TypeSEG
	}
	if p.Dst == 0 && p.Type != rudp.TypeSYN {
		p.Dst = uint32(h.id)
	}
	out, ok := h.ep.Handle(h.now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: hPeer, Data: p.Append(nil)}, nil)
	if !ok {
		h.t.Fatal("the endpoint refused a datagram on its socket")
	}
	h.settle(out)
}

// establish dials, answers the SYN after rtt with a SYN-ACK announcing
// wnd, and returns when the SYN-ACK has been handled (segment 0, with the
// cookie and any queued bytes, has then been sent).
func (h *harness) establish(rtt time.Duration, wnd uint32) {
	h.t.Helper()
	h.dial()
	h.wait(rtt)
	h.synAck(wnd)
}

func (h *harness) dial() {
	h.t.Helper()
	h.id = h.ep.Dial(h.now, hPeer)
	h.settle(nil)
}

func (h *harness) synAck(wnd uint32) {
	h.t.Helper()
	h.wnd = wnd
	h.deliver(rudp.Packet{Type: rudp.TypeSYNACK, Dst: uint32(h.id), Src: hPeerID, MSS: 1452, Wnd: wnd, TS: 1})
	if len(h.events) == 0 || h.events[len(h.events)-1].Kind != rudp.Connected {
		h.t.Fatalf("no Connected event after the SYN-ACK: %v", h.events)
	}
}

func (h *harness) write(n int) {
	h.t.Helper()
	if err := h.ep.Write(h.id, make([]byte, n)); err != nil {
		h.t.Fatalf("Write: %v", err)
	}
	h.settle(nil)
}

func (h *harness) close() {
	h.t.Helper()
	h.ep.Close(h.id)
	h.settle(nil)
}

// take returns the datagrams sent since the last take.
func (h *harness) take() []sentPkt {
	s := h.sent
	h.sent = nil
	return s
}

// ackOpt adds to an acknowledgement built by ack.
type ackOpt func(*rudp.Packet)

// echo makes the acknowledgement echo a transmission's stamp.
func echo(stamp uint16) ackOpt {
	return func(p *rudp.Packet) { p.Flags |= rudp.FlagECHO; p.Echo = stamp }
}

// sack adds the block [s, e).
func sack(s, e uint32) ackOpt {
	return func(p *rudp.Packet) { p.SACK[p.NSACK] = rudp.Block{Start: s, End: e}; p.NSACK++ }
}

// window announces w instead of the harness's window.
func window(w uint32) ackOpt { return func(p *rudp.Packet) { p.Wnd = w } }

// ack delivers a pure acknowledgement of everything below n.
func (h *harness) ack(n uint32, opts ...ackOpt) {
	h.t.Helper()
	p := rudp.Packet{Type: rudp.TypeSEG, Ack: n, Wnd: h.wnd}
	for _, o := range opts {
		o(&p)
	}
	h.deliver(p)
}

func (h *harness) stats() rudp.Stats {
	h.t.Helper()
	s, ok := h.ep.Stats(h.id)
	if !ok {
		h.t.Fatal("the session is gone")
	}
	return s
}

func (h *harness) counter(name string) uint64 { return spectest.Counter(h.t, h.ep, name) }

// closed returns the session's Closed event and when it came.
func (h *harness) closed() (rudp.Event, spec.Time, bool) {
	for i, ev := range h.events {
		if ev.Kind == rudp.Closed && ev.Conn == h.id {
			return ev, h.evAt[i], true
		}
	}
	return rudp.Event{}, 0, false
}

// dataSegs keeps the datagrams that carry a sequence number.
func dataSegs(ps []sentPkt) []sentPkt {
	var d []sentPkt
	for _, s := range ps {
		if s.p.Type == rudp.TypeSEG && s.p.Flags&rudp.FlagDATA != 0 {
			d = append(d, s)
		}
	}
	return d
}

// pings keeps the pure acknowledgements that ask for an answer.
func pings(ps []sentPkt) []sentPkt {
	var d []sentPkt
	for _, s := range ps {
		if s.p.Type == rudp.TypeSEG && s.p.Flags&rudp.FlagDATA == 0 && s.p.Flags&rudp.FlagPING != 0 {
			d = append(d, s)
		}
	}
	return d
}

func seqs(ps []sentPkt) []uint32 {
	var s []uint32
	for _, p := range ps {
		s = append(s, p.p.Seq)
	}
	return s
}

// ms is a duration in (possibly fractional) milliseconds, for tables.
func ms(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
