package scenario

import (
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// Checked is a scenario that can run under any fault schedule and judge
// the run itself, for swarm testing: a seed draws the faults (TigerBeetle
// VOPR style), every fault heals by Horizon, and the run must be safe
// throughout (nothing wrong ever delivered) and live after healing (all
// work completes within the scenario's bound).
type Checked interface {
	Name() string
	// Targets lists the nodes faults may partition and crash.
	Targets() (partitionable, crashable []string)
	// Check runs the workload under f (healed by f.Until) and returns
	// what it covered and, if it failed, why.
	Check(seed uint64, f sim.Faults, opt Options) Verdict
}

// Windowed is implemented by checkers whose workload is over in a few
// seconds on a healthy network. Faults are drawn uniformly over the fault
// window, so a window much longer than the work would schedule most
// partitions and crashes after the work is done (they never happen, the
// run having ended) and would heal the network only after the work
// finished, leaving nothing for the liveness check to judge. FaultWindow
// returns, for a seed, a window of the order of the work instead.
type Windowed interface {
	FaultWindow(seed uint64) time.Duration
}

// Verdict is one checked run.
type Verdict struct {
	Virtual time.Duration // simulated time covered
	Events  uint64
	Safety  string // empty: nothing wrong was ever observed
	Live    string // empty: everything completed after healing
}

// OK reports whether the run passed.
func (v Verdict) OK() bool { return v.Safety == "" && v.Live == "" }

// Checkers returns the scenarios that can be swarm-tested, and checkers
// of protocols that have no scenario of their own (cs).
func Checkers() []Checked {
	var out []Checked
	for _, s := range All() {
		if c, ok := s.(Checked); ok {
			out = append(out, c)
		}
	}
	return append(out, &CSCheck{})
}

// DefaultFaultWindow is the fault window of checkers whose workload
// spreads itself over whatever window it is given: 5 to 30 s by seed.
func DefaultFaultWindow(seed uint64) time.Duration {
	return time.Duration(5+seed%26) * time.Second
}

// SwarmFaults draws the fault schedule swarm testing runs c under for
// seed: loss up to 30%, duplication up to 10%, jitter up to 30 ms, up to
// two partitions and two crashes, all healed by the end of c's fault
// window (FaultWindow if c is Windowed, DefaultFaultWindow otherwise).
func SwarmFaults(c Checked, seed uint64) sim.Faults {
	window := DefaultFaultWindow(seed)
	if w, ok := c.(Windowed); ok {
		window = w.FaultWindow(seed)
	}
	part, crash := c.Targets()
	return sim.FaultsFromSeed(seed, sim.FaultBounds{
		MaxLoss: 0.3, MaxDup: 0.1, MaxJitter: 30 * time.Millisecond,
		Horizon:       window,
		MaxPartitions: 2, Partitionable: part,
		MaxCrashes: 2, Crashable: crash,
	})
}

// windowBetween draws a window from seed between lo and hi, uniformly in
// whole milliseconds; salt keeps the draws of different checkers apart.
func windowBetween(seed, salt uint64, lo, hi time.Duration) time.Duration {
	ms := spec.NewRand(seed ^ salt).IntN(int((hi-lo)/time.Millisecond) + 1)
	return lo + time.Duration(ms)*time.Millisecond
}
