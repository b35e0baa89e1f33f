package cs

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// One host gets MaxPerAddr places however many connections it holds
// without reading; others still get theirs, and a finished download
// frees its place once its client closes (not before: the kernel may
// still hold the end of the file for it).
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
	// Stream 1 takes its two pieces and is done, but its client is still
	// there: the place stays taken until it closes.
	s.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
	s.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
	if !refused(5, "192.0.2.1:1005") {
		t.Fatal("a finished download whose client is still connected gave up its place")
	}
	s.Step(0, spec.Input{Kind: spec.InStreamClosed, Stream: spec.AcceptedStream | 1}, nil)
	if refused(6, "192.0.2.1:1006") {
		t.Fatal("a finished download's place was not freed when its client closed")
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

// A client that stops reading once the rest of the file fits in the
// kernel's buffers has taken it all as far as the server can tell: its
// download is finished and closed, yet it keeps its place until it
// closes, and is reset after Stall if it never does (100 such clients
// from one host held a server's sockets, past MaxPerAddr, for good).
func TestFinishedButHeldOpenIsReset(t *testing.T) {
	srv := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srv, Piece: 4, Stall: 40 * time.Second, MaxPerAddr: 1}, make([]byte, 4))
	now := spec.SimEpoch
	s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	s.Step(now, spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srv}, nil)
	var timer spec.Time
	kinds := func(in spec.Input) map[spec.OutKind]bool {
		k := map[spec.OutKind]bool{}
		for _, o := range s.Step(now, in, nil) {
			k[o.Kind] = true
			if o.Kind == spec.OutSetTimer {
				timer = o.At
			}
		}
		return k
	}
	from := netip.MustParseAddrPort("192.0.2.1:1000")
	kinds(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: spec.AcceptedStream | 1, Addr: from})
	if k := kinds(spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}); !k[spec.OutClose] {
		t.Fatal("the whole file taken, the server did not close")
	}
	if k := kinds(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: spec.AcceptedStream | 2, Addr: from}); !k[spec.OutAbort] {
		t.Fatal("a second client from the host got a place while the finished one is still connected (MaxPerAddr 1)")
	}
	for i := 0; i < 8 && s.c.stalled == 0; i++ {
		now = timer
		kinds(spec.Input{Kind: spec.InTimer, Timer: sweepTimer})
	}
	if s.c.stalled != 1 || s.streams[spec.AcceptedStream|1] != nil || now.Sub(spec.SimEpoch) > time.Minute {
		t.Fatalf("after %v: stalled %d, still held %v; want the open finished download reset after Stall (40s)", now.Sub(spec.SimEpoch), s.c.stalled, s.streams[spec.AcceptedStream|1] != nil)
	}
}
