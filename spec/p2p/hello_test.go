package p2p

import (
	"bytes"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// A seed-style node that takes one recv() for one message reads the
// pipelined "CHEL ...\r\nXHEL 1 ...\r\n" as one CHEL: it answers the
// welcome and never the XHEL. The peer gives up on the XHEL after
// XhelTimeout and speaks the seed's protocol: it asks such a server for
// chunks with DREQ (it asked nothing, for ever, while it waited to learn
// whether the server spoke the extensions), and polls such a neighbour
// with CLREQ and dials it again with CHEL alone (it was dropped every
// ReqTimeout and dialed the same way again). An extension node, which
// answers XHEL right behind its welcome, is still spoken to with them.
func TestSeedStyleNodeThatSwallowsXHEL(t *testing.T) {
	c := fuzzContent(nil)
	root := c.Root()
	tests := []struct {
		name string
		// what the server and the neighbour 10.0.0.7 say to the peer's hello
		server, neighbour string
		// the peer's requests: to the server, and to the neighbour
		// after its welcome
		wantServer, wantNeighbour string
		legacy                    bool // the neighbour is known to be seed-style
	}{
		{name: "server swallows XHEL", server: "SHEL 337 64\r\n[]\r\n", wantServer: "DREQ "},
		{name: "extension server", server: "SHEL 337 64\r\n[]\r\nXHEL 1 " + fmt.Sprintf("%x", root[:]) + "\r\n", wantServer: "DANY"},
		{name: "neighbour swallows XHEL and CLREQ",
			server: "SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\nERROR UNKNOWN_COMMAND\r\n", neighbour: "PHEL\r\n",
			wantServer: "DREQ ", wantNeighbour: "CLREQ", legacy: true},
		{name: "extension neighbour",
			server: "SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\nERROR UNKNOWN_COMMAND\r\n", neighbour: "PHEL\r\nXHEL 1\r\n",
			wantServer: "DREQ "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
			h := newHarness(t, p)
			h.step(spec.Input{Kind: spec.InStart})
			srv := h.to("10.0.0.1:52000")
			if !strings.Contains(string(h.written[srv]), "CHEL 51000\r\nXHEL 1") {
				t.Fatalf("the hello to the server is %q, want XHEL pipelined behind CHEL", h.written[srv])
			}
			h.feed(srv, []byte(tc.server), 1024)
			nb := func() spec.Stream { return h.to("10.0.0.7:51000") }
			var hello int // where the neighbour's requests after its welcome start
			var first spec.Stream
			if tc.neighbour != "" {
				first = nb()
				if first == 0 {
					t.Fatalf("the peer did not dial its neighbour: %v", h.dials)
				}
				h.feed(first, []byte(tc.neighbour), 1024)
				hello = len(h.written[first])
			}
			start := h.now
			for h.now.Sub(start) < 1500*time.Millisecond && len(h.timers) > 0 {
				h.fire()
			}
			// Giving up on the XHEL, the peer drops the connection and
			// dials again at once with CHEL alone, which the node
			// answers with its welcome alone.
			if again := h.to("10.0.0.1:52000"); again != srv {
				if string(h.written[again]) != "CHEL 51000\r\n" {
					t.Errorf("the peer dialed the server again with %q; want CHEL alone", h.written[again])
				}
				srv = again
				h.feed(srv, []byte(tc.server), 1024)
			}
			if st := nb(); tc.neighbour != "" && st != first {
				if string(h.written[st]) != "CHEL 51000\r\n" {
					t.Errorf("the peer dialed its neighbour again with %q; want CHEL alone", h.written[st])
				}
				h.feed(st, []byte("PHEL\r\n"), 1024)
				hello = len(h.written[st])
			}
			for h.now.Sub(start) < 3*time.Second && len(h.timers) > 0 {
				h.fire()
			}
			sent := string(h.written[srv])
			if !strings.Contains(sent, tc.wantServer) {
				t.Errorf("the peer wrote %q to the server in 3 s; want %q", sent, tc.wantServer)
			}
			if tc.neighbour == "" {
				return
			}
			st := nb()
			got := string(h.written[st][hello:])
			if tc.wantNeighbour != "" && !strings.Contains(got, tc.wantNeighbour) {
				t.Errorf("after its welcome the neighbour was sent %q in 3 s; want %q", got, tc.wantNeighbour)
			}
			if tc.wantNeighbour == "" && strings.Contains(got, "CLREQ") {
				t.Errorf("an extension neighbour was polled with CLREQ: %q", got)
			}
			// The neighbour drops the connection: the peer dials it
			// again, with the hello the neighbour copes with.
			h.step(spec.Input{Kind: spec.InStreamClosed, Stream: st, Err: "reset"})
			delete(h.open, st)
			for start := h.now; nb() == 0 && h.now.Sub(start) < 10*time.Second; {
				h.fire()
			}
			again := nb()
			if again == 0 {
				t.Fatal("the peer did not dial its neighbour again")
			}
			if pipelined := bytes.Contains(h.written[again], []byte("XHEL")); pipelined == tc.legacy {
				t.Errorf("the peer dialed its neighbour again with %q; seed-style: %v", h.written[again], tc.legacy)
			}
		})
	}
}

