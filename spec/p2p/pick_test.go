package p2p

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// pickState is what a peer that has joined a swarm of a 10-chunk file
// holds, has requested and knows to be available, and what one
// neighbour holds (nbHas); pickPeer builds that peer.
type pickState struct {
	have, reqd, partial []int
	avail               map[int]int32 // neighbours known to hold a chunk
	nbHas               []int
	seed                uint64
}

func pickPeer(t *testing.T, st pickState) (*Peer, *oconn) {
	t.Helper()
	const n = 10
	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: st.seed, Linger: -1}, &MemStore{})
	h := newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	var srv spec.Stream
	for s := range h.dials {
		srv = s
	}
	// A seed-style server: SHEL for CHEL, UNKNOWN_COMMAND for XHEL.
	h.feed(srv, []byte("SHEL 640 64\r\n[]\r\nERROR UNKNOWN_COMMAND\r\n"), 64)
	if !p.joined || p.n != n {
		t.Fatalf("the peer did not join a %d-chunk file", n)
	}
	// Forget what it asked the server: the test sets the state.
	for i := 0; i < n; i++ {
		for p.req[i] > 0 {
			p.unrequest(i)
		}
	}
	for _, i := range st.have {
		p.have.set(i)
		p.nhave++
	}
	for _, i := range st.reqd {
		p.req[i], p.reqAt[i] = 1, spec.SimEpoch
		p.reqd.set(i)
		p.nreq++
	}
	for _, i := range st.partial {
		p.partial.set(i)
	}
	for i, a := range st.avail {
		p.avail[i] = a
	}
	c := &oconn{has: newBitset(n), lat: 10 * time.Millisecond}
	for _, i := range st.nbHas {
		c.has.set(i)
	}
	return p, c
}

// The chunk selection doc.go describes: a random chunk first, then the
// rarest among the neighbours, chunks whose transfer broke off before
// all, and in endgame a late chunk asked of a second neighbour.
func TestPick(t *testing.T) {
	all := []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}
	late := spec.SimEpoch.Add(time.Second)
	for _, tc := range []struct {
		name string
		st   pickState
		now  spec.Time
		want []int // any of these; nil: -1
	}{
		{"rarest", pickState{have: []int{0}, nbHas: all, avail: map[int]int32{1: 3, 2: 3, 3: 1, 4: 2, 5: 3, 6: 3, 7: 3, 8: 3, 9: 3}}, 0, []int{3}},
		{"rarest the neighbour holds", pickState{have: []int{0}, nbHas: []int{4, 5}, avail: map[int]int32{3: 1, 4: 2, 5: 3}}, 0, []int{4}},
		{"ties among the rarest", pickState{have: []int{0}, nbHas: all, avail: map[int]int32{2: 1, 7: 1, 1: 2, 3: 2, 4: 2, 5: 2, 6: 2, 8: 2, 9: 2}}, 0, []int{2, 7}},
		{"not what is held or asked", pickState{have: []int{0, 1}, reqd: []int{2, 3}, nbHas: []int{0, 1, 2, 3, 8}, avail: map[int]int32{2: 1, 3: 1, 8: 5}}, 0, []int{8}},
		{"a broken-off chunk first", pickState{have: []int{0}, partial: []int{6}, nbHas: all, avail: map[int]int32{3: 1, 6: 9}}, 0, []int{6}},
		{"nothing to ask this neighbour", pickState{have: []int{0}, nbHas: []int{0}}, 0, nil},
		{"endgame: a late chunk", pickState{have: []int{0, 1, 2, 3, 4, 5, 6, 7}, reqd: []int{8, 9}, nbHas: []int{9}}, late, []int{9}},
		{"endgame: not before it is late", pickState{have: []int{0, 1, 2, 3, 4, 5, 6, 7}, reqd: []int{8, 9}, nbHas: []int{9}}, spec.SimEpoch.Add(50 * time.Millisecond), nil},
		{"no endgame while chunks are unasked", pickState{have: []int{0, 1, 2, 3, 4, 5, 6}, reqd: []int{8, 9}, nbHas: []int{8, 9}}, late, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for seed := uint64(1); seed <= 20; seed++ {
				tc.st.seed = seed
				p, c := pickPeer(t, tc.st)
				got := p.pick(tc.now, c, false)
				ok := got == -1 && tc.want == nil
				for _, w := range tc.want {
					ok = ok || got == w
				}
				if !ok {
					t.Fatalf("seed %d: picked %d, want one of %v", seed, got, tc.want)
				}
			}
		})
	}
}

// Ties are broken at random, and a peer with nothing takes a random
// chunk, not the rarest: peers that start together do not all ask for
// the same one.
func TestPickSpreads(t *testing.T) {
	for _, tc := range []struct {
		name string
		st   pickState
	}{
		{"first chunk", pickState{nbHas: []int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, avail: map[int]int32{3: 1}}},
		{"ties", pickState{have: []int{0}, nbHas: []int{1, 2, 3, 4}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seen := map[int]int{}
			for seed := uint64(1); seed <= 200; seed++ {
				tc.st.seed = seed
				p, c := pickPeer(t, tc.st)
				seen[p.pick(0, c, false)]++
			}
			if len(seen) < 4 || seen[-1] > 0 {
				t.Fatalf("200 peers picked %v", seen)
			}
		})
	}
}
