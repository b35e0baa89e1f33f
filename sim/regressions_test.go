package sim_test

import (
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
)

func lookupProbe(name string) (spec.Protocol, bool) {
	return probeProtocol, name == probeProtocol.Name
}

// resimulate runs a trace TestStreamIsReliable saved again, with today's
// simulator (the network config, fault schedule and seed are the
// header's; the probes and a's dial, writes and close are rebuilt from
// it), and judges it as the property does.
func resimulate(t *testing.T, tr *conformance.Trace) error {
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
	return simtest.Judge(func(c simtest.Fataler) { streamIsReliable(c, s, a, b, want, writes) })
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces TestStreamIsReliable left in
// testdata/failures) with today's simulator: each must now pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", map[string]simtest.Resimulator{
		"TestStreamIsReliable": func(t *testing.T, tr *conformance.Trace) error { return resimulate(t, tr) },
	})
}
