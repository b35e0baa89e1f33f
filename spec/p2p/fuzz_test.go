package p2p

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

// harness drives one machine by hand: it answers binds and dials at once,
// fires timers when asked, and keeps what the machine wrote per stream.
type harness struct {
	t       *testing.T
	m       spec.Machine
	now     spec.Time
	out     []spec.Output
	timers  map[spec.Timer]spec.Time
	written map[spec.Stream][]byte
	dials   map[spec.Stream]netip.AddrPort
	open    map[spec.Stream]bool
	exited  bool
}

func newHarness(t *testing.T, m spec.Machine) *harness {
	return &harness{t: t, m: m, now: spec.SimEpoch, timers: map[spec.Timer]spec.Time{},
		written: map[spec.Stream][]byte{}, dials: map[spec.Stream]netip.AddrPort{}, open: map[spec.Stream]bool{}}
}

// to is the latest open stream the machine dialed to addr (0: none).
func (h *harness) to(addr string) spec.Stream {
	var last spec.Stream
	for st, a := range h.dials {
		if a.String() == addr && h.open[st] && st > last {
			last = st
		}
	}
	return last
}

// step gives the machine one input and, in turn, the answers the runner
// would give at once (bound, connected).
func (h *harness) step(in spec.Input) {
	queue := []spec.Input{in}
	for len(queue) > 0 && !h.exited {
		in := queue[0]
		queue = queue[1:]
		h.out = h.m.Step(h.now, in, h.out[:0])
		for _, o := range h.out {
			switch o.Kind {
			case spec.OutBind:
				a := o.Addr
				if a.Port() == 0 {
					a = netip.AddrPortFrom(a.Addr(), 40000)
				}
				queue = append(queue, spec.Input{Kind: spec.InBound, Sock: o.Sock, Addr: a})
			case spec.OutDial:
				if len(h.dials) > 64 {
					h.t.Fatalf("%d dials: a hostile peer list must not make the machine dial without bound", len(h.dials))
				}
				h.dials[o.Stream], h.open[o.Stream] = o.Addr, true
				queue = append(queue, spec.Input{Kind: spec.InConnected, Stream: o.Stream, Addr: o.Addr})
			case spec.OutWrite:
				if !h.open[o.Stream] {
					h.t.Fatalf("write to stream %d, which is not open", o.Stream)
				}
				h.written[o.Stream] = append(h.written[o.Stream], o.Data...)
			case spec.OutClose, spec.OutAbort:
				delete(h.open, o.Stream)
			case spec.OutSetTimer:
				h.timers[o.Timer] = o.At
			case spec.OutCancelTimer:
				delete(h.timers, o.Timer)
			case spec.OutExit:
				h.exited = true
			}
		}
	}
}

// fire advances the clock to the earliest timer and fires it.
func (h *harness) fire() {
	first, at, ok := spectest.Earliest(h.timers)
	if !ok {
		return
	}
	delete(h.timers, first)
	h.now = max(h.now, at)
	h.step(spec.Input{Kind: spec.InTimer, Timer: first})
}

// feed delivers data on stream st in pieces of up to step bytes.
func (h *harness) feed(st spec.Stream, data []byte, step int) {
	for i := 0; i < len(data) && !h.exited && h.open[st]; i += step {
		h.now = h.now.Add(time.Millisecond)
		h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: data[i:min(i+step, len(data))]})
	}
}

// wellFormed checks that what the machine wrote on a stream parses as
// side's messages, and that every DATA or PUSH it sent holds the file's
// bytes.
func wellFormed(t *testing.T, what string, side Side, b []byte, c *Content) {
	msgs, errs := parseAll(side, b, len(b)+1)
	if len(errs) > 0 {
		t.Fatalf("%s wrote what does not parse: %v\n%q", what, errs, b)
	}
	for _, m := range msgs {
		if m.Op != DATA && m.Op != PUSH || c == nil {
			continue
		}
		if m.Offset < 0 || m.Offset+int64(len(m.Data)) > c.Size() || !bytes.Equal(m.Data, c.Bytes()[m.Offset:m.Offset+int64(len(m.Data))]) {
			t.Fatalf("%s sent %s %d %d that is not the file's", what, m.Op, m.Offset, len(m.Data))
		}
	}
}

func fuzzContent(t testing.TB) *Content {
	data := make([]byte, 5*64+17)
	spec.NewRand(7).Bytes(data)
	c, err := NewContent(data, 64)
	if err != nil {
		panic(err)
	}
	return c
}