// A node that answers the XHEL after XhelTimeout (late, not never) is
// still an honest one. The peer used to keep the connection and poll it
// with CLREQ, so the late answers (a seed node's ERROR for the XHEL, an
// extension node's XHEL and CLRSP, the server's PUSH to a tree root)
// were matched against the new requests: the neighbour was banned, the
// server connection dropped for a violation. Now the connection is
// dropped at the fallback and dialed again with CHEL alone, so nothing
// late arrives on a connection that speaks the seed's protocol.
func TestLateXHELAnswerIsNoViolation(t *testing.T) {
	c := fuzzContent(nil)
	root := c.Root()
	tests := []struct {
		name   string
		server bool   // the server is late, else the neighbour 10.0.0.7
		late   string // what comes after XhelTimeout on the first connection
	}{
		{"seed-style neighbour", false, "ERROR UNKNOWN_COMMAND\r\nCLRSP\r\n[0,1]\r\n"},
		{"extension neighbour", false, "XHEL 1\r\nCLRSP\r\n[0,1]\r\n"},
		{"extension server", true, "XHEL 1 " + fmt.Sprintf("%x", root[:]) + "\r\nPUSH 0 64\r\n" + string(c.Chunk(0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
			h := newHarness(t, p)
			h.step(spec.Input{Kind: spec.InStart})
			srv := h.to("10.0.0.1:52000")
			welcome := fmt.Sprintf("SHEL %d %d\r\n[[\"10.0.0.7\",51000]]\r\n", c.Size(), c.ChunkSize())
			if tc.server {
				h.feed(srv, []byte(welcome), 1024)
			} else {
				h.feed(srv, []byte(welcome+"ERROR UNKNOWN_COMMAND\r\n"), 1024)
			}
			slow := srv
			if !tc.server {
				slow = h.to("10.0.0.7:51000")
				h.feed(slow, []byte("PHEL\r\n"), 1024)
			}
			for start := h.now; h.now.Sub(start) < 1200*time.Millisecond; {
				h.fire()
			}
			h.feed(slow, []byte(tc.late), 1024)
			addr := h.dials[slow].String()
			again := h.to(addr)
			if again == slow || again == 0 {
				t.Errorf("the connection to %s that did not answer its XHEL in time was kept", addr)
			} else {
				if string(h.written[again]) != "CHEL 51000\r\n" {
					t.Errorf("the peer dialed %s again with %q; want CHEL alone", addr, h.written[again])
				}
				if tc.server {
					h.feed(again, []byte(welcome), 1024)
				} else {
					h.feed(again, []byte("PHEL\r\n"), 1024)
					for start := h.now; h.now.Sub(start) < 200*time.Millisecond; {
						h.fire()
					}
					if got := string(h.written[again]); got != "CHEL 51000\r\nCLREQ\r\n" {
						t.Errorf("the peer asked the neighbour %q after its welcome; want a CLREQ poll", got)
					}
					h.feed(again, []byte("CLRSP\r\n[0,1]\r\n"), 1024)
				}
			}
			cnt := counters(p)
			if cnt["protocol_violations"] != 0 || cnt["peers_banned"] != 0 {
				t.Errorf("protocol_violations %d, peers_banned %d; want none", cnt["protocol_violations"], cnt["peers_banned"])
			}
			for _, nb := range p.known {
				if nb.banned {
					t.Errorf("the late but honest neighbour %v was banned", nb.addr)
				}
			}
		})
	}
}
