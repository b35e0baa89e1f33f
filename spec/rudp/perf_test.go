package rudp_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec/rudp"
)

// counter returns a named counter of the sink.
func (r *run) counter(name string) uint64 {
	for _, c := range r.srv.Machine().(*sink).Counters() {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

func (r *run) clientCounter(i int, name string) uint64 {
	for _, c := range r.flows[r.clients[i].Name].ctr {
		if c.Name == name {
			return c.Value
		}
	}
	return 0
}

// Reordering is not loss: on a lossless path that reorders heavily
// (10 ms of jitter at 10 Mbit/s, ~8 segments deep), once reordering has
// been seen the sender judges loss by time, and echoes of "lost"
// transmissions undo the rest: few retransmissions, none needed.
func TestReorderingIsNotLoss(t *testing.T) {
	p := payload(1, 4<<20)
	link := sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond})
	r := runBulk(t, 1, link, sim.Faults{Jitter: 10 * time.Millisecond}, [][]byte{p}, rudp.Config{}, time.Minute)
	if fl := r.flows["c0"]; fl.exitErr != "" || !bytes.Equal(fl.got, p) {
		t.Fatalf("transfer failed: %q", fl.exitErr)
	}
	sent, retrans := r.clientCounter(0, "rudp_segments_sent"), r.clientCounter(0, "rudp_retransmits")
	if retrans*50 > sent {
		t.Fatalf("%d of %d segments were retransmissions on a path that loses nothing", retrans, sent)
	}
	t.Logf("%d retransmissions of %d segments, in %v", retrans, sent, r.s.Elapsed())
}

// Acknowledgements thinned on a fast path (up to 16 segments share one)
// never stall a small window: the last segment of every burst asks for
// an acknowledgement at once. With 1% loss keeping the window small, the
// transfer must be as fast as with an acknowledgement every 2 segments,
// not wait a delayed-ack timer per window.
func TestThinAcksNeverStall(t *testing.T) {
	p := payload(2, 8<<20)
	link := sim.Symmetric(sim.Dir{Rate: 1e9, Delay: 20 * time.Microsecond})
	elapsed := map[int]time.Duration{}
	for _, ackMax := range []int{2, 16} {
		r := runBulk(t, 2, link, sim.Faults{Loss: 0.01}, [][]byte{p}, rudp.Config{AckMax: ackMax}, time.Minute)
		if fl := r.flows["c0"]; fl.exitErr != "" || !bytes.Equal(fl.got, p) {
			t.Fatalf("transfer failed: %q", fl.exitErr)
		}
		elapsed[ackMax] = r.s.Elapsed()
		t.Logf("AckMax %d: %v, %d acks for %d segments", ackMax, r.s.Elapsed(), r.counter("rudp_acks_sent"), r.clientCounter(0, "rudp_segments_sent"))
	}
	if elapsed[16] > elapsed[2]*112/100 {
		t.Fatalf("thinned acks made the transfer slower: %v against %v", elapsed[16], elapsed[2])
	}
}

// BenchmarkSimLossResponse compares the congestion controllers on the
// issue's simulated path (10 Mbit/s, 5 ms, random loss): goodput as a
// fraction of the link rate, for 10 MiB.
func BenchmarkSimLossResponse(b *testing.B) {
	p := payload(1, 10<<20)
	for _, cc := range []string{"westwood", "newreno"} {
		for _, loss := range []float64{0, 0.01, 0.02} {
			b.Run(cc+"/loss="+fmtLoss(loss), func(b *testing.B) {
				for i := 0; i < b.N; i++ {
					r := runBulk(b, uint64(i)+3, sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}), sim.Faults{Loss: loss}, [][]byte{p}, rudp.Config{CC: cc}, 10*time.Minute)
					b.ReportMetric(float64(len(p))*8/r.s.Elapsed().Seconds()/10e6, "of-link")
				}
			})
		}
	}
}

func fmtLoss(l float64) string {
	return map[float64]string{0: "0", 0.01: "1%", 0.02: "2%"}[l]
}
