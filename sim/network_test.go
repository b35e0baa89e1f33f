package sim_test

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// Jitter delays a datagram by exactly the amount its delivery reports,
// on top of both hops' propagation and serialisation, and reorders: on a
// loss-free link with no queueing (sends 1 ms apart on an uplink that
// takes 128 µs per datagram, an unlimited downlink), each datagram
// arrives Up.Delay + tx + Down.Delay + Jitter after it was sent, and its
// Extra is its Jitter.
func TestJitterDelaysByWhatItReports(t *testing.T) {
	const n = 100
	up := sim.Dir{Rate: 8e6, Delay: 5 * time.Millisecond}
	down := sim.Dir{Delay: 3 * time.Millisecond, Jitter: 2 * time.Millisecond}
	sent := map[uint64]spec.Time{}
	var delivered []sim.NetEvent
	s, _, b := pair(t, sim.Config{Seed: 5, Link: sim.Link{Up: up, Down: down},
		Faults: sim.Faults{Jitter: 10 * time.Millisecond},
		OnNet: func(ev sim.NetEvent) {
			switch ev.Kind {
			case sim.NetSend:
				sent[ev.ID] = ev.T
			case sim.NetDeliver:
				delivered = append(delivered, ev)
			default:
				t.Errorf("unexpected network event %v: %+v", ev.Kind, ev)
			}
		}})
	for i := range n {
		s.Command(time.Duration(i)*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 100)})
	}
	s.Run(time.Second)
	if len(delivered) != n || len(b.inputs(spec.InDatagram)) != n {
		t.Fatalf("%d datagrams delivered (b got %d), want %d", len(delivered), len(b.inputs(spec.InDatagram)), n)
	}
	tx := 128 * time.Microsecond // 100 bytes and 28 of headers at 8 Mbit/s
	reordered, jittered := 0, 0
	var last uint64
	for _, ev := range delivered {
		at, ok := sent[ev.ID]
		if !ok {
			t.Fatalf("packet %d delivered, never sent", ev.ID)
		}
		if ev.Jitter < 0 || ev.Jitter >= 12*time.Millisecond {
			t.Errorf("packet %d: jitter %v outside [0, 12ms)", ev.ID, ev.Jitter)
		}
		if want := up.Delay + tx + down.Delay + ev.Jitter; ev.T.Sub(at) != want {
			t.Fatalf("packet %d took %v, want %v (delays, serialisation and its %v of jitter)", ev.ID, ev.T.Sub(at), want, ev.Jitter)
		}
		if ev.Extra != ev.Jitter {
			t.Fatalf("packet %d: extra delay %v, want its jitter %v (nothing queued)", ev.ID, ev.Extra, ev.Jitter)
		}
		if ev.Jitter > 2*time.Millisecond {
			jittered++ // more than the downlink alone can add
		}
		if ev.ID < last {
			reordered++
		}
		last = max(last, ev.ID)
	}
	t.Logf("%d of %d datagrams overtaken, %d jittered beyond 2 ms", reordered, n, jittered)
	if reordered == 0 || jittered < n/2 {
		t.Errorf("%d datagrams overtaken, %d jittered beyond the downlink's 2 ms: the run does not test jitter", reordered, jittered)
	}
}

