package p2p_test

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
)

// treeSwarm is a distribution of a file of chunks 4 KiB chunks to n
// peers on 10 Mbit/s links, with a server that expects expect of them
// (0: n) in trees trees.
type treeSwarm struct {
	n, expect, trees, chunks int
	crash                    int  // a peer that crashes for good at 100 ms (-1: none)
	stagger                  bool // peer i starts at i ms, so it joins i-th
	slow                     bool // peer 0's uplink is 1 Mbit/s
	noCut                    bool // relays store and forward (PeerConfig.NoCut)
	liar                     int  // a peer that corrupts the chunks it serves (0: none, else its index+1)
	pull                     bool // no trees: the server expects no one, every chunk is pulled
}

// treeResult is what a treeSwarm run showed.
type treeResult struct {
	verified map[string]bool              // the peers that verified the file
	counters map[string]map[string]uint64 // every node's, but a crashed one's
	banned   map[string][]string          // the addresses each node banned
	last     time.Duration                // when the last of them did
}

func (w treeSwarm) run(t *testing.T) treeResult {
	t.Helper()
	data, err := cs.Generate(cs.FileSpec{Seed: 9, Size: int64(w.chunks) * 4096})
	if err != nil {
		t.Fatal(err)
	}
	content, err := p2p.NewContent(data, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("%x", content.MD5())
	r := treeResult{verified: map[string]bool{}, counters: map[string]map[string]uint64{}, banned: map[string][]string{}}
	s := sim.New(sim.Config{
		Seed: 9, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}), MSS: 1460,
		OnEvent: func(nd *sim.Node, now spec.Time, ev spec.Event) {
			if ev.Name == "banned" {
				r.banned[nd.Name] = append(r.banned[nd.Name], ev.Text)
			}
			if ev.Name == "verified" && ev.Value.(p2p.Verified).MD5 == want {
				r.verified[nd.Name] = true
				r.last = now.Sub(spec.SimEpoch)
			}
		},
	})
	expect := w.expect
	if expect == 0 {
		expect = w.n
	}
	if w.pull {
		expect = 0
	}
	scfg := p2p.ServerConfig{Addr: serverAddr, ChunkSize: 4096, Seed: 9, Expect: expect, Trees: w.trees, UploadRate: 9.9e6}
	s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return p2p.NewServer(scfg, content) }})
	for i := range w.n {
		cfg := p2p.PeerConfig{Server: serverAddr, Seed: uint64(i), Linger: -1, UploadRate: 9.9e6, NoCut: w.noCut}
		ns := sim.NodeSpec{Name: fmt.Sprintf("p%d", i)}
		if w.stagger {
			ns.Start = time.Duration(i) * time.Millisecond
		}
		if w.slow && i == 0 {
			l := sim.Link{Up: sim.Dir{Rate: 1e6, Delay: 2 * time.Millisecond}, Down: sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}}
			ns.Link = &l
			cfg.UploadRate = 0.99e6
		}
		ns.New = func() spec.Machine { return p2p.NewPeer(cfg, p2p.LightStore{C: content}) }
		if w.liar == i+1 {
			ns.New = func() spec.Machine { return liar{m: p2p.NewPeer(cfg, p2p.LightStore{C: content})} }
		}
		s.MustAddNode(ns)
	}
	alive := w.n
	if w.crash >= 0 {
		s.Crash(100*time.Millisecond, fmt.Sprintf("p%d", w.crash))
		alive--
	}
	s.RunUntil(func() bool { return len(r.verified) == alive }, 2*time.Minute)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	for _, nd := range s.Nodes() {
		in, ok := nd.Machine().(spec.Inspector)
		if !ok {
			continue // crashed
		}
		m := map[string]uint64{}
		for _, c := range in.Counters() {
			m[c.Name] = c.Value
		}
		r.counters[nd.Name] = m
	}
	return r
}

