// Package simtest runs rapid properties whose examples are simulations,
// and keeps the one that matters: when a property fails, the trace of the
// smallest failing example rapid shrank to (fewest actions, mildest
// faults) is written as an NDJSON file, so it can be looked at
// (`netspec trace show`, `netspec trace pcap`) and re-simulated as a
// regression test (conformance.Resimulate) long after the generators that
// found it have changed.
package simtest

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"

	"github.com/netspec/netspec/sim"
	"pgregory.net/rapid"
)

// Net builds the simulators of one example, recording them.
type Net struct {
	buf  bytes.Buffer
	sims []*sim.Sim
}

// New returns a simulator for cfg that records its run for Check.
// Properties must build their simulators with it (one per example).
func (n *Net) New(cfg sim.Config) *sim.Sim {
	if len(n.sims) == 0 {
		cfg.Trace = &n.buf
	}
	s := sim.New(cfg)
	n.sims = append(n.sims, s)
	return s
}

func (n *Net) trace() []byte {
	for _, s := range n.sims {
		_ = s.Close()
	}
	return append([]byte(nil), n.buf.Bytes()...)
}

// Check is rapid.Check for simulation properties. If the property fails,
// the shrunk example's trace goes to dir (created if needed) as
// <test name>.ndjson before the test stops; saved, if not nil, is told
// the path.
func Check(t rapid.TB, dir string, prop func(t *rapid.T, net *Net), saved func(path string)) {
	t.Helper()
	var last []byte
	// rapid stops a failed test with FailNow, which never returns: the
	// trace is written on the way out.
	defer func() {
		if !t.Failed() || last == nil {
			return
		}
		path, err := save(dir, t.Name(), last)
		if err != nil {
			t.Logf("simtest: %v", err)
			return
		}
		t.Logf("the shrunk failing run is in %s\n  look at it: go run ./cmd/netspec trace show %s\n  keep it as a regression test: move it under the package's testdata/regressions/", path, path)
		if saved != nil {
			saved(path)
		}
	}()
	rapid.Check(t, func(rt *rapid.T) {
		net := &Net{}
		failed := true
		defer func() {
			// rapid re-runs the minimal failing example last, so the
			// last failure seen is the shrunk one.
			if failed || rt.Failed() {
				last = net.trace()
			}
		}()
		prop(rt, net)
		failed = false
	})
}

func save(dir, name string, trace []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	name = strings.NewReplacer("/", "_", " ", "_").Replace(name)
	path := filepath.Join(dir, name+".ndjson")
	return path, os.WriteFile(path, trace, 0o644)
}

// Steps counts a trace's actions: commands, stops and forged packets.
func Steps(trace []byte) int {
	return bytes.Count(trace, []byte(`"in":"command"`)) + bytes.Count(trace, []byte(`"in":"stop"`)) + bytes.Count(trace, []byte(`"err":"forged"`))
}
