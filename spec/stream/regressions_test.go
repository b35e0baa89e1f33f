package stream_test

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/stream"
)

// lookup finds every registered protocol; its stream also builds the
// bystanders TestSpoofedJoinsDrawOnlyChallenges adds.
func lookup(name string) (spec.Protocol, bool) {
	p, ok := all.Lookup(name)
	if !ok || name != stream.Protocol.Name {
		return p, ok
	}
	inner := p.New
	p.New = func(role string, cfg []byte) (spec.Machine, error) {
		if role != "bystander" {
			return inner(role, cfg)
		}
		var c bystanderConfig
		if err := json.Unmarshal(cfg, &c); err != nil {
			return nil, err
		}
		return &sink{port: c.Port}, nil
	}
	return p, true
}

// replayed is a kept run rebuilt: the world that observes it, with every
// client followed, and the trace's network config.
type replayed struct {
	w   *world
	tr  *conformance.Trace
	cfg sim.Config
}

func resimulate(t *testing.T, tr *conformance.Trace) replayed {
	cfg, err := tr.SimConfig()
	if err != nil {
		t.Fatal(err)
	}
	w := emptyWorld()
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	w.s = s
	for _, n := range s.Nodes() {
		if ni, _ := tr.Header.Node(n.Name); ni.Role == "client" {
			w.follow(n)
		}
	}
	return replayed{w, tr, cfg}
}

// resimulators re-simulate the traces each property saves (simtest names
// them after the property) and judge them with the property's checks.
var resimulators = map[string]simtest.Resimulator{
	"TestStatisticsEqualGroundTruth": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		ni, _ := tr.Header.Node("server")
		// The data path's faults are on the server's uplink.
		faults := "none"
		var ns sim.NodeSettings
		if json.Unmarshal(ni.Sim, &ns) == nil && ns.Link != nil {
			faults = fmt.Sprintf("server uplink %+v", ns.Link.Up)
		}
		return simtest.Judge(func(c simtest.Fataler) { r.w.equalGroundTruth(c, faults) })
	},
	"TestStatisticsUnderGlobalFaults": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		return simtest.Judge(func(c simtest.Fataler) { r.w.underGlobalFaults(c, r.cfg.Faults) })
	},
	"TestSpoofedJoinsDrawOnlyChallenges": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		// The victim is the address the forged datagrams claim.
		var victim netip.AddrPort
		for _, rec := range tr.Records {
			if rec.Net == "send" && rec.Err == "forged" {
				v, err := netip.ParseAddrPort(rec.From)
				if err != nil {
					t.Fatal(err)
				}
				victim = v
				break
			}
		}
		if !victim.IsValid() {
			t.Fatal("no forged datagram in the trace")
		}
		return simtest.Judge(func(c simtest.Fataler) { r.w.challengesOnly(c, victim) })
	},
	"TestSilentSubscribersAreDropped": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		ni, _ := tr.Header.Node("server")
		var scfg stream.ServerConfig
		if err := json.Unmarshal(ni.Config, &scfg); err != nil {
			t.Fatal(err)
		}
		return simtest.Judge(func(c simtest.Fataler) { r.w.silentDropped(c, scfg, r.cfg.Faults.Crashes) })
	},
	"TestClientsRecoverFromServerRestart": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		return simtest.Judge(func(c simtest.Fataler) { r.w.recovers(c) })
	},
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces the properties left in testdata/failures,
// still named after the property) with today's machines: each must now
// pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", resimulators)
}
