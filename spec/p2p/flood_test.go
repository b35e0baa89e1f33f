package p2p

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/netspec/netspec/spec"
)

// heldChunkPeer is a peer of c's swarm, on a seed-style server, that
// holds one chunk (returned) and has a neighbour connected at in.
func heldChunkPeer(t *testing.T, c *Content) (p *Peer, h *harness, in spec.Stream, held int) {
	t.Helper()
	p = NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
	h = newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	var srv spec.Stream
	for st := range h.dials {
		srv = st
	}
	h.feed(srv, []byte(fmt.Sprintf("SHEL %d %d\r\n[]\r\nERROR UNKNOWN_COMMAND\r\n", c.Size(), c.ChunkSize())), 1<<20)
	msgs, _ := parseAll(Requests, h.written[srv], len(h.written[srv])+1)
	held = -1
	for _, m := range msgs {
		if m.Op == DREQ {
			h.feed(srv, append(AppendDATAHeader(nil, int64(m.Chunk)*int64(c.ChunkSize()), len(c.Chunk(m.Chunk))), c.Chunk(m.Chunk)...), 1<<20)
			held = m.Chunk
		}
	}
	if held < 0 || !p.Has(held) {
		t.Fatal("the peer holds no chunk")
	}
	in = spec.AcceptedStream | 9
	h.open[in] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: in, Addr: netip.MustParseAddrPort("10.0.0.9:51000")})
	return p, h, in, held
}

// A neighbour's requests queue on the peer up to MaxPending: beyond
// BusyAt waiting for the uplink an extension neighbour is told BUSY,
// even for requests on a connection that has some queued already (such
// a connection was never told BUSY, so its queue grew without bound:
// 200,000 DREQs queued 199,992), and a neighbour that keeps asking
// without reading its answers is sent UNKNOWN_COMMAND and closed.
func TestPeerBoundsTheRequestsQueuedPerConnection(t *testing.T) {
	c := fuzzContent(nil)
	tests := []struct {
		name       string
		hello      string
		dreqs      int
		data, busy int // DATA and BUSY answers written
		closed     bool
	}{
		{"extension neighbour, PeerDepth requests", "CHEL 51000\r\nXHEL 1\r\n", 4, 4, 0, false},
		{"extension neighbour, BusyAt+4 at once", "CHEL 51000\r\nXHEL 1\r\n", 12, 8, 4, false},
		{"extension neighbour flooding", "CHEL 51000\r\nXHEL 1\r\n", 200_000, -1, -1, true},
		{"seed-style neighbour flooding", "CHEL 51000\r\n", 200_000, -1, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, h, in, held := heldChunkPeer(t, c)
			h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte(tc.hello + strings.Repeat(fmt.Sprintf("DREQ %d\r\n", held), tc.dreqs))})
			if ic := p.byIn[in]; ic != nil && len(ic.pending) > p.cfg.MaxPending {
				t.Errorf("%d answers queued on one connection, MaxPending %d", len(ic.pending), p.cfg.MaxPending)
			}
			if h.open[in] == tc.closed {
				t.Errorf("connection open: %v, want %v", h.open[in], !tc.closed)
			}
			msgs, _ := parseAll(Responses, h.written[in], len(h.written[in])+1)
			data, busy := 0, 0
			for _, m := range msgs {
				switch {
				case m.Op == DATA:
					data++
				case m.Op == ERROR && m.Err == ErrBusy:
					busy++
				}
			}
			if tc.data >= 0 && data != tc.data || tc.busy >= 0 && busy != tc.busy {
				t.Errorf("answered %d DATA and %d BUSY, want %d and %d", data, busy, tc.data, tc.busy)
			}
			floods := counters(p)["request_floods"]
			if tc.closed {
				if last := msgs[len(msgs)-1]; floods != 1 || last.Op != ERROR || last.Err != ErrUnknownCommand {
					t.Errorf("request_floods %d, last answer %s %s; want 1 and UNKNOWN_COMMAND", floods, last.Op, last.Err)
				}
			} else if floods != 0 {
				t.Errorf("request_floods %d for an honest neighbour", floods)
			}
		})
	}
}
