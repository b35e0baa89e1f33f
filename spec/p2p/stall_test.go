package p2p

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

// A seed-style client that pipelines requests and never reads does not
// starve the others on a server paced by acknowledgments: an answer of
// its that times out stalls it until it acknowledges something. Before,
// its answers held the window's slots round after round, each for
// AckTimeout, and one such connection slowed every other download about
// 200-fold (4 s instead of 0.02 s for 2 MB on loopback).
func TestNonReaderDoesNotStarveOthers(t *testing.T) {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:52000")
	data := make([]byte, 64*200)
	spec.NewRand(3).Bytes(data)
	c, err := NewContent(data, 64)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerConfig{Addr: srvAddr, Seed: 1}, c)
	now := spec.SimEpoch
	timers := map[spec.Timer]spec.Time{}
	got := map[spec.Stream]int{} // DATA answers written
	step := func(in spec.Input) {
		for _, o := range s.Step(now, in, nil) {
			switch o.Kind {
			case spec.OutSetTimer:
				timers[o.Timer] = o.At
			case spec.OutCancelTimer:
				delete(timers, o.Timer)
			case spec.OutWrite:
				got[o.Stream] += strings.Count(string(o.Data), "DATA ")
			}
		}
	}
	step(spec.Input{Kind: spec.InStart})
	step(spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srvAddr})
	hog, peer := spec.AcceptedStream|1, spec.AcceptedStream|2
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: hog, Addr: netip.MustParseAddrPort("192.0.2.1:40000")})
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: peer, Addr: netip.MustParseAddrPort("198.51.100.7:40000")})
	var reqs strings.Builder
	reqs.WriteString("CHEL 40000\r\n")
	for i := range 200 {
		fmt.Fprintf(&reqs, "DREQ %d\r\n", i)
	}
	step(spec.Input{Kind: spec.InStreamData, Stream: hog, Data: []byte(reqs.String())})
	step(spec.Input{Kind: spec.InStreamData, Stream: peer, Data: []byte("CHEL 40001\r\n")})
	// The peer asks for one chunk at a time, reading each answer (its
	// stream drains: InStreamWritable), for 5 s; the hog reads nothing.
	end := now.Add(5 * time.Second)
	next := 0
	for asked := got[peer]; now.Before(end) && next < 200; {
		if got[peer] == asked {
			step(spec.Input{Kind: spec.InStreamData, Stream: peer, Data: fmt.Appendf(nil, "DREQ %d\r\n", next)})
			next++
		}
		if got[peer] > asked {
			asked = got[peer]
			now = now.Add(time.Millisecond) // a round trip
			step(spec.Input{Kind: spec.InStreamWritable, Stream: peer})
			continue
		}
		tm, at, ok := spectest.Earliest(timers)
		if !ok {
			t.Fatal("the peer's request is neither answered nor timed")
		}
		delete(timers, tm)
		now = max(now, at)
		step(spec.Input{Kind: spec.InTimer, Timer: tm})
	}
	if next < 200 {
		t.Fatalf("in 5 s the peer got %d chunks one at a time (the hog %d): a client that does not read starves it", next, got[hog])
	}
	if got[hog] > 2*s.cfg.Window {
		t.Errorf("the hog, which never read, was sent %d answers", got[hog])
	}
}
