package scenario_test

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
)

var long = flag.Bool("long", false, "run the swarm test over many seeds")

// TestSwarm is VOPR-style swarm testing: for every seed, a fault profile
// (loss, duplication, jitter, partitions, crashes) is drawn from the seed,
// every checkable protocol scenario runs under it, the network heals, and
// the run must be safe throughout and live after healing. It runs
// NETSPEC_SWARM_SEEDS seeds (default 200 with -long; skipped otherwise)
// starting at NETSPEC_SWARM_SEED (default 1); a failure prints the seed.
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
	var virtual time.Duration
	var events uint64
	runs := 0
	start := time.Now()
	for seed := first; seed < first+uint64(n); seed++ {
		for _, c := range checkers {
			part, crash := c.Targets()
			f := sim.FaultsFromSeed(seed, sim.FaultBounds{
				MaxLoss: 0.3, MaxDup: 0.1, MaxJitter: 30 * time.Millisecond,
				Horizon:       time.Duration(5+seed%26) * time.Second,
				MaxPartitions: 2, Partitionable: part,
				MaxCrashes: 2, Crashable: crash,
			})
			v := c.Check(seed, f, scenario.Options{Seed: seed})
			runs++
			virtual += v.Virtual
			events += v.Events
			if !v.OK() {
				t.Errorf("%s, seed %d, faults %v: safety: %q, liveness: %q\n  replay: NETSPEC_SWARM_SEED=%d NETSPEC_SWARM_SEEDS=1 go test ./sim/scenario -run TestSwarm -v",
					c.Name(), seed, f, v.Safety, v.Live, seed)
			}
		}
	}
	msg := fmt.Sprintf("swarm: %d seeds x %d protocols = %d runs, %.2f simulated hours, %d events, in %v",
		n, len(checkers), runs, virtual.Hours(), events, time.Since(start).Round(time.Millisecond))
	t.Log(msg)
	fmt.Println(msg)
}
