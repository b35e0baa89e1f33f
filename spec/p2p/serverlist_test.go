package p2p

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"

	"github.com/netspec/netspec/spec"
)

// The server's welcome lists other peers: never the requester's own
// listening address (its IP and CHEL port), not even while the
// requester's previous connection is still open (a peer that comes back
// before the server has seen the old connection go), and no address
// twice. A peer that dials itself wastes one of its MaxOut places on a
// connection it then refuses, and one listed twice, two.
func TestWelcomeNeverListsTheRequester(t *testing.T) {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srvAddr, ChunkSize: 64, Seed: 1}, fuzzContent(t))
	h := newHarness(t, s)
	h.step(spec.Input{Kind: spec.InStart})
	n := 0
	// join connects from ip and says CHEL port; it returns the
	// welcome's list.
	join := func(ip string, port uint16) []netip.AddrPort {
		t.Helper()
		n++
		st := spec.AcceptedStream | spec.Stream(n)
		h.open[st] = true
		h.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st, Addr: netip.MustParseAddrPort(ip + ":40000")})
		h.feed(st, fmt.Appendf(nil, "CHEL %d\r\nXHEL 1\r\n", port), 1<<10)
		msgs, _ := parseAll(Responses, h.written[st], len(h.written[st])+1)
		if len(msgs) == 0 || msgs[0].Op != SHEL {
			t.Fatalf("%s:%d got %v, want a welcome", ip, port, msgs)
		}
		return msgs[0].Peers
	}
	check := func(who string, list []netip.AddrPort, want ...string) {
		t.Helper()
		self := netip.MustParseAddrPort(who)
		var got []string
		for k, a := range list {
			if a == self {
				t.Fatalf("the welcome to %s lists %s itself: %v", who, a, list)
			}
			if slices.Contains(list[:k], a) {
				t.Fatalf("the welcome to %s lists %s twice: %v", who, a, list)
			}
			got = append(got, a.String())
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("the welcome to %s lists %v, want %v", who, got, want)
		}
	}
	check("10.0.0.2:51000", join("10.0.0.2", 51000))
	check("10.0.0.3:51000", join("10.0.0.3", 51000), "10.0.0.2:51000")
	// Another peer on the first one's host, listening on another port.
	check("10.0.0.2:51001", join("10.0.0.2", 51001), "10.0.0.2:51000", "10.0.0.3:51000")
	// The first peer comes back; its old connection is still open.
	check("10.0.0.2:51000", join("10.0.0.2", 51000), "10.0.0.2:51001", "10.0.0.3:51000")
	// And a newcomer sees each of them once.
	check("10.0.0.4:51000", join("10.0.0.4", 51000), "10.0.0.2:51000", "10.0.0.2:51001", "10.0.0.3:51000")
	check("10.0.0.3:51000", join("10.0.0.3", 51000), "10.0.0.2:51000", "10.0.0.2:51001", "10.0.0.4:51000")
}
