package sim_test

import (
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// Random faults stop at Faults.Until: a datagram sent before it may be
// lost, duplicated or jittered, one sent at it or later is delivered
// once, on time.
func TestFaultsStopAtUntil(t *testing.T) {
	const until = 100 * time.Millisecond
	sentAt := map[uint64]time.Duration{} // by packet id, copies by the original's
	faulted := map[bool]int{}            // by sent before Until: losses, copies and jittered deliveries
	delivered := map[uint64]int{}
	cfg := sim.Config{Seed: 9, Link: sim.Symmetric(sim.Dir{Delay: time.Millisecond}),
		Faults: sim.Faults{Loss: 0.3, Dup: 0.3, Jitter: 5 * time.Millisecond, Until: until},
		OnNet: func(ev sim.NetEvent) {
			switch ev.Kind {
			case sim.NetSend:
				sentAt[ev.ID] = ev.T.Sub(spec.SimEpoch)
			case sim.NetDup:
				sentAt[ev.ID] = sentAt[ev.Orig]
				faulted[sentAt[ev.Orig] < until]++
			case sim.NetLoss:
				faulted[sentAt[ev.ID] < until]++
			case sim.NetDeliver:
				delivered[ev.ID]++
				if ev.Jitter != 0 || ev.Extra != 0 {
					faulted[sentAt[ev.ID] < until]++
				}
			default:
				t.Errorf("unexpected network event %v: %+v", ev.Kind, ev)
			}
		}}
	s, _, _ := pair(t, cfg)
	for ms := range 200 {
		s.Command(time.Duration(ms)*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{bAddr.String()}, Data: []byte{byte(ms)}})
	}
	s.Run(time.Second)
	if faulted[true] < 50 {
		t.Fatalf("only %d faults before Until: the run does not test it", faulted[true])
	}
	if faulted[false] != 0 {
		t.Errorf("%d losses, copies or jittered deliveries of datagrams sent at or after Until", faulted[false])
	}
	for id, at := range sentAt {
		if at >= until && delivered[id] != 1 {
			t.Errorf("datagram sent at %v delivered %d times, want once", at, delivered[id])
		}
	}
}

// Restarting a node that is up crashes it first: its peers' streams are
// reset, as a crash's are, and it starts afresh.
func TestRestartWhileUpResetsPeers(t *testing.T) {
	s, a, _ := pair(t, sim.Config{Link: sim.Symmetric(sim.Dir{Delay: time.Millisecond})})
	s.Command(0, "a", spec.Command{Name: "dial", Args: []string{bAddr.String()}})
	s.Restart(100*time.Millisecond, "b")
	s.Run(time.Second)
	if n := s.Node("b"); n.Starts() != 2 || !n.Up() {
		t.Fatalf("b started %d times and is up=%v, want 2 and up", n.Starts(), n.Up())
	}
	if c := a.inputs(spec.InConnected); len(c) != 1 {
		t.Fatalf("a connected %d times, want once", len(c))
	}
	c := a.inputs(spec.InStreamClosed)
	// b's reset takes the one-way delay, b's uplink's and a's downlink's.
	if len(c) != 1 || c[0].in.Err != "connection reset by peer" || c[0].at.Sub(spec.SimEpoch) != 102*time.Millisecond {
		t.Fatalf("a's stream: closes %v, want one reset by peer at 102ms", c)
	}
}

// FaultsFromSeed is a function of its seed that spreads over its
// bounds: the same seed gives the same schedule, and a hundred seeds a
// hundred loss rates, every number of partitions and crashes the bounds
// allow, every side a partition can cut off and every node a crash can
// stop.
func TestFaultsFromSeedFollowTheSeed(t *testing.T) {
	b := sim.FaultBounds{MaxLoss: 0.3, MaxDup: 0.3, MaxJitter: 10 * time.Millisecond, Horizon: time.Second,
		MaxPartitions: 2, Partitionable: []string{"a", "b"}, MaxCrashes: 2, Crashable: []string{"a", "b"}}
	const seeds = 100
	losses, partitions, crashes := map[float64]bool{}, map[int]bool{}, map[int]bool{}
	sides, crashed := map[string]bool{}, map[string]bool{}
	for seed := range uint64(seeds) {
		f := sim.FaultsFromSeed(seed, b)
		if again := sim.FaultsFromSeed(seed, b); !reflect.DeepEqual(f, again) {
			t.Fatalf("seed %d: %+v, then %+v", seed, f, again)
		}
		losses[f.Loss] = true
		partitions[len(f.Partitions)] = true
		crashes[len(f.Crashes)] = true
		for _, p := range f.Partitions {
			sides[strings.Join(p.Side, " ")] = true
		}
		for _, c := range f.Crashes {
			crashed[c.Node] = true
		}
	}
	if len(losses) != seeds || len(partitions) != b.MaxPartitions+1 || len(crashes) != b.MaxCrashes+1 {
		t.Errorf("%d seeds drew %d loss rates, %d numbers of partitions and %d of crashes; want %d, %d and %d",
			seeds, len(losses), len(partitions), len(crashes), seeds, b.MaxPartitions+1, b.MaxCrashes+1)
	}
	// Sides are the non-empty subsets of Partitionable, in its order.
	if want := []string{"a", "a b", "b"}; !slices.Equal(slices.Sorted(maps.Keys(sides)), want) {
		t.Errorf("partitions cut off %v, want each of %q", slices.Sorted(maps.Keys(sides)), want)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(crashed)), b.Crashable) {
		t.Errorf("crashes stopped %v, want each of %v", slices.Sorted(maps.Keys(crashed)), b.Crashable)
	}
}
