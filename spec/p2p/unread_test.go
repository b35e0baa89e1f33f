package p2p

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/netspec/netspec/spec"
)

// A client that asks for unpaced answers one step at a time, and never
// reads, is cut off once MaxUnread bytes of them wait: what the node
// wrote before the reset is at most MaxUnread and the answer that passed
// it. (With the whole flood in one step nothing is written at all, so
// TestUnreadAnswersAreBounded could not tell where the limit stood.)
func TestUnreadAnswersAcrossStepsAreBounded(t *testing.T) {
	data := make([]byte, 10_000_000)
	spec.NewRand(3).Bytes(data)
	big, err := NewContent(data, DefaultChunkSize)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		peer    bool
		request string
	}{
		{"server, CLREQ", false, "CLREQ\r\n"},
		{"server, junk lines", false, "X\r\n"},
		{"peer, CLREQ", true, "CLREQ\r\n"},
		{"peer, junk lines", true, "X\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m spec.Inspector
			var h *harness
			var st spec.Stream
			var limit int
			if tc.peer {
				var p *Peer
				p, h, st, _ = heldChunkPeer(t, fuzzContent(nil))
				m, limit = p, p.maxUnread()
			} else {
				s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000")}, big)
				h, st = acceptedBy(t, s)
				m, limit = s, unreadCap(s.cfg.MaxUnread, big.Chunks())
			}
			h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte("CHEL 51000\r\n")})
			h.step(spec.Input{Kind: spec.InStreamWritable, Stream: st}) // the hello's answer is taken
			before := len(h.written[st])
			h.feed(st, []byte(strings.Repeat(tc.request, 200_000)), len(tc.request))
			written := len(h.written[st]) - before
			answer := 64 // an ERROR line
			if tc.request == "CLREQ\r\n" {
				answer = clrspMax(max(big.Chunks(), fuzzContent(nil).Chunks()))
			}
			if cut := counters(m)["unread_cutoffs"]; cut != 1 || h.open[st] {
				t.Fatalf("unread_cutoffs %d, open %v: the client that never reads was not reset", cut, h.open[st])
			}
			if written <= limit/2 || written > limit+answer {
				t.Errorf("%d bytes written before the reset, want MaxUnread (%d) and at most one answer (%d) more", written, limit, answer)
			}
		})
	}
}

// A seed-style neighbour that sends MaxPending DREQs at once, without
// reading, is served; one more request in the same step is one too many,
// and closes it. (TestPeerBoundsTheRequestsQueuedPerConnection floods
// with 200,000, so it sees the connection closed but not where.)
func TestPeerQueuesAtMostMaxPending(t *testing.T) {
	for _, extra := range []int{0, 1} {
		p, h, in, held := heldChunkPeer(t, fuzzContent(nil))
		n := p.cfg.MaxPending + extra
		h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte("CHEL 51000\r\n" + strings.Repeat(fmt.Sprintf("DREQ %d\r\n", held), n))})
		floods := counters(p)["request_floods"]
		if extra == 0 {
			ic := p.byIn[in]
			if !h.open[in] || ic == nil || floods != 0 || len(ic.pending) > p.cfg.MaxPending {
				t.Fatalf("%d DREQs (MaxPending) at once: open %v, request_floods %d; want them queued", n, h.open[in], floods)
			}
			continue
		}
		if h.open[in] || floods != 1 {
			t.Fatalf("%d DREQs (MaxPending+1) at once: open %v, request_floods %d; want the connection closed", n, h.open[in], floods)
		}
	}
}
