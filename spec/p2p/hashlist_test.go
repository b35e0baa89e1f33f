package p2p

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// A hash list relayed by a neighbour is checked against the server's
// root before it is used (doc.go: "a hash list that does not match the
// root" bans its sender). One byte flipped in a neighbour's HASH answer,
// anywhere in the list: the peer does not adopt it, counts a protocol
// violation and bans the neighbour (its connections reset, its address
// never dialed again), then takes the list from the server and verifies
// the file, every chunk from the server checked against the right list.
// A peer that took the bad list would reject the honest server's chunk
// whose digest was flipped, for good.
func TestRelayedHashListCheckedAgainstTheRoot(t *testing.T) {
	c := fuzzContent(nil)
	root, list := c.Root(), hashList(c)
	md5 := c.MD5()
	for _, flip := range []int{0, 32*3 + 17, len(list) - 1} {
		t.Run(fmt.Sprintf("byte %d", flip), func(t *testing.T) {
			p, h, srv, nb := peerWithListingNeighbour(t, root)
			asked := false
			msgs, _ := parseAll(Requests, h.written[nb], len(h.written[nb])+1)
			for _, m := range msgs {
				asked = asked || m.Op == HREQ
			}
			if !asked {
				t.Fatalf("the peer did not ask the neighbour for the hash list: %q", h.written[nb])
			}
			bad := append([]byte(nil), list...)
			bad[flip] ^= 0x01
			h.feed(nb, append([]byte("CLRSP\r\n[]\r\nHASH 6\r\n"), bad...), 1024)
			if p.hashes != nil {
				t.Fatal("the peer adopted a hash list that does not match the root")
			}
			if p.cnt.violations != 1 || p.cnt.banned != 1 || h.open[nb] {
				t.Fatalf("violations %d, banned %d, neighbour still connected %v; want the neighbour banned for its list", p.cnt.violations, p.cnt.banned, h.open[nb])
			}

			// The server, played here: it answers every request it is
			// sent, in order, as an honest server does.
			next := 0  // requests on srv answered so far
			given := 0 // chunks handed out for DANY
			for k := 0; k < 200 && !p.verified && !h.exited; k++ {
				if s := h.to("10.0.0.1:52000"); s != srv {
					t.Fatalf("the peer lost the server's connection (now %d, was %d)", s, srv)
				}
				msgs, _ := parseAll(Requests, h.written[srv], len(h.written[srv])+1)
				if next == len(msgs) {
					h.fire()
					continue
				}
				m := msgs[next]
				next++
				var ans []byte
				switch m.Op {
				case HREQ:
					ans = append([]byte("HASH 6\r\n"), list...)
				case DANY:
					if given >= c.Chunks() {
						ans = []byte("ERROR EXHAUSTED\r\n")
						break
					}
					ans = append(AppendDATAHeader(nil, int64(given)*64, len(c.Chunk(given))), c.Chunk(given)...)
					given++
				case DREQ:
					ans = append(AppendDATAHeader(nil, int64(m.Chunk)*64, len(c.Chunk(m.Chunk))), c.Chunk(m.Chunk)...)
				case CHECK:
					ans = []byte(fmt.Sprintf("CHECK %x\r\n", md5[:]))
				}
				h.feed(srv, ans, 1024)
			}
			if !p.verified || p.hashes == nil || p.cnt.corrupt != 0 || p.cnt.fromServer != uint64(c.Chunks()) {
				t.Fatalf("verified %v with %d of %d chunks, %d from the server, %d corrupt, hash list %v; want the file verified from the server with its list, nothing rejected",
					p.verified, p.nhave, p.n, p.cnt.fromServer, p.cnt.corrupt, p.hashes != nil)
			}
			if h.to("10.0.0.7:51000") != 0 {
				t.Fatal("the peer dialed the banned neighbour again")
			}
		})
	}
}

// A ban resets both of the neighbour's connections, the one the peer
// dialed and the one the neighbour dialed (doc.go: "its connections
// reset"); and a banned neighbour that connects back and says CHEL with
// the port it was banned at is closed at once: no PHEL, no place among
// the neighbours (the ban covered only dialing it before).
func TestBannedNeighbourCannotConnectBack(t *testing.T) {
	c := fuzzContent(nil)
	root, list := c.Root(), hashList(c)
	p, h, _, nb := peerWithListingNeighbour(t, root)
	its := spec.AcceptedStream | 8 // the neighbour's own connection
	h.open[its] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: its, Addr: netip.MustParseAddrPort("10.0.0.7:40000")})
	h.feed(its, []byte("CHEL 51000\r\n"), 1024)
	if !h.open[its] || p.byIn[its] == nil || p.byIn[its].nb != p.byOut[nb].nb {
		t.Fatal("the neighbour's own connection was not taken as the neighbour's: the test does not test what it says")
	}
	list[0] ^= 1
	h.feed(nb, append([]byte("CLRSP\r\n[]\r\nHASH 6\r\n"), list...), 1024)
	if p.cnt.banned != 1 || h.open[nb] || h.open[its] {
		t.Fatalf("banned %d, connections open: ours %v, the neighbour's %v; want it banned, both reset", p.cnt.banned, h.open[nb], h.open[its])
	}
	in := spec.AcceptedStream | 9
	h.open[in] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: in, Addr: netip.MustParseAddrPort("10.0.0.7:40001")})
	h.feed(in, []byte("CHEL 51000\r\nCLREQ\r\n"), 1024)
	if h.open[in] || len(h.written[in]) != 0 {
		t.Fatalf("the banned neighbour connected back: open %v, written %q; want it closed unanswered", h.open[in], h.written[in])
	}
}

// peerWithListingNeighbour is a peer welcomed by the server
// (10.0.0.1:52000, a 337-byte file in chunks of 64, whose root is root)
// with one neighbour (10.0.0.7:51000) that has the hash list, so the
// peer asks the neighbour for it, not the server. It returns the peer,
// its harness and the server's and the neighbour's streams.
func peerWithListingNeighbour(t *testing.T, root [32]byte) (*Peer, *harness, spec.Stream, spec.Stream) {
	t.Helper()
	p, h, srv := welcomedPeer(t, 1, "SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\n")
	nb := h.to("10.0.0.7:51000")
	if nb == 0 {
		t.Fatalf("the peer dialed %v, want the neighbour", h.dials)
	}
	h.feed(nb, []byte("PHEL\r\nXHEL 1\r\nHAVE HASH\r\n"), 1024)
	h.feed(srv, []byte("XHEL 1 "+fmt.Sprintf("%x", root[:])+"\r\n"), 1024)
	return p, h, srv, nb
}

// hashList is c's HASH body: its chunks' digests in order.
func hashList(c *Content) []byte {
	var list []byte
	for _, h := range c.Hashes() {
		list = append(list, h[:]...)
	}
	return list
}
