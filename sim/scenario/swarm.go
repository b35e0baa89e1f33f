package scenario

import (
	"time"

	"github.com/netspec/netspec/sim"
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

// Verdict is one checked run.
type Verdict struct {
	Virtual time.Duration // simulated time covered
	Events  uint64
	Safety  string // empty: nothing wrong was ever observed
	Live    string // empty: everything completed after healing
}

// OK reports whether the run passed.
func (v Verdict) OK() bool { return v.Safety == "" && v.Live == "" }

// Checkers returns the scenarios that can be swarm-tested.
func Checkers() []Checked {
	var out []Checked
	for _, s := range All() {
		if c, ok := s.(Checked); ok {
			out = append(out, c)
		}
	}
	return out
}
