package scenario_test

import (
	"flag"
	"fmt"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
)

var long = flag.Bool("long", false, "run the swarm test over many seeds")

// TestSwarm is VOPR-style swarm testing: for every seed, a fault profile
// (loss, duplication, jitter, partitions, crashes) is drawn from the seed
// (scenario.SwarmFaults), every checkable protocol scenario runs under it,
// the network heals, and the run must be safe throughout and live after
// healing. It runs NETSPEC_SWARM_SEEDS seeds (default 200 with -long;
// skipped otherwise) starting at NETSPEC_SWARM_SEED (default 1); a failure
// prints the seed. It reports, per protocol, how much the faults met work
// in flight (see faultCoverage).
func TestSwarm(t *testing.T) {
	n := 0
	if *long {
		n = 200
	}
	if v := os.Getenv("NETSPEC_SWARM_SEEDS"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil {
			t.Fatalf("NETSPEC_SWARM_SEEDS: %v", err)
		}
	}
	if n == 0 {
		t.Skip("swarm testing runs with -long or NETSPEC_SWARM_SEEDS=N")
	}
	first := uint64(1)
	if v := os.Getenv("NETSPEC_SWARM_SEED"); v != "" {
		first, _ = strconv.ParseUint(v, 10, 64)
	}
	checkers := scenario.Checkers()
	if len(checkers) == 0 {
		t.Fatal("no checkable scenarios")
	}
	cover := make([]faultCoverage, len(checkers))
	var virtual time.Duration
	var events uint64
	runs := 0
	start := time.Now()
	for seed := first; seed < first+uint64(n); seed++ {
		for i, c := range checkers {
			f := scenario.SwarmFaults(c, seed)
			r := newFaultRun(f)
			t0 := time.Now()
			v := c.Check(seed, f, scenario.Options{Seed: seed, OnNet: r.observe})
			cover[i].wall += time.Since(t0)
			cover[i].add(f, r, v)
			runs++
			virtual += v.Virtual
			events += v.Events
			if !v.OK() {
				t.Errorf("%s, seed %d, faults %v: safety: %q, liveness: %q\n  replay: NETSPEC_SWARM_SEED=%d NETSPEC_SWARM_SEEDS=1 go test ./sim/scenario -run 'TestSwarm$' -v",
					c.Name(), seed, f, v.Safety, v.Live, seed)
			}
		}
	}
	for i, c := range checkers {
		t.Logf("%-6s %s", c.Name(), cover[i])
		// The drawn faults must meet the work (see scenario.Windowed):
		// over enough seeds, at least half of every protocol's runs
		// have a partition or crash take effect on work in flight.
		if cv := cover[i]; n >= 100 && 2*cv.hardHit < cv.runs {
			t.Errorf("%s: a partition or crash met work in flight in only %d of %d runs", c.Name(), cv.hardHit, cv.runs)
		}
	}
	msg := fmt.Sprintf("swarm: %d seeds x %d protocols = %d runs, %.2f simulated hours, %d events, in %v",
		n, len(checkers), runs, virtual.Hours(), events, time.Since(start).Round(time.Millisecond))
	t.Log(msg)
	fmt.Println(msg)
}

// faultRun records what of a drawn fault schedule happened in a checked
// run. Every checker ends its run as soon as its work is done (or at its
// liveness bound), so a fault timed after the work never happens; and a
// partition or crash counts as meeting work in flight only if the network
// carried packets from 100 ms before it began until it ended.
type faultRun struct {
	f     sim.Faults
	sends []time.Duration // when packets were sent, in order
	lost  bool            // a packet was lost at random
	cut   bool            // a partition dropped a packet
	// began[i] says whether f.Partitions[i] began; crashed[i] whether
	// f.Crashes[i] stopped a running node.
	began, crashed []bool
}

func newFaultRun(f sim.Faults) *faultRun {
	return &faultRun{f: f, began: make([]bool, len(f.Partitions)), crashed: make([]bool, len(f.Crashes))}
}

