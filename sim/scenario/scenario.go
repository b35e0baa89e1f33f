// Package scenario holds the simulated experiments `netspec sim` runs and
// tests reuse: each builds a network of machines, drives it, and reports
// what happened against the simulator's ground truth.
package scenario

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// Options are the settings every scenario takes.
type Options struct {
	Seed   uint64
	Trace  io.Writer    // the whole run as an NDJSON trace, if set
	Logger *slog.Logger // machine logs, if set
	// OnNet observes every packet's fate (a pcap writer, a swarm
	// checker), besides whatever the scenario observes itself.
	OnNet func(sim.NetEvent)
	// Stop, closed, interrupts every simulation of the run (Ctrl-C):
	// they end at once and Run's result is not to be trusted.
	Stop <-chan struct{}
	// Wrap, if set, wraps every machine a checker (Checked.Check)
	// builds, given its node's name: a test puts a bug in on purpose
	// and sees the checker reject the run. The trace still records the
	// real protocol, role and config.
	Wrap func(node string, m spec.Machine) spec.Machine
}

// machine is m, wrapped by Wrap if set, for the node called node.
func (o Options) machine(node string, m spec.Machine) spec.Machine {
	if o.Wrap == nil {
		return m
	}
	return o.Wrap(node, m)
}

// NewSim builds the scenario's simulator with the options applied: the
// trace, the logger, and OnNet chained after the scenario's own observer.
// Scenarios build their simulators with it so every option works for all.
func (o Options) NewSim(cfg sim.Config) *sim.Sim {
	if o.Trace != nil {
		cfg.Trace = o.Trace
	}
	if o.Logger != nil {
		cfg.Logger = o.Logger
	}
	if o.Stop != nil {
		cfg.Stop = o.Stop
	}
	if o.OnNet != nil {
		if own := cfg.OnNet; own != nil {
			cfg.OnNet = func(ev sim.NetEvent) { own(ev); o.OnNet(ev) }
		} else {
			cfg.OnNet = o.OnNet
		}
	}
	return sim.New(cfg)
}

// Table is a result as rows, for tablewriter or any other renderer.
type Table struct {
	Title  string
	Header []string
	Rows   [][]string
	Notes  []string
}

// Result is what a scenario reports.
type Result struct {
	Tables []Table
	// Value is the machine-readable result (--json).
	Value any
	// Failed is set when the run broke an invariant the scenario checks.
	Failed string
}

// Scenario is one named experiment.
type Scenario interface {
	Name() string
	// Describe is one line for help.
	Describe() string
	// Flags registers the scenario's own flags on fs.
	Flags(fs *flag.FlagSet)
	// Run runs it.
	Run(opt Options) (Result, error)
}

// Validator is implemented by scenarios that check their flags before
// running; `netspec sim` reports a Validate error as a usage error (exit
// status 2).
type Validator interface {
	Validate() error
}

// OneRun is implemented by scenarios that may run more than one
// simulation: OneRunCheck says why a single trace cannot record them as
// configured (nil: it can).
type OneRun interface {
	OneRunCheck() error
}

// All returns every scenario, the default first.
func All() []Scenario {
	return []Scenario{&Swarm{}, &Echo{}, &Stream{}, &Chat{}, &File{}, &TFTP{}}
}

// Find returns the scenario called name.
func Find(name string) (Scenario, bool) {
	for _, s := range All() {
		if s.Name() == name {
			return s, true
		}
	}
	return nil, false
}

// Reproduce returns the command line that reruns a scenario with the
// flags that were set on fs.
func Reproduce(name string, seed uint64, fs *flag.FlagSet) string {
	args := []string{"netspec", "sim", name, fmt.Sprintf("--seed=%d", seed)}
	var set []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "seed", "trace", "json", "pcap", "v":
			return
		}
		set = append(set, fmt.Sprintf("--%s=%s", f.Name, f.Value.String()))
	})
	sort.Strings(set)
	return strings.Join(append(args, set...), " ")
}
