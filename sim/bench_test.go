package sim_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// pinger sends a datagram to its peer whenever it receives one, so a pair
// keeps a fixed number of datagrams circulating: the event rate measured
// is the simulator's own, with a machine that costs almost nothing.
type pinger struct {
	peer  netip.AddrPort
	burst int
	buf   []byte
}

func (p *pinger) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)))
	case spec.InBound:
		for i := 0; i < p.burst; i++ {
			out = append(out, spec.Send(1, p.peer, p.buf))
		}
	case spec.InDatagram:
		out = append(out, spec.Send(1, in.Addr, in.Data))
	}
	return out
}

// BenchmarkEvents reports simulated events per second of wall time, on a
// network of node pairs with rate-limited, delayed, jittery links; the
// larger network keeps ~16,000 events queued, like a big swarm.
func BenchmarkEvents(b *testing.B) {
	for _, pairs := range []int{100, 1000} {
		b.Run(itoa(pairs)+"pairs", func(b *testing.B) { benchEvents(b, pairs) })
	}
}

func benchEvents(b *testing.B, pairs int) {
	s := sim.New(sim.Config{Seed: 1, Link: sim.Symmetric(sim.Dir{Rate: 100e6, Delay: time.Millisecond, Jitter: 100 * time.Microsecond})})
	payload := make([]byte, 100)
	for i := 0; i < pairs; i++ {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte((2*i + 1) >> 8), byte(2*i + 1)}), 9)
		c := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte((2*i + 2) >> 8), byte(2*i + 2)}), 9)
		s.MustAddNode(sim.NodeSpec{Name: "a" + itoa(i), Addr: a.Addr(), New: func() spec.Machine { return &pinger{peer: c, burst: 8, buf: payload} }})
		s.MustAddNode(sim.NodeSpec{Name: "b" + itoa(i), Addr: c.Addr(), New: func() spec.Machine { return &pinger{peer: a, buf: payload} }})
	}
	s.Run(0)
	b.ResetTimer()
	start := s.Events()
	t0 := time.Now()
	for s.Events()-start < uint64(b.N) {
		s.Run(s.Elapsed() + 10*time.Millisecond)
	}
	b.ReportMetric(float64(s.Events()-start)/time.Since(t0).Seconds(), "events/s")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}