func (r *faultRun) observe(ev sim.NetEvent) {
	at := ev.T.Sub(spec.SimEpoch)
	switch ev.Kind {
	case sim.NetSend:
		r.sends = append(r.sends, at)
	case sim.NetLoss:
		r.lost = true
	case sim.NetCut:
		r.cut = true
	case sim.NetPartition:
		for i, p := range r.f.Partitions {
			if p.Start == at {
				r.began[i] = true
			}
		}
	case sim.NetCrash:
		// Checkers restart nodes too (a user trying again), which
		// crashes a node that is still up; only drawn crashes count.
		for i, c := range r.f.Crashes {
			if c.Node == ev.Node && c.At == at {
				r.crashed[i] = true
			}
		}
	}
}

// busy reports whether the network carried a packet between lead before
// from and to: a partition or crash over that span met work in flight.
func (r *faultRun) busy(from, to time.Duration) bool {
	const lead = 100 * time.Millisecond
	i, _ := slices.BinarySearch(r.sends, from-lead)
	return i < len(r.sends) && r.sends[i] <= to
}

// applied counts the drawn partitions and crashes that took effect, and
// those among them that met traffic.
func (r *faultRun) applied() (took, met int) {
	for i, p := range r.f.Partitions {
		if r.began[i] {
			took++
			if r.busy(p.Start, p.End) {
				met++
			}
		}
	}
	for i, c := range r.f.Crashes {
		if r.crashed[i] {
			took++
			if r.busy(c.At, c.Restart) {
				met++
			}
		}
	}
	return took, met
}

// faultCoverage sums, over one protocol's runs, how far the drawn faults
// met the work: runs in which a fault hit work in flight (a packet lost
// at random or cut by a partition, or a partition or crash that met
// traffic), runs in which a partition or crash met traffic, how many of
// the drawn partitions and crashes took effect at all and how many met
// traffic, and runs still going when the network healed (for the
// download checkers, work not done at the heal, so that "live after
// healing" judged work the faults had disturbed; the others issue work
// after the heal by design).
type faultCoverage struct {
	runs, hit, hardHit, busyAtHeal int
	drawn, took, met               int
	virtual, wall                  time.Duration
	events                         uint64
}

func (c *faultCoverage) add(f sim.Faults, r *faultRun, v scenario.Verdict) {
	c.runs++
	c.virtual += v.Virtual
	c.events += v.Events
	took, met := r.applied()
	if r.lost || r.cut || met > 0 {
		c.hit++
	}
	if met > 0 {
		c.hardHit++
	}
	c.drawn += len(f.Partitions) + len(f.Crashes)
	c.took += took
	c.met += met
	if v.Virtual > f.Until {
		c.busyAtHeal++
	}
}

func (c faultCoverage) String() string {
	pct := func(k, n int) float64 {
		if n == 0 {
			return 0
		}
		return 100 * float64(k) / float64(n)
	}
	return fmt.Sprintf("%d runs, %.2f simulated hours, %d events in %v; a fault hit work in flight in %.0f%% of runs "+
		"(a partition or crash in %.0f%%); of %d drawn partitions and crashes %d took effect, %d (%.0f%%) on work in flight; "+
		"work not done at the heal in %.0f%%",
		c.runs, c.virtual.Hours(), c.events, c.wall.Round(time.Millisecond), pct(c.hit, c.runs), pct(c.hardHit, c.runs),
		c.drawn, c.took, c.met, pct(c.met, c.drawn), pct(c.busyAtHeal, c.runs))
}

// TestSwarmRegressions replays, in every run, the swarm seeds that once
// failed, with the protocol they failed.
func TestSwarmRegressions(t *testing.T) {
	for _, tc := range []struct {
		protocol string
		seed     uint64
		why      string
	}{
		// A client crashed just after its session's cookie echo and came
		// back, from the same config, with the same session id: the
		// old SYN-ACK opened the new life's session on the server's old
		// one, whose segment 0 it already had, and the request was never
		// read (rudp.Endpoint.Dial now mixes the time into the id).
		{"file", 213337, "a restarted client reused its session id"},
	} {
		c := checker(t, tc.protocol)
		f := scenario.SwarmFaults(c, tc.seed)
		if v := c.Check(tc.seed, f, scenario.Options{Seed: tc.seed}); !v.OK() {
			t.Errorf("%s, seed %d (%s): safety: %q, liveness: %q", tc.protocol, tc.seed, tc.why, v.Safety, v.Live)
		}
	}
}
