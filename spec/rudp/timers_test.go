package rudp_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/rudp"
)

// Focused tests of the session layer's timers and windows. Each drives
// one endpoint with the harness (harness_test.go): explicit times, a peer
// played by hand, segments lost by not delivering them. Expected values
// are written out, computed by hand from the RFCs, not by the code under
// test.

// RFC 6298 §2: the first sample sets SRTT = R, RTTVAR = R/2; later ones
// RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R| (with the old SRTT), then
// SRTT = 7/8 SRTT + 1/8 R; RTO = SRTT + max(G, 4 RTTVAR) with G = 1 ms,
// within [MinRTO, MaxRTO]. The handshake gives the first sample (SYN to
// SYN-ACK); every later one is an acknowledgement echoing the stamp of a
// segment's first transmission.
func TestRTOComputation(t *testing.T) {
	type want struct{ srtt, rto time.Duration }
	cases := []struct {
		name    string
		cfg     rudp.Config
		samples []time.Duration // samples[0] is the handshake's
		want    []want          // after each sample
	}{
		{"first sample", rudp.Config{}, []time.Duration{ms(100)},
			[]want{{ms(100), ms(300)}}},
		{"later samples, no clamp", rudp.Config{MinRTO: time.Nanosecond},
			[]time.Duration{ms(100), ms(180), ms(60), ms(100)},
			// RTTVAR 50, 57.5, 55.625, 42.65625 ms
			[]want{{ms(100), ms(300)}, {ms(110), ms(340)}, {ms(103.75), ms(326.25)}, {ms(103.28125), ms(273.90625)}}},
		{"MinRTO (default 200ms) floors the RTO", rudp.Config{},
			[]time.Duration{ms(10), ms(10)},
			[]want{{ms(10), ms(200)}, {ms(10), ms(200)}}},
		{"the 1ms clock granularity floors 4 RTTVAR", rudp.Config{MinRTO: time.Nanosecond},
			[]time.Duration{100 * time.Microsecond},
			[]want{{100 * time.Microsecond, 1100 * time.Microsecond}}},
		// InitialRTO 6s, so that the SYN is not resent before its answer.
		{"MaxRTO (default 10s) caps the RTO", rudp.Config{InitialRTO: 6 * time.Second},
			[]time.Duration{5 * time.Second},
			[]want{{5 * time.Second, 10 * time.Second}}},
		{"a configured MaxRTO caps the RTO", rudp.Config{MaxRTO: 2 * time.Second},
			[]time.Duration{ms(800)},
			[]want{{ms(800), 2 * time.Second}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			check := func(i int) {
				t.Helper()
				s := h.stats()
				if s.SRTT != tc.want[i].srtt || s.RTO != tc.want[i].rto {
					t.Fatalf("after sample %d (%v): SRTT %v RTO %v, want SRTT %v RTO %v",
						i, tc.samples[i], s.SRTT, s.RTO, tc.want[i].srtt, tc.want[i].rto)
				}
			}
			h.establish(tc.samples[0], 64)
			check(0)
			last := dataSegs(h.take())
			for i := 1; i < len(tc.samples); i++ {
				if len(last) != 1 {
					t.Fatalf("sent %d data segments, want 1: %v", len(last), seqs(last))
				}
				h.wait(tc.samples[i])
				if d := dataSegs(h.take()); len(d) != 0 {
					t.Fatalf("retransmitted %v before the acknowledgement", seqs(d))
				}
				h.ack(last[0].p.Seq+1, echo(last[0].p.Stamp))
				check(i)
				h.write(10)
				last = dataSegs(h.take())
			}
		})
	}
}

// Before any sample the RTO is InitialRTO (1 s), and an unanswered SYN is
// resent after 1, 2, 4, 8 s, then every MaxRTO (10 s), until MaxRetries
// (10) retransmissions have gone unanswered: 85 s.
func TestInitialRTOAndSynBackoff(t *testing.T) {
	h := newHarness(t, rudp.Config{})
	t0 := h.now
	h.dial()
	if s := h.stats(); s.RTO != time.Second || s.SRTT != 0 {
		t.Fatalf("before any sample: RTO %v SRTT %v, want 1s and none", s.RTO, s.SRTT)
	}
	h.advance(t0.Add(5 * time.Minute))
	var at []time.Duration
	for _, s := range h.take() {
		switch s.p.Type {
		case rudp.TypeSYN:
			at = append(at, s.at.Sub(t0))
		default:
			t.Errorf("sent a %d packet, not a SYN: the handshake never completed", s.p.Type)
		}
	}
	want := []time.Duration{0, 1, 3, 7, 15, 25, 35, 45, 55, 65, 75}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(at, want) {
		t.Fatalf("SYNs at %v, want %v", at, want)
	}
	ev, when, ok := h.closed()
	if !ok || when.Sub(t0) != 85*time.Second || !strings.Contains(ev.Err, "after 11 SYNs") {
		t.Fatalf("closed=%v at %v (%q), want at 85s: no answer after 11 SYNs", ok, when.Sub(t0), ev.Err)
	}
	if h.ep.Sessions() != 0 || len(h.timers) != 0 {
		t.Fatalf("%d sessions and %d timers left", h.ep.Sessions(), len(h.timers))
	}
}