// In the trees on a healthy network the server sends each chunk once,
// only to the roots and only unasked, and every other peer gets every
// chunk once, pushed by its parents.
func TestTreesCarryTheFile(t *testing.T) {
	for _, d := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d trees", d), func(t *testing.T) {
			const n = 7
			r := treeSwarm{n: n, trees: d, chunks: 48, crash: -1}.run(t)
			verified, cnt := r.verified, r.counters
			if len(verified) != n {
				t.Fatalf("%d of %d peers verified the file", len(verified), n)
			}
			if got := cnt["server"]["data_sent"]; got != 48 {
				t.Errorf("the server sent %d chunks, want each of the 48 once", got)
			}
			if got := cnt["server"]["dany_served"]; got != 0 {
				t.Errorf("the server answered %d DANYs in the trees", got)
			}
			roots, fromServer := 0, uint64(0)
			for i := range n {
				c := cnt[fmt.Sprintf("p%d", i)]
				if c["duplicate_chunks"] != 0 {
					t.Errorf("p%d got %d chunks twice", i, c["duplicate_chunks"])
				}
				if c["chunks_from_server"] > 0 {
					roots++
					fromServer += c["chunks_from_server"]
				}
			}
			if roots != d || fromServer != 48 {
				t.Errorf("%d peers got %d chunks from the server, want the %d roots 48", roots, fromServer, d)
			}
		})
	}
}

// The defences against hostile neighbours never fire in an honest swarm,
// in the trees or pulling: no connection is reset for leaving answers
// unread or closed for queueing too many requests, and no XHEL is taken
// for swallowed.
func TestHonestSwarmTripsNoDefence(t *testing.T) {
	for _, pull := range []bool{false, true} {
		t.Run(fmt.Sprintf("pull=%v", pull), func(t *testing.T) {
			const n = 7
			r := treeSwarm{n: n, trees: 2, chunks: 96, crash: -1, pull: pull}.run(t)
			if len(r.verified) != n {
				t.Fatalf("%d of %d peers verified the file", len(r.verified), n)
			}
			for name, c := range r.counters {
				for _, k := range []string{"unread_cutoffs", "request_floods", "xhel_unanswered", "fatal_input", "protocol_violations", "peers_banned"} {
					if c[k] != 0 {
						t.Errorf("%s: %s %d", name, k, c[k])
					}
				}
			}
		})
	}
}

// A peer that crashes for good, wherever it sits in the trees, leaves
// its subtree to pull what the trees no longer bring: everyone else still
// gets the file.
func TestTreesSurviveALostPeer(t *testing.T) {
	const n = 7
	for crash := range n {
		t.Run(fmt.Sprintf("p%d", crash), func(t *testing.T) {
			verified := treeSwarm{n: n, trees: 2, chunks: 48, crash: crash}.run(t).verified
			for i := range n {
				if name := fmt.Sprintf("p%d", i); i != crash && !verified[name] {
					t.Errorf("%s never verified the file after p%d crashed", name, crash)
				}
			}
		})
	}
}

// A peer the server expects that never comes leaves a hole in the trees:
// the peers below it pull once their tree has stalled (TreeStall, 1 s),
// and the server gives a missing root's share of its uplink to their
// requests; everyone gets the file within the stall and twice the time
// the full trees take.
func TestTreesWithAHole(t *testing.T) {
	for _, c := range []struct{ n, expect int }{{6, 7}, {6, 12}, {1, 2}} {
		full := treeSwarm{n: c.n, trees: 2, chunks: 48, crash: -1}.run(t).last
		r := treeSwarm{n: c.n, expect: c.expect, trees: 2, chunks: 48, crash: -1}.run(t)
		t.Logf("%d of %d expected peers: %v (all of them: %v)", c.n, c.expect, r.last, full)
		if len(r.verified) != c.n {
			t.Fatalf("%d of %d peers verified the file with %d expected", len(r.verified), c.n, c.expect)
		}
		if r.last > time.Second+2*full {
			t.Errorf("with %d of %d expected the last peer took %v, more than 1 s and twice the %v of full trees", c.n, c.expect, r.last, full)
		}
	}
}

