package cs

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// One host gets MaxPerAddr places however many connections it holds
// without reading; others still get theirs, and a finished download
// frees its place.
func TestPlacesPerAddress(t *testing.T) {
	srv := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srv, MaxPerAddr: 2, Piece: 4}, []byte("12345678"))
	s.Step(0, spec.Input{Kind: spec.InStart}, nil)
	s.Step(0, spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srv}, nil)
	refused := func(id int, from string) bool {
		for _, o := range s.Step(0, spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: spec.AcceptedStream | spec.Stream(id), Addr: netip.MustParseAddrPort(from)}, nil) {
			if o.Kind == spec.OutAbort {
				return true
			}
		}
		return false
	}
	got := []bool{refused(1, "192.0.2.1:1001"), refused(2, "192.0.2.1:1002"), refused(3, "192.0.2.1:1003"), refused(4, "198.51.100.1:1000")}
	if want := []bool{false, false, true, false}; bits(got) != bits(want) {
		t.Fatalf("refused %v, want %v", got, want)
	}
	// Stream 1 takes its two pieces and is done: its place is free.
	s.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
	s.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
	if refused(5, "192.0.2.1:1005") {
		t.Fatal("a finished download's place was not freed")
	}
}

func bits(b []bool) string {
	s := ""
	for _, v := range b {
		if v {
			s += "1"
		} else {
			s += "0"
		}
	}
	return s
}

// A client whose connection takes nothing for Stall is reset and its
// place freed (3,000 that never read held a server's places for good);
// one that takes a piece now and then is not.
func TestStalledClientsReset(t *testing.T) {
	srv := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srv, Piece: 4, Stall: 40 * time.Second}, make([]byte, 1000))
	now := spec.SimEpoch
	s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	s.Step(now, spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srv}, nil)
	stuck, slow := spec.AcceptedStream|1, spec.AcceptedStream|2
	timer := spec.Time(0)
	aborted := map[spec.Stream]bool{}
	step := func(in spec.Input) {
		for _, o := range s.Step(now, in, nil) {
			switch o.Kind {
			case spec.OutSetTimer:
				timer = o.At
			case spec.OutAbort:
				aborted[o.Stream] = true
			}
		}
	}
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: stuck, Addr: netip.MustParseAddrPort("192.0.2.1:1000")})
	step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: slow, Addr: netip.MustParseAddrPort("192.0.2.2:1000")})
	for now.Before(spec.SimEpoch.Add(time.Minute)) {
		now = now.Add(5 * time.Second)
		step(spec.Input{Kind: spec.InStreamWritable, Stream: slow})
		if timer != 0 && timer <= now {
			step(spec.Input{Kind: spec.InTimer, Timer: sweepTimer})
		}
	}
	if !aborted[stuck] || aborted[slow] || s.streams[stuck] != nil || s.c.stalled != 1 {
		t.Fatalf("aborted %v, stalled %d: want the client that took nothing reset and forgotten, not the slow one", aborted, s.c.stalled)
	}
}
