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

// A DREQ for a chunk the peer lacks is answered CHUNK_UNDOWNLOADED at
// once, like every answer that carries no chunk (doc.go: "Answers that
// are not paced ... go out at once"), so the error says what the peer
// held when the request came: it does not wait behind the chunks that
// other neighbours are owed on a full uplink.
func TestLackingChunkRefusedAtOnceOnAFullUplink(t *testing.T) {
	c := fuzzContent(nil)
	p, h, in, held := heldChunkPeer(t, c)
	// A neighbour that never acknowledges fills the window.
	h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte("CHEL 51000\r\nXHEL 1\r\n" + strings.Repeat(fmt.Sprintf("DREQ %d\r\n", held), p.cfg.Window))})
	if got := dataWritten(h, in); got != p.cfg.Window {
		t.Fatalf("%d DATA answers for %d requests, want the window's %d", got, p.cfg.Window, p.cfg.Window)
	}
	client := spec.AcceptedStream | 10 // a seed-style client
	h.open[client] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: client, Addr: netip.MustParseAddrPort("10.0.0.10:51000")})
	h.feed(client, []byte("CHEL 51000\r\n"), 1<<10)
	for i := range p.n + 1 {
		if i == held {
			continue
		}
		before := len(h.written[client])
		h.step(spec.Input{Kind: spec.InStreamData, Stream: client, Data: fmt.Appendf(nil, "DREQ %d\r\n", i)})
		msgs, _ := parseAll(Responses, h.written[client][before:], len(h.written[client])+1)
		want := ErrChunkUndownloaded
		if i == p.n {
			want = ErrOffsetOverflow
		}
		if len(msgs) != 1 || msgs[0].Op != ERROR || msgs[0].Err != want {
			t.Fatalf("DREQ %d (held: only %d of %d) answered %v at once, want ERROR %s", i, held, p.n, msgs, want)
		}
	}
	// The chunk it holds waits for the window.
	h.step(spec.Input{Kind: spec.InStreamData, Stream: client, Data: fmt.Appendf(nil, "DREQ %d\r\n", held)})
	if dataWritten(h, client) != 0 {
		t.Fatal("the held chunk went out at once: the uplink was not full, the test does not test what it says")
	}
}

// Answers that are not paced (a CLRSP of every chunk for each 7-byte
// CLREQ, an ERROR for each junk line) are bounded per connection by
// MaxUnread between two InStreamWritable (which say the runner has taken
// everything written): a client that keeps asking and never reads is
// reset, where the server wrote 46.9 MB into memory for 140 KB of CLREQs
// in one step. A client that reads its answers is never cut off.
func TestUnreadAnswersAreBounded(t *testing.T) {
	data := make([]byte, 10_000_000)
	spec.NewRand(3).Bytes(data)
	big, err := NewContent(data, DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	small := fuzzContent(nil)
	const limit = 256 << 10 // the default for both files
	tests := []struct {
		name    string
		peer    bool   // a peer's neighbour, else a server's client
		request string // sent over and over after the hello
		times   int
		reads   bool // InStreamWritable after each request
		cut     bool
	}{
		{"server, CLREQ without reading", false, "CLREQ\r\n", 20_000, false, true},
		{"server, junk lines without reading", false, "X\r\n", 20_000, false, true},
		{"server, CLREQ read each time", false, "CLREQ\r\n", 2_000, true, false},
		{"peer, CLREQ without reading", true, "CLREQ\r\n", 40_000, false, true},
		{"peer, junk lines without reading", true, "X\r\n", 20_000, false, true},
		{"peer, CLREQ read each time", true, "CLREQ\r\n", 2_000, true, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var m spec.Inspector
			var h *harness
			var st spec.Stream
			if tc.peer {
				var p *Peer
				p, h, st, _ = heldChunkPeer(t, small)
				m = p
			} else {
				s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000")}, big)
				h, st = acceptedBy(t, s)
				m = s
			}
			in := []byte("CHEL 51000\r\n")
			if tc.reads {
				h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: in})
				for range tc.times {
					h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte(tc.request)})
					h.step(spec.Input{Kind: spec.InStreamWritable, Stream: st})
				}
			} else {
				in = append(in, strings.Repeat(tc.request, tc.times)...)
				h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: in})
			}
			cut := counters(m)["unread_cutoffs"]
			if tc.cut {
				if cut != 1 || h.open[st] || len(h.written[st]) > limit {
					t.Errorf("unread_cutoffs %d, open %v, %d bytes written; want the connection reset with at most %d written",
						cut, h.open[st], len(h.written[st]), limit)
				}
				return
			}
			if cut != 0 || !h.open[st] {
				t.Errorf("a client that reads was cut off: unread_cutoffs %d, open %v", cut, h.open[st])
			}
			if msgs, _ := parseAll(Responses, h.written[st], len(h.written[st])+1); len(msgs) < tc.times {
				t.Errorf("%d answers to %d requests", len(msgs), tc.times)
			}
		})
	}
}

// Answers queued behind a paced one (a DREQ waiting for the uplink) add
// nothing to unread when they are asked for, and were all written at
// once when the paced answer went out: a server of 3,907 chunks wrote
// 4.6 MB of CLRSPs in one step for 1,770 bytes of requests, with no
// cut-off. The limit holds where they are written.
func TestUnreadAnswersQueuedBehindAPacedOneAreBounded(t *testing.T) {
	t.Run("server", func(t *testing.T) {
		data := make([]byte, 4_000_000)
		spec.NewRand(3).Bytes(data)
		big, err := NewContent(data, 1024)
		if err != nil {
			t.Fatal(err)
		}
		s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000")}, big)
		h, st := acceptedBy(t, s)
		in := "CHEL 51000\r\nDREQ 0\r\n" + strings.Repeat("CLREQ\r\n", 250)
		h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte(in)})
		limit := unreadCap(0, big.Chunks())
		if cut := counters(s)["unread_cutoffs"]; cut != 1 || h.open[st] || len(h.written[st]) > 2*limit {
			t.Errorf("unread_cutoffs %d, open %v, %d bytes written for %d of requests; want the connection reset with at most %d written",
				cut, h.open[st], len(h.written[st]), len(in), 2*limit)
		}
	})
	t.Run("peer", func(t *testing.T) {
		p, h, in, held := heldChunkPeer(t, fuzzContent(nil))
		p.cfg.MaxUnread = 500
		req := fmt.Sprintf("CHEL 51000\r\nXHEL 1\r\nDREQ %d\r\n", held) + strings.Repeat("CLREQ\r\n", 250)
		h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte(req)})
		if cut := counters(p)["unread_cutoffs"]; cut != 1 || h.open[in] || len(h.written[in]) > 2*p.cfg.MaxUnread {
			t.Errorf("unread_cutoffs %d, open %v, %d bytes written; want the connection reset with at most %d written",
				cut, h.open[in], len(h.written[in]), 2*p.cfg.MaxUnread)
		}
	})
}
