package p2p

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// Connections held open and silent do not keep peers out: one address
// gets MaxPerAddr places, and a connection that has not said CHEL within
// HelloTimeout is reset, while one that said it stays.
func TestSilentConnectionsAreReset(t *testing.T) {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srvAddr, ChunkSize: 64, MaxPerAddr: 2, HelloTimeout: 10 * time.Second}, fuzzContent(t))
	now := spec.SimEpoch
	s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	s.Step(now, spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srvAddr}, nil)
	holder := netip.MustParseAddr("192.0.2.9")
	var timer spec.Time
	aborted := map[spec.Stream]bool{}
	step := func(in spec.Input) {
		for _, o := range s.Step(now, in, nil) {
			switch {
			case o.Kind == spec.OutAbort:
				aborted[o.Stream] = true
			case o.Kind == spec.OutSetTimer && o.Timer == tHello:
				timer = o.At
			}
		}
	}
	for i := 1; i <= 3; i++ {
		step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: spec.AcceptedStream | spec.Stream(i), Addr: netip.AddrPortFrom(holder, uint16(40000+i))})
	}
	if !aborted[spec.AcceptedStream|3] || aborted[spec.AcceptedStream|1] || aborted[spec.AcceptedStream|2] {
		t.Fatalf("with MaxPerAddr 2, aborted %v, want only the third", aborted)
	}
	peer := spec.AcceptedStream | 4
	now = now.Add(time.Second)
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: peer, Addr: netip.MustParseAddrPort("198.51.100.7:40000")})
	step(spec.Input{Kind: spec.InStreamData, Stream: peer, Data: AppendCHEL(nil, 51000)})
	if want := spec.SimEpoch.Add(10 * time.Second); timer != want {
		t.Fatalf("hello timer at %v, want %v", timer, want)
	}
	now = timer
	step(spec.Input{Kind: spec.InTimer, Timer: tHello})
	if !aborted[spec.AcceptedStream|1] || !aborted[spec.AcceptedStream|2] || aborted[peer] {
		t.Fatalf("after HelloTimeout aborted %v, want the two silent ones, not the peer", aborted)
	}
	// Their places are free again.
	delete(aborted, spec.AcceptedStream|5)
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: spec.AcceptedStream | 5, Addr: netip.AddrPortFrom(holder, 41000)})
	if aborted[spec.AcceptedStream|5] {
		t.Fatal("the reset connections' places were not freed")
	}
}
