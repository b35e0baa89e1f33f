package sim_test

import (
	"bytes"
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"pgregory.net/rapid"
)

func pair(_ any, cfg sim.Config) (*sim.Sim, *probe, *probe) {
	return pairOn(nil, cfg)
}

// pairOn is pair with the simulator built by net (nil: sim.New), so that
// a rapid property's failing run leaves its trace.
func pairOn(net *simtest.Net, cfg sim.Config) (*sim.Sim, *probe, *probe) {
	cfg.Protocol = probeProtocol.Name
	var s *sim.Sim
	if net != nil {
		s = net.New(cfg)
	} else {
		s = sim.New(cfg)
	}
	a, b := &probe{}, &probe{closeOnEOF: true}
	s.MustAddNode(sim.NodeSpec{Name: "a", Protocol: probeProtocol.Name, Role: "probe", Config: probeConfig{}, New: func() spec.Machine { return a }})
	s.MustAddNode(sim.NodeSpec{Name: "b", Protocol: probeProtocol.Name, Role: "probe", Config: probeConfig{CloseOnEOF: true}, New: func() spec.Machine { return b }})
	return s, a, b
}

var bAddr = netip.MustParseAddrPort("10.0.0.2:9")

// A datagram is serialised on the sender's uplink and the receiver's
// downlink and delayed by both links: here 1028 bytes at 8 Mbit/s is
// 1.028 ms per hop, plus 5 ms each way.
func TestSerialisationAndDelay(t *testing.T) {
	d := sim.Dir{Rate: 8e6, Delay: 5 * time.Millisecond}
	s, _, b := pair(t, sim.Config{Link: sim.Symmetric(d)})
	for i := 0; i < 3; i++ {
		s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
	}
	s.Run(time.Second)
	got := b.inputs(spec.InDatagram)
	if len(got) != 3 {
		t.Fatalf("b got %d datagrams, want 3", len(got))
	}
	tx := 1028 * time.Microsecond
	for i, g := range got {
		// FIFO: the i-th leaves the uplink after (i+1) transmissions; the
		// downlink is never the bottleneck, so it adds exactly one.
		want := time.Duration(i+1)*tx + 5*time.Millisecond + tx + 5*time.Millisecond
		if at := g.at.Sub(spec.SimEpoch); at != want {
			t.Errorf("datagram %d arrived at %v, want %v", i, at, want)
		}
	}
}

// The receiver's downlink applies its own duplication, jitter and loss
// (they were once read only on the uplink: Down.Dup and Down.Jitter did
// nothing).
func TestDownlinkFaults(t *testing.T) {
	const n = 200
	send := func(down sim.Dir) (*probe, int) {
		t.Helper()
		dups := 0
		s, _, b := pair(t, sim.Config{Seed: 3, Link: sim.Link{Up: sim.Dir{Delay: time.Millisecond}, Down: down}, OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetDup {
				dups++
			}
		}})
		for range n {
			s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 100)})
		}
		s.Run(time.Second)
		return b, dups
	}
	if b, dups := send(sim.Dir{Delay: time.Millisecond, Dup: 1}); len(b.inputs(spec.InDatagram)) != 2*n || dups != n {
		t.Errorf("Down.Dup 1: %d datagrams delivered, %d duplications, want %d and %d", len(b.inputs(spec.InDatagram)), dups, 2*n, n)
	}
	if b, _ := send(sim.Dir{Delay: time.Millisecond, Loss: 1}); len(b.inputs(spec.InDatagram)) != 0 {
		t.Errorf("Down.Loss 1: %d datagrams delivered", len(b.inputs(spec.InDatagram)))
	}
	b, _ := send(sim.Dir{Delay: time.Millisecond, Jitter: 10 * time.Millisecond})
	got := b.inputs(spec.InDatagram)
	if len(got) != n {
		t.Fatalf("Down.Jitter: %d datagrams delivered, want %d", len(got), n)
	}
	late, lo, hi := 0, 2*time.Millisecond, 12*time.Millisecond
	for _, g := range got {
		at := g.at.Sub(spec.SimEpoch)
		if at < lo || at >= hi {
			t.Fatalf("Down.Jitter: a datagram arrived at %v, outside [%v, %v)", at, lo, hi)
		}
		if at > lo+time.Millisecond {
			late++
		}
	}
	if late < n/2 {
		t.Errorf("Down.Jitter 10ms: only %d of %d datagrams later than 1 ms past the delay", late, n)
	}
}

// A full FIFO tail-drops datagrams: one is queued while the bytes
// already queued plus its own fit the queue, so 3 of 1028 bytes fill a
// queue of 3×1028 exactly, and neither one byte less nor 500 more holds
// another.
func TestTailDrop(t *testing.T) {
	for _, tc := range []struct {
		queue, delivered int
	}{
		{3*1028 - 1, 2},
		{3 * 1028, 3},
		{3*1028 + 500, 3},
	} {
		d := sim.Dir{Rate: 1e6, Queue: tc.queue}
		var drops int
		s, _, b := pair(t, sim.Config{Link: sim.Symmetric(d), OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetQueueDrop {
				drops++
			}
		}})
		for i := 0; i < 5; i++ {
			s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 1000)})
		}
		s.Run(time.Second)
		if n := len(b.inputs(spec.InDatagram)); n != tc.delivered || drops != 5-tc.delivered {
			t.Errorf("queue %d bytes: delivered %d, dropped %d; want %d and %d", tc.queue, n, drops, tc.delivered, 5-tc.delivered)
		}
	}
}

