package p2p

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// A relay whose tree parent vouched for a corrupt chunk (sent no VOID
// behind it) bans the parent on its next message; when that message is
// a good chunk, already checked and passed on to the children as it
// came, the relay keeps it too, so that it holds what it served (it
// dropped it). And that check vouches for that copy alone: a neighbour
// that then pushes garbage as the same chunk gets nothing stored. (The
// check was remembered peer-wide, and the ban skipped its reset, so the
// garbage was stored unhashed.)
func TestCutThroughChunkFromABannedParent(t *testing.T) {
	c := fuzzContent(nil)
	root := c.Root()
	var list string
	for _, h := range c.Hashes() {
		list += string(h[:])
	}
	bad0 := append([]byte(nil), c.Chunk(0)...)
	bad0[0] ^= 1
	store := &MemStore{}
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1, UploadRate: 1e7}, store)
	h := newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	var srv spec.Stream
	for st := range h.dials {
		srv = st
	}
	// This peer is id 2 of 3 in one tree: its parent is 10.0.0.5, its
	// child id 3 (so it relays), and 10.0.0.7 is a neighbour.
	kid := spec.AcceptedStream | 9
	h.open[kid] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: kid, Addr: netip.MustParseAddrPort("10.0.0.9:51000")})
	h.feed(srv, []byte("SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\nXHEL 1 "+fmt.Sprintf("%x", root[:])+" rate\r\nTREE 2 3 1\r\nPARENT 0 10.0.0.5 51000\r\n"), 64)
	h.feed(kid, []byte("CHEL 51000\r\nXHEL 1 push\r\nTSUB 3 0\r\n"), 64)
	var par, nb spec.Stream
	for st, a := range h.dials {
		switch a {
		case netip.MustParseAddrPort("10.0.0.5:51000"):
			par = st
		case netip.MustParseAddrPort("10.0.0.7:51000"):
			nb = st
		}
	}
	if par == 0 || nb == 0 {
		t.Fatalf("the peer dialed %v, want its parent and its neighbour", h.dials)
	}
	h.feed(nb, []byte("PHEL\r\nXHEL 1 rate\r\nCLRSP\r\n[]\r\n"), 64)
	h.feed(par, []byte("PHEL\r\nXHEL 1 rate\r\nHASH 6\r\n"+list+"PUSH 0 64\r\n"+string(bad0)+"PUSH 64 64\r\n"+string(c.Chunk(1))), 16)
	if w := h.written[kid]; !bytes.Contains(w, append(AppendPUSHHeader(nil, 64, 64), c.Chunk(1)...)) || bytes.Contains(w, []byte("VOID 64")) {
		t.Fatalf("chunk 1 was not passed through to the child as good: the test does not test what it says")
	}
	cnt := counters(p)
	if h.open[par] || cnt["corrupt_chunks"] != 1 || cnt["peers_banned"] != 1 {
		t.Errorf("parent connected %v, corrupt_chunks %d, peers_banned %d; want the parent banned for chunk 0", h.open[par], cnt["corrupt_chunks"], cnt["peers_banned"])
	}
	holds := func(when string) {
		t.Helper()
		if got, err := store.Get(1); !p.Has(1) || err != nil || !bytes.Equal(got, c.Chunk(1)) {
			t.Errorf("%s: holds chunk 1 %v, bytes %x...; want the file's chunk 1, which it served", when, p.Has(1), got[:min(8, len(got))])
		}
	}
	holds("after the ban")
	h.feed(nb, append(AppendPUSHHeader(nil, 64, 64), bytes.Repeat([]byte{0xee}, 64)...), 128)
	holds("after a neighbour pushed garbage as chunk 1")
}

// counters is p's counters by name.
func counters(p spec.Inspector) map[string]uint64 {
	cnt := map[string]uint64{}
	for _, k := range p.Counters() {
		cnt[k.Name] = k.Value
	}
	return cnt
}
