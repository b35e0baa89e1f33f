package rudp_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// pairNet runs a dialing and a listening endpoint against each other
// over a lossless link with a fixed one-way delay, in virtual time, and
// lets a test see (and add to) every datagram before it arrives. The
// listener plays a sink: it keeps the bytes delivered and closes when
// its peer has.
type pairNet struct {
	t      *testing.T
	now    spec.Time
	delay  time.Duration
	ep     [2]*rudp.Endpoint // 0 dials, 1 listens
	addr   [2]netip.AddrPort
	timers [2]map[spec.Timer]spec.Time
	flight []pairDatagram
	events [2][]rudp.Event
	sent   [2][]rudp.Packet // what each endpoint sent, decoded
	got    []byte           // the stream the listener received
	// tap, if set, sees every datagram just before it arrives at
	// endpoint to.
	tap func(to int, p rudp.Packet)
}

type pairDatagram struct {
	at   spec.Time
	to   int
	data []byte
}

func newPairNet(t *testing.T, cli, srv rudp.Config) *pairNet {
	return &pairNet{
		t: t, now: spec.SimEpoch, delay: time.Millisecond,
		ep:     [2]*rudp.Endpoint{rudp.NewEndpoint(cli, sock, timerBase, false), rudp.NewEndpoint(srv, sock, timerBase, true)},
		addr:   [2]netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:7000"), serverAddr},
		timers: [2]map[spec.Timer]spec.Time{{}, {}},
	}
}

// deliver hands endpoint to a datagram from the other.
func (n *pairNet) deliver(to int, data []byte) {
	n.t.Helper()
	out, ok := n.ep[to].Handle(n.now, spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: n.addr[1-to], Data: data}, nil)
	if !ok {
		n.t.Fatal("an endpoint refused a datagram on its socket")
	}
	n.settle(to, out)
}

