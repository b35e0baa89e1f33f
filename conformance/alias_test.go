package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec/all"
)

// The property checks' servers listen on 0.0.0.0 of a simulated host with
// two addresses, and their clients use the second: such a trace replays
// on sockets too, each datagram sent to the loopback address that stands
// for the one it was sent to, each answer checked to come from there.
func TestReplayMultiHomedServer(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	for _, sc := range []scenario.Checked{&scenario.File{Size: 20000}, &scenario.Stream{}} {
		var buf bytes.Buffer
		if v := sc.Check(1, sim.Faults{}, scenario.Options{Trace: &buf}); !v.OK() {
			t.Fatalf("%T: %+v", sc, v)
		}
		tr, err := conformance.Parse(bytes.NewReader(buf.Bytes()))
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		for _, rep := range conformance.Replay(ctx, tr, all.Lookup, conformance.ReplayOptions{Nodes: []string{"server"}}) {
			if rep.Spec != nil {
				t.Errorf("%T %s: spec: %v", sc, rep.Node, rep.Spec)
			}
			if rep.Impl != nil && !errors.Is(rep.Impl, conformance.ErrSkip) {
				t.Errorf("%T %s: impl: %.800v", sc, rep.Node, rep.Impl)
			}
		}
		cancel()
	}
}
