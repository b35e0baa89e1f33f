package stream_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/stream"
)

// failure carries a re-simulated run's first failed check out of the
// simulation, as rapid's Fatalf stops an example.
type failure struct{ msg string }

type checker struct{}

func (checker) Fatalf(format string, args ...any) { panic(failure{fmt.Sprintf(format, args...)}) }

// judge runs checks and returns the first that failed.
func judge(checks func(checker)) (err error) {
	defer func() {
		if r := recover(); r != nil {
			f, ok := r.(failure)
			if !ok {
				panic(r)
			}
			err = errors.New(f.msg)
		}
	}()
	checks(checker{})
	return nil
}

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
	var cfg sim.Config
	if err := json.Unmarshal(tr.Header.Sim, &cfg); err != nil {
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
var resimulators = map[string]func(*testing.T, *conformance.Trace) error{
	"TestStatisticsEqualGroundTruth": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		ni, _ := tr.Header.Node("server")
		// The data path's faults are on the server's uplink.
		faults := "none"
		var ns sim.NodeSettings
		if json.Unmarshal(ni.Sim, &ns) == nil && ns.Link != nil {
			faults = fmt.Sprintf("server uplink %+v", ns.Link.Up)
		}
		return judge(func(c checker) { r.w.equalGroundTruth(c, faults) })
	},
	"TestStatisticsUnderGlobalFaults": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		return judge(func(c checker) { r.w.underGlobalFaults(c, r.cfg.Faults) })
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
		return judge(func(c checker) { r.w.challengesOnly(c, victim) })
	},
	"TestSilentSubscribersAreDropped": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		ni, _ := tr.Header.Node("server")
		var scfg stream.ServerConfig
		if err := json.Unmarshal(ni.Config, &scfg); err != nil {
			t.Fatal(err)
		}
		return judge(func(c checker) { r.w.silentDropped(c, scfg, r.cfg.Faults.Crashes) })
	},
	"TestClientsRecoverFromServerRestart": func(t *testing.T, tr *conformance.Trace) error {
		r := resimulate(t, tr)
		return judge(func(c checker) { r.w.recovers(c) })
	},
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces the properties left in testdata/failures,
// still named after the property) with today's machines: each must now
// pass.
func TestRegressions(t *testing.T) {
	files, _ := filepath.Glob("testdata/regressions/*.ndjson")
	if len(files) == 0 {
		t.Skip("no regression traces yet")
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".ndjson")
		t.Run(name, func(t *testing.T) {
			var resim func(*testing.T, *conformance.Trace) error
			for prop, r := range resimulators {
				if strings.HasPrefix(name, prop) {
					resim = r
				}
			}
			if resim == nil {
				t.Fatalf("%s: the file name must start with the name of the property that saved it", f)
			}
			tr, err := conformance.Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if err := resim(t, tr); err != nil {
				t.Fatalf("%s fails again: %v", f, err)
			}
		})
	}
}
