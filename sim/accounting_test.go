package sim_test

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"pgregory.net/rapid"
)

// Every packet the network was given is accounted for exactly once:
// whenever the run stops, the sends and duplicates in the event tally
// equal its deliveries and drops plus what the simulator still carries,
// under loss, duplication, tail drop, partitions, crashes, dials to
// nowhere and datagrams to closed ports. The scenarios' "network:" lines
// rest on this.
func TestEveryPacketAccountedFor(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		var sent, dup, delivered, dropped int
		cfg := sim.Config{
			Seed: rapid.Uint64().Draw(t, "seed"),
			Link: sim.Symmetric(sim.Dir{
				Rate:  1e6 * float64(rapid.IntRange(1, 20).Draw(t, "mbit")),
				Delay: time.Duration(rapid.IntRange(0, 20).Draw(t, "delayMs")) * time.Millisecond,
				Queue: rapid.IntRange(0, 20000).Draw(t, "queue"),
			}),
			MSS: rapid.IntRange(100, 3000).Draw(t, "mss"),
			Faults: sim.DrawFaults(t, sim.FaultBounds{MaxLoss: 0.3, MaxDup: 0.3, MaxJitter: 10 * time.Millisecond,
				Horizon: time.Second, MaxPartitions: 2, Partitionable: []string{"a", "b"}, MaxCrashes: 2, Crashable: []string{"a", "b"}}),
			OnNet: func(ev sim.NetEvent) {
				switch {
				case ev.Kind == sim.NetSend:
					sent++
				case ev.Kind == sim.NetDup:
					dup++
				case ev.Kind == sim.NetDeliver:
					delivered++
				case ev.Kind.Dropped():
					dropped++
				}
			},
		}
		s, _, _ := pairOn(net, cfg)
		aAddr := netip.MustParseAddrPort("10.0.0.1:9")
		dests := []netip.AddrPort{aAddr, bAddr, netip.MustParseAddrPort("10.0.0.2:10"), netip.MustParseAddrPort("10.9.9.9:9")}
		for _, node := range []string{"a", "b"} {
			at := time.Duration(rapid.IntRange(0, 500).Draw(t, node+"dialMs")) * time.Millisecond
			s.Command(at, node, spec.Command{Name: "dial", Args: []string{rapid.SampledFrom(dests).Draw(t, node+"dial").String()}})
		}
		for i, n := 0, rapid.IntRange(0, 30).Draw(t, "actions"); i < n; i++ {
			node := rapid.SampledFrom([]string{"a", "b"}).Draw(t, "node")
			at := time.Duration(rapid.IntRange(0, 1500).Draw(t, "atMs")) * time.Millisecond
			data := make([]byte, rapid.IntRange(0, 5000).Draw(t, "len"))
			switch rapid.IntRange(0, 2).Draw(t, "kind") {
			case 0:
				s.Command(at, node, spec.Command{Name: "send", Args: []string{rapid.SampledFrom(dests).Draw(t, "to").String()}, Data: data[:min(len(data), 1400)]})
			case 1:
				s.Command(at, node, spec.Command{Name: "write", Data: data})
			case 2:
				s.Command(at, node, spec.Command{Name: "close"})
			}
		}
		stop := time.Duration(rapid.IntRange(1, 3000).Draw(t, "stopMs")) * time.Millisecond
		s.Run(stop)
		if in := s.InFlight(); sent+dup != delivered+dropped+in || in < 0 {
			t.Fatalf("at %v: %d sent + %d duplicated != %d delivered + %d dropped + %d in flight", stop, sent, dup, delivered, dropped, in)
		}
		s.Run(stop + time.Minute)
		if in := s.InFlight(); sent+dup != delivered+dropped+in || in != 0 {
			t.Fatalf("a minute later, idle: %d sent + %d duplicated, %d delivered + %d dropped + %d in flight", sent, dup, delivered, dropped, in)
		}
	}, nil)
}
