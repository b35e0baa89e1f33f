package p2p

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

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

// countsTrue checks the counts fill relies on against the sets they
// count: nhave the chunks held, npend those kept pending the hash list
// (each once, however many copies came), nreq as nreqTrue; so that
// n-nhave-nreq-npend is the number of chunks nobody was asked for.
func countsTrue(p *Peer) error {
	have, pend := 0, 0
	for i := 0; i < p.n; i++ {
		if p.have.has(i) {
			have++
		}
		if p.pend.has(i) {
			pend++
		}
	}
	if p.nhave != have || p.npend != pend || p.nreq != nreqTrue(p) || p.n-p.nhave-p.nreq-p.npend < 0 {
		return fmt.Errorf("nhave %d, npend %d, nreq %d; true counts %d, %d, %d (of %d chunks)", p.nhave, p.npend, p.nreq, have, pend, nreqTrue(p), p.n)
	}
	return nil
}

// The request count stays the true count when a chunk is asked of two
// neighbours (as the endgame does) before the hash list has come, and
// its copies arrive, are kept pending, rejected by the list or voided.
// A second copy of a chunk kept pending used to be taken off the count
// a second time; and it must not be kept pending twice either (npend
// counted twice makes fill ask the server for one chunk too few, for
// good, and the list's adoption leaves npend at 1 with nothing pending).
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
		// A VOID settles only what its sender sent: another neighbour
		// cannot make the peer drop a chunk it kept.
		{"a copy voided by the neighbour that did not send it, then the list", []step{{0, good}, {1, []byte("VOID 192\r\n")}, {2, hash}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, h, srv, nbs := peerWithTwoNeighbours(t, root, 1)
			p.request(h.now, p.byOut[nbs[0]], 3)
			p.request(h.now, p.byOut[nbs[1]], 3)
			if err := countsTrue(p); err != nil {
				t.Fatalf("before any copy came: %v", err)
			}
			for k, s := range tc.steps {
				st := srv
				if s.from < 2 {
					st = nbs[s.from]
				}
				h.feed(st, s.data, 1024)
				if err := countsTrue(p); err != nil {
					t.Fatalf("after step %d: %v", k, err)
				}
			}
			if p.Has(3) != tc.have {
				t.Errorf("holds chunk 3: %v, want %v", p.Has(3), tc.have)
			}
		})
	}
}

// welcomedPeer is a peer (seeded with seed, in no tree) to which the
// server, 10.0.0.1:52000, has sent welcome. It returns the peer, its
// harness and the server's stream.
func welcomedPeer(t *testing.T, seed uint64, welcome string) (*Peer, *harness, spec.Stream) {
	t.Helper()
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: seed, Linger: -1, NoTree: true}, &MemStore{})
	h := newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	srv := h.to("10.0.0.1:52000")
	h.feed(srv, []byte(welcome), 1024)
	return p, h, srv
}

// peerWithTwoNeighbours is a peer (seeded with seed) welcomed by an
// extension server (10.0.0.1:52000, a 337-byte file in chunks of 64,
// whose root is root; no hash list yet) with two extension neighbours,
// 10.0.0.7:51000 and 10.0.0.8:51000, that hold nothing. It returns the
// peer, its harness, and the server's and the neighbours' streams.
func peerWithTwoNeighbours(t *testing.T, root [32]byte, seed uint64) (*Peer, *harness, spec.Stream, [2]spec.Stream) {
	t.Helper()
	p, h, srv := welcomedPeer(t, seed, "SHEL 337 64\r\n[[\"10.0.0.7\",51000],[\"10.0.0.8\",51000]]\r\nXHEL 1 "+fmt.Sprintf("%x", root[:])+"\r\n")
	nbs := [2]spec.Stream{h.to("10.0.0.7:51000"), h.to("10.0.0.8:51000")}
	if nbs[0] == 0 || nbs[1] == 0 {
		t.Fatalf("the peer dialed %v, want both neighbours", h.dials)
	}
	for _, st := range nbs {
		h.feed(st, []byte("PHEL\r\nXHEL 1\r\nCLRSP\r\n[]\r\n"), 1024)
	}
	return p, h, srv, nbs
}