// A peer whose uplink is a tenth of the others' forwards its tree at that
// rate; its subtree, once that tree has come less than half as far as the
// other, pulls what it has not brought, and finishes within twice the
// time of a swarm without the slow peer (waiting for the tree took more
// than four times as long).
func TestTreesRouteAroundASlowParent(t *testing.T) {
	const n = 7
	// Staggered, peer 0 joins first: the root of tree 0.
	run := func(slow bool) time.Duration {
		r := treeSwarm{n: n, trees: 2, chunks: 160, crash: -1, stagger: true, slow: slow}.run(t)
		if len(r.verified) != n {
			t.Fatalf("%d of %d peers verified the file (slow %v)", len(r.verified), n, slow)
		}
		return r.last
	}
	fast, slowed := run(false), run(true)
	t.Logf("all 10 Mbit/s: %v; the root of tree 0 at 1 Mbit/s up: %v", fast, slowed)
	if slowed > 2*fast {
		t.Errorf("a slow parent held its subtree back: %v against %v", slowed, fast)
	}
}

// A relay passes each chunk of its tree on as it arrives (cut-through):
// the file is the same, no chunk comes twice, and it comes sooner than
// when every hop waits for whole chunks.
func TestCutThrough(t *testing.T) {
	const n = 15
	run := func(noCut bool) treeResult {
		r := treeSwarm{n: n, trees: 2, chunks: 160, crash: -1, stagger: true, noCut: noCut}.run(t)
		if len(r.verified) != n {
			t.Fatalf("%d of %d peers verified the file (noCut %v)", len(r.verified), n, noCut)
		}
		return r
	}
	cut, whole := run(false), run(true)
	var passed, sf uint64
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		if d := cut.counters[name]["duplicate_chunks"]; d != 0 {
			t.Errorf("%s got %d chunks twice", name, d)
		}
		passed += cut.counters[name]["bodies_cut_through"]
		sf += whole.counters[name]["bodies_cut_through"]
	}
	t.Logf("cut-through: %v, %d bodies passed through; store and forward: %v", cut.last, passed, whole.last)
	if passed == 0 || sf != 0 {
		t.Errorf("%d bodies passed through with cut-through, %d without", passed, sf)
	}
	if cut.last >= whole.last {
		t.Errorf("cut-through took %v, store and forward %v", cut.last, whole.last)
	}
}

// A relay that passes on a corrupt chunk from a malicious parent voids it
// on its children's connections: they drop it and blame no one, while
// the relay bans the parent that vouched for it. Joined in order, p2 is
// id 3, the parent of ids 7 and 9 (p6, p8) in tree 0, who pass tree 0 on
// to ids 15, 2, 4 and 6 (p14, p1, p3, p5).
func TestCutThroughVoidsACorruptChunk(t *testing.T) {
	const n = 15
	r := treeSwarm{n: n, trees: 2, chunks: 96, crash: -1, stagger: true, liar: 3}.run(t)
	liarAddr := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.4"), p2p.DefaultPeerPort).String() // p2: the server is 10.0.0.1
	for i := range n {
		name := fmt.Sprintf("p%d", i)
		c := r.counters[name]
		if i == 2 {
			continue
		}
		if !r.verified[name] {
			t.Errorf("%s never verified the file", name)
		}
		for _, b := range r.banned[name] {
			if b != liarAddr {
				t.Errorf("%s banned %s, an honest peer (the liar is %s)", name, b, liarAddr)
			}
		}
		switch i {
		case 6, 8:
			if !slices.Contains(r.banned[name], liarAddr) || c["corrupt_chunks"] == 0 || c["bodies_voided"] == 0 {
				t.Errorf("%s, a child of the liar: banned %v, corrupt %d, voided %d; want the liar banned for corrupt chunks it voided", name, r.banned[name], c["corrupt_chunks"], c["bodies_voided"])
			}
		case 14, 1, 3, 5:
			if c["corrupt_chunks"] != 0 || c["bodies_voided"] == 0 {
				t.Errorf("%s, below an honest relay: %d corrupt chunks blamed, %d voided; want none blamed, some voided", name, c["corrupt_chunks"], c["bodies_voided"])
			}
		}
	}
}
