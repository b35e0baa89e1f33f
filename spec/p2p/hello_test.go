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
			var srv spec.Stream
			for st := range h.dials {
				srv = st
			}
			if !strings.Contains(string(h.written[srv]), "CHEL 51000\r\nXHEL 1") {
				t.Fatalf("the hello to the server is %q, want XHEL pipelined behind CHEL", h.written[srv])
			}
			h.feed(srv, []byte(tc.server), 1024)
			nb := func() spec.Stream {
				var last spec.Stream
				for st, a := range h.dials {
					if a.String() == "10.0.0.7:51000" && h.open[st] && st > last {
						last = st
					}
				}
				return last
			}
			var hello int // where the neighbour's requests after its welcome start
			if tc.neighbour != "" {
				st := nb()
				if st == 0 {
					t.Fatalf("the peer did not dial its neighbour: %v", h.dials)
				}
				h.feed(st, []byte(tc.neighbour), 1024)
				hello = len(h.written[st])
			}
			start := h.now
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