// Karn's rule (RFC 6298 §3, §5.7): an acknowledgement of a retransmitted
// segment gives no RTT sample, unless its echo names the segment's first
// transmission (the echo removes the ambiguity, as TCP timestamps do);
// and the backed-off RTO is kept, for new segments too, until a valid
// sample arrives.
func TestKarnRule(t *testing.T) {
	// Handshake RTT 100 ms: SRTT 100, RTTVAR 50, RTO 300 ms. Segment 0
	// (stamp 0) is never acknowledged in time: the tail-loss probe
	// resends it at 2 SRTT + AckDelay = 205 ms (stamp 1), the RTO at
	// 300 ms (stamp 2) and doubles the RTO to 600 ms. The acknowledgement
	// comes at 350 ms.
	cases := []struct {
		name     string
		opts     []ackOpt
		srtt     time.Duration // after the acknowledgement
		rto      time.Duration
		srttNext time.Duration // after a valid 80 ms sample of a new segment
		rtoNext  time.Duration
	}{
		{"echo of the RTO retransmission: no sample, RTO stays doubled", []ackOpt{echo(2)},
			ms(100), ms(600), ms(97.5), ms(267.5)},
		{"echo of the tail-loss probe: no sample", []ackOpt{echo(1)},
			ms(100), ms(600), ms(97.5), ms(267.5)},
		{"no echo: no sample", nil,
			ms(100), ms(600), ms(97.5), ms(267.5)},
		// A 350 ms sample: RTTVAR (150+250)/4 = 100, SRTT (700+350)/8;
		// then 80 ms: RTTVAR (300+51.25)/4, SRTT (998.75)/8 = 124.84375.
		{"echo of the first transmission: a sample, backoff cleared", []ackOpt{echo(0)},
			ms(131.25), ms(531.25), ms(124.84375), ms(476.09375)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.establish(ms(100), 64)
			t1 := h.now
			h.wait(ms(350))
			var tx []string
			for _, s := range dataSegs(h.take()) {
				tx = append(tx, fmt.Sprintf("seq %d stamp %d at %v", s.p.Seq, s.p.Stamp, s.at.Sub(t1)))
			}
			wantTx := []string{"seq 0 stamp 0 at 0s", "seq 0 stamp 1 at 205ms", "seq 0 stamp 2 at 300ms"}
			if !slices.Equal(tx, wantTx) {
				t.Fatalf("transmissions %v, want %v", tx, wantTx)
			}
			if s := h.stats(); s.SRTT != ms(100) || s.RTO != ms(600) || s.RTOs != 1 {
				t.Fatalf("after one expiry: SRTT %v RTO %v RTOs %d, want 100ms 600ms 1", s.SRTT, s.RTO, s.RTOs)
			}
			h.ack(1, tc.opts...)
			if s := h.stats(); s.SRTT != tc.srtt || s.RTO != tc.rto {
				t.Fatalf("after the acknowledgement: SRTT %v RTO %v, want %v %v", s.SRTT, s.RTO, tc.srtt, tc.rto)
			}
			// A new segment is timed with the RTO above (doubled, where
			// there was no sample) until its own first transmission
			// gives a sample.
			h.write(10)
			d := dataSegs(h.take())
			if len(d) != 1 || d[0].p.Seq != 1 || d[0].p.Stamp != 3 {
				t.Fatalf("new segment: %v", d)
			}
			h.wait(ms(80))
			h.ack(2, echo(3))
			if s := h.stats(); s.SRTT != tc.srttNext || s.RTO != tc.rtoNext {
				t.Fatalf("after a valid sample: SRTT %v RTO %v, want %v %v", s.SRTT, s.RTO, tc.srttNext, tc.rtoNext)
			}
		})
	}
}

