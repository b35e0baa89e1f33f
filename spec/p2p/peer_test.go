package p2p

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// nreqTrue is what Peer.nreq must equal: the chunks neither held nor
// kept pending the hash list with a request outstanding. fill asks the
// server for p.n-nhave-nreq-npend chunks, so a count that drifts asks
// for too many or too few, for good.
func nreqTrue(p *Peer) int {
	n := 0
	for i := 0; i < p.n; i++ {
		if p.req[i] > 0 && !p.have.has(i) && !p.pend.has(i) {
			n++
		}
	}
	return n
}

// The request count stays the true count when a chunk is asked of two
// neighbours (as the endgame does) before the hash list has come, and
// its copies arrive, are kept pending, rejected by the list or voided.
// A second copy of a chunk kept pending used to be taken off the count
// a second time.
func TestRequestCountWithChunksKeptBeforeTheHashList(t *testing.T) {
	c := fuzzContent(nil)
	root := c.Root()
	var list string
	for _, h := range c.Hashes() {
		list += string(h[:])
	}
	good := append(AppendDATAHeader(nil, 192, 64), c.Chunk(3)...)
	bad := append(AppendDATAHeader(nil, 192, 64), make([]byte, 64)...)
	hash := []byte("HASH 6\r\n" + list)
	type step struct {
		from int // 0, 1: a neighbour; 2: the server
		data []byte
	}
	tests := []struct {
		name  string
		steps []step
		have  bool // chunk 3 held at the end
	}{
		{"both copies before the list", []step{{0, good}, {1, good}}, false},
		{"both copies, then the list", []step{{0, good}, {1, good}, {2, hash}}, true},
		{"a bad copy rejected by the list, then a good one", []step{{0, bad}, {2, hash}, {1, good}}, true},
		{"a bad copy rejected by the list, the other never comes", []step{{0, bad}, {2, hash}}, false},
		{"a copy voided, then the other", []step{{0, good}, {0, []byte("VOID 192\r\n")}, {1, good}}, false},
		{"a copy voided, the other never comes", []step{{0, good}, {0, []byte("VOID 192\r\n")}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1, NoTree: true}, &MemStore{})
			h := newHarness(t, p)
			h.step(spec.Input{Kind: spec.InStart})
			var srv spec.Stream
			for st := range h.dials {
				srv = st
			}
			h.feed(srv, []byte("SHEL 337 64\r\n[[\"10.0.0.7\",51000],[\"10.0.0.8\",51000]]\r\nXHEL 1 "+fmt.Sprintf("%x", root[:])+"\r\n"), 1024)
			var nbs [2]spec.Stream
			for st, a := range h.dials {
				switch a.String() {
				case "10.0.0.7:51000":
					nbs[0] = st
				case "10.0.0.8:51000":
					nbs[1] = st
				}
			}
			if nbs[0] == 0 || nbs[1] == 0 {
				t.Fatalf("the peer dialed %v, want both neighbours", h.dials)
			}
			for _, st := range nbs {
				h.feed(st, []byte("PHEL\r\nXHEL 1\r\nCLRSP\r\n[]\r\n"), 1024)
			}
			p.request(h.now, p.byOut[nbs[0]], 3)
			p.request(h.now, p.byOut[nbs[1]], 3)
			if p.nreq != nreqTrue(p) {
				t.Fatalf("before any copy came: nreq %d, true count %d", p.nreq, nreqTrue(p))
			}
			for k, s := range tc.steps {
				st := srv
				if s.from < 2 {
					st = nbs[s.from]
				}
				h.feed(st, s.data, 1024)
				if p.nreq != nreqTrue(p) {
					t.Fatalf("after step %d: nreq %d, true count %d", k, p.nreq, nreqTrue(p))
				}
			}
			if p.Has(3) != tc.have {
				t.Errorf("holds chunk 3: %v, want %v", p.Has(3), tc.have)
			}
		})
	}
}