// A stream delivers exactly the bytes written, in order, then EOF, over
// any loss, duplication and reordering, with any segment and window size.
func TestStreamIsReliable(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		cfg := sim.Config{
			Seed:   rapid.Uint64().Draw(t, "seed"),
			Link:   sim.Symmetric(sim.Dir{Rate: 1e6 * float64(rapid.IntRange(1, 100).Draw(t, "mbit")), Delay: time.Millisecond}),
			MSS:    rapid.IntRange(1, 3000).Draw(t, "mss"),
			Window: rapid.IntRange(1, 200000).Draw(t, "window"),
			Faults: sim.DrawFaults(t, sim.FaultBounds{MaxLoss: 0.3, MaxDup: 0.3, MaxJitter: 10 * time.Millisecond}),
		}
		s, a, b := pairOn(net, cfg)
		s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
		var want []byte
		writes := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 1, 5000), 0, 10).Draw(t, "writes")
		for i, w := range writes {
			want = append(want, w...)
			s.Command(time.Duration(i)*time.Millisecond, "a", spec.Command{Name: "write", Data: w})
		}
		s.Command(20*time.Millisecond, "a", spec.Command{Name: "close"})
		// b stops and starts reading at random, and reads for good at
		// 30 ms: what it holds meanwhile comes later, in order.
		for i, at := range rapid.SliceOfN(rapid.IntRange(0, 29), 0, 6).Draw(t, "pauses") {
			cmd := "pause"
			if i%2 == 1 {
				cmd = "resume"
			}
			s.Command(time.Duration(at)*time.Millisecond, "b", spec.Command{Name: cmd})
		}
		s.Command(30*time.Millisecond, "b", spec.Command{Name: "resume"})
		streamIsReliable(t, s, a, b, want, len(writes))
	}, nil)
}

// A receiver that pauses a stream is handed none of it until it resumes,
// and closes the sender's window: the sender has at most Window bytes
// beyond what was read outstanding, and is not told its writes were taken.
func TestPauseHoldsAndClosesTheWindow(t *testing.T) {
	const window = 64 << 10
	s, a, b := pair(t, sim.Config{Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: time.Millisecond}), Window: window})
	want := make([]byte, 1<<20)
	for i := range want {
		want[i] = byte(i * 7)
	}
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(0, "a", spec.Command{Name: "write", Data: want})
	s.Command(0, "a", spec.Command{Name: "close"})
	pauseAt, resumeAt := spec.SimEpoch.Add(20*time.Millisecond), spec.SimEpoch.Add(time.Second)
	s.Command(pauseAt.Sub(spec.SimEpoch), "b", spec.Command{Name: "pause"})
	s.Command(resumeAt.Sub(spec.SimEpoch), "b", spec.Command{Name: "resume"})
	s.Run(10 * time.Second)
	read := 0
	for _, g := range b.inputs(spec.InStreamData) {
		if pauseAt.Before(g.at) && g.at.Before(resumeAt) {
			t.Fatalf("b was handed %d bytes at %v, while paused", len(g.in.Data), g.at.Sub(spec.SimEpoch))
		}
		if !pauseAt.Before(g.at) {
			read += len(g.in.Data)
		}
	}
	if read == 0 || read >= len(want)-window {
		t.Fatalf("b read %d bytes before pausing; the test needs some, and more than a window left", read)
	}
	if got := b.streamBytes(); !bytes.Equal(got, want) {
		t.Fatalf("b read %d bytes of %d after resuming (equal prefix: %v)", len(got), len(want), bytes.HasPrefix(want, got))
	}
	if w := a.inputs(spec.InStreamWritable); len(w) == 0 || w[0].at.Before(resumeAt) {
		t.Fatalf("a was told its writes were taken at %v, before b resumed", w)
	}
	if c := b.inputs(spec.InStreamClosed); len(c) != 1 || c[0].in.Err != "" || c[0].at.Before(resumeAt) {
		t.Fatalf("b's closes %v: want one EOF, after it resumed", c)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	// What a sent before b resumed: what b read and the window b held,
	// the last segment overshooting it.
	sent := 0
	s2, _, _ := pair(t, sim.Config{Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: time.Millisecond}), Window: window, OnNet: func(ev sim.NetEvent) {
		if ev.Kind == sim.NetSend && ev.Proto == spec.TCP && ev.From.Addr() == netip.MustParseAddr("10.0.0.1") && ev.Flags == "" {
			sent += ev.Len - 40
		}
	}})
	s2.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s2.Command(0, "a", spec.Command{Name: "write", Data: want})
	s2.Command(pauseAt.Sub(spec.SimEpoch), "b", spec.Command{Name: "pause"})
	s2.Run(resumeAt.Sub(spec.SimEpoch) - time.Millisecond)
	if sent == 0 || sent > read+window+1460 {
		t.Fatalf("a sent %d bytes before b resumed; b had read %d, window %d", sent, read, window)
	}
}

type fataler interface{ Fatalf(string, ...any) }