// A chunk whose DATA broke off mid-body, its neighbour gone, is asked
// again before any other (doc.go: "a chunk cut off mid-DATA gets strict
// priority"), from the next neighbour that holds it: the first request
// that neighbour gets is for that chunk, whatever the peer's seed.
func TestChunkCutOffMidDATAIsAskedFirst(t *testing.T) {
	c := fuzzContent(nil)
	for seed := uint64(1); seed <= 20; seed++ {
		p, h, _, nbs := peerWithTwoNeighbours(t, c.Root(), seed)
		p.request(h.now, p.byOut[nbs[0]], 3)
		h.feed(nbs[0], append(AppendDATAHeader(nil, 192, 64), c.Chunk(3)[:10]...), 1024)
		h.step(spec.Input{Kind: spec.InStreamClosed, Stream: nbs[0], Err: "reset"})
		asked := len(h.written[nbs[1]])
		h.feed(nbs[1], []byte("HAVE 0 1 2 3 4 5\r\n"), 1024)
		if got := dreqsFrom(h, nbs[1], asked); len(got) == 0 || got[0] != 3 {
			t.Fatalf("seed %d: after chunk 3 broke off, the neighbour holding every chunk was asked for %v, want 3 first", seed, got)
		}
	}
}

// dreqsFrom is the chunks the peer asked for on st, in order, in what
// it wrote there from byte from on.
func dreqsFrom(h *harness, st spec.Stream, from int) []int {
	msgs, _ := parseAll(Requests, h.written[st][from:], len(h.written[st])+1)
	var chunks []int
	for _, m := range msgs {
		if m.Op == DREQ {
			chunks = append(chunks, m.Chunk)
		}
	}
	return chunks
}

// A DATA is kept only if it fits the request it answers: another chunk
// than the one asked for, or a body of the wrong length, is a violation,
// however good its bytes, and bans the neighbour (doc.go: "an answer that
// does not fit its request").
func TestDATAThatDoesNotFitItsRequestIsRefused(t *testing.T) {
	c := fuzzContent(nil)
	for _, tc := range []struct {
		name  string
		chunk int    // the chunk the DATA is at
		body  []byte // its body
		kept  bool
	}{
		{"the chunk asked for", 3, c.Chunk(3), true},
		{"another chunk", 4, c.Chunk(4), false},
		{"the chunk asked for, a byte short", 3, c.Chunk(3)[:63], false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, h, _, nb := peerWithListingNeighbour(t, c.Root())
			h.feed(nb, append([]byte("CLRSP\r\n[]\r\nHASH 6\r\n"), hashList(c)...), 1024)
			if p.hashes == nil {
				t.Fatal("the peer did not take the hash list")
			}
			p.request(h.now, p.byOut[nb], 3)
			h.feed(nb, append(AppendDATAHeader(nil, int64(tc.chunk)*64, len(tc.body)), tc.body...), 1024)
			if p.Has(tc.chunk) != tc.kept || (p.cnt.banned == 0) != tc.kept {
				t.Fatalf("DATA of chunk %d (%d bytes) for DREQ 3: kept %v, banned %d; want kept %v", tc.chunk, len(tc.body), p.Has(tc.chunk), p.cnt.banned, tc.kept)
			}
		})
	}
}

