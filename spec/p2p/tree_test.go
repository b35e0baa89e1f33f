package p2p

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// Every peer but the roots has one parent per tree, the parent relation
// is a tree (no cycles, depth logarithmic), and with two trees no peer
// has children in both.
func TestTreeGeometry(t *testing.T) {
	for _, d := range []int{1, 2, 3, 4} {
		for _, n := range []int{1, 2, 3, 5, 7, 8, 10, 31, 100, 1000, 1001} {
			homes := map[int]int{}
			for s := 0; s < d; s++ {
				roots, maxDepth := 0, 0
				children := map[int]int{}
				for id := 1; id <= n; id++ {
					tr := tree{id: id, n: n, d: d}
					if got := tr.at(s, tr.pos(s, id)); got != id {
						t.Fatalf("d=%d n=%d s=%d: at(pos(%d)) = %d", d, n, s, id, got)
					}
					p := tr.parent(s)
					if p == 0 {
						roots++
					} else {
						children[p]++
						if !(tree{id: p, n: n, d: d}).isChild(s, id) {
							t.Fatalf("d=%d n=%d s=%d: %d's parent %d does not count it as a child", d, n, s, id, p)
						}
					}
					depth, x := 0, id
					for x != 0 && depth <= n {
						x = tree{id: x, n: n, d: d}.parent(s)
						depth++
					}
					if depth > n {
						t.Fatalf("d=%d n=%d s=%d: cycle from %d", d, n, s, id)
					}
					maxDepth = max(maxDepth, depth)
				}
				if roots != 1 {
					t.Fatalf("d=%d n=%d s=%d: %d roots", d, n, s, roots)
				}
				for p, k := range children {
					if k > d {
						t.Fatalf("d=%d n=%d s=%d: %d has %d children", d, n, s, p, k)
					}
					homes[p]++
				}
				if d > 1 && maxDepth > 2+log(n, d) {
					t.Fatalf("d=%d n=%d s=%d: depth %d", d, n, s, maxDepth)
				}
			}
			if d == 2 {
				for p, k := range homes {
					if k > 1 {
						t.Fatalf("n=%d: peer %d has children in %d trees", n, p, k)
					}
					if h := (tree{id: p, n: n, d: d}).home(); h < 0 {
						t.Fatalf("n=%d: peer %d has children but no home tree", n, p)
					}
				}
			}
		}
	}
}

func log(n, d int) int {
	k := 0
	for x := 1; x < n; x *= d {
		k++
	}
	return k
}

// A child's TSUB can reach its parent before the parent's own place
// (TREE) does, when the parent's server connection is the slower: the
// subscription waits for the place instead of being dropped (it was, in
// the lab, and the child pulled a whole tree after TreeStall).
func TestEarlyTSUBWaitsForThePlace(t *testing.T) {
	data := make([]byte, 4*1024)
	for i := range data {
		data[i] = byte(i * 7)
	}
	content, err := NewContent(data, 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := netip.MustParseAddrPort("10.0.0.1:52000")
	p := NewPeer(PeerConfig{Server: srv, Listen: netip.MustParseAddrPort("10.0.0.3:51000"), Linger: -1}, &MemStore{})
	now := spec.SimEpoch
	var out []spec.Output
	step := func(in spec.Input) {
		now = now.Add(time.Millisecond)
		out = p.Step(now, in, out[:0])
	}
	step(spec.Input{Kind: spec.InStart})
	step(spec.Input{Kind: spec.InBound, Sock: sockPeer, Addr: netip.MustParseAddrPort("10.0.0.3:51000")})
	var server spec.Stream
	for _, o := range out {
		if o.Kind == spec.OutDial {
			server = o.Stream
		}
	}
	// The child (id 1, whose parent in tree 1 this peer, id 2, is)
	// subscribes first.
	child := spec.AcceptedStream | 1
	step(spec.Input{Kind: spec.InAccepted, Sock: sockPeer, Stream: child, Addr: netip.MustParseAddrPort("10.0.0.2:40000")})
	step(spec.Input{Kind: spec.InStreamData, Stream: child, Data: []byte("CHEL 51000\r\nXHEL 1 push\r\nTSUB 1 1\r\n")})
	// Then the server's welcome, with this peer's place, and the first
	// chunk of its tree.
	step(spec.Input{Kind: spec.InConnected, Stream: server, Addr: srv})
	root := content.Root()
	welcome := "SHEL 4096 1024\r\n[]\r\nXHEL 1 " + hex.EncodeToString(root[:]) + " rate\r\nTREE 2 2 2\r\n"
	step(spec.Input{Kind: spec.InStreamData, Stream: server, Data: []byte(welcome)})
	push := append(AppendPUSHHeader(nil, 1024, 1024), content.Chunk(1)...)
	step(spec.Input{Kind: spec.InStreamData, Stream: server, Data: push})
	for _, o := range out {
		if o.Kind == spec.OutWrite && o.Stream == child && bytes.Contains(o.Data, []byte("PUSH 1024 1024\r\n")) {
			return
		}
	}
	t.Fatalf("the early child was not pushed chunk 1; outputs: %v", out)
}

// A peer subscribes to a parent in the trees with its hello, not a round
// trip later: the server placed the parent, so it speaks the extension.
func TestTSUBGoesWithTheHello(t *testing.T) {
	content, err := NewContent(make([]byte, 4*1024), 1024)
	if err != nil {
		t.Fatal(err)
	}
	srv := netip.MustParseAddrPort("10.0.0.1:52000")
	parent := netip.MustParseAddrPort("10.0.0.4:51000")
	h := newHarness(t, NewPeer(PeerConfig{Server: srv, Listen: netip.MustParseAddrPort("10.0.0.3:51000"), Linger: -1}, &MemStore{}))
	h.step(spec.Input{Kind: spec.InStart})
	h.step(spec.Input{Kind: spec.InBound, Sock: sockPeer, Addr: netip.MustParseAddrPort("10.0.0.3:51000")})
	var server spec.Stream
	for st, a := range h.dials {
		if a == srv {
			server = st
		}
	}
	root := content.Root()
	// Id 3 of 3 in two trees: its parent in tree 0 is id 1.
	welcome := "SHEL 4096 1024\r\n[]\r\nXHEL 1 " + hex.EncodeToString(root[:]) + " rate\r\nTREE 3 3 2\r\nPARENT 0 10.0.0.4 51000\r\n"
	h.step(spec.Input{Kind: spec.InStreamData, Stream: server, Data: []byte(welcome)})
	var st spec.Stream
	for s, a := range h.dials {
		if a == parent {
			st = s
		}
	}
	if st == 0 {
		t.Fatalf("the peer did not dial its parent; dials: %v", h.dials)
	}
	// (The harness connects every dial at once.)
	if got, want := string(h.written[st]), "CHEL 51000\r\nXHEL 1 push\r\nCLREQ\r\nTSUB 3 0\r\n"; got != want {
		t.Fatalf("hello to the parent = %q, want %q", got, want)
	}
	// Its answer must not make the peer subscribe twice.
	h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte("PHEL\r\nXHEL 1 rate\r\nCLRSP\r\n[]\r\n")})
	if n := bytes.Count(h.written[st], []byte("TSUB")); n != 1 {
		t.Fatalf("%d TSUBs to the parent: %q", n, h.written[st])
	}
}