// backoff is when the k-th expiry of a timer starting at rto happens,
// for k = 1..n: the RTO doubles after each (RFC 6298 §5.5), up to max.
func backoff(rto, maxRTO time.Duration, n int) []time.Duration {
	var at []time.Duration
	t := time.Duration(0)
	for i := 0; i < n; i++ {
		t += rto
		at = append(at, t)
		rto = min(2*rto, maxRTO)
	}
	return at
}

// RFC 6298 §5.5-5.6: every expiry retransmits the oldest unacknowledged
// segment, doubles the RTO up to MaxRTO and restarts the timer with it;
// the congestion window drops to one segment.
func TestRTOBackoff(t *testing.T) {
	cases := []struct {
		name string
		cfg  rudp.Config
		rtt  time.Duration
		tlp  time.Duration   // the tail-loss probe, before the first expiry
		rto  []time.Duration // the RTO after 0, 1, 2... expiries
	}{
		{"default: from MinRTO up to MaxRTO", rudp.Config{}, ms(10), ms(25),
			[]time.Duration{ms(200), ms(400), ms(800), ms(1600), ms(3200), ms(6400), ms(10000), ms(10000), ms(10000)}},
		{"RTO 300ms, MaxRTO 2s", rudp.Config{MaxRTO: 2 * time.Second}, ms(100), ms(205),
			[]time.Duration{ms(300), ms(600), ms(1200), ms(2000), ms(2000), ms(2000)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.cfg)
			h.establish(tc.rtt, 64)
			t1 := h.now
			if s := h.stats(); s.RTO != tc.rto[0] {
				t.Fatalf("RTO %v, want %v", s.RTO, tc.rto[0])
			}
			h.take()
			exp := backoff(tc.rto[0], h.cfg.MaxRTO, len(tc.rto)-1)
			for k, at := range exp {
				h.advance(t1.Add(at - 1))
				d := dataSegs(h.take())
				if k == 0 {
					// Before the first expiry only the tail-loss probe.
					if len(d) != 1 || d[0].at.Sub(t1) != tc.tlp || d[0].p.Seq != 0 {
						t.Fatalf("before the first expiry: %v, want the tail-loss probe of seq 0 at %v", d, tc.tlp)
					}
				} else if len(d) != 0 {
					t.Fatalf("sent %v before expiry %d at %v", seqs(d), k+1, at)
				}
				h.advance(t1.Add(at))
				d = dataSegs(h.take())
				if len(d) != 1 || d[0].p.Seq != 0 {
					t.Fatalf("expiry %d at %v sent %v, want seq 0 again", k+1, at, seqs(d))
				}
				s := h.stats()
				if s.RTO != tc.rto[k+1] || s.RTOs != uint64(k+1) || s.Cwnd != 1 {
					t.Fatalf("after expiry %d: RTO %v RTOs %d cwnd %v, want RTO %v, %d, cwnd 1", k+1, s.RTO, s.RTOs, s.Cwnd, tc.rto[k+1], k+1)
				}
			}
		})
	}
}