var fuzzSeeds = []string{
	"CHEL 51000\r\nXHEL 1\r\nCLREQ\r\nDREQ 3\r\nDANY\r\nDANY\r\nHREQ\r\nHAVE HASH 1 2\r\nDCAN\r\nDREQ 5\r\nCHECK 9e107d9d372bb6826bd81d3542a419d6\r\n",
	"CHEL 51000\r\nCLREQ\r\nDREQ 99\r\nDREQ -1\r\nBOGUS\r\nCHECK xyz\r\n",
	"SHEL 337 64\r\n[[\"10.0.0.3\",51000],[\"10.0.0.4\",51000]]\r\nXHEL 1 " + string(bytes.Repeat([]byte("0f"), 32)) + "\r\nDATA 0 64\r\n" + string(bytes.Repeat([]byte{1}, 64)) + "ERROR EXHAUSTED\r\nCHECK 00\r\n",
	"PHEL\r\nXHEL 1 rate\r\nCLRSP\r\n[0,1,2,3,4,5]\r\nHAVE 1 2\r\nDATA 64 64\r\n" + string(bytes.Repeat([]byte{2}, 64)) + "ERROR CHUNK_UNDOWNLOADED\r\nERROR BUSY\r\n",
	"CHEL 51000\r\nXHEL 1 push\r\nHAVE 0\r\nDREQ 1\r\n",
	"PHEL\r\nXHEL 1\r\nPUSH 128 64\r\n" + string(bytes.Repeat([]byte{3}, 64)) + "PUSH 999 1\r\nx",
	"SHEL 99999999999 1\r\n[]\r\n", "\r\n\r\n\n", string(bytes.Repeat([]byte("["), 300)),
	// the trees: a place, parents, a subscription, a pushed list
	"SHEL 337 64\r\n[]\r\nXHEL 1 " + string(bytes.Repeat([]byte("0f"), 32)) + " rate\r\nTREE 2 5 2\r\nPARENT 0 10.0.0.2 51000\r\nPARENT 1 ::1 7\r\nHASH 6\r\n" + string(bytes.Repeat([]byte{4}, 192)) + "PUSH 0 64\r\n" + string(bytes.Repeat([]byte{5}, 64)) + "VOID 0\r\nVOID HASH\r\nVOID x\r\nVOID\r\n",
	"CHEL 51000\r\nXHEL 1 push tree\r\nTSUB 4 0\r\nTSUB 0 99\r\nTREE 1 1 1\r\nTREE 9 5 2\r\nTREE 1 5 99\r\nPARENT 7 x 1\r\nPARENT 0 10.0.0.1 0\r\n",
}

// FuzzServer feeds hostile request streams from three connections to the
// server: it must not panic, must answer only with well-formed messages,
// and every chunk it sends must be the file's.
func FuzzServer(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), []byte("CHEL 1\r\nDANY\r\n"), uint8(5))
	}
	f.Fuzz(func(t *testing.T, a, b []byte, step uint8) {
		c := fuzzContent(t)
		s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000"), ChunkSize: 64, MaxConns: 2, Expect: 2}, c)
		h := newHarness(t, s)
		h.step(spec.Input{Kind: spec.InStart})
		streams := []spec.Stream{spec.AcceptedStream | 1, spec.AcceptedStream | 2, spec.AcceptedStream | 3}
		for i, st := range streams {
			h.open[st] = true
			h.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st,
				Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i)}), 50000)})
		}
		n := int(step%32) + 1
		h.feed(streams[0], a, n)
		h.feed(streams[1], b, n+3)
		h.feed(streams[0], b, n)
		for k := 0; k < 20; k++ {
			h.fire()
		}
		h.step(spec.Input{Kind: spec.InStreamClosed, Stream: streams[1]})
		h.step(spec.Input{Kind: spec.InStreamClosed, Stream: streams[0], Err: "reset"})
		for _, st := range streams {
			wellFormed(t, "the server", Responses, h.written[st], c)
		}
	})
}