// The server feeds the trees (the roots' hash lists, then chunks) once
// the top three levels have their places, so that their welcomes do not
// queue behind 50 kB of feed; or after feedWait, if they do not all come.
func TestFeedWaitsForTheTopLevels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		expect int
		join   int
		hreq   bool // the first root asks for the list with its hello
	}{
		{"three levels", 20, 7, false},
		{"fewer than expected", 20, 3, false},
		{"small swarm", 2, 2, false},
		// It is answered at once, and the feed does not send it again.
		{"a root asks for the list", 20, 7, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			content, err := NewContent(make([]byte, 64*1024), 1024)
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, NewServer(ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000"), ChunkSize: 1024, Expect: tc.expect, UploadRate: 1e9}, content))
			h.step(spec.Input{Kind: spec.InStart})
			fed := func() bool {
				for _, b := range h.written {
					if bytes.Contains(b, []byte("HASH ")) || bytes.Contains(b, []byte("PUSH ")) {
						return true
					}
				}
				return false
			}
			want := min(tc.expect, 7)
			for i := range tc.join {
				if fed() && !tc.hreq {
					t.Fatalf("fed with %d of the %d peers of the top levels placed", i, want)
				}
				st := spec.AcceptedStream | spec.Stream(i+1)
				h.open[st] = true
				h.step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: st,
					Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(2 + i)}), 50000)})
				hello := fmt.Sprintf("CHEL %d\r\nXHEL 1 tree\r\n", 51000+i)
				if i == 0 && tc.hreq {
					hello += "HREQ\r\n"
				}
				h.step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: []byte(hello)})
			}
			if tc.join < want {
				if fed() {
					t.Fatal("fed before the top levels were placed or feedWait passed")
				}
				start := h.now
				for !fed() && h.now.Sub(start) < 2*feedWait {
					h.fire()
				}
				if waited := h.now.Sub(start); !fed() || waited > feedWait+time.Millisecond {
					t.Fatalf("fed %v after %v, want after feedWait (%v)", fed(), waited, feedWait)
				}
			}
			for st := range 2 {
				b := h.written[spec.AcceptedStream|spec.Stream(st+1)]
				hash := bytes.Index(b, []byte("HASH "))
				push := bytes.Index(b, []byte("PUSH "))
				if hash < 0 || push >= 0 && push < hash {
					t.Errorf("root %d: hash list at %d, first chunk at %d in %q", st+1, hash, push, b[:min(len(b), 200)])
				}
				if n := bytes.Count(b, []byte("HASH ")); n != 1 {
					t.Errorf("root %d was sent %d hash lists", st+1, n)
				}
			}
		})
	}
}