// Fast retransmit on SACK evidence, with RFC 9002 §6.1's thresholds: a
// transmission is lost at once when one sent 3 or more after it has been
// acknowledged, else 9/8 SRTT after it was sent once any later one has
// been. Without a later segment acknowledged nothing is retransmitted
// before the tail-loss probe (2 SRTT), which resends the newest segment;
// the RTO (200 ms) comes last.
func TestFastRetransmit(t *testing.T) {
	// SRTT 20 ms. Segments 1..6 (transmissions 1..6) leave together at
	// t1; the acknowledgement arrives at t1+20ms: segment 1 is
	// cumulatively acknowledged, the blocks say which later ones arrived.
	type rtx struct {
		seq uint32
		at  time.Duration // after t1
	}
	cases := []struct {
		name  string
		opts  []ackOpt
		until time.Duration
		want  []rtx
		probe bool // the retransmission is the tail-loss probe
	}{
		{"3,4,5 SACKed: 2 at once", []ackOpt{sack(3, 6)}, ms(50),
			[]rtx{{2, ms(20)}}, false},
		{"3..6 SACKed: 2 at once", []ackOpt{sack(3, 7)}, ms(50),
			[]rtx{{2, ms(20)}}, false},
		{"3,4 SACKed: 2 after 9/8 SRTT", []ackOpt{sack(3, 5)}, ms(50),
			[]rtx{{2, ms(22.5)}}, false},
		{"4 SACKed: 2 and 3 after 9/8 SRTT", []ackOpt{sack(4, 5)}, ms(50),
			[]rtx{{2, ms(22.5)}, {3, ms(22.5)}}, false},
		{"6 SACKed: 2, 3 at once, 4, 5 after 9/8 SRTT", []ackOpt{sack(6, 7)}, ms(50),
			[]rtx{{2, ms(20)}, {3, ms(20)}, {4, ms(22.5)}, {5, ms(22.5)}}, false},
		{"nothing later: only the tail-loss probe, at 2 SRTT", nil, ms(100),
			[]rtx{{6, ms(60)}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.establish(ms(20), 64)
			h.wait(ms(20))
			h.ack(1, echo(0))
			h.take()
			h.write(6 * segRoom)
			t1 := h.now
			if d := dataSegs(h.take()); !slices.Equal(seqs(d), []uint32{1, 2, 3, 4, 5, 6}) {
				t.Fatalf("sent %v, want 1..6", seqs(d))
			}
			h.wait(ms(20))
			h.ack(2, tc.opts...)
			h.advance(t1.Add(tc.until))
			var got []rtx
			for _, d := range dataSegs(h.take()) {
				got = append(got, rtx{d.p.Seq, d.at.Sub(t1)})
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("retransmissions (seq, when) %v, want %v", got, tc.want)
			}
			s := h.stats()
			probes := h.counter("rudp_tail_probes")
			if s.RTOs != 0 || (tc.probe && (probes != 1 || s.FastRetrans != 1)) ||
				(!tc.probe && (probes != 0 || s.FastRetrans != uint64(len(tc.want)))) {
				t.Fatalf("RTOs %d, tail probes %d, fast retransmits %d", s.RTOs, probes, s.FastRetrans)
			}
			// The same evidence again retransmits nothing more.
			h.ack(2, tc.opts...)
			if d := dataSegs(h.take()); len(d) != 0 {
				t.Fatalf("a repeated acknowledgement retransmitted %v", seqs(d))
			}
		})
	}
}

// The sender never has more segments beyond the cumulative ack than the
// peer announces (whatever the congestion window, 10 here), follows the
// window as it changes, and probes a full window by resending, not by
// sending beyond it.
func TestPeerWindowBoundsFlight(t *testing.T) {
	for _, w := range []uint32{1, 2, 5} {
		t.Run(fmt.Sprintf("window %d", w), func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.dial()
			if err := h.ep.Write(h.id, make([]byte, 30*segRoom)); err != nil {
				t.Fatal(err)
			}
			h.wait(ms(10))
			h.synAck(w)
			next := w // the first sequence number not yet sent
			if got := seqs(dataSegs(h.take())); !slices.Equal(got, seqRange(0, w)) {
				t.Fatalf("sent %v, want %v", got, seqRange(0, w))
			}
			for k := uint32(1); k <= 5; k++ {
				h.wait(ms(10))
				h.ack(k)
				if got := seqs(dataSegs(h.take())); !slices.Equal(got, []uint32{next}) {
					t.Fatalf("after ack %d: sent %v, want [%d]", k, got, next)
				}
				next++
			}
			// Full window, no acknowledgement: the tail-loss probe
			// resends the newest segment.
			h.wait(ms(30))
			if got := seqs(dataSegs(h.take())); !slices.Equal(got, []uint32{next - 1}) {
				t.Fatalf("the probe sent %v, want a resend of %d", got, next-1)
			}
			// The window opens by 3: three more at once.
			h.ack(5, window(w+3))
			if got := seqs(dataSegs(h.take())); !slices.Equal(got, seqRange(next, next+3)) {
				t.Fatalf("after the window grew: sent %v, want %v", got, seqRange(next, next+3))
			}
			if s := h.stats(); s.Inflight != int(w+3) || s.Cwnd < float64(w+3) {
				t.Fatalf("inflight %d cwnd %v", s.Inflight, s.Cwnd)
			}
		})
	}
}

func seqRange(from, to uint32) []uint32 {
	var s []uint32
	for i := from; i < to; i++ {
		s = append(s, i)
	}
	return s
}

