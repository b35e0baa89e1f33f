package file_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/file"
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

// resimulate runs a trace TestDownloadsAreExactOrFail saved again, with
// today's machines (or lookup's), and judges it as the property does:
// every download exact or failed, all of them exact with no partition
// and loss up to 10%, and no session left on the server.
func resimulate(t *testing.T, path string, lookup conformance.Lookup) error {
	tr, err := conformance.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ni, ok := tr.Header.Node("server")
	if !ok {
		t.Fatal("trace has no server")
	}
	var scfg file.ServerConfig
	if err := json.Unmarshal(ni.Config, &scfg); err != nil {
		t.Fatal(err)
	}
	var cfg sim.Config
	if err := json.Unmarshal(tr.Header.Sim, &cfg); err != nil {
		t.Fatal(err)
	}
	w := &world{dl: map[string]*download{}, served: synth(scfg.Files)}
	return judge(func(c checker) {
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
	files, _ := filepath.Glob("testdata/regressions/*.ndjson")
	if len(files) == 0 {
		t.Skip("no regression traces yet")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".ndjson"), func(t *testing.T) {
			if err := resimulate(t, f, all.Lookup); err != nil {
				t.Fatalf("%s fails again: %v", f, err)
			}
		})
	}
}