// FuzzPeer gives a peer a hostile server, a hostile neighbour that
// dialed it (requests) and a hostile neighbour it dialed (answers,
// pushes, and in the trees a parent's hash list, chunks and VOIDs): it
// must not panic, dial without bound, or write anything malformed, and it
// serves only chunks it received.
func FuzzPeer(f *testing.F) {
	const dreqs = "CHEL 51000\r\nXHEL 1\r\nDREQ 0\r\nDREQ 1\r\nHREQ\r\n"
	for _, s := range fuzzSeeds {
		f.Add([]byte(s), []byte(dreqs), []byte(fuzzSeeds[3]), uint8(3))
	}
	// The peer as the root of a tree with a child subscribed, passing the
	// server's list and chunks through (step 3: paced by rate, the child
	// first), the second time with a chunk corrupted on the way in.
	good, bad := rootFeed()
	for _, s := range []string{good, bad} {
		f.Add([]byte(s), []byte("CHEL 51000\r\nXHEL 1 push\r\nTSUB 2 0\r\n"), []byte(nil), uint8(3))
	}
	// The peer as a relay, id 2 of 3 in one tree, its child subscribed:
	// the neighbour it dialed (step 1: the first, its parent) brings the
	// list and chunks, good, corrupt and voided, corrupt and vouched for,
	// then a good one after the ban; and the same from a plain neighbour
	// (step 5: the second).
	hello, parent := relayFeed()
	for _, step := range []uint8{1, 5, 7} {
		f.Add([]byte(hello), []byte("CHEL 51000\r\nXHEL 1 push\r\nTSUB 3 0\r\n"), []byte(parent), step)
	}
	f.Fuzz(func(t *testing.T, fromServer, fromPeer, fromNeighbour []byte, step uint8) {
		store := &MemStore{Max: 1 << 16}
		cfg := PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1, MaxOut: 4, MaxIn: 4}
		if step&1 != 0 {
			cfg.UploadRate = 1e7 // paced by rate: a relay in a tree cuts through
		}
		p := NewPeer(cfg, store)
		h := newHarness(t, p)
		h.step(spec.Input{Kind: spec.InStart})
		var srv spec.Stream
		for st, a := range h.dials {
			if a.Port() == 52000 {
				srv = st
			}
		}
		if srv == 0 {
			t.Fatal("the peer did not dial the server")
		}
		in := spec.AcceptedStream | 9
		h.open[in] = true
		h.step(spec.Input{Kind: spec.InAccepted, Stream: in, Addr: netip.MustParseAddrPort("10.0.0.9:51000")})
		n := int(step%32) + 1
		if step&2 != 0 {
			h.feed(in, fromPeer, n+1)
		}
		h.feed(srv, fromServer, n)
		if step&2 == 0 {
			h.feed(in, fromPeer, n+1)
		}
		// The neighbour: one the peer dialed (from the server's list, a
		// PARENT, or dialing back the neighbour that dialed it), the
		// (step>>2)-th in the order dialed.
		var dialed []spec.Stream
		for st := range h.dials {
			if st != srv && h.open[st] {
				dialed = append(dialed, st)
			}
		}
		if len(dialed) > 0 && len(fromNeighbour) > 0 {
			slices.Sort(dialed)
			nb := dialed[int(step>>2)%len(dialed)]
			half := len(fromNeighbour) / 2
			h.feed(nb, fromNeighbour[:half], n+2)
			h.fire() // a timer between the halves: a stalled body, an idle flush
			h.feed(nb, fromNeighbour[half:], n+2)
		}
		for k := 0; k < 20; k++ {
			h.fire()
		}
		for st, b := range h.written {
			side := Requests
			if st&spec.AcceptedStream != 0 {
				side = Responses
			}
			wellFormed(t, "the peer", side, b, nil)
			if side != Responses {
				continue
			}
			// A chunk the peer serves is one it stored, unless it passed
			// it through as it came and voided it at once.
			msgs, _ := parseAll(Responses, b, len(b)+1)
			for k, m := range msgs {
				if m.Op != DATA && m.Op != PUSH || p.chunk == 0 {
					continue
				}
				if k+1 < len(msgs) && msgs[k+1].Op == VOID && msgs[k+1].Offset == m.Offset {
					continue
				}
				i := int(m.Offset / int64(p.chunk))
				got, err := store.Get(i)
				if !p.Has(i) || err != nil || !bytes.Equal(got, m.Data) {
					t.Fatalf("the peer served chunk %d that it does not hold", i)
				}
			}
		}
	})
}

