package scenario_test

import (
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
)

// The default experiment passes its own checks, and the same seed gives
// the same result.
func TestChatScenario(t *testing.T) {
	c := withFlagDefaults()
	res, err := c.Run(scenario.Options{Seed: 1})
	if err != nil || res.Failed != "" {
		t.Fatalf("chat scenario: %v %s", err, res.Failed)
	}
	v := res.Value.(scenario.ChatResult)
	if v.Server.Messages == 0 || v.Net.Dup == 0 || v.Net.Lost == 0 {
		t.Fatalf("the run exercised nothing: %+v", v.Net)
	}
	again, _ := withFlagDefaults().Run(scenario.Options{Seed: 1})
	if again.Value.(scenario.ChatResult).Events != v.Events {
		t.Fatal("the same seed gave a different run")
	}
}

func withFlagDefaults() *scenario.Chat {
	c := &scenario.Chat{}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	c.Flags(fs)
	_ = fs.Parse(nil)
	return c
}

// Swarm testing of chat alone: faults drawn from each seed, safety
// throughout, every running client sees every other's last line after
// healing. NETSPEC_CHAT_SWARM=N runs N seeds (default 20).
func TestChatSwarm(t *testing.T) {
	n := 20
	if v := os.Getenv("NETSPEC_CHAT_SWARM"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	c := &scenario.Chat{}
	part, crash := c.Targets()
	for seed := uint64(1); seed <= uint64(n); seed++ {
		f := sim.FaultsFromSeed(seed, sim.FaultBounds{
			MaxLoss: 0.3, MaxDup: 0.1, MaxJitter: 30 * time.Millisecond,
			Horizon:       time.Duration(5+seed%26) * time.Second,
			MaxPartitions: 2, Partitionable: part,
			MaxCrashes: 2, Crashable: crash,
		})
		if v := c.Check(seed, f, scenario.Options{Seed: seed}); !v.OK() {
			t.Errorf("seed %d, faults %v: safety %q, liveness %q\n  replay: NETSPEC_CHAT_SWARM_SEED=%d", seed, f, v.Safety, v.Live, seed)
		}
	}
}
