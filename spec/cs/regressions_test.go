package cs_test

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
	"github.com/netspec/netspec/spec/cs"
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

// resimulate runs a trace TestClientsGetTheExactFile saved again, with
// today's machines (or lookup's; the server and clients are rebuilt from
// their configs, the file from the server's FileSpec), and judges it as
// the property does.
func resimulate(t *testing.T, path string, lookup conformance.Lookup) error {
	tr, err := conformance.Load(path)
	if err != nil {
		t.Fatal(err)
	}
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
	var cfg sim.Config
	if err := json.Unmarshal(tr.Header.Sim, &cfg); err != nil {
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
	return judge(func(c checker) { w.run(c, s, names, data, cfg.Faults) })
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces TestClientsGetTheExactFile left in
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
