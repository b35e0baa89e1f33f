package rudp_test

import (
	"encoding/json"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
)

// lookup finds the test machines (the session layer has no protocol of
// its own in spec/all).
func lookup(name string) (spec.Protocol, bool) { return machines, name == machines.Name }

// resimulators re-simulate the traces each property saves (simtest names
// them after the property) and judge them as the property does.
var resimulators = map[string]simtest.Resimulator{
	"TestBulkSurvivesFaults":      resimulateBulk,
	"TestSpoofedOpensCostNothing": resimulateSpoofed,
}

// resimulateBulk: the sources send the payloads in their configs; each
// sink flow is a prefix of its payload, the whole of it when the source
// reported success, all of them without partitions and with loss under
// 20%, and the sink holds no session two minutes later.
func resimulateBulk(t *testing.T, tr *conformance.Trace) error {
	cfg, err := tr.SimConfig()
	if err != nil {
		t.Fatal(err)
	}
	r := newRun()
	s, err := conformance.Resimulate(tr, lookup, r.observe)
	if err != nil {
		t.Fatal(err)
	}
	r.s = s
	sent := map[string][]byte{}
	for _, n := range s.Nodes() {
		if n.Name == "server" {
			r.srv = n
			continue
		}
		ni, _ := tr.Header.Node(n.Name)
		var src sourceConfig
		if err := json.Unmarshal(ni.Config, &src); err != nil {
			t.Fatal(err)
		}
		sent[n.Name] = src.Payload
		r.add(n)
	}
	return simtest.Judge(func(c simtest.Fataler) {
		r.await(c, bulkLimit)
		r.survives(c, cfg.Faults, sent)
	})
}

// resimulateSpoofed: the forged datagrams are the trace's; the server
// never sends a forged source more than it sent, never holds a session
// for one, and the real client finishes cleanly.
func resimulateSpoofed(t *testing.T, tr *conformance.Trace) error {
	w := newSpoofWorld()
	for _, r := range tr.Records {
		if r.Net == "send" && r.Err == "forged" {
			from, err := netip.ParseAddrPort(r.From)
			b, err2 := r.Payload()
			if err != nil || err2 != nil {
				t.Fatalf("bad forged record at t=%d", r.T)
			}
			w.forge(from, b)
		}
	}
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	w.srv = s.Node("server")
	if w.srv == nil || s.Node("client") == nil {
		t.Fatal("trace lacks the server or the client")
	}
	return simtest.Judge(func(c simtest.Fataler) { w.judge(c, s) })
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions (traces the properties left in testdata/failures,
// still named after the property) with today's session layer: each must
// now pass.
func TestRegressions(t *testing.T) {
	simtest.Regressions(t, "testdata/regressions", resimulators)
}
