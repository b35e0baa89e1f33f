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
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/netspec/netspec/sim"
	"pgregory.net/rapid"
)

// Net builds the simulators of one example, recording them when the
// example is one whose trace may be kept.
type Net struct {
	record bool
	buf    bytes.Buffer
	sims   []*sim.Sim
}

// New returns a simulator for cfg that records its run for Check.
// Properties must build their simulators with it (one per example).
func (n *Net) New(cfg sim.Config) *sim.Sim {
	if len(n.sims) == 0 && n.record {
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
		t.Logf("the shrunk failing run is in %s\n  replay it: go test %s -run '^%s$' (rapid replays the fail file it wrote under testdata/rapid/; on another machine add the -rapid.seed it printed)\n  look at it: go run ./cmd/netspec trace show %s\n  keep it as a regression test: move it under the package's testdata/regressions/", path, pkgDir(), strings.SplitN(t.Name(), "/", 2)[0], path)
		if saved != nil {
			saved(path)
		}
	}()
	rapid.Check(t, func(rt *rapid.T) {
		// Recording every example made race-enabled runs of the
		// heavier properties ten times slower. Once rapid has shrunk a
		// failure it reports it, failing t, and runs the minimal
		// example once more: that run, and a replay of a fail file,
		// are the ones recorded.
		net := &Net{record: t.Failed() || replaying()}
		failed := true
		defer func() {
			if (failed || rt.Failed()) && net.record {
				last = net.trace()
			}
		}()
		prop(rt, net)
		failed = false
	})
}

// replaying reports whether rapid replays a fail file, running the one
// failing example only.
func replaying() bool {
	f := flag.Lookup("rapid.failfile")
	return f != nil && f.Value.String() != ""
}

// pkgDir is the test's package as go test names it from the module
// root ("./spec/echo"), or "." if the root cannot be found.
func pkgDir() string {
	wd, err := os.Getwd()
	if err != nil {
		return "."
	}
	for root := wd; ; {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			if rel, err := filepath.Rel(root, wd); err == nil && rel != "." {
				return "./" + filepath.ToSlash(rel)
			}
			return "."
		}
		up := filepath.Dir(root)
		if up == root {
			return "."
		}
		root = up
	}
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

// ExpectFailure runs a property that must fail (a machine broken on
// purpose, to show that the property catches the bug and that the
// failure shrinks) without failing the calling test. A rare bug may
// escape one round of rapid's examples, so it searches up to rounds
// rounds, each with fresh examples. It returns the path of the shrunk
// failing run's trace, "" if every round passed, and what rapid logged.
func ExpectFailure(name, dir string, rounds int, prop func(t *rapid.T, net *Net)) (path string, logs []string) {
	for round := 0; round < max(rounds, 1) && path == ""; round++ {
		q := &quietTB{name: name}
		func() {
			defer func() {
				if r := recover(); r != nil && r != errStop {
					panic(r)
				}
			}()
			Check(q, dir, prop, func(p string) { path = p })
		}()
		logs = q.logs
		if !q.failed {
			path = ""
		}
	}
	return path, logs
}

// RapidSeed makes rapid start from seed (its -rapid.seed flag) until the
// returned function restores the flag. Tests that judge how far rapid
// shrank a failure use it: from a random seed, shrinking now and then
// stops at a local minimum, and the test would fail on some machines and
// not others.
func RapidSeed(seed uint64) (restore func()) {
	f := flag.Lookup("rapid.seed")
	if f == nil {
		return func() {}
	}
	old := f.Value.String()
	_ = f.Value.Set(strconv.FormatUint(seed, 10))
	return func() { _ = f.Value.Set(old) }
}

// quietTB is a rapid.TB that records a failure instead of failing.
type quietTB struct {
	name   string
	failed bool
	logs   []string
}

var errStop = errors.New("simtest: stop")

func (q *quietTB) Helper()                   {}
func (q *quietTB) Name() string              { return q.name }
func (q *quietTB) Logf(f string, a ...any)   { q.logs = append(q.logs, fmt.Sprintf(f, a...)) }
func (q *quietTB) Log(a ...any)              { q.logs = append(q.logs, fmt.Sprint(a...)) }
func (q *quietTB) Skipf(string, ...any)      { panic(errStop) }
func (q *quietTB) Skip(...any)               { panic(errStop) }
func (q *quietTB) SkipNow()                  { panic(errStop) }
func (q *quietTB) Errorf(f string, a ...any) { q.failed = true; q.Logf(f, a...) }
func (q *quietTB) Error(a ...any)            { q.failed = true; q.Log(a...) }
func (q *quietTB) Fatalf(f string, a ...any) { q.Errorf(f, a...); panic(errStop) }
func (q *quietTB) Fatal(a ...any)            { q.Error(a...); panic(errStop) }
func (q *quietTB) FailNow()                  { q.failed = true; panic(errStop) }
func (q *quietTB) Fail()                     { q.failed = true }
func (q *quietTB) Failed() bool              { return q.failed }