// settle ends endpoint i's step: events, Flush, and its outputs onto
// the link and its timers.
func (n *pairNet) settle(i int, out []spec.Output) {
	n.t.Helper()
	for ev, ok := n.ep[i].Next(); ok; ev, ok = n.ep[i].Next() {
		n.events[i] = append(n.events[i], ev)
		if i == 1 {
			switch ev.Kind {
			case rudp.Data:
				n.got = append(n.got, ev.Data...)
			case rudp.PeerClosed:
				n.ep[i].Close(ev.Conn)
			}
		}
	}
	for _, o := range n.ep[i].Flush(n.now, out) {
		switch o.Kind {
		case spec.OutSend:
			var p rudp.Packet
			if err := rudp.Decode(o.Data, &p); err != nil {
				n.t.Fatalf("endpoint %d sent a datagram it cannot decode: %v", i, err)
			}
			n.sent[i] = append(n.sent[i], p)
			n.flight = append(n.flight, pairDatagram{n.now.Add(n.delay), 1 - i, o.Data})
		case spec.OutSetTimer:
			n.timers[i][o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(n.timers[i], o.Timer)
		}
	}
}

// run delivers datagrams and fires timers in time order (datagrams in
// the order sent, then timers by id) until nothing is left before
// until.
func (n *pairNet) run(until spec.Time) {
	n.t.Helper()
	for {
		at, fl := until+1, -1
		for k, d := range n.flight {
			if d.at < at {
				at, fl = d.at, k
			}
		}
		ep, tm := -1, spec.Timer(0)
		for i := range n.timers {
			for k, v := range n.timers[i] {
				if v < at || v == at && fl < 0 && (ep < 0 || i < ep || i == ep && k < tm) {
					at, fl, ep, tm = v, -1, i, k
				}
			}
		}
		if at > until {
			n.now = until
			return
		}
		n.now = max(n.now, at)
		if fl >= 0 {
			d := n.flight[fl]
			n.flight = append(n.flight[:fl], n.flight[fl+1:]...)
			if n.tap != nil {
				var p rudp.Packet
				if err := rudp.Decode(d.data, &p); err != nil {
					n.t.Fatal(err)
				}
				n.tap(d.to, p)
			}
			n.deliver(d.to, d.data)
			continue
		}
		delete(n.timers[ep], tm)
		out, ok := n.ep[ep].Handle(n.now, spec.Input{Kind: spec.InTimer, Timer: tm}, nil)
		if !ok {
			n.t.Fatalf("endpoint %d does not own timer %d it set", ep, tm)
		}
		n.settle(ep, out)
	}
}

func (n *pairNet) counter(i int, name string) uint64 {
	n.t.Helper()
	for _, c := range n.ep[i].Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	n.t.Fatalf("no counter %q", name)
	return 0
}

// An acknowledgement of a sequence number never sent (sndNxt+1, +2,
// +1000: one past what was sent is as wrong as far past it) is dropped
// and counted in rudp_bad_acks: it releases nothing (the bytes in
// flight and the session's state are as before, and it draws no
// datagram), and the transfer then completes byte for byte. The forged
// acknowledgements arrive in the middle of the transfer, while data is
// in flight, just ahead of a real acknowledgement from the receiver.
func TestAckOfUnsentDataDropped(t *testing.T) {
	n := newPairNet(t, rudp.Config{Seed: 2}, rudp.Config{Seed: 1})
	data := payload(5, 200*segRoom+77)
	id := n.ep[0].Dial(n.now, n.addr[1])
	if err := n.ep[0].Write(id, data); err != nil {
		t.Fatal(err)
	}
	n.ep[0].Close(id)
	n.settle(0, nil)
	beyond := []uint32{1, 2, 1000}
	injected := false
	n.tap = func(to int, p rudp.Packet) {
		if to != 0 || injected || p.Type != rudp.TypeSEG || p.Ack < 40 {
			return
		}
		var sndNxt uint32 // one past the highest sequence number the client sent
		for _, s := range n.sent[0] {
			if s.Type == rudp.TypeSEG && s.Flags&rudp.FlagDATA != 0 {
				sndNxt = max(sndNxt, s.Seq+1)
			}
		}
		if sndNxt <= p.Ack {
			return // nothing in flight: wait for a moment with some
		}
		injected = true
		for _, b := range beyond {
			before, _ := n.ep[0].Stats(id)
			buffered, bad, sent := n.ep[0].Buffered(id), n.counter(0, "rudp_bad_acks"), len(n.sent[0])
			forged := rudp.Packet{Type: rudp.TypeSEG, Dst: uint32(id), Ack: sndNxt + b, Wnd: p.Wnd}
			n.deliver(0, forged.Append(nil))
			after, _ := n.ep[0].Stats(id)
			if got := n.counter(0, "rudp_bad_acks"); got != bad+1 {
				t.Fatalf("ack sndNxt+%d (%d sent): rudp_bad_acks %d -> %d, want one more", b, sndNxt, bad, got)
			}
			if after != before || n.ep[0].Buffered(id) != buffered || len(n.sent[0]) != sent {
				t.Fatalf("ack sndNxt+%d (%d sent) changed the sender: %+v -> %+v, buffered %d -> %d, %d datagrams sent",
					b, sndNxt, before, after, buffered, n.ep[0].Buffered(id), len(n.sent[0])-sent)
			}
		}
	}
	n.run(n.now.Add(time.Minute))
	if !injected {
		t.Fatal("no moment with data in flight to forge an acknowledgement at")
	}
	if !bytes.Equal(n.got, data) {
		t.Fatalf("the receiver got %d bytes, not the %d sent", len(n.got), len(data))
	}
	for i, evs := range n.events {
		closed := false
		for _, ev := range evs {
			if ev.Kind == rudp.Closed {
				closed = true
				if ev.Err != "" {
					t.Fatalf("endpoint %d closed with %q", i, ev.Err)
				}
			}
		}
		if !closed {
			t.Fatalf("endpoint %d never closed: %v", i, evs)
		}
	}
	if got := n.counter(0, "rudp_bad_acks"); got != uint64(len(beyond)) {
		t.Fatalf("rudp_bad_acks = %d at the end, want %d", got, len(beyond))
	}
}