// streamIsReliable runs s and judges the run as TestStreamIsReliable
// does, for the property and for the runs kept under
// testdata/regressions: b read exactly the writes' bytes, in order,
// then one EOF; a saw b's EOF; and a heard its writes were taken.
func streamIsReliable(t fataler, s *sim.Sim, a, b *probe, want []byte, writes int) {
	s.Run(10 * time.Minute)
	if got := b.streamBytes(); !bytes.Equal(got, want) {
		t.Fatalf("b read %d bytes, a wrote %d (equal prefix: %v)", len(got), len(want), bytes.HasPrefix(want, got))
	}
	closes := b.inputs(spec.InStreamClosed)
	if len(closes) != 1 || closes[0].in.Err != "" {
		t.Fatalf("b saw closes %v, want one EOF", closes)
	}
	if ac := a.inputs(spec.InStreamClosed); len(ac) != 1 || ac[0].in.Err != "" {
		t.Fatalf("a saw closes %v, want one EOF (b closes on EOF)", ac)
	}
	if writes > 0 && len(a.inputs(spec.InStreamWritable)) == 0 {
		t.Fatalf("a was never told its writes were taken")
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
}

// A stream's throughput is the link rate less header overhead: 1 MB over
// 10 Mbit/s with 1460-byte segments and 40-byte headers.
func TestStreamThroughput(t *testing.T) {
	s, a, b := pair(t, sim.Config{Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond})})
	const size = 1_000_000
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(0, "a", spec.Command{Name: "write", Data: make([]byte, size)})
	s.Command(0, "a", spec.Command{Name: "close"})
	s.Run(time.Minute)
	if got := len(b.streamBytes()); got != size {
		t.Fatalf("got %d bytes", got)
	}
	eof := b.inputs(spec.InStreamClosed)[0].at.Sub(spec.SimEpoch)
	// Handshake (1 RTT = 20 ms), then serialisation of the bytes with
	// headers, then one more hop's serialisation and the one-way delay.
	serial := float64(size) * 1500 / 1460 * 8 / 10e6
	ideal := 20*time.Millisecond + time.Duration(serial*float64(time.Second)) + 10*time.Millisecond
	if ratio := float64(eof) / float64(ideal); ratio < 0.99 || ratio > 1.02 {
		t.Fatalf("1 MB took %v, ideal %v (ratio %.3f)", eof, ideal, ratio)
	}
	_ = a
}

// A lost segment is resent about a round trip after it was lost, once
// three later segments are acknowledged (SACK, RFC 6675), not after the
// RTO; only losses at the tail of the transfer, with nothing after them
// to be acknowledged, wait for the RTO.
func TestLostSegmentsResentFast(t *testing.T) {
	lostAt := map[uint64]time.Duration{} // segment offset -> when lost
	var fast, slow, tail int
	const size = 2_000_000
	cfg := sim.Config{Seed: 3, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}),
		Faults: sim.Faults{Loss: 0.01}}
	cfg.OnNet = func(ev sim.NetEvent) {
		if ev.Proto != spec.TCP || len(ev.Data) == 0 {
			return
		}
		at := ev.T.Sub(spec.SimEpoch)
		switch ev.Kind {
		case sim.NetLoss:
			lostAt[ev.Seq] = at
		case sim.NetSend:
			l, ok := lostAt[ev.Seq]
			if !ok {
				return
			}
			delete(lostAt, ev.Seq)
			switch d := at - l; {
			case d < 100*time.Millisecond:
				fast++
			case ev.Seq+uint64(len(ev.Data)) > size-4*1460:
				tail++
			default:
				slow++
			}
		}
	}
	s, _, b := pair(t, cfg)
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(0, "a", spec.Command{Name: "write", Data: make([]byte, size)})
	s.Command(0, "a", spec.Command{Name: "close"})
	s.Run(time.Minute)
	if got := len(b.streamBytes()); got != size {
		t.Fatalf("got %d bytes of %d", got, size)
	}
	t.Logf("resent within 100 ms of the loss: %d; after: %d mid-stream, %d at the tail", fast, slow, tail)
	if fast < 10 || slow > fast/10 {
		t.Fatalf("%d losses resent fast, %d waited for the RTO mid-stream", fast, slow)
	}
}

// A partition resets the streams that cross it; after it heals, new
// connections work.
func TestPartitionResetsAndHeals(t *testing.T) {
	cfg := sim.Config{Faults: sim.Faults{Partitions: []sim.Partition{{Start: 100 * time.Millisecond, End: 200 * time.Millisecond, Side: []string{"b"}}}}}
	s, a, b := pair(t, cfg)
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(150*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("cut")})
	s.Command(300*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("healed")})
	s.Run(time.Second)
	for _, p := range []*probe{a, b} {
		c := p.inputs(spec.InStreamClosed)
		if len(c) != 1 || c[0].in.Err == "" || c[0].at.Sub(spec.SimEpoch) != 100*time.Millisecond {
			t.Fatalf("closes %+v, want one reset at 100ms", c)
		}
	}
	d := b.inputs(spec.InDatagram)
	if len(d) != 1 || string(d[0].in.Data) != "healed" {
		t.Fatalf("b got %v, want only the datagram sent after healing", d)
	}
}

// A crash loses the node's state and resets its peers' streams; a restart
// starts a fresh machine.
func TestCrashAndRestart(t *testing.T) {
	cfg := sim.Config{Faults: sim.Faults{Crashes: []sim.Crash{{Node: "b", At: 50 * time.Millisecond, Restart: 80 * time.Millisecond}}}}
	s := sim.New(cfg)
	a := &probe{}
	var bs []*probe
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return a }})
	nb := s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { p := &probe{}; bs = append(bs, p); return p }})
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(60*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("lost")})
	s.Command(100*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("after")})
	s.Run(time.Second)
	if len(bs) != 2 || nb.Starts() != 2 {
		t.Fatalf("b started %d times, want 2", len(bs))
	}
	if c := a.inputs(spec.InStreamClosed); len(c) != 1 || c[0].in.Err == "" {
		t.Fatalf("a's stream: %+v, want a reset", c)
	}
	if d := bs[1].inputs(spec.InDatagram); len(d) != 1 || string(d[0].in.Data) != "after" {
		t.Fatalf("restarted b got %v", d)
	}
	if d := bs[0].inputs(spec.InDatagram); len(d) != 0 {
		t.Fatalf("crashed b got %v", d)
	}
}

