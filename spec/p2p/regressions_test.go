package p2p_test

import (
	"encoding/json"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
)

// lookup finds p2p with the test's roles, and every registered protocol.
func lookup(name string) (spec.Protocol, bool) {
	if name == machines.Name {
		return machines, true
	}
	return all.Lookup(name)
}

// kept is what every kept trace of this package starts from: the trace,
// its network config, and its server's config and file.
type kept struct {
	tr      *conformance.Trace
	cfg     sim.Config
	scfg    p2p.ServerConfig
	content *p2p.Content
}

func load(t *testing.T, tr *conformance.Trace) kept {
	k := kept{tr: tr}
	var err error
	if k.cfg, err = tr.SimConfig(); err != nil {
		t.Fatal(err)
	}
	ni, ok := tr.Header.Node("server")
	if !ok {
		t.Fatal("trace has no server")
	}
	if err := json.Unmarshal(ni.Config, &k.scfg); err != nil {
		t.Fatal(err)
	}
	data, err := cs.Generate(k.scfg.File)
	if err != nil {
		t.Fatal(err)
	}
	if k.content, err = p2p.NewContent(data, k.scfg.ChunkSize); err != nil {
		t.Fatal(err)
	}
	return k
}

// resimulateSwarm rebuilds the swarm (peers p0..pn-1, the last one
// possibly the liar; legacy peers, pacing, trees and the server's
// dialect from the configs) and judges it as TestEveryPeerGetsTheFile
// does.
func resimulateSwarm(t *testing.T, tr *conformance.Trace) error {
	k := load(t, tr)
	w := &swarm{faults: k.cfg.Faults, size: int(k.scfg.File.Size), chunk: k.scfg.ChunkSize, seed: k.scfg.Seed,
		oldServer: k.scfg.Legacy, expect: k.scfg.Expect, trees: k.scfg.Trees, content: k.content}
	for ; ; w.n++ {
		ni, ok := tr.Header.Node(w.peer(w.n))
		if !ok {
			break
		}
		var pc p2p.PeerConfig
		if err := json.Unmarshal(ni.Config, &pc); err != nil {
			t.Fatal(err)
		}
		w.legacy = append(w.legacy, pc.Legacy)
		w.paced = w.paced || pc.UploadRate > 0
		if ni.Role == "liar" || ni.Role == "list-liar" {
			if w.liar {
				t.Fatal("more than one liar")
			}
			w.liar, w.listLiar = true, ni.Role == "list-liar"
		}
	}
	if w.liar {
		if ni, _ := tr.Header.Node(w.peer(w.n - 1)); ni.Role != "liar" && ni.Role != "list-liar" {
			t.Fatal("the liar is not the last peer")
		}
	}
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	w.s = s
	return simtest.Judge(func(c simtest.Fataler) { w.everyPeerGetsTheFile(c) })
}

// resimulateErrors rebuilds the light peers and probes (each probe's
// target is the node its config dials) and judges the run as
// TestErrorsAgainstGroundTruth does.
func resimulateErrors(t *testing.T, tr *conformance.Trace) error {
	k := load(t, tr)
	w := newProbeWorld(k.content)
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes() {
		ni, _ := tr.Header.Node(n.Name)
		switch ni.Role {
		case "light-peer":
			w.peers[n.Addr] = n
		case "probe":
			var pc proberConfig
			if err := json.Unmarshal(ni.Config, &pc); err != nil {
				t.Fatal(err)
			}
			target := ""
			for _, m := range s.Nodes() {
				if m.Addr == pc.To.Addr() {
					target = m.Name
				}
			}
			if target == "" {
				t.Fatalf("%s probes %v, no node of the trace", n.Name, pc.To)
			}
			w.probe(n, target)
		}
	}
	return simtest.Judge(func(c simtest.Fataler) { w.errorsAgainstGroundTruth(c, s) })
}

// resimulators re-simulate the traces each property saves (simtest names
// them after the property) and judge them with the property's checks.
var resimulators = map[string]simtest.Resimulator{
	"TestEveryPeerGetsTheFile":     resimulateSwarm,
	"TestErrorsAgainstGroundTruth": resimulateErrors,
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces the properties left in testdata/failures,
// still named after the property) with today's machines: each must now
// pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", resimulators)
}
