package cs_test

import (
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

// Regression (found by FuzzServer): the server remembered the reset of
// every connection it had already served as a "reset before its accept",
// and such entries never go (their ids are never accepted again). After
// 1024 of them (clients that reset after the FIN, as an exiting simulated
// node does) it could remember no more, so a connection reset before its
// accept was then taken for a live download: the server wrote to a stream
// the runner no longer held and kept it for ever, which with MaxStreams 1
// refused every later client.
func TestServerForgetsServedConnections(t *testing.T) {
	srv := cs.NewServer(cs.ServerConfig{Addr: server, MaxStreams: 1}, []byte("the file"))
	var out []spec.Output
	step := func(in spec.Input) []spec.Output {
		out = srv.Step(spec.SimEpoch, in, out[:0])
		return out
	}
	from := netip.MustParseAddrPort("10.0.0.2:40000")
	var id spec.Stream
	for i := 0; i < 1100; i++ {
		id++
		st := spec.AcceptedStream | id
		step(spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: st, Addr: from})
		step(spec.Input{Kind: spec.InStreamWritable, Stream: st})
		if len(out) == 0 || out[0].Kind != spec.OutClose {
			t.Fatalf("download %d: %v, want the close after the file", i, out)
		}
		step(spec.Input{Kind: spec.InStreamClosed, Stream: st, Err: "connection reset by peer"})
	}
	// The runner reports the next connection reset before its accept: it
	// gets nothing, and the one after it is served.
	gone := spec.AcceptedStream | (id + 1)
	step(spec.Input{Kind: spec.InStreamClosed, Stream: gone, Err: "connection reset by peer"})
	for _, o := range step(spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: gone, Addr: from}) {
		if o.Kind != spec.OutLog {
			t.Fatalf("a connection reset before its accept drew %v", o.Kind)
		}
	}
	next := spec.AcceptedStream | (id + 2)
	step(spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: next, Addr: from})
	if len(out) == 0 || out[len(out)-1].Kind != spec.OutWrite || out[len(out)-1].Stream != next {
		t.Fatalf("the next client drew %v, want the file", out)
	}
}