// relayFeed is what the server sends a peer it makes id 2 of 3 in one
// tree (a relay: its parent id 1 at 10.0.0.5, its child id 3), with a
// neighbour 10.0.0.7 in its list; and what its parent sends it: the hash
// list, chunk 0, chunk 1 corrupt and voided, chunk 2 corrupt and not
// voided (the parent is banned), then chunk 3 (after the ban, it must be
// checked all the same).
func relayFeed() (hello, parent string) {
	c := fuzzContent(nil)
	root := c.Root()
	hello = "SHEL 337 64\r\n[[\"10.0.0.7\",51000]]\r\nXHEL 1 " + fmt.Sprintf("%x", root[:]) + " rate\r\nTREE 2 3 1\r\nPARENT 0 10.0.0.5 51000\r\n"
	corrupt := func(i int) string {
		b := append([]byte(nil), c.Chunk(i)...)
		b[0] ^= 1
		return string(b)
	}
	parent = "PHEL\r\nXHEL 1 rate\r\nHASH 6\r\n"
	for _, h := range c.Hashes() {
		parent += string(h[:])
	}
	parent += "PUSH 0 64\r\n" + string(c.Chunk(0)) +
		"PUSH 64 64\r\n" + corrupt(1) + "VOID 64\r\n" +
		"PUSH 128 64\r\n" + corrupt(2) +
		"PUSH 192 64\r\n" + string(c.Chunk(3))
	return hello, parent
}

// TestHarness shows the fuzz harness drives both machines for real: the
// server answers a request with the chunk, and a peer joins a server
// (here one speaking only the seed's protocol) and asks it for chunks.
func TestHarness(t *testing.T) {
	c := fuzzContent(t)
	s := NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000"), ChunkSize: 64}, c)
	h, st := acceptedBy(t, s)
	h.feed(st, []byte("CHEL 51000\r\nDREQ 2\r\n"), 5)
	for k := 0; k < 5; k++ {
		h.fire()
	}
	msgs, _ := parseAll(Responses, h.written[st], len(h.written[st])+1)
	var ops []Op
	for _, m := range msgs {
		ops = append(ops, m.Op)
		if m.Op == DATA && (m.Offset != 128 || !bytes.Equal(m.Data, c.Chunk(2))) {
			t.Errorf("DATA %d %d, want chunk 2", m.Offset, len(m.Data))
		}
	}
	if len(ops) != 2 || ops[0] != SHEL || ops[1] != DATA {
		t.Fatalf("server answered %v, want SHEL then DATA", ops)
	}

	p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
	h = newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	var srv spec.Stream
	for st := range h.dials {
		srv = st
	}
	// The seed's server: SHEL for CHEL, UNKNOWN_COMMAND for XHEL.
	h.feed(srv, []byte("SHEL 337 64\r\n[]\r\nERROR UNKNOWN_COMMAND\r\n"), 7)
	if !p.joined || !bytes.Contains(h.written[srv], []byte("DREQ ")) {
		t.Fatalf("the peer did not join and ask for a chunk; it wrote %q", h.written[srv])
	}
}

// rootFeed is what the server sends a peer it makes the root of a
// one-tree swarm of three: the welcome, the hash list and chunks 0 and 1,
// and the same with chunk 1's last byte flipped.
func rootFeed() (good, bad string) {
	c := fuzzContent(nil)
	root := c.Root()
	hello := "SHEL 337 64\r\n[]\r\nXHEL 1 " + fmt.Sprintf("%x", root[:]) + " rate\r\nTREE 1 3 1\r\nHASH 6\r\n"
	for _, h := range c.Hashes() {
		hello += string(h[:])
	}
	good = hello + "PUSH 0 64\r\n" + string(c.Chunk(0)) + "PUSH 64 64\r\n" + string(c.Chunk(1))
	b := []byte(good)
	b[len(b)-1] ^= 1
	return good, string(b)
}

// rootWithChild is a peer paced by rate with its server stream and a
// neighbour, id 2, subscribed to it as its child in tree 0: fed
// rootFeed, it becomes that child's parent, the root.
func rootWithChild(t *testing.T) (p *Peer, h *harness, srv, kid spec.Stream) {
	p = NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1, UploadRate: 1e7}, &MemStore{})
	h = newHarness(t, p)
	h.step(spec.Input{Kind: spec.InStart})
	for st := range h.dials {
		srv = st
	}
	kid = spec.AcceptedStream | 9
	h.open[kid] = true
	h.step(spec.Input{Kind: spec.InAccepted, Stream: kid, Addr: netip.MustParseAddrPort("10.0.0.9:51000")})
	h.feed(kid, []byte("CHEL 51000\r\nXHEL 1 push\r\nTSUB 2 0\r\n"), 64)
	return p, h, srv, kid
}