// The receiver announces RecvWindow, drops segments at or beyond
// rcvNext+RecvWindow without reporting them, and holds those within it.
func TestReceiveWindow(t *testing.T) {
	h := newHarness(t, rudp.Config{RecvWindow: 4})
	h.establish(ms(10), 64)
	if d := dataSegs(h.take()); len(d) != 1 || d[0].p.Wnd != 4 {
		t.Fatalf("segment 0 announces window %v, want 4", d)
	}
	h.wait(ms(10))
	h.ack(1)
	data := func(seq uint32) {
		h.deliver(rudp.Packet{Flags: rudp.FlagDATA, Seq: seq, Ack: 1, Wnd: 64, Payload: []byte{byte(seq)}})
	}
	lastAck := func() rudp.Packet {
		t.Helper()
		s := h.take()
		if len(s) != 1 || s[0].p.Flags&rudp.FlagDATA != 0 {
			t.Fatalf("want one pure acknowledgement at once, got %d datagrams", len(s))
		}
		return s[0].p
	}
	steps := []struct {
		seq        uint32
		ack        uint32
		sack       []rudp.Block
		outOfWnd   uint64
		deliveredN int
	}{
		{4, 0, nil, 1, 0}, // rcvNext 0 + window 4: dropped
		{3, 0, []rudp.Block{{Start: 3, End: 4}}, 1, 0}, // held
		{1, 0, []rudp.Block{{1, 2}, {3, 4}}, 1, 0},     // held, latest block first
		{0, 2, []rudp.Block{{Start: 3, End: 4}}, 1, 2}, // 0 and 1 delivered
		{2, 4, nil, 1, 4}, // the gap fills: 2, 3 delivered
		{8, 4, nil, 2, 4}, // rcvNext 4 + 4: dropped
		{7, 4, []rudp.Block{{Start: 7, End: 8}}, 2, 4}, // held
	}
	for _, st := range steps {
		data(st.seq)
		p := lastAck()
		var got []rudp.Block
		got = append(got, p.SACK[:p.NSACK]...)
		if p.Ack != st.ack || !slices.Equal(got, st.sack) || p.Wnd != 4 {
			t.Fatalf("seq %d: ack %d sack %v wnd %d, want ack %d sack %v wnd 4", st.seq, p.Ack, got, p.Wnd, st.ack, st.sack)
		}
		if n := h.counter("rudp_out_of_window"); n != st.outOfWnd {
			t.Fatalf("seq %d: %d dropped out of window, want %d", st.seq, n, st.outOfWnd)
		}
		var del []byte
		for _, ev := range h.events {
			if ev.Kind == rudp.Data {
				del = append(del, ev.Data...)
			}
		}
		if !slices.Equal(del, []byte{0, 1, 2, 3}[:st.deliveredN]) {
			t.Fatalf("seq %d: delivered %v", st.seq, del)
		}
	}
}