// Aborting a stream resets it at the peer a one-way delay later; the
// end that aborted is not told of its own stream's close.
func TestAbortResetsThePeer(t *testing.T) {
	d := sim.Dir{Delay: time.Millisecond}
	s, a, b := pair(t, sim.Config{Link: sim.Symmetric(d)})
	const abortAt = 50 * time.Millisecond
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(abortAt, "a", spec.Command{Name: "abort"})
	s.Run(time.Second)
	if c := b.inputs(spec.InStreamClosed); len(c) != 1 || c[0].in.Err != "connection reset by peer" || c[0].at.Sub(spec.SimEpoch) != abortAt+2*d.Delay {
		t.Fatalf("b's stream: closes %+v, want one reset by peer at %v", c, abortAt+2*d.Delay)
	}
	if c := a.inputs(spec.InStreamClosed); len(c) != 0 {
		t.Fatalf("a was told of the close of the stream it aborted: %+v", c)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("violations: %q", v)
	}
}

// A stream sends while fewer than Window bytes are unacknowledged: with
// an unlimited link, what it sends before the first acknowledgment can
// be back is the writes' first Window bytes rounded up to whole
// segments.
func TestWindowBoundsWhatIsUnacknowledged(t *testing.T) {
	const mss, delay = 1000, 10 * time.Millisecond
	for _, window := range []int{4*mss - 1, 4 * mss, 4*mss + 1} {
		var segs []sim.NetEvent
		s, _, _ := pair(t, sim.Config{MSS: mss, Window: window, Link: sim.Symmetric(sim.Dir{Delay: delay}), OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetSend && ev.Proto == spec.TCP && len(ev.Data) > 0 {
				segs = append(segs, ev)
			}
		}})
		s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
		s.Command(0, "a", spec.Command{Name: "write", Data: make([]byte, 10*mss)})
		s.Run(time.Second)
		// The handshake takes a round trip; the first segment's
		// acknowledgment another.
		firstAck := spec.SimEpoch.Add(8 * delay)
		sent := 0
		for _, ev := range segs {
			if ev.T.Before(firstAck) {
				sent += len(ev.Data)
			}
		}
		if want := (window + mss - 1) / mss * mss; sent != want {
			t.Errorf("window %d: %d bytes sent before the first acknowledgment, want %d", window, sent, want)
		}
	}
}

// A datagram to a port that was unbound finds no socket, even one to
// the port the node last received on.
func TestUnboundPortUnreachable(t *testing.T) {
	var noPort []string
	s, _, b := pair(t, sim.Config{OnNet: func(ev sim.NetEvent) {
		if ev.Kind == sim.NetNoPort {
			noPort = append(noPort, string(ev.Data))
		}
	}})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("bound")})
	s.Command(10*time.Millisecond, "b", spec.Command{Name: "unbind"})
	s.Command(20*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("unbound")})
	s.Run(time.Second)
	if got := b.inputs(spec.InDatagram); len(got) != 1 || string(got[0].in.Data) != "bound" || !slices.Equal(noPort, []string{"unbound"}) {
		t.Fatalf("b got %+v, and %q found no port; want only the datagram sent while bound, and the other unreachable", got, noPort)
	}
}

// Overlapping partitions heal each at its own End: one healing leaves
// the other in force.
func TestPartitionsHealIndependently(t *testing.T) {
	cfg := sim.Config{Faults: sim.Faults{Partitions: []sim.Partition{
		{Start: 100 * time.Millisecond, End: time.Second, Side: []string{"a"}},
		{Start: 100 * time.Millisecond, End: 200 * time.Millisecond, Side: []string{"a"}},
	}}}
	s, _, b := pair(t, cfg)
	for _, at := range []time.Duration{500 * time.Millisecond, 2 * time.Second} {
		s.Command(at, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte(at.String())})
	}
	s.Run(3 * time.Second)
	if d := b.inputs(spec.InDatagram); len(d) != 1 || string(d[0].in.Data) != "2s" {
		t.Fatalf("b got %+v, want only the datagram sent after both partitions healed", d)
	}
}

// A partition resets only the streams across it: a stream between two
// nodes on the same side carries on.
func TestPartitionSparesStreamsNotAcrossIt(t *testing.T) {
	cfg := sim.Config{Faults: sim.Faults{Partitions: []sim.Partition{{Start: 100 * time.Millisecond, End: 200 * time.Millisecond, Side: []string{"b"}}}}}
	s, a, _ := pair(t, cfg)
	c := &probe{}
	nc := s.MustAddNode(sim.NodeSpec{Name: "c", New: func() spec.Machine { return c }})
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{netip.AddrPortFrom(nc.Addr, 9).String()}})
	s.Command(300*time.Millisecond, "a", spec.Command{Name: "write", Data: []byte("after the partition")})
	s.Run(time.Second)
	if closed := a.inputs(spec.InStreamClosed); len(closed) != 0 {
		t.Fatalf("a's stream to c, on the same side of the partition: closes %+v, want none", closed)
	}
	if got := string(c.streamBytes()); got != "after the partition" {
		t.Fatalf("c read %q", got)
	}
}

// Run(d) simulates exactly d: the clock then reads d, whether events are
// still queued or the network went idle before it.
func TestRunSimulatesTheWholeLimit(t *testing.T) {
	idle, _, _ := pair(t, sim.Config{})
	busy := sim.New(sim.Config{})
	busy.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return &ticker{} }})
	for i, s := range []*sim.Sim{idle, busy} {
		for _, d := range []time.Duration{time.Second, 1500 * time.Millisecond} {
			if s.Run(d); s.Elapsed() != d {
				t.Errorf("%s network: the clock reads %v after Run(%v)", []string{"idle", "busy"}[i], s.Elapsed(), d)
			}
		}
	}
}

// A forged datagram arrives with the source it claims.
func TestInjectForgesSource(t *testing.T) {
	s, _, b := pair(t, sim.Config{})
	spoof := netip.MustParseAddrPort("192.0.2.7:4444")
	s.Inject(time.Millisecond, spoof, bAddr, []byte("forged"))
	s.Run(time.Second)
	d := b.inputs(spec.InDatagram)
	if len(d) != 1 || d[0].in.Addr != spoof {
		t.Fatalf("b got %v, want one datagram from %v", d, spoof)
	}
}

