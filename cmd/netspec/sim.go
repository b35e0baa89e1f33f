package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/pcap"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
)

func simGroup() *group {
	return &group{
		name:   "sim",
		args:   "[SCENARIO]",
		help:   "run a simulated experiment (default: " + scenario.All()[0].Name() + ")",
		direct: runSim,
	}
}

func runSim(ctx context.Context, e *env, args []string) error {
	sc := scenario.All()[0]
	name, synopsis := "sim", "[SCENARIO] [flags]"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		s, ok := scenario.Find(args[0])
		if !ok {
			var names []string
			for _, s := range scenario.All() {
				names = append(names, s.Name())
			}
			sort.Strings(names)
			return usagef("sim: unknown scenario %q (have: %s)", args[0], strings.Join(names, ", "))
		}
		sc, args = s, args[1:]
		name, synopsis = "sim "+sc.Name(), "[flags]"
	}
	var list strings.Builder
	for _, s := range scenario.All() {
		fmt.Fprintf(&list, "\n  %-10s %s", s.Name(), s.Describe())
	}
	help := "Runs a simulated experiment on a seeded virtual network; the same seed gives\nthe same run, byte for byte. Scenarios:" + list.String()
	if name == "sim" {
		help += "\n\nWithout SCENARIO it runs " + sc.Name() + "; the flags below are " + sc.Name() + "'s\n(see 'netspec sim SCENARIO -h' for another's)."
	}
	fs := e.flags(name, synopsis, help)
	seed := fs.Uint64("seed", 1, "seed for the network's faults and the scenario's choices")
	tracePath := fs.String("trace", "", "write the whole run as an NDJSON trace to `FILE` (one run: swarm needs a single --n and --mode cs or p2p)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pcapPath := fs.String("pcap", "", "write every packet the network carried to `FILE` (pcapng, virtual time; faults as comments)")
	logger := logFlagsAt(fs, true)
	sc.Flags(fs)
	pos, err := e.parse(fs, args, 0, -1)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		if _, ok := scenario.Find(pos[0]); ok && name == "sim" {
			return usagef("sim: the scenario comes before its flags: netspec sim %s [flags]", pos[0])
		}
		return usagef("%s: unexpected argument %q (see -h)", name, pos[0])
	}
	if v, ok := sc.(scenario.Validator); ok {
		if err := v.Validate(); err != nil {
			return usagef("sim %s: %v", sc.Name(), err)
		}
	}
	if o, ok := sc.(scenario.OneRun); ok && *tracePath != "" {
		if err := o.OneRunCheck(); err != nil {
			return usagef("sim %s: %v", sc.Name(), err)
		}
	}
	if err := checkOutFiles(name, []string{"--trace", *tracePath, "--pcap", *pcapPath, "--log", fs.Lookup("log").Value.String()}); err != nil {
		return err
	}
	opt := scenario.Options{Seed: *seed}
	if *tracePath != "" {
		f, err := os.Create(*tracePath)
		if err != nil {
			return fmt.Errorf("%s: --trace: %w", name, err)
		}
		defer f.Close()
		opt.Trace = f
	}
	if fs.Lookup("v").Value.String() == "true" || fs.Lookup("log").Value.String() != "" {
		l, closer, err := logger(e)
		if err != nil {
			return err
		}
		defer closer()
		opt.Logger = l
	}
	var observers []func(sim.NetEvent)
	if opt.Logger != nil && opt.Logger.Enabled(context.Background(), slog.LevelDebug) {
		observers = append(observers, logDrops(opt.Logger))
	}
	var pw *pcap.Writer
	if *pcapPath != "" {
		f, err := os.Create(*pcapPath)
		if err != nil {
			return fmt.Errorf("%s: --pcap: %w", name, err)
		}
		defer f.Close()
		if pw, err = pcap.NewWriter(f); err != nil {
			return err
		}
		observers = append(observers, pw.Observe)
	}
	switch len(observers) {
	case 1:
		opt.OnNet = observers[0]
	case 2:
		opt.OnNet = func(ev sim.NetEvent) { observers[0](ev); observers[1](ev) }
	}
	// Ctrl-C and SIGTERM stop the simulations: a long sweep, or one
	// whose flags make it last for ever, ends at once.
	stop := make(chan struct{})
	opt.Stop = stop
	ran := make(chan struct{})
	defer close(ran)
	go func() {
		select {
		case <-ctx.Done():
			close(stop)
		case <-ran:
		}
	}()
	res, err := sc.Run(opt)
	if ctx.Err() != nil {
		return fmt.Errorf("sim %s: interrupted (reproduce: %s)", sc.Name(), scenario.Reproduce(sc.Name(), *seed, fs))
	}
	if err != nil {
		return err
	}
	if pw != nil {
		if err := pw.Close(); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote %s (%d packets)\n", *pcapPath, pw.Packets())
		if n := pw.Skipped(); n > 0 {
			fmt.Fprintf(e.stderr, "netspec: left out %d packet(s) with an end without an address, or between an IPv4 and an IPv6 address\n", n)
		}
	}
	repro := scenario.Reproduce(sc.Name(), *seed, fs)
	if *asJSON {
		if err := writeJSON(e.stdout, map[string]any{"scenario": sc.Name(), "result": res.Value, "failed": res.Failed, "reproduce": repro}); err != nil {
			return err
		}
	} else {
		for i, t := range res.Tables {
			if i > 0 {
				fmt.Fprintln(e.stdout)
			}
			if err := renderTable(e.stdout, t); err != nil {
				return err
			}
		}
		fmt.Fprintf(e.stdout, "\nreproduce: %s\n", repro)
	}
	if res.Failed != "" {
		return fmt.Errorf("sim %s: %s (reproduce: %s)", sc.Name(), res.Failed, repro)
	}
	return nil
}

// logDrops logs, at debug level, every packet the simulated network
// dropped and why: what -v promises.
func logDrops(l *slog.Logger) func(sim.NetEvent) {
	return func(ev sim.NetEvent) {
		if !ev.Kind.Dropped() {
			return
		}
		l.Debug("network dropped a packet", "t", ev.T.Sub(spec.SimEpoch), "fate", ev.Kind.String(), "packet", ev.ID,
			"proto", ev.Proto.String(), "from", ev.From.String(), "to", ev.To.String(), "bytes", ev.Len, "why", ev.Note)
	}
}