// The 4-way close: the side that closes first lingers in TIME_WAIT for
// TimeWait (4 s) after the last FIN exchange, re-acknowledges a
// retransmitted FIN and waits TimeWait again from it (RFC 793 §3.9),
// ignores a RST (RFC 1337), then goes away without a word; the side that
// closes second is gone as soon as its FIN is acknowledged.
func TestFourWayCloseAndTimeWait(t *testing.T) {
	const (
		stClose = "close"    // the application closes: our FIN leaves
		peerFin = "peer FIN" // the peer's FIN arrives
		finAck  = "FIN ack"  // the peer acknowledges our FIN
	)
	cases := []struct {
		name   string
		steps  []string
		states []string // after each step
		refin  bool     // the peer resends its FIN 1 s into TIME_WAIT
	}{
		{"we close first", []string{stClose, finAck, peerFin}, []string{"FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"}, false},
		{"we close first, FIN resent", []string{stClose, finAck, peerFin}, []string{"FIN_WAIT_1", "FIN_WAIT_2", "TIME_WAIT"}, true},
		{"simultaneous", []string{stClose, peerFin, finAck}, []string{"FIN_WAIT_1", "CLOSING", "TIME_WAIT"}, false},
		{"simultaneous, FIN resent", []string{stClose, peerFin, finAck}, []string{"FIN_WAIT_1", "CLOSING", "TIME_WAIT"}, true},
		{"the peer closes first", []string{peerFin, stClose, finAck}, []string{"CLOSE_WAIT", "LAST_ACK", "CLOSED"}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.establish(ms(10), 64)
			h.wait(ms(10))
			h.ack(1)
			h.take()
			acked := uint32(1) // what the peer acknowledges
			finFrom := func() rudp.Packet {
				return rudp.Packet{Flags: rudp.FlagDATA | rudp.FlagFIN, Seq: 0, Ack: acked, Wnd: 64}
			}
			for i, step := range tc.steps {
				h.wait(ms(10))
				switch step {
				case stClose:
					h.close()
					d := dataSegs(h.take())
					if len(d) != 1 || d[0].p.Seq != 1 || d[0].p.Flags&rudp.FlagFIN == 0 {
						t.Fatalf("close sent %v, want a FIN as seq 1", d)
					}
				case peerFin:
					h.deliver(finFrom())
					s := h.take()
					if len(s) != 1 || s[0].p.Ack != 1 {
						t.Fatalf("the peer's FIN was not acknowledged at once: %v", s)
					}
				case finAck:
					acked = 2
					h.ack(2)
				}
				h.take()
				state := "CLOSED"
				if s, ok := h.ep.Stats(h.id); ok {
					state = s.State
				}
				if state != tc.states[i] {
					t.Fatalf("after %s: %s, want %s", step, state, tc.states[i])
				}
			}
			ev, _, ok := h.closed()
			if !ok || ev.Err != "" {
				t.Fatalf("closed=%v err=%q, want a clean Closed event", ok, ev.Err)
			}
			if tc.states[len(tc.states)-1] == "CLOSED" {
				if h.ep.Sessions() != 0 || len(h.timers) != 0 {
					t.Fatalf("%d sessions, %d timers after the last ack", h.ep.Sessions(), len(h.timers))
				}
				return
			}
			end := h.now.Add(4 * time.Second)
			h.wait(time.Second)
			if tc.refin {
				// Our ack was lost: the FIN comes again.
				h.deliver(finFrom())
				if s := h.take(); len(s) != 1 || s[0].p.Ack != 1 {
					t.Fatalf("a retransmitted FIN in TIME_WAIT was not re-acknowledged: %v", s)
				}
				end = h.now.Add(4 * time.Second)
			}
			h.deliver(rudp.Packet{Type: rudp.TypeRST, Reason: rudp.ReasonAbort})
			if s := h.stats(); s.State != "TIME_WAIT" {
				t.Fatalf("a RST took TIME_WAIT to %s", s.State)
			}
			if err := h.ep.Write(h.id, []byte("x")); err != rudp.ErrClosing {
				t.Fatalf("Write in TIME_WAIT: %v, want ErrClosing", err)
			}
			h.advance(end - 1)
			if h.ep.Sessions() != 1 {
				t.Fatal("gone before the end of TIME_WAIT")
			}
			h.advance(end)
			if h.ep.Sessions() != 0 || len(h.timers) != 0 {
				t.Fatalf("%d sessions, %d timers at the end of TIME_WAIT", h.ep.Sessions(), len(h.timers))
			}
			if s := h.take(); len(s) != 0 {
				t.Fatalf("TIME_WAIT sent %v, want nothing", s)
			}
			n := 0
			for _, ev := range h.events {
				if ev.Kind == rudp.Closed {
					n++
				}
			}
			if n != 1 {
				t.Fatalf("%d Closed events", n)
			}
		})
	}
}

// A session with nothing unacknowledged that hears nothing for KeepAlive
// (5 s) sends a PING, then one every KeepAlive; a peer that answers keeps
// it open for as long as it answers; one that does not is given up after
// IdleTimeout (30 s) of silence, with a RST saying why.
func TestKeepAliveAndIdleTimeout(t *testing.T) {
	for _, answer := range []bool{true, false} {
		t.Run(fmt.Sprintf("peer answers %v", answer), func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.establish(ms(10), 64)
			h.wait(ms(10))
			h.ack(1)
			h.take()
			heard := h.now
			if answer {
				// A PING from the peer is answered at once.
				h.deliver(rudp.Packet{Flags: rudp.FlagPING, Ack: 1, Wnd: 64})
				if s := h.take(); len(s) != 1 || s[0].p.Flags&rudp.FlagDATA != 0 || s[0].p.Ack != 0 {
					t.Fatalf("a PING was answered with %v", s)
				}
				heard = h.now
				for i := 0; i < 20; i++ { // 100 s, beyond IdleTimeout
					h.advance(heard.Add(5*time.Second - 1))
					if s := h.take(); len(s) != 0 {
						t.Fatalf("sent %v before KeepAlive", s)
					}
					h.advance(heard.Add(5 * time.Second))
					if p := pings(h.take()); len(p) != 1 {
						t.Fatalf("round %d: %d PINGs at KeepAlive, want 1", i, len(p))
					}
					h.wait(ms(10))
					h.ack(1)
					heard = h.now
				}
				if _, _, ok := h.closed(); ok || h.stats().State != "ESTABLISHED" {
					t.Fatal("a session whose peer answers keepalives closed")
				}
				if n := h.counter("rudp_keepalives"); n != 20 {
					t.Fatalf("%d keepalives, want 20", n)
				}
				return
			}
			h.advance(heard.Add(5 * time.Minute))
			sent := h.take()
			var at []time.Duration
			for _, p := range pings(sent) {
				at = append(at, p.at.Sub(heard))
			}
			want := []time.Duration{5 * time.Second, 10 * time.Second, 15 * time.Second, 20 * time.Second, 25 * time.Second}
			if !slices.Equal(at, want) {
				t.Fatalf("PINGs at %v, want %v", at, want)
			}
			ev, when, ok := h.closed()
			if !ok || when.Sub(heard) != 30*time.Second || !strings.Contains(ev.Err, "idle timeout") {
				t.Fatalf("closed=%v at %v (%q), want the idle timeout at 30s", ok, when.Sub(heard), ev.Err)
			}
			if last := sent[len(sent)-1]; last.p.Type != rudp.TypeRST || last.p.Reason != rudp.ReasonTimeout || last.at != when {
				t.Fatalf("last datagram %+v, want a RST (timed out) when closing", last)
			}
			if h.ep.Sessions() != 0 || len(h.timers) != 0 {
				t.Fatalf("%d sessions, %d timers left", h.ep.Sessions(), len(h.timers))
			}
		})
	}
}