// The same seed and configuration give byte-identical traces, whatever the
// faults; different seeds give different runs, also with one fault
// schedule: the network's own draws follow Config.Seed. (Runs are
// compared after the header, which names the seed.)
func TestSameSeedSameTrace(t *testing.T) {
	run := func(seed, faultSeed uint64) []byte {
		var buf bytes.Buffer
		f := sim.FaultsFromSeed(faultSeed, sim.FaultBounds{
			MaxLoss: 0.3, MaxDup: 0.2, MaxJitter: 20 * time.Millisecond, Horizon: 2 * time.Second,
			MaxPartitions: 2, Partitionable: []string{"a", "b"}, MaxCrashes: 2, Crashable: []string{"b"},
		})
		s := sim.New(sim.Config{Seed: seed, Faults: f, Trace: &buf, Link: sim.Symmetric(sim.Dir{Rate: 1e6, Delay: time.Millisecond})})
		s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return &probe{} }})
		s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return &probe{closeOnEOF: true} }})
		s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
		for i := 0; i < 50; i++ {
			at := time.Duration(i) * 30 * time.Millisecond
			s.Command(at, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte(fmt.Sprint(i))})
			s.Command(at, "a", spec.Command{Name: "write", Data: bytes.Repeat([]byte{byte(i)}, 3000)})
		}
		s.Command(2*time.Second, "a", spec.Command{Name: "close"})
		s.Run(10 * time.Second)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		_, records, _ := bytes.Cut(buf.Bytes(), []byte("\n"))
		return records
	}
	prev, prevFixed := []byte(nil), []byte(nil)
	for seed := uint64(1); seed <= 8; seed++ {
		a, b := run(seed, seed), run(seed, seed)
		if !bytes.Equal(a, b) {
			t.Fatalf("seed %d: two runs differ (%d vs %d bytes)", seed, len(a), len(b))
		}
		if bytes.Equal(a, prev) {
			t.Fatalf("seed %d gave the same trace as seed %d", seed, seed-1)
		}
		prev = a
		if fixed := run(seed, 1); bytes.Equal(fixed, prevFixed) {
			t.Fatalf("with seed 1's fault schedule, seed %d gave the same trace as seed %d", seed, seed-1)
		} else {
			prevFixed = fixed
		}
	}
}

// dialer dials a new stream to the address each "dial" command names,
// and writes each "write" command's data to every stream it has open.
type dialer struct {
	dials   spec.Stream
	streams []spec.Stream
}

func (d *dialer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(2, spec.TCP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)))
	case spec.InAccepted:
		d.streams = append(d.streams, in.Stream)
	case spec.InStreamClosed:
		d.streams = slices.DeleteFunc(d.streams, func(id spec.Stream) bool { return id == in.Stream })
	case spec.InCommand:
		switch in.Cmd.Name {
		case "dial":
			d.dials++
			d.streams = append(d.streams, d.dials)
			out = append(out, spec.Dial(d.dials, netip.MustParseAddrPort(in.Cmd.Args[0])))
		case "write":
			for _, id := range d.streams {
				out = append(out, spec.Write(id, in.Cmd.Data))
			}
		}
	}
	return out
}

// Resets are delivered in one order, run after run: with several streams
// between each pair of nodes, a partition resets those across it and a
// crash those of the crashed node, each in stream order, never in a map's
// (one stream per node, as TestSameSeedSameTrace has, cannot tell).
func TestResetOrderIsDeterministic(t *testing.T) {
	run := func() []byte {
		var buf bytes.Buffer
		s := sim.New(sim.Config{Trace: &buf, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: time.Millisecond}),
			Faults: sim.Faults{
				Partitions: []sim.Partition{{Start: 100 * time.Millisecond, End: 200 * time.Millisecond, Side: []string{"b"}}},
				Crashes:    []sim.Crash{{Node: "b", At: 500 * time.Millisecond, Restart: 600 * time.Millisecond}},
			}})
		// a's streams are numbered from 1 by its dials; b's and c's
		// accepted ones by the simulator.
		for _, name := range []string{"a", "b", "c"} {
			s.MustAddNode(sim.NodeSpec{Name: name, New: func() spec.Machine { return &dialer{} }})
		}
		for _, at := range []time.Duration{0, 300 * time.Millisecond} {
			for range 4 {
				s.Command(at, "a", spec.Command{Name: "dial", Args: []string{"10.0.0.2:9"}})
				s.Command(at, "a", spec.Command{Name: "dial", Args: []string{"10.0.0.3:9"}})
				s.Command(at, "c", spec.Command{Name: "dial", Args: []string{"10.0.0.2:9"}})
			}
			s.Command(at+50*time.Millisecond, "a", spec.Command{Name: "write", Data: []byte("from a")})
			s.Command(at+50*time.Millisecond, "c", spec.Command{Name: "write", Data: []byte("from c")})
		}
		s.Run(time.Second)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("violations: %q", v)
		}
		return buf.Bytes()
	}
	first := run()
	if resets := bytes.Count(first, []byte("connection reset")); resets < 2*12 {
		t.Fatalf("%d resets in the trace, want the 12 streams to and from b reset twice over", resets)
	}
	for i := range 20 {
		if again := run(); !bytes.Equal(first, again) {
			t.Fatalf("run %d's trace differs from the first's (%d vs %d bytes)", i+2, len(again), len(first))
		}
	}
}

