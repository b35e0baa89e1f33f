package p2p

import (
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// Regression (the pattern FuzzServer found in spec/cs): a reset of a
// connection the machine is done with must not be remembered as a reset
// before its accept. Such entries never go, and after 1024 of them a
// connection reset before its accept was taken for a live one, held
// (and, for the server, answered) for ever.
func TestResetsOfFinishedConnectionsAreForgotten(t *testing.T) {
	from := netip.MustParseAddrPort("10.0.0.2:40000")
	type machine struct {
		name  string
		m     spec.Machine
		conns func() int
	}
	s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000"), ChunkSize: 64}, fuzzContent(t))
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
	for _, m := range []machine{
		{"server", s, func() int { return len(s.conns) }},
		{"peer", p, func() int { return len(p.ins) }},
	} {
		t.Run(m.name, func(t *testing.T) {
			h := newHarness(t, m.m)
			h.step(spec.Input{Kind: spec.InStart})
			var id spec.Stream
			for i := 0; i < 1100; i++ {
				id++
				st := spec.AcceptedStream | id
				h.open[st] = true
				h.step(spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: st, Addr: from})
				h.step(spec.Input{Kind: spec.InStreamClosed, Stream: st, Err: "connection reset by peer"})
				// and once more, after the machine forgot it
				h.step(spec.Input{Kind: spec.InStreamClosed, Stream: st, Err: "connection reset by peer"})
			}
			gone := spec.AcceptedStream | (id + 1)
			h.step(spec.Input{Kind: spec.InStreamClosed, Stream: gone, Err: "connection reset by peer"})
			h.step(spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: gone, Addr: from})
			if n := m.conns(); n != 0 {
				t.Fatalf("holds %d connections after a connection reset before its accept", n)
			}
		})
	}
}