// With the default configuration, a session whose data the peer never
// acknowledges (the peer falls silent after the handshake: a permanent
// partition) ends with the retransmission error after MaxRetries (10)
// backed-off retransmissions, not with the idle timeout, which governs
// only sessions with nothing unacknowledged (RFC 1122 §4.2.3.5-6: R2
// for data, keep-alives for idle connections). No keepalive is sent
// while data is outstanding: the retransmissions are the probes.
func TestUnacknowledgedDataAbortsAfterMaxRetries(t *testing.T) {
	cases := []struct {
		name  string
		synRT bool          // the first SYN is lost: no RTT sample
		tlp   time.Duration // the tail-loss probe before the first expiry, if any
		rto   time.Duration // the RTO before backoff
		abort time.Duration // after segment 0 left
	}{
		// 0.2+0.4+0.8+1.6+3.2+6.4 + 5x10 = 62.6 s
		{"RTT measured in the handshake", false, ms(25), ms(200), ms(62600)},
		// RFC 6298 §5.7: 3 s after a SYN timed out; 3+6 + 9x10 = 99 s
		{"SYN retransmitted, no RTT sample", true, 0, 3 * time.Second, 99 * time.Second},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, rudp.Config{})
			h.dial()
			if err := h.ep.Write(h.id, make([]byte, 1000)); err != nil {
				t.Fatal(err)
			}
			if tc.synRT {
				h.wait(time.Second) // the SYN is resent
			}
			h.wait(ms(10))
			h.synAck(64)
			t1 := h.now
			h.take()
			// Karn for the SYN: its answer gives a sample only if it was sent once.
			if s := h.stats(); s.RTO != tc.rto || (s.SRTT == 0) != tc.synRT {
				t.Fatalf("after the handshake: SRTT %v RTO %v, want RTO %v (a sample: %v)", s.SRTT, s.RTO, tc.rto, !tc.synRT)
			}
			h.advance(t1.Add(10 * time.Minute))
			sent := h.take()
			var at []time.Duration
			for _, s := range dataSegs(sent) {
				if s.p.Seq != 0 {
					t.Fatalf("sent seq %d", s.p.Seq)
				}
				at = append(at, s.at.Sub(t1))
			}
			want := backoff(tc.rto, 10*time.Second, 10)
			if tc.tlp != 0 {
				want = append([]time.Duration{tc.tlp}, want...)
			}
			if !slices.Equal(at, want) {
				t.Fatalf("retransmissions at %v, want %v", at, want)
			}
			if p := pings(sent); len(p) != 0 {
				t.Fatalf("%d keepalives with data outstanding", len(p))
			}
			ev, when, ok := h.closed()
			if !ok || when.Sub(t1) != tc.abort || ev.Err != "connection timed out: 10 retransmissions unanswered" {
				t.Fatalf("closed=%v at %v with %q; want %q at %v", ok, when.Sub(t1), ev.Err,
					"connection timed out: 10 retransmissions unanswered", tc.abort)
			}
			if last := sent[len(sent)-1]; last.p.Type != rudp.TypeRST || last.p.Reason != rudp.ReasonTimeout || last.at != when {
				t.Fatalf("last datagram %+v, want a RST (timed out) when aborting", last)
			}
			if h.ep.Sessions() != 0 || len(h.timers) != 0 || h.counter("rudp_sessions_timed_out") != 1 {
				t.Fatalf("%d sessions, %d timers left", h.ep.Sessions(), len(h.timers))
			}
		})
	}
}

