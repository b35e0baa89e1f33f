package conformance_test

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec/trace"
)

// nodeHeader is the header of a socket run's trace: one node.
func nodeHeader(protocol, node, role string, cfg any) trace.Header {
	b, _ := json.Marshal(cfg)
	return trace.Header{Protocol: protocol, Nodes: []trace.NodeInfo{{Name: node, Role: role, Config: b}}}
}

// recordScenario runs a simulated scenario with seed and writes its trace
// to path.
func recordScenario(t *testing.T, sc scenario.Scenario, seed uint64, path string) {
	t.Helper()
	var buf bytes.Buffer
	res, err := sc.Run(scenario.Options{Seed: seed, Trace: &buf})
	if err != nil || res.Failed != "" {
		t.Fatalf("%s scenario: %v %s", sc.Name(), err, res.Failed)
	}
	write(t, path, buf.Bytes())
}
