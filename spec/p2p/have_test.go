package p2p

import (
	"fmt"
	"slices"
	"testing"
)

// A HAVE names chunks by id, and a hostile or confused peer may name ids
// past the end of the file: the server ignores those (it must not index
// its per-chunk counts with them) and counts the others, so a DANY is
// answered with the one chunk the HAVE left unnamed in range.
func TestServerIgnoresHAVEOfChunksPastTheEnd(t *testing.T) {
	c := fuzzContent(t)
	n := c.Chunks()
	h, st := acceptedBy(t, NewServer(ServerConfig{ChunkSize: c.ChunkSize(), Seed: 1}, c))
	// Every chunk but the second, and ids from n up.
	have := "HAVE 0"
	for i := 2; i < n+3; i++ {
		have += fmt.Sprint(" ", i)
	}
	h.feed(st, []byte("CHEL 51000\r\nXHEL 1\r\n"+have+" 1000000\r\nDANY\r\n"), 1<<10)
	msgs, errs := parseAll(Responses, h.written[st], len(h.written[st])+1)
	if len(errs) > 0 {
		t.Fatalf("the server wrote what does not parse: %v", errs)
	}
	var data []Msg
	for _, m := range msgs {
		if m.Op == DATA {
			data = append(data, m)
		}
	}
	if len(data) != 1 || data[0].Offset != int64(c.ChunkSize()) {
		t.Fatalf("DANY after a HAVE of every chunk but 1 (and of ids past the end) answered %+v, want DATA of chunk 1", data)
	}
}

// And a peer ignores them from a neighbour: it asks that neighbour only
// for the chunks in range that it named.
func TestPeerIgnoresHAVEOfChunksPastTheEnd(t *testing.T) {
	c := fuzzContent(nil)
	p, h, _, nbs := peerWithTwoNeighbours(t, c.Root(), 1)
	asked := len(h.written[nbs[0]])
	h.feed(nbs[0], fmt.Appendf(nil, "HAVE 5 %d %d 1000000\r\n", p.n, p.n+1), 1024)
	if got := dreqsFrom(h, nbs[0], asked); !slices.Equal(got, []int{5}) {
		t.Fatalf("after HAVE 5 and ids past the end (%d chunks), the peer asked the neighbour for %v, want [5]", p.n, got)
	}
}