// A tail-loss probe that comes due when nothing is outstanding any more
// is moot and forgotten. Here a hostile peer SACKs everything above its
// own cumulative ack, then acknowledges it all cumulatively: no segment
// is newly acknowledged by that ack, and a probe time left set would
// keep the session's timer due at the same instant for ever (a busy
// loop in a runner, a simulator stuck at one time).
func TestMootTailProbeDoesNotSpin(t *testing.T) {
	h := newHarness(t, rudp.Config{})
	h.establish(ms(10), 64)
	h.write(3 * segRoom)
	n := uint32(len(dataSegs(h.take())))
	if n < 2 {
		t.Fatalf("%d segments sent, want at least 2", n)
	}
	h.wait(ms(10))
	h.ack(1, sack(1, n))
	h.ack(n)
	h.wait(time.Minute) // the harness fails on 100 timer firings at one instant
	if s, ok := h.ep.Stats(h.id); ok && s.State != "ESTABLISHED" {
		t.Fatalf("state %s", s.State)
	}
}

// newRenoLoss sets up a NewReno session that has just halved its window
// (RFC 6582, doc.go's "newreno": ssthresh = cwnd/2 and cwnd = ssthresh):
// SRTT 20 ms, segments 1..10 (transmissions 1..10) sent with the
// InitialWindow of 10; 1 arrives, 2 does not, 3..5 do. Slow start adds
// the 4 segments acknowledged (cwnd 14), then 2 is lost (3 later ones
// acknowledged) and the window halves to 7. Segment 2 and a new one
// (transmissions 11 and 12) are then in flight with 6..10.
func newRenoLoss(t *testing.T) *harness {
	t.Helper()
	h := newHarness(t, rudp.Config{CC: "newreno"})
	h.establish(ms(20), 64)
	h.wait(ms(20))
	h.ack(1, echo(0))
	h.take()
	h.write(20 * segRoom)
	if d := dataSegs(h.take()); !slices.Equal(seqs(d), seqRange(1, 11)) {
		t.Fatalf("sent %v, want 1..10", seqs(d))
	}
	if s := h.stats(); s.Cwnd != 10 {
		t.Fatalf("cwnd %v before any acknowledgement, want InitialWindow 10", s.Cwnd)
	}
	h.wait(ms(20))
	h.ack(2, sack(3, 6))
	if s := h.stats(); s.Cwnd != 7 || s.Ssthresh != 7 || s.LossEvents != 1 {
		t.Fatalf("after the loss of 2: cwnd %v ssthresh %v loss events %d, want 7 7 1", s.Cwnd, s.Ssthresh, s.LossEvents)
	}
	if d := dataSegs(h.take()); !slices.Equal(seqs(d), []uint32{2, 11}) {
		t.Fatalf("after the loss of 2: sent %v, want 2 again and 11", seqs(d))
	}
	return h
}

// NewReno halves once per window of data: the loss of another segment
// sent before that reduction changes nothing, and segments sent before
// it do not grow the window when acknowledged.
func TestNewRenoHalvesOncePerWindow(t *testing.T) {
	h := newRenoLoss(t)
	// 6 is lost too (7..9 arrive), but it was sent before the reduction:
	// the same loss event, no second halving, and no growth either.
	h.ack(2, sack(3, 6), sack(7, 10))
	if s := h.stats(); s.Cwnd != 7 || s.Ssthresh != 7 || s.LossEvents != 1 {
		t.Fatalf("after the loss of 6 in the same window: cwnd %v ssthresh %v loss events %d, want 7 7 1", s.Cwnd, s.Ssthresh, s.LossEvents)
	}
}

// RFC 4015, as doc.go has it: a retransmission is known to be spurious
// when an acknowledgement echoes the stamp of the transmission it
// replaced, and the reduction that loss caused is undone.
func TestSpuriousRetransmissionUndoesReduction(t *testing.T) {
	h := newRenoLoss(t)
	// Segment 2 was only late: its first transmission (stamp 2) arrives,
	// and the peer acknowledges everything up to 6 echoing it. The window
	// goes back to cwnd 14, ssthresh MaxWindow (4096), then slow start
	// adds segment 2, whose latest transmission (11) followed the
	// reduction: cwnd 15.
	h.ack(6, echo(2))
	if s := h.stats(); s.Cwnd != 15 || s.Ssthresh != 4096 {
		t.Fatalf("after the echo of 2's first transmission: cwnd %v ssthresh %v, want 15 4096", s.Cwnd, s.Ssthresh)
	}
	if n := h.counter("rudp_spurious_retransmits"); n != 1 {
		t.Fatalf("rudp_spurious_retransmits = %d, want 1", n)
	}
}