// intoChunk1 is where, in a rootFeed, the first 30 bytes of chunk 1's
// body end.
func intoChunk1(feed string) int {
	return strings.Index(feed, "PUSH 64 64\r\n") + len("PUSH 64 64\r\n") + 30
}

// A root with a child subscribed passes the list and each chunk to it as
// the bytes come, a few at a time, before it has the whole body; a chunk
// that fails its check is voided right behind it.
func TestRootCutsThrough(t *testing.T) {
	good, bad := rootFeed()
	for _, tc := range []struct {
		name, feed string
		void       bool
	}{{"good", good, false}, {"corrupt", bad, true}} {
		t.Run(tc.name, func(t *testing.T) {
			p, h, srv, kid := rootWithChild(t)
			// The first 30 bytes of chunk 1's body: the child already has them.
			cut := intoChunk1(tc.feed)
			h.feed(srv, []byte(tc.feed[:cut]), 7)
			if w := string(h.written[kid]); !strings.HasSuffix(w, tc.feed[cut-30-len("PUSH 64 64\r\n"):cut]) {
				t.Fatalf("the child has %q, want it to end with the first 30 bytes of chunk 1", w[max(0, len(w)-60):])
			}
			h.feed(srv, []byte(tc.feed[cut:]), 7)
			msgs, errs := parseAll(Responses, h.written[kid], len(h.written[kid])+1)
			if len(errs) > 0 {
				t.Fatalf("the child's stream does not parse: %v", errs)
			}
			var ops []string
			for _, m := range msgs {
				if m.Op != HAVE { // announcements may come between
					ops = append(ops, m.Op.String())
				}
			}
			want := "PHEL XHEL HASH PUSH PUSH"
			if tc.void {
				want += " VOID"
			}
			if got := strings.Join(ops, " "); got != want {
				t.Errorf("the child got %s, want %s", got, want)
			}
			cnt := map[string]uint64{}
			for _, c := range p.Counters() {
				cnt[c.Name] = c.Value
			}
			if tc.void && (cnt["bodies_cut_through"] != 2 || cnt["bodies_voided"] != 1 || p.Has(1)) {
				t.Errorf("counters %v, holds chunk 1: %v; want 2 bodies through, 1 voided, chunk 1 not held", cnt, p.Has(1))
			}
			if !tc.void && (cnt["bodies_cut_through"] != 3 || cnt["bodies_voided"] != 0 || !p.Has(1)) {
				t.Errorf("counters %v, holds chunk 1: %v; want 3 bodies through, none voided", cnt, p.Has(1))
			}
		})
	}
}

// A tree parent that voids what it passes on is not blamed for it, up to
// maxVoids bodies; one that keeps voiding only wastes the downlink and
// is dropped.
func TestTooManyVoidsDropTheParent(t *testing.T) {
	c := fuzzContent(nil)
	root := c.Root()
	var list string
	for _, h := range c.Hashes() {
		list += string(h[:])
	}
	bad := append([]byte(nil), c.Chunk(0)...)
	bad[0] ^= 1
	for _, voids := range []int{maxVoids, maxVoids + 1} {
		t.Run(fmt.Sprint(voids), func(t *testing.T) {
			p := NewPeer(PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, Linger: -1}, &MemStore{})
			h := newHarness(t, p)
			h.step(spec.Input{Kind: spec.InStart})
			var srv spec.Stream
			for st := range h.dials {
				srv = st
			}
			h.feed(srv, []byte("SHEL 337 64\r\n[]\r\nXHEL 1 "+fmt.Sprintf("%x", root[:])+" rate\r\nTREE 2 3 1\r\nPARENT 0 10.0.0.5 51000\r\n"), 64)
			var par spec.Stream
			for st, a := range h.dials {
				if a == netip.MustParseAddrPort("10.0.0.5:51000") {
					par = st
				}
			}
			if par == 0 || !strings.Contains(string(h.written[par]), "TSUB 2 0") {
				t.Fatalf("the peer did not subscribe to its parent: %q", h.written[par])
			}
			feed := "PHEL\r\nXHEL 1 rate\r\nHASH 6\r\n" + list
			for range voids {
				feed += "PUSH 0 64\r\n" + string(bad) + "VOID 0\r\n"
			}
			h.feed(par, []byte(feed), 50)
			cnt := map[string]uint64{}
			for _, k := range p.Counters() {
				cnt[k.Name] = k.Value
			}
			banned := uint64(0)
			if voids > maxVoids {
				banned = 1
			}
			if cnt["bodies_voided"] != uint64(voids) || cnt["corrupt_chunks"] != 0 || cnt["peers_banned"] != banned || p.Has(0) {
				t.Errorf("after %d voided chunks: voided %d, corrupt %d, banned %d (want %d), holds chunk 0 %v",
					voids, cnt["bodies_voided"], cnt["corrupt_chunks"], cnt["peers_banned"], banned, p.Has(0))
			}
		})
	}
}

