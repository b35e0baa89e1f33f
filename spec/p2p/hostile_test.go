package p2p

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
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
	h := newHarness(t, s)
	h.step(spec.Input{Kind: spec.InStart})
	hog, peer := spec.AcceptedStream|1, spec.AcceptedStream|2
	for st, from := range map[spec.Stream]string{hog: "192.0.2.1:40000", peer: "198.51.100.7:40000"} {
		h.open[st] = true
		h.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st, Addr: netip.MustParseAddrPort(from)})
	}
	var reqs strings.Builder
	reqs.WriteString("CHEL 40000\r\n")
	for i := range 200 {
		fmt.Fprintf(&reqs, "DREQ %d\r\n", i)
	}
	h.step(spec.Input{Kind: spec.InStreamData, Stream: hog, Data: []byte(reqs.String())})
	h.step(spec.Input{Kind: spec.InStreamData, Stream: peer, Data: []byte("CHEL 40001\r\n")})
	// The peer asks for one chunk at a time, reading each answer (its
	// stream drains: InStreamWritable), for 5 s; the hog reads nothing.
	next, _ := oneAtATime(t, h, peer, 200, func(i int) []byte { return fmt.Appendf(nil, "DREQ %d\r\n", i) })
	if next < 200 {
		t.Fatalf("in 5 s the peer got %d chunks one at a time (the hog %d): a client that does not read starves it", next, dataWritten(h, hog))
	}
	if n := dataWritten(h, hog); n > 2*s.cfg.Window {
		t.Errorf("the hog, which never read, was sent %d answers", n)
	}
}

// The same holds for a peer serving its neighbours: a seed-style
// neighbour that pipelines requests and never reads is stalled, and one
// that reads is served at the pace of its reading; a seed-style
// neighbour's answers taken by the transport count as acknowledged, as
// on the server, so one that pipelines and reads is not held to Window
// answers per AckTimeout either.
func TestPeerNonReaderDoesNotStarveOthers(t *testing.T) {
	c := fuzzContent(nil)
	p, h, hog, held := heldChunkPeer(t, c)
	legit := spec.AcceptedStream | 10
	h.open[legit] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: legit, Addr: netip.MustParseAddrPort("10.0.0.10:51000")})
	h.step(spec.Input{Kind: spec.InStreamData, Stream: hog, Data: []byte("CHEL 51000\r\n" + strings.Repeat(fmt.Sprintf("DREQ %d\r\n", held), 200))})
	h.step(spec.Input{Kind: spec.InStreamData, Stream: legit, Data: []byte("CHEL 51001\r\n")})
	_, got := oneAtATime(t, h, legit, 100, func(int) []byte { return fmt.Appendf(nil, "DREQ %d\r\n", held) })
	if got < 100 {
		t.Fatalf("in 5 s the reading neighbour got %d chunks one at a time (the hog %d): a neighbour that does not read starves it", got, dataWritten(h, hog))
	}
	if n := dataWritten(h, hog); n > 2*p.cfg.Window {
		t.Errorf("the hog, which never read, was sent %d answers", n)
	}
}

// A seed-style neighbour that pipelines its requests and reads gets its
// answers as fast as its stream drains: the runner's InStreamWritable
// acknowledges them, as on the server (a peer held it to Window answers
// per AckTimeout).
func TestPeerPipelinedSeedStyleNeighbourPacedByDraining(t *testing.T) {
	c := fuzzContent(nil)
	_, h, in, held := heldChunkPeer(t, c)
	h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte("CHEL 51000\r\n" + strings.Repeat(fmt.Sprintf("DREQ %d\r\n", held), 50))})
	start := h.now
	for range 100 {
		h.now = h.now.Add(time.Millisecond)
		h.step(spec.Input{Kind: spec.InStreamWritable, Stream: in})
	}
	if n := dataWritten(h, in); n != 50 {
		t.Fatalf("%d of 50 pipelined requests answered in %v of draining", n, h.now.Sub(start))
	}
}

// Silent sockets do not shut a peer's port to its neighbours: one
// address gets MaxInPerAddr places, and a connection that has not said
// CHEL within HelloTimeout is reset (32 from one address held every
// place for good).
func TestPeerSilentConnectionsAreReset(t *testing.T) {
	c := fuzzContent(nil)
	p, h, in, _ := heldChunkPeer(t, c) // in: a neighbour from 10.0.0.9, silent so far
	h.step(spec.Input{Kind: spec.InStreamData, Stream: in, Data: []byte("CHEL 51000\r\n")})
	holder := netip.MustParseAddr("192.0.2.9")
	var silent []spec.Stream
	for i := range 20 {
		st := spec.AcceptedStream | spec.Stream(100+i)
		h.open[st] = true
		h.step(spec.Input{Kind: spec.InAccepted, Stream: st, Addr: netip.AddrPortFrom(holder, uint16(40000+i))})
		silent = append(silent, st)
	}
	held := 0
	for _, st := range silent {
		if h.open[st] {
			held++
		}
	}
	if held != p.cfg.MaxInPerAddr {
		t.Fatalf("%d connections from one address held, want MaxInPerAddr %d", held, p.cfg.MaxInPerAddr)
	}
	for end := h.now.Add(p.cfg.HelloTimeout + time.Second); h.now.Before(end); {
		h.fire()
	}
	for _, st := range silent {
		if h.open[st] {
			t.Fatalf("silent connection %d still open after HelloTimeout", st)
		}
	}
	if !h.open[in] {
		t.Fatal("the neighbour that said CHEL was reset")
	}
}

