package cs_test

import (
	"encoding/json"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/cs"
)

// resimulate runs a trace TestClientsGetTheExactFile saved again, with
// today's machines (or lookup's; the server and clients are rebuilt from
// their configs, the file from the server's FileSpec), and judges it as
// the property does.
func resimulate(t *testing.T, tr *conformance.Trace, lookup conformance.Lookup) error {
	ni, ok := tr.Header.Node("server")
	if !ok {
		t.Fatal("trace has no server")
	}
	var scfg cs.ServerConfig
	if err := json.Unmarshal(ni.Config, &scfg); err != nil {
		t.Fatal(err)
	}
	data, err := cs.Generate(scfg.File)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := tr.SimConfig()
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld()
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range s.Nodes() {
		if n.Name != "server" {
			names = append(names, n.Name)
		}
	}
	return simtest.Judge(func(c simtest.Fataler) { w.run(c, s, names, data, cfg.Faults) })
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces TestClientsGetTheExactFile left in
// testdata/failures) with today's machines: each must now pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", map[string]simtest.Resimulator{
		"TestClientsGetTheExactFile": func(t *testing.T, tr *conformance.Trace) error { return resimulate(t, tr, all.Lookup) },
	})
}
