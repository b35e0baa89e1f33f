package rudp_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/rudp"
)

// A session closed gracefully keeps its id in a tombstone for
// CookieLifetime, as an aborted one does: the client's cookie-bearing
// first segment, replayed after the 4-way close (by an attacker, or a
// duplicate the network held back), opens nothing, draws nothing and is
// counted as a replay. Only TestDroppedSessionAnswersWithRST covered the
// tombstone, through the path of a session the server reset.
func TestReplayedCookieAfterGracefulCloseOpensNothing(t *testing.T) {
	n := newPairNet(t, rudp.Config{Seed: 2}, rudp.Config{Seed: 1})
	var first []byte
	n.tap = func(to int, p rudp.Packet) {
		if to == 1 && p.Flags&rudp.FlagCOOKIE != 0 && first == nil {
			first = p.Append(nil)
		}
	}
	id := n.ep[0].Dial(n.now, n.addr[1])
	if err := n.ep[0].Write(id, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	n.ep[0].Close(id)
	n.settle(0, nil)
	n.run(n.now.Add(5 * time.Second)) // the close and the client's TIME_WAIT
	if first == nil {
		t.Fatal("the client sent no segment with its cookie")
	}
	if !bytes.Equal(n.got, []byte("hello")) || n.ep[1].Sessions() != 0 || n.ep[0].Sessions() != 0 {
		t.Fatalf("before the replay: server got %q; sessions %d (client), %d (server); want hello and none open", n.got, n.ep[0].Sessions(), n.ep[1].Sessions())
	}
	accepted := func() (k int) {
		for _, ev := range n.events[1] {
			if ev.Kind == rudp.Accepted {
				k++
			}
		}
		return k
	}
	before, sent := accepted(), len(n.sent[1])
	n.tap = nil
	n.deliver(1, first)
	n.run(n.now.Add(time.Second))
	if n.ep[1].Sessions() != 0 || accepted() != before {
		t.Fatalf("the replayed cookie reopened the session: %d open, %d accepted (was %d)", n.ep[1].Sessions(), accepted(), before)
	}
	if len(n.sent[1]) != sent {
		t.Errorf("the server answered the replay: %v", n.sent[1][sent:])
	}
	if got := n.counter(1, "rudp_cookie_replays"); got != 1 {
		t.Errorf("rudp_cookie_replays = %d, want 1", got)
	}
}