// A partition that ends when it starts still resets the streams across it,
// and heals: only End 0 means for ever.
func TestZeroLengthPartitionHeals(t *testing.T) {
	cfg := sim.Config{Faults: sim.Faults{Partitions: []sim.Partition{{Start: 50 * time.Millisecond, End: 50 * time.Millisecond, Side: []string{"b"}}}}}
	s, a, b := pair(t, cfg)
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Command(100*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte("after")})
	s.Run(time.Second)
	if d := b.inputs(spec.InDatagram); len(d) != 1 {
		t.Fatalf("b got %d datagrams after a zero-length partition, want 1", len(d))
	}
	reset := false
	for _, g := range a.inputs(spec.InStreamClosed) {
		reset = reset || (g.in.Err != "" && g.at.Sub(spec.SimEpoch) == 50*time.Millisecond)
	}
	if len(a.inputs(spec.InConnected)) != 1 || !reset {
		t.Fatalf("a's stream to b: connected %d times, closed %+v; want it reset at 50ms", len(a.inputs(spec.InConnected)), a.inputs(spec.InStreamClosed))
	}
}

// A crash whose restart time equals its crash time comes straight back:
// only Restart 0 means the node stays down.
func TestInstantRestart(t *testing.T) {
	for _, tc := range []struct {
		restart time.Duration
		starts  int
		up      bool
	}{
		{50 * time.Millisecond, 2, true},
		{0, 1, false},
	} {
		cfg := sim.Config{Faults: sim.Faults{Crashes: []sim.Crash{{Node: "b", At: 50 * time.Millisecond, Restart: tc.restart}}}}
		s := sim.New(cfg)
		s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return &probe{} }})
		b := s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return &probe{} }})
		s.Run(time.Second)
		if b.Starts() != tc.starts || b.Up() != tc.up {
			t.Errorf("crash at 50ms, restart %v: b started %d times and is up=%v, want %d and up=%v", tc.restart, b.Starts(), b.Up(), tc.starts, tc.up)
		}
	}
}

// A partition that starts while a connection's handshake completes never
// tells the acceptor of a stream it was not told it accepted.
func TestPartitionDuringAccept(t *testing.T) {
	d := sim.Dir{Delay: 5 * time.Millisecond}
	// SYN reaches b at 10 ms; b would hear of the accept at 30 ms.
	cfg := sim.Config{Link: sim.Symmetric(d), Faults: sim.Faults{Partitions: []sim.Partition{{Start: 15 * time.Millisecond, End: 100 * time.Millisecond, Side: []string{"b"}}}}}
	s, a, b := pair(t, cfg)
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Run(time.Second)
	if got := b.inputs(spec.InStreamClosed); len(got) != 0 {
		t.Fatalf("b was told of the close of a stream it never accepted: %+v", got)
	}
	if got := b.inputs(spec.InAccepted); len(got) != 0 {
		t.Fatalf("b accepted a connection cut by the partition: %+v", got)
	}
	if c := a.inputs(spec.InStreamClosed); len(c) != 1 || c[0].in.Err == "" {
		t.Fatalf("a's stream: %+v, want one reset", c)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatal(v)
	}
}

// A SYN that a down host or a partition swallows is sent again after
// 1 s and then 2 s more, as a kernel does (the dial at 1 ms, a SYN and
// its answer 1 ms each way), so a dial outlives a short
// outage; one that finds no one before DialTimeout fails, and a retry
// due at DialTimeout is not sent.
func TestSynRetransmitted(t *testing.T) {
	tests := []struct {
		name    string
		faults  sim.Faults
		timeout time.Duration // DialTimeout; 0: 5 s
		drop    sim.NetKind   // how each lost SYN is recorded
		at      time.Duration // when a hears it is connected (0: never)
		err     string        // else why its dial failed
	}{
		{"crash", sim.Faults{Crashes: []sim.Crash{{Node: "b", At: 0, Restart: 500 * time.Millisecond}}}, 0, sim.NetHostDown, time.Second + 3*time.Millisecond, ""},
		{"partition", sim.Faults{Partitions: []sim.Partition{{Start: 0, End: 1500 * time.Millisecond, Side: []string{"b"}}}}, 0, sim.NetCut, 3*time.Second + 3*time.Millisecond, ""},
		{"too long", sim.Faults{Crashes: []sim.Crash{{Node: "b", At: 0, Restart: 4 * time.Second}}}, 0, sim.NetHostDown, 0, "connection timed out"},
		{"retry due at the timeout", sim.Faults{Crashes: []sim.Crash{{Node: "b", At: 0, Restart: 1500 * time.Millisecond}}}, 3 * time.Second, sim.NetHostDown, 0, "connection timed out"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			timeout := cmp.Or(tc.timeout, 5*time.Second)
			var drops []sim.NetKind
			s := sim.New(sim.Config{Faults: tc.faults, DialTimeout: timeout, Link: sim.Symmetric(sim.Dir{Delay: 500 * time.Microsecond}), OnNet: func(ev sim.NetEvent) {
				if ev.Flags == "S" && ev.Kind.Dropped() {
					drops = append(drops, ev.Kind)
				}
			}})
			a := &probe{}
			s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return a }})
			s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return &probe{} }})
			s.Command(time.Millisecond, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
			s.Run(10 * time.Second)
			c, closed := a.inputs(spec.InConnected), a.inputs(spec.InStreamClosed)
			if len(drops) == 0 || slices.ContainsFunc(drops, func(k sim.NetKind) bool { return k != tc.drop }) {
				t.Errorf("lost SYNs recorded as %v, want each as %v", drops, tc.drop)
			}
			if tc.at == 0 {
				if len(c) != 0 || len(closed) != 1 || closed[0].in.Err != tc.err || closed[0].at.Sub(spec.SimEpoch) != timeout+time.Millisecond {
					t.Fatalf("connected %v, closed %v; want the dial to fail with %q at DialTimeout", c, closed, tc.err)
				}
				return
			}
			if len(c) != 1 || c[0].at.Sub(spec.SimEpoch) != tc.at {
				t.Fatalf("connected %v, closed %v; want connected at %v", c, closed, tc.at)
			}
		})
	}
}