// A parent that stops in the middle of a body does not freeze the
// children's connections: after TreeStall the relay completes the body
// with zeros and voids it, and what waited behind it goes out.
func TestStalledCutIsVoided(t *testing.T) {
	good, _ := rootFeed()
	_, h, srv, kid := rootWithChild(t)
	h.feed(srv, []byte(good[:intoChunk1(good)]), 7)
	// The child asks for chunk 0 meanwhile: the answer waits behind the body.
	h.feed(kid, []byte("DREQ 0\r\n"), 64)
	start := h.now
	for k := 0; k < 100 && h.now.Sub(start) < 2*time.Second; k++ {
		h.fire()
	}
	msgs, errs := parseAll(Responses, h.written[kid], len(h.written[kid])+1)
	if len(errs) > 0 {
		t.Fatalf("the child's stream does not parse: %v", errs)
	}
	var ops []string
	for _, m := range msgs {
		if m.Op != HAVE {
			ops = append(ops, m.Op.String())
		}
	}
	if got, want := strings.Join(ops, " "), "PHEL XHEL HASH PUSH PUSH VOID DATA"; got != want {
		t.Errorf("the child got %s, want %s", got, want)
	}
}

// FuzzDescribe: Describe takes any stream bytes (a trace may hold
// anything) and gives one line for a timeline (spec.Protocol.Describe),
// short whatever arrives: four groups of lines of at most 96 bytes, then
// ops and counts, at most 2048 bytes in all; the same every time, with
// the bytes left as they were; and, as its comment promises for
// --match, naming the op of every header line it reads.
func FuzzDescribe(f *testing.F) {
	for _, s := range []string{
		"CHEL 51000\r\n", "SHEL 10000000 16384\r\n[[\"10.0.0.2\", 51000]]\r\n",
		"DATA 0 3\r\nabc", "DREQ 9\r\nDREQ 10\r\n" + strings.Repeat("DANY\r\n", 13) + "HAVE 1 2\r\nHREQ\r\nCLREQ\r\n",
		"XHEL 1 " + strings.Repeat("0f", 32) + " push tree\r\nHASH 1\r\n" + strings.Repeat("\x01", 32),
		"ERROR CHUNK_UNDOWNLOADED\r\ndetail \"quoted\" \\ line\r\n", strings.Repeat("X", 97) + "\r\n",
		"CHEL 1\r\nVOID 0\r\nTREE 1 2 3\r\nPARENT 0 10.0.0.1:5\r\nTSUB 1 2\r\nDCAN 4\r\nPUSH 0 1\r\nz",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := spectest.CheckDescribe(t, Describe, b, 2048)
		// The header lines: up to the first that is not a line of
		// printable ASCII within 96 bytes.
		for rest := b; ; {
			i := bytes.IndexByte(rest, '\n')
			if i < 0 || i > 96 {
				break
			}
			line := bytes.TrimRight(rest[:i], "\r")
			if len(line) == 0 || bytes.ContainsFunc(line, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
				break
			}
			rest = rest[i+1:]
			tok, _, _ := bytes.Cut(line, []byte(" "))
			if op := lookupOp(tok); op != 0 && !strings.Contains(d, op.String()) {
				t.Fatalf("Describe(%q) = %q does not name %s", b, d, op)
			}
		}
	})
}

// acceptedBy starts server s in a harness and has it accept one
// connection, from 10.0.0.2:50000.
func acceptedBy(t *testing.T, s *Server) (*harness, spec.Stream) {
	t.Helper()
	h := newHarness(t, s)
	h.step(spec.Input{Kind: spec.InStart})
	st := spec.AcceptedStream | 1
	h.open[st] = true
	h.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st, Addr: netip.MustParseAddrPort("10.0.0.2:50000")})
	return h, st
}
