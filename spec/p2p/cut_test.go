package p2p

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"

	"github.com/netspec/netspec/spec"
)

// A chunk a relay checked while passing it through vouches for that copy
// alone. Here a tree parent sends a corrupt chunk 0 without VOID and
// then a good chunk 1, which the relay passes through to its child and
// checks; the parent is banned for chunk 0 before chunk 1 is stored. A
// neighbour then pushes garbage as chunk 1: it must be hashed and
// rejected like any chunk, not taken on the strength of the parent's
// good copy (the check used to be remembered peer-wide, and the ban
// skipped its reset).
func TestCheckedCutThroughVouchesForThatCopyAlone(t *testing.T) {
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
	if w := h.written[kid]; !bytes.Contains(w, append(AppendPUSHHeader(nil, 64, 64), c.Chunk(1)...)) {
		t.Fatalf("chunk 1 was not passed through to the child: the test does not test what it says")
	}
	if p.Has(1) || h.open[par] {
		t.Fatalf("the parent was not banned before chunk 1 was stored (holds 1: %v)", p.Has(1))
	}
	h.feed(nb, append(AppendPUSHHeader(nil, 64, 64), bytes.Repeat([]byte{0xee}, 64)...), 128)

	cnt := counters(p)
	if got, _ := store.Get(1); p.Has(1) && !bytes.Equal(got, c.Chunk(1)) {
		t.Errorf("the peer holds a corrupt chunk 1 (%x...) that was never checked", got[:8])
	}
	if cnt["corrupt_chunks"] != 2 || cnt["peers_banned"] != 2 || h.open[nb] {
		t.Errorf("corrupt_chunks %d, peers_banned %d, neighbour still connected %v; want both senders of a corrupt chunk banned",
			cnt["corrupt_chunks"], cnt["peers_banned"], h.open[nb])
	}
}

// counters is p's counters by name.
func counters(p spec.Inspector) map[string]uint64 {
	cnt := map[string]uint64{}
	for _, k := range p.Counters() {
		cnt[k.Name] = k.Value
	}
	return cnt
}
