package conformance

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// SimConfig is the network a simulator trace recorded: links, faults
// and seed (the zero Config for a trace that carries none).
func (t *Trace) SimConfig() (sim.Config, error) {
	var cfg sim.Config
	if len(t.Header.Sim) > 0 {
		if err := json.Unmarshal(t.Header.Sim, &cfg); err != nil {
			return sim.Config{}, fmt.Errorf("conformance: simulator config: %w", err)
		}
	}
	return cfg, nil
}

// Resimulate rebuilds the simulation a simulator trace recorded: the same
// network, fault schedule and seed; the same nodes, built from their
// protocols, roles and configs; the same commands, stops and forged
// packets at the same times. The machines are today's, so the trace of a
// run where a property failed becomes a regression test that outlives the
// generators that found it: resimulate, run, check the property again.
// configure, if not nil, adjusts the network's config (observers) first.
func Resimulate(t *Trace, lookup Lookup, configure func(*sim.Config)) (*sim.Sim, error) {
	if t.Header.Source != "sim" {
		return nil, fmt.Errorf("conformance: resimulate needs a simulator trace, not %q", t.Header.Source)
	}
	cfg, err := t.SimConfig()
	if err != nil {
		return nil, err
	}
	cfg.Protocol = t.Header.Protocol
	if configure != nil {
		configure(&cfg)
	}
	s := sim.New(cfg)
	for _, ni := range t.Header.Nodes {
		ni := ni
		var ns sim.NodeSettings
		if len(ni.Sim) > 0 {
			if err := json.Unmarshal(ni.Sim, &ns); err != nil {
				return nil, fmt.Errorf("conformance: node %s settings: %w", ni.Name, err)
			}
		}
		if _, err := t.machine(ni.Name, lookup); err != nil {
			return nil, err
		}
		addr, _ := netip.ParseAddr(ni.Addr)
		full, _ := t.Header.Node(ni.Name)
		_, err := s.AddNode(sim.NodeSpec{
			Name: ni.Name, Protocol: full.Protocol, Role: ni.Role, Config: json.RawMessage(ni.Config),
			Addr: addr, Aliases: ns.Aliases, Link: ns.Link, Start: ns.Start,
			New: func() spec.Machine {
				m, _ := t.machine(ni.Name, lookup) // checked above
				return m
			},
		})
		if err != nil {
			return nil, err
		}
	}
	for _, r := range t.Records {
		at := time.Duration(r.T)
		switch {
		case r.In == "command":
			in, err := r.Input()
			if err != nil {
				return nil, err
			}
			s.Command(at, r.Node, in.Cmd)
		case r.In == "stop":
			s.Stop(at, r.Node)
		case r.Net == "send" && r.Err == "forged":
			from, err1 := netip.ParseAddrPort(r.From)
			to, err2 := netip.ParseAddrPort(r.Addr)
			data, err3 := r.Payload()
			if err1 != nil || err2 != nil || err3 != nil {
				return nil, fmt.Errorf("conformance: bad forged packet record at t=%d", r.T)
			}
			s.Inject(at, from, to, data)
		}
	}
	return s, nil
}

// Duration is the virtual time the trace covers.
func (t *Trace) Duration() time.Duration {
	if len(t.Records) == 0 {
		return 0
	}
	return time.Duration(t.Records[len(t.Records)-1].T)
}