// Every drawn fault is over by the horizon: the network is healed from
// Until on, which swarm testing's liveness checks count on.
func TestDrawnFaultsHealByTheHorizon(t *testing.T) {
	for seed := uint64(0); seed < 2000; seed++ {
		h := time.Duration(1+seed%7) * time.Second
		f := sim.FaultsFromSeed(seed, sim.FaultBounds{Horizon: h, MaxPartitions: 2, Partitionable: []string{"a", "b"}, MaxCrashes: 2, Crashable: []string{"a", "b"}})
		for _, p := range f.Partitions {
			if p.End > f.Until || p.End <= p.Start {
				t.Fatalf("seed %d: partition %v outlasts the horizon %v", seed, p, f.Until)
			}
		}
		for _, c := range f.Crashes {
			if c.Restart > f.Until || c.Restart <= c.At {
				t.Fatalf("seed %d: crash %v outlasts the horizon %v", seed, c, f.Until)
			}
		}
	}
}

// spinner re-arms a timer for the instant it fires: a buggy machine.
type spinner struct{}

func (spinner) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart, spec.InTimer:
		out = append(out, spec.SetTimer(1, now))
	}
	return out
}

// A machine that never lets time advance stops the run with a violation
// instead of spinning for ever.
func TestLivelockStopsTheRun(t *testing.T) {
	s := sim.New(sim.Config{})
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return spinner{} }})
	s.Run(time.Second)
	v := s.Violations()
	if len(v) != 1 || !strings.Contains(v[0], "livelock") {
		t.Fatalf("violations %q, want one livelock", v)
	}
	if s.Now() != spec.SimEpoch {
		t.Errorf("clock at %v, want the instant that livelocked", s.Now())
	}
}

// ticker wakes every millisecond for ever: a run that only a limit or
// Stop ends.
type ticker struct{ n int }

func (t *ticker) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart, spec.InTimer:
		t.n++
		out = append(out, spec.SetTimer(1, now.Add(time.Millisecond)))
	}
	return out
}

// Closing Config.Stop ends a run within a few thousand events, wherever
// its limit is, and the simulator says it was cut short.
func TestStopInterruptsTheRun(t *testing.T) {
	stop := make(chan struct{})
	s := sim.New(sim.Config{Stop: stop})
	tk := &ticker{}
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return tk }})
	s.Run(time.Second)
	if s.Stopped() || tk.n != 1001 {
		t.Fatalf("before Stop: stopped %v after %d ticks, want a whole second's 1001", s.Stopped(), tk.n)
	}
	close(stop)
	before := tk.n
	s.Run(1000 * time.Hour)
	if !s.Stopped() {
		t.Fatal("Run went on after Stop")
	}
	if ran := tk.n - before; ran > 1<<12 {
		t.Fatalf("%d ticks after Stop, want at most %d", ran, 1<<12)
	}
	if s.Now() >= spec.SimEpoch.Add(time.Hour) {
		t.Fatalf("clock at %v: the run was not cut short", s.Now())
	}
}

// A datagram larger than UDP can carry is refused, as a real socket
// refuses it, and the sender is told it broke the contract.
func TestOversizeDatagramRefused(t *testing.T) {
	s, _, b := pair(t, sim.Config{})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 65508)})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: make([]byte, 65507)})
	s.Run(time.Second)
	if got := b.inputs(spec.InDatagram); len(got) != 1 || len(got[0].in.Data) != 65507 {
		t.Fatalf("b got %d datagrams, want the one of 65507 bytes", len(got))
	}
	if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], "65508-byte") {
		t.Errorf("violations %q, want one for the 65508-byte datagram", v)
	}
}

// A socket bound to the unspecified address learns each datagram's
// destination, the node's address, as Local; a machine may send from its
// node's address and from no other, as the kernel allows.
func TestLocalAddress(t *testing.T) {
	s, _, b := pair(t, sim.Config{})
	s.Command(0, "a", spec.Command{Name: "sendfrom", Args: []string{bAddr.String(), "10.0.0.1"}, Data: []byte("own")})
	s.Command(0, "a", spec.Command{Name: "sendfrom", Args: []string{bAddr.String(), "10.9.9.9"}, Data: []byte("forged")})
	s.Run(time.Second)
	if bound := b.inputs(spec.InBound); len(bound) < 1 || bound[0].in.Addr != netip.MustParseAddrPort("0.0.0.0:9") {
		t.Errorf("b's wildcard bind reported %+v, want 0.0.0.0:9 as a kernel says", bound)
	}
	got := b.inputs(spec.InDatagram)
	if len(got) != 1 || string(got[0].in.Data) != "own" || got[0].in.Local != bAddr.Addr() {
		t.Fatalf("b got %+v, want the one from a's own address, with Local %v", got, bAddr.Addr())
	}
	if v := s.Violations(); len(v) != 1 || !strings.Contains(v[0], "10.9.9.9") {
		t.Errorf("violations %q, want one for the send from 10.9.9.9", v)
	}
}

