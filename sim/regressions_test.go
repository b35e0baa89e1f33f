package sim_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/spec"
)

// failure carries a re-simulated run's first failed check out, as
// rapid's Fatalf stops an example.
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

func lookupProbe(name string) (spec.Protocol, bool) {
	return probeProtocol, name == probeProtocol.Name
}

// resimulate runs a trace TestStreamIsReliable saved again, with today's
// simulator (the network config, fault schedule and seed are the
// header's; the probes and a's dial, writes and close are rebuilt from
// it), and judges it as the property does.
func resimulate(t *testing.T, path string) error {
	tr, err := conformance.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s, err := conformance.Resimulate(tr, lookupProbe, nil)
	if err != nil {
		t.Fatal(err)
	}
	var want []byte
	writes := 0
	for _, r := range tr.NodeRecords("a") {
		if r.In == "command" && r.Name == "write" {
			d, err := r.Payload()
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, d...)
			writes++
		}
	}
	na, nb := s.Node("a"), s.Node("b")
	if na == nil || nb == nil {
		t.Fatal("trace lacks probes a and b")
	}
	// The probes exist once their nodes have started, at time zero.
	s.RunUntil(func() bool { return na.Up() && nb.Up() }, 0)
	a, okA := na.Machine().(*probe)
	b, okB := nb.Machine().(*probe)
	if !okA || !okB {
		t.Fatal("a and b are not probes")
	}
	return judge(func(c checker) { streamIsReliable(c, s, a, b, want, writes) })
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces TestStreamIsReliable left in
// testdata/failures) with today's simulator: each must now pass.
func TestRegressions(t *testing.T) {
	files, _ := filepath.Glob("testdata/regressions/*.ndjson")
	if len(files) == 0 {
		t.Skip("no regression traces yet")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".ndjson"), func(t *testing.T) {
			if err := resimulate(t, f); err != nil {
				t.Fatalf("%s fails again: %v", f, err)
			}
		})
	}
}