// A PUSH is taken only from a neighbour that answered the peer's "XHEL 1
// push": from a seed-style neighbour, which answered it UNKNOWN_COMMAND,
// it is a violation that bans the neighbour, however good the chunk
// (doc.go: a peer bans a neighbour that sends "PUSH where it did not say
// push").
func TestPushFromASeedStyleNeighbourRefused(t *testing.T) {
	c := fuzzContent(nil)
	for _, tc := range []struct {
		name, xhel string // the neighbour's answer to XHEL
		kept       bool
	}{
		{"a neighbour that answered XHEL", "XHEL 1\r\n", true},
		{"a seed-style neighbour", "ERROR UNKNOWN_COMMAND\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, h, _ := welcomedPeer(t, 1, "SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\nERROR UNKNOWN_COMMAND\r\n")
			nb := h.to("10.0.0.7:51000")
			h.feed(nb, append([]byte("PHEL\r\n"+tc.xhel+"CLRSP\r\n[]\r\nPUSH 128 64\r\n"), c.Chunk(2)...), 1024)
			if p.Has(2) != tc.kept || (p.cnt.banned == 0) != tc.kept {
				t.Fatalf("PUSH of chunk 2: kept %v, banned %d; want kept %v", p.Has(2), p.cnt.banned, tc.kept)
			}
		})
	}
}

// After CHECKSUM_NOT_FIT the peer empties its store and downloads again;
// pushes still queued for its uplink then name chunks it no longer holds,
// and must not go out (they went out as zeros), nor be announced.
func TestNoPushOfChunksDroppedAfterChecksumNotFit(t *testing.T) {
	data := make([]byte, 128)
	spec.NewRand(5).Bytes(data)
	c, _ := NewContent(data, 64)
	// A slow uplink, so that the pushes of the two chunks queue.
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1, UploadRate: 40000}, &MemStore{})
	h := newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	var srv spec.Stream
	for st := range h.dials {
		srv = st
	}
	// A seed-style server, and three neighbours that take pushes.
	h.feed(srv, []byte("SHEL 128 64\r\n[]\r\nERROR UNKNOWN_COMMAND\r\n"), 1<<10)
	var ins []spec.Stream
	for k := range 3 {
		st := spec.AcceptedStream | spec.Stream(10+k)
		h.open[st] = true
		ins = append(ins, st)
		h.step(spec.Input{Kind: spec.InAccepted, Stream: st, Addr: netip.MustParseAddrPort(fmt.Sprintf("10.0.0.%d:51000", 20+k))})
		h.feed(st, []byte("CHEL 51000\r\nXHEL 1 push\r\n"), 1<<10)
	}
	for answered := 0; !p.complete && answered < 4; {
		msgs, _ := parseAll(Requests, h.written[srv], len(h.written[srv])+1)
		k := 0
		for _, m := range msgs {
			if m.Op != DREQ {
				continue
			}
			if k++; k > answered {
				answered++
				h.feed(srv, append(AppendDATAHeader(nil, int64(m.Chunk)*64, 64), c.Chunk(m.Chunk)...), 1<<10)
			}
		}
	}
	if !p.complete || !p.checkSent {
		t.Fatalf("the peer did not complete and send CHECK: have %d of %d", p.nhave, p.n)
	}
	queued := 0
	for _, ic := range p.ins {
		queued += len(ic.pushq)
	}
	if queued == 0 {
		t.Fatal("no push waits for the uplink at CHECK time: the test does not test what it says")
	}
	h.feed(srv, []byte("ERROR CHECKSUM_NOT_FIT\r\n"), 1<<10)
	if p.complete || p.nhave != 0 {
		t.Fatalf("after CHECKSUM_NOT_FIT: complete %v, have %d; want a fresh start", p.complete, p.nhave)
	}
	for _, ic := range p.ins {
		if len(ic.pendHave) > 0 {
			t.Errorf("announcements of chunks no longer held wait for a neighbour: %v", ic.pendHave)
		}
	}
	start := h.now
	for k := 0; k < 50 && h.now.Sub(start) < 200*time.Millisecond; k++ {
		h.fire()
	}
	for _, st := range ins {
		// wellFormed fails on a DATA or PUSH that is not the file's bytes.
		wellFormed(t, fmt.Sprintf("stream %d", st&^spec.AcceptedStream), Responses, h.written[st], c)
	}
}