// A node with a second address is reached at it, learns it as Local, and
// answers from it when it says so (and from its first address when it
// does not, which is how a server that forgets gets caught).
func TestAliasAddress(t *testing.T) {
	alias := netip.MustParseAddr("10.0.0.20")
	aAddr := netip.MustParseAddrPort("10.0.0.1:9")
	var srcs []string
	s := sim.New(sim.Config{Protocol: probeProtocol.Name, OnNet: func(ev sim.NetEvent) {
		if ev.Kind == sim.NetDeliver && ev.To == aAddr {
			srcs = append(srcs, ev.From.Addr().String())
		}
	}})
	a, b := &probe{}, &probe{}
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return a }})
	s.MustAddNode(sim.NodeSpec{Name: "b", Aliases: []netip.Addr{alias}, New: func() spec.Machine { return b }})
	if _, err := s.AddNode(sim.NodeSpec{Name: "c", Addr: alias, New: func() spec.Machine { return &probe{} }}); err == nil {
		t.Fatal("a second node took b's alias")
	}
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{netip.AddrPortFrom(alias, 9).String()}, Data: []byte("to the alias")})
	s.Command(time.Second, "b", spec.Command{Name: "sendfrom", Args: []string{aAddr.String(), alias.String()}, Data: []byte("from the alias")})
	s.Command(2*time.Second, "b", spec.Command{Name: "send", Args: []string{aAddr.String()}, Data: []byte("from the first")})
	s.Run(3 * time.Second)
	if got := b.inputs(spec.InDatagram); len(got) != 1 || got[0].in.Local != alias {
		t.Fatalf("b got %+v, want one datagram with Local %v", got, alias)
	}
	if want := []string{"10.0.0.20", "10.0.0.2"}; strings.Join(srcs, " ") != strings.Join(want, " ") {
		t.Errorf("a got datagrams from %v, want %v", srcs, want)
	}
	if v := s.Violations(); len(v) != 0 {
		t.Errorf("violations: %q", v)
	}
}

// A socket bound to one of a host's addresses takes only what is sent to
// that address: a datagram to the other is unreachable, a dial to it
// refused, as with a kernel.
func TestBoundAddressOnly(t *testing.T) {
	alias := netip.MustParseAddr("10.0.0.20")
	s := sim.New(sim.Config{})
	a := &probe{}
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return a }})
	b := &boundProbe{addr: netip.AddrPortFrom(alias, 9)}
	s.MustAddNode(sim.NodeSpec{Name: "b", Aliases: []netip.Addr{alias}, New: func() spec.Machine { return b }})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{"10.0.0.2:9"}, Data: []byte("to the first")})
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{"10.0.0.20:9"}, Data: []byte("to the alias")})
	s.Command(time.Second, "a", spec.Command{Name: "dial", Args: []string{"10.0.0.2:9"}})
	s.Run(3 * time.Second)
	if len(b.got) != 1 || b.got[0] != "to the alias" {
		t.Errorf("b got %q, want only the datagram to its alias", b.got)
	}
	closed := a.inputs(spec.InStreamClosed)
	if len(closed) != 1 || closed[0].in.Err != "connection refused" {
		t.Errorf("the dial to b's first address: %+v, want refused", closed)
	}
}

// boundProbe binds UDP and TCP on one address and records datagrams.
type boundProbe struct {
	addr netip.AddrPort
	got  []string
}

func (m *boundProbe) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, m.addr), spec.Bind(2, spec.TCP, m.addr))
	case spec.InDatagram:
		m.got = append(m.got, string(in.Data))
	}
	return out
}

// An IPv6 prefix gives IPv6 hosts: datagrams and streams work as over
// IPv4 (a bind to 0.0.0.0 takes both families, as Go's dual-stack
// listeners do).
func TestIPv6Prefix(t *testing.T) {
	s, a, b := pair(t, sim.Config{Prefix: netip.MustParsePrefix("fd00::/64")})
	to := netip.MustParseAddrPort("[fd00::2]:9")
	s.Command(0, "a", spec.Command{Name: "send", Args: []string{to.String()}, Data: []byte("v6")})
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{to.String()}})
	s.Command(time.Millisecond, "a", spec.Command{Name: "write", Data: []byte("over a stream")})
	s.Command(2*time.Millisecond, "a", spec.Command{Name: "close"})
	s.Run(time.Second)
	got := b.inputs(spec.InDatagram)
	if len(got) != 1 || string(got[0].in.Data) != "v6" || got[0].in.Addr.Addr() != netip.MustParseAddr("fd00::1") || got[0].in.Local != to.Addr() {
		t.Fatalf("b got %+v, want one datagram from fd00::1 to %v", got, to.Addr())
	}
	if string(b.streamBytes()) != "over a stream" {
		t.Errorf("b read %q over the stream", b.streamBytes())
	}
	if len(a.inputs(spec.InStreamClosed)) != 1 {
		t.Errorf("a saw closes %+v, want one", a.inputs(spec.InStreamClosed))
	}
	if v := s.Violations(); len(v) > 0 {
		t.Errorf("violations: %q", v)
	}
}

// rearmer arms timer 1 at each command's first argument (a duration from
// time zero) and records when it fires.
type rearmer struct{ fired []time.Duration }

func (r *rearmer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InCommand:
		d, err := time.ParseDuration(in.Cmd.Args[0])
		if err != nil {
			panic(err)
		}
		out = append(out, spec.SetTimer(1, spec.SimEpoch.Add(d)))
	case spec.InTimer:
		r.fired = append(r.fired, now.Sub(spec.SimEpoch))
	}
	return out
}

// Setting a timer that is already armed moves it: it fires once, at its
// new deadline, whether that is later or earlier than the old one.
func TestRearmedTimerFiresAtItsNewDeadline(t *testing.T) {
	for _, tc := range []struct {
		first, second string
		want          time.Duration
	}{
		{"10ms", "20ms", 20 * time.Millisecond},
		{"20ms", "10ms", 10 * time.Millisecond},
	} {
		s := sim.New(sim.Config{})
		r := &rearmer{}
		s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return r }})
		s.Command(0, "a", spec.Command{Args: []string{tc.first}})
		s.Command(5*time.Millisecond, "a", spec.Command{Args: []string{tc.second}})
		s.Run(time.Second)
		if len(r.fired) != 1 || r.fired[0] != tc.want {
			t.Errorf("armed for %s, then at 5ms for %s: fired at %v, want once at %v", tc.first, tc.second, r.fired, tc.want)
		}
	}
}
