package sim_test

import (
	"net/netip"
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
