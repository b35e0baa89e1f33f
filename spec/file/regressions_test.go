package file_test

import (
	"encoding/json"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/file"
)

// resimulate runs a trace TestDownloadsAreExactOrFail saved again, with
// today's machines (or lookup's), and judges it as the property does:
// every download exact or failed, all of them exact with no partition
// and loss up to 10%, and no session left on the server.
func resimulate(t *testing.T, tr *conformance.Trace, lookup conformance.Lookup) error {
	ni, ok := tr.Header.Node("server")
	if !ok {
		t.Fatal("trace has no server")
	}
	var scfg file.ServerConfig
	if err := json.Unmarshal(ni.Config, &scfg); err != nil {
		t.Fatal(err)
	}
	cfg, err := tr.SimConfig()
	if err != nil {
		t.Fatal(err)
	}
	w := &world{dl: map[string]*download{}, served: synth(scfg.Files)}
	return simtest.Judge(func(c simtest.Fataler) {
		s, err := conformance.Resimulate(tr, lookup, func(cfg *sim.Config) { w.observe(c, cfg) })
		if err != nil {
			t.Fatal(err)
		}
		w.s = s
		for _, n := range s.Nodes() {
			if n.Name == "server" {
				w.srv = n
				continue
			}
			d := &download{}
			for _, r := range tr.NodeRecords(n.Name) {
				if r.In == "command" && r.Name == "get" && len(r.Args) > 0 {
					if len(r.Args) > 1 {
						// The bytes a resumed download held before the
						// run are not in the trace; the property never
						// resumes.
						t.Fatalf("%s resumes %s: not a run of TestDownloadsAreExactOrFail", n.Name, r.Args[0])
					}
					d.name = r.Args[0]
				}
			}
			w.clients = append(w.clients, n)
			w.dl[n.Name] = d
		}
		w.await(c, downloadLimit)
		w.exactOrFail(c, cfg.Faults)
	})
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces TestDownloadsAreExactOrFail left in
// testdata/failures) with today's machines: each must now pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", map[string]simtest.Resimulator{
		"TestDownloadsAreExactOrFail": func(t *testing.T, tr *conformance.Trace) error { return resimulate(t, tr, all.Lookup) },
	})
}