// Extension messages before XHEL get UNKNOWN_COMMAND, as from a
// seed-style node (doc.go: they travel only after XHEL); a HAVE sent
// without it changed which chunks the server thought a peer held.
func TestExtensionBeforeXHELRefused(t *testing.T) {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:52000")
	s := NewServer(ServerConfig{Addr: srvAddr, ChunkSize: 64}, fuzzContent(t))
	now := spec.SimEpoch
	s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	s.Step(now, spec.Input{Kind: spec.InBound, Sock: sockListen, Addr: srvAddr}, nil)
	st := spec.AcceptedStream | 1
	s.Step(now, spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st, Addr: netip.MustParseAddrPort("198.51.100.7:40000")}, nil)
	var written []byte
	for _, in := range []string{"CHEL 40000\r\n", "HAVE 1 2\r\n", "XHEL 1\r\n", "HAVE 1 2\r\n"} {
		for _, o := range s.Step(now, spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte(in)}, nil) {
			if o.Kind == spec.OutWrite {
				written = append(written, o.Data...)
			}
		}
	}
	msgs, _ := parseAll(Responses, written, len(written)+1)
	var ops []string
	for _, m := range msgs {
		ops = append(ops, m.Op.String())
	}
	if got := strings.Join(ops, " "); got != "SHEL ERROR XHEL" {
		t.Fatalf("answers %q, want SHEL, ERROR (the HAVE before XHEL), XHEL and nothing for the HAVE after it", got)
	}
	if msgs[1].Err != ErrUnknownCommand {
		t.Fatalf("the HAVE before XHEL drew %v, want UNKNOWN_COMMAND", msgs[1].Err)
	}
}

// dataWritten counts the DATA answers the machine wrote on st.
// oneAtATime is a client on st that reads: it sends req(i) once its
// previous request is answered, and takes each answer (its stream drains)
// a millisecond after it is written, firing the machine's timers
// meanwhile, until it has asked n times, its stream closes or 5 s pass.
// It returns how many requests it sent and how many answers came.
func oneAtATime(t *testing.T, h *harness, st spec.Stream, n int, req func(i int) []byte) (asked, got int) {
	t.Helper()
	end := h.now.Add(5 * time.Second)
	for h.now.Before(end) && asked < n && h.open[st] {
		if got == asked {
			h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: req(asked)})
			asked++
		}
		if w := dataWritten(h, st); w > got {
			got = w
			h.now = h.now.Add(time.Millisecond) // a round trip
			h.step(spec.Input{Kind: spec.InStreamWritable, Stream: st})
			continue
		}
		if len(h.timers) == 0 {
			t.Fatal("the request is neither answered nor timed")
		}
		h.fire()
	}
	return asked, got
}

func dataWritten(h *harness, st spec.Stream) int {
	msgs, _ := parseAll(Responses, h.written[st], len(h.written[st])+1)
	n := 0
	for _, m := range msgs {
		if m.Op == DATA {
			n++
		}
	}
	return n
}

// A client the server closed on for a protocol violation (ERROR, then
// FIN) and that keeps sending is reset once it has sent 64 KiB more: an
// audit pushed 24 GB into such a connection in 30 s, all read and
// dropped. The requests a pipelining client had in flight pass.
func TestFloodAfterCloseIsReset(t *testing.T) {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:52000")
	c, err := NewContent(make([]byte, 64*8), 64)
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(ServerConfig{Addr: srvAddr, Seed: 1, MaxPending: 4}, c)
	s.Step(0, spec.Input{Kind: spec.InStart}, nil)
	st := spec.AcceptedStream | 1
	s.Step(0, spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st, Addr: netip.MustParseAddrPort("192.0.2.1:40000")}, nil)
	var closed, aborted bool
	step := func(b []byte) {
		for _, o := range s.Step(0, spec.Input{Kind: spec.InStreamData, Stream: st, Data: b}, nil) {
			closed = closed || o.Kind == spec.OutClose && o.Stream == st
			aborted = aborted || o.Kind == spec.OutAbort && o.Stream == st
		}
	}
	step([]byte("CHEL 40000\r\nDREQ 0\r\nDREQ 1\r\nDREQ 2\r\nDREQ 3\r\nDREQ 4\r\nDREQ 5\r\n"))
	if !closed || aborted {
		t.Fatalf("too many queued requests: closed %v, aborted %v; want a close", closed, aborted)
	}
	step([]byte("DREQ 6\r\nDREQ 7\r\n")) // still in flight when we closed
	if aborted {
		t.Fatal("a pipelining client's trailing requests drew a reset")
	}
	for i := 0; i < 9 && !aborted; i++ {
		step(make([]byte, 8<<10))
	}
	if !aborted {
		t.Fatal("72 KiB after the close, the client is still not reset")
	}
}