// A datagram on an idle rate-limited link is delayed by nothing beyond
// both hops' propagation and serialisation (Extra 0); one sent with it
// waits one serialisation on the uplink, and its Extra says exactly that.
func TestExtraIsQueueing(t *testing.T) {
	d := sim.Dir{Rate: 8e6, Delay: 5 * time.Millisecond}
	var got []sim.NetEvent
	s, _, _ := pair(t, sim.Config{Link: sim.Symmetric(d), OnNet: func(ev sim.NetEvent) {
		if ev.Kind == sim.NetDeliver {
			got = append(got, ev)
		}
	}})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
	s.Command(time.Second, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
	s.Command(time.Second, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
	s.Run(2 * time.Second)
	tx := 1028 * time.Microsecond
	want := []struct{ at, extra time.Duration }{
		{2*tx + 10*time.Millisecond, 0},
		{time.Second + 2*tx + 10*time.Millisecond, 0},
		{time.Second + 3*tx + 10*time.Millisecond, tx},
	}
	if len(got) != len(want) {
		t.Fatalf("%d datagrams delivered, want %d", len(got), len(want))
	}
	for i, w := range want {
		if at := got[i].T.Sub(spec.SimEpoch); at != w.at || got[i].Extra != w.extra || got[i].Jitter != 0 {
			t.Errorf("datagram %d arrived at %v with extra delay %v and jitter %v, want %v, %v and 0", i, at, got[i].Extra, got[i].Jitter, w.at, w.extra)
		}
	}
}

// Incast: four senders with unlimited uplinks each send two datagrams to
// one receiver at once; its 1 Mbit/s downlink holds three and tail-drops
// the other five, each reported as dropped there.
func TestDownlinkTailDrop(t *testing.T) {
	var drops []sim.NetEvent
	s := sim.New(sim.Config{Link: sim.Link{Down: sim.Dir{Rate: 1e6, Queue: 3 * 1028}}, OnNet: func(ev sim.NetEvent) {
		if ev.Kind.Dropped() {
			drops = append(drops, ev)
		}
	}})
	r := &probe{}
	rn := s.MustAddNode(sim.NodeSpec{Name: "r", New: func() spec.Machine { return r }})
	to := netip.AddrPortFrom(rn.Addr, 9).String()
	for _, name := range []string{"s1", "s2", "s3", "s4"} {
		s.MustAddNode(sim.NodeSpec{Name: name, New: func() spec.Machine { return &probe{} }})
		for range 2 {
			s.Command(0, name, spec.Command{Name: "send", Args: []string{to}, Data: make([]byte, 1000)})
		}
	}
	s.Run(time.Second)
	if got := len(r.inputs(spec.InDatagram)); got != 3 {
		t.Errorf("r got %d datagrams, want the 3 its downlink holds", got)
	}
	if len(drops) != 5 {
		t.Fatalf("%d drops, want 5", len(drops))
	}
	for _, ev := range drops {
		if ev.Kind != sim.NetQueueDrop || ev.Note != "downlink queue full" || ev.To.Addr() != rn.Addr {
			t.Errorf("drop %v %q to %v, want a queue drop at r's full downlink", ev.Kind, ev.Note, ev.To)
		}
	}
}

// Each direction of a path takes the sender's uplink delay and the
// receiver's downlink delay, for datagrams and for a stream's handshake
// and reset alike. With four different delays, a direction that took
// one node's two delays, or one direction's delay both ways, shows.
func TestDelayIsPerDirection(t *testing.T) {
	aLink := sim.Link{Up: sim.Dir{Delay: time.Millisecond}, Down: sim.Dir{Delay: 10 * time.Millisecond}}
	bLink := sim.Link{Up: sim.Dir{Delay: 2 * time.Millisecond}, Down: sim.Dir{Delay: 20 * time.Millisecond}}
	ab, ba := aLink.Up.Delay+bLink.Down.Delay, bLink.Up.Delay+aLink.Down.Delay
	const dialAt, crashAt = 100 * time.Millisecond, 200 * time.Millisecond
	s := sim.New(sim.Config{Faults: sim.Faults{Crashes: []sim.Crash{{Node: "b", At: crashAt}}}})
	a, b := &probe{}, &probe{}
	na := s.MustAddNode(sim.NodeSpec{Name: "a", Link: &aLink, New: func() spec.Machine { return a }})
	s.MustAddNode(sim.NodeSpec{Name: "b", Link: &bLink, New: func() spec.Machine { return b }})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("to b")})
	s.Command(0, "b", spec.Command{Name: "send", Args: []string{netip.AddrPortFrom(na.Addr, 9).String()}, Data: []byte("to a")})
	s.Command(dialAt, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Run(time.Second)
	for _, c := range []struct {
		what string
		p    *probe
		kind spec.InKind
		want time.Duration
	}{
		{"b gets a's datagram", b, spec.InDatagram, ab},
		{"a gets b's datagram", a, spec.InDatagram, ba},
		{"a hears it connected (SYN there, SYN-ACK back)", a, spec.InConnected, dialAt + ab + ba},
		{"b hears it accepted (a's ACK there too)", b, spec.InAccepted, dialAt + ab + ba + ab},
		{"a hears b's crash reset the stream", a, spec.InStreamClosed, crashAt + ba},
	} {
		if got := c.p.inputs(c.kind); len(got) != 1 || got[0].at.Sub(spec.SimEpoch) != c.want {
			t.Errorf("%s: %+v, want once at %v", c.what, got, c.want)
		}
	}
}

// A packet leaves its FIFO the instant its serialisation ends: the next
// one, arriving then, finds the queue empty; arriving a nanosecond
// earlier, it finds the queue full. (1000 bytes at 8000 bit/s take
// exactly 1 s, on a's uplink and then on b's downlink.)
func TestQueueFreesAtDeparture(t *testing.T) {
	for _, tc := range []struct {
		second    time.Duration
		delivered int
	}{
		{time.Second, 2},
		{time.Second - time.Nanosecond, 1},
	} {
		drops := 0
		s, _, b := pair(t, sim.Config{UDPOverhead: -1, Link: sim.Symmetric(sim.Dir{Rate: 8000, Queue: 1000}), OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetQueueDrop {
				drops++
			}
		}})
		for _, at := range []time.Duration{0, tc.second} {
			s.Command(at, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
		}
		s.Run(time.Minute)
		if n := len(b.inputs(spec.InDatagram)); n != tc.delivered || drops != 2-tc.delivered {
			t.Errorf("second datagram %v after the first: %d delivered, %d dropped; want %d and %d", tc.second, n, drops, tc.delivered, 2-tc.delivered)
		}
	}
}

// A partition cuts its side off in both directions, whichever side
// sends, until it heals; one with End 0 never heals.
func TestPartitionCutsBothWays(t *testing.T) {
	const during, after = 150 * time.Millisecond, 5 * time.Second
	for _, side := range []string{"a", "b"} {
		for _, from := range []string{"a", "b"} {
			for _, end := range []time.Duration{200 * time.Millisecond, 0} {
				cuts := 0
				cfg := sim.Config{Faults: sim.Faults{Partitions: []sim.Partition{{Start: 100 * time.Millisecond, End: end, Side: []string{side}}}},
					OnNet: func(ev sim.NetEvent) {
						if ev.Kind == sim.NetCut {
							cuts++
						}
					}}
				s, a, b := pair(t, cfg)
				to, rcv := bAddr, b
				if from == "b" {
					to, rcv = netip.AddrPortFrom(s.Node("a").Addr, 9), a
				}
				s.Command(during, from, spec.Command{Name: "send", Args: []string{to.String()}, Data: []byte("during")})
				s.Command(after, from, spec.Command{Name: "send", Args: []string{to.String()}, Data: []byte("after")})
				s.Run(after + time.Second)
				want, wantCuts := []string{"after"}, 1
				if end == 0 {
					want, wantCuts = nil, 2
				}
				var got []string
				for _, g := range rcv.inputs(spec.InDatagram) {
					got = append(got, string(g.in.Data))
				}
				if !slices.Equal(got, want) || cuts != wantCuts {
					t.Errorf("%s cut off until %v, %s sends: delivered %q, %d cut; want %q, %d cut", side, end, from, got, cuts, want, wantCuts)
				}
			}
		}
	}
}

// The uplink copies a datagram at most once, whichever of its own Dup
// and the fault schedule's decides it, and never copies a copy: every
// copy is of a datagram sent, and each is delivered with its copy.
func TestUplinkCopiesOnce(t *testing.T) {
	const n = 200
	sent, copies := map[uint64]bool{}, map[uint64]int{}
	delivered := 0
	s, _, _ := pair(t, sim.Config{Seed: 4, Link: sim.Link{Up: sim.Dir{Dup: 0.5}}, Faults: sim.Faults{Dup: 0.5}, OnNet: func(ev sim.NetEvent) {
		switch ev.Kind {
		case sim.NetSend:
			sent[ev.ID] = true
		case sim.NetDup:
			copies[ev.Orig]++
		case sim.NetDeliver:
			delivered++
		}
	}})
	for range n {
		s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 100)})
	}
	s.Run(time.Second)
	for orig, k := range copies {
		if !sent[orig] || k != 1 {
			t.Errorf("packet %d (sent: %v) copied %d times, want a sent one copied once", orig, sent[orig], k)
		}
	}
	if len(copies) == 0 || delivered != n+len(copies) {
		t.Errorf("%d datagrams copied, %d delivered; want some copied and each delivered with its copy", len(copies), delivered)
	}
}

// Stream segments are never tail-dropped, on the uplink or the
// downlink: a stream's window stands in for congestion control, so a
// window far larger than either queue overfills them, and every byte
// still arrives with no queue drop.
func TestStreamSegmentsNotTailDropped(t *testing.T) {
	const size = 100_000
	drops := 0
	link := sim.Link{Up: sim.Dir{Rate: 10e6, Queue: 3000}, Down: sim.Dir{Rate: 1e6, Queue: 3000}}
	s, _, b := pair(t, sim.Config{Link: link, OnNet: func(ev sim.NetEvent) {
		if ev.Kind == sim.NetQueueDrop {
			drops++
		}
	}})
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(0, "a", spec.Command{Name: "write", Data: make([]byte, size)})
	s.Run(time.Minute)
	if got := len(b.streamBytes()); got != size || drops != 0 {
		t.Errorf("b read %d bytes of %d; %d segments tail-dropped, want none", got, size, drops)
	}
}
