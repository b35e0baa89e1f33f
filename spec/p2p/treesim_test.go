package p2p_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
)

// treeRun distributes a 48-chunk file to n peers arranged in d trees,
// crashing peer crash (if not negative) for good at 100 ms, and returns
// the peers that verified the file and every node's counters.
func treeRun(t *testing.T, n, d, crash int) (map[string]bool, map[string]map[string]uint64) {
	v, c, _ := treeRunExpect(t, n, n, d, crash)
	return v, c
}

// treeRunExpect is treeRun with a server that expects expect peers; it
// also returns when the last peer verified the file.
func treeRunExpect(t *testing.T, n, expect, d, crash int) (map[string]bool, map[string]map[string]uint64, time.Duration) {
	t.Helper()
	data, err := cs.Generate(cs.FileSpec{Seed: 9, Size: 48 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	content, err := p2p.NewContent(data, 4096)
	if err != nil {
		t.Fatal(err)
	}
	want := content.MD5()
	verified := map[string]bool{}
	var last time.Duration
	s := sim.New(sim.Config{
		Seed: 9, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}), MSS: 1460,
		OnEvent: func(nd *sim.Node, now spec.Time, ev spec.Event) {
			if ev.Name == "verified" && ev.Value.(p2p.Verified).MD5 == fmt.Sprintf("%x", want) {
				verified[nd.Name] = true
				last = now.Sub(spec.SimEpoch)
			}
		},
	})
	scfg := p2p.ServerConfig{Addr: serverAddr, ChunkSize: 4096, Seed: 9, Expect: expect, Trees: d, UploadRate: 9.9e6}
	s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return p2p.NewServer(scfg, content) }})
	for i := range n {
		cfg := p2p.PeerConfig{Server: serverAddr, Seed: uint64(i), Linger: -1, UploadRate: 9.9e6}
		s.MustAddNode(sim.NodeSpec{Name: fmt.Sprintf("p%d", i), New: func() spec.Machine { return p2p.NewPeer(cfg, p2p.LightStore{C: content}) }})
	}
	if crash >= 0 {
		s.Crash(100*time.Millisecond, fmt.Sprintf("p%d", crash))
	}
	s.RunUntil(func() bool { return len(verified) == n-min(crash+1, 1) }, time.Minute)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	counters := map[string]map[string]uint64{}
	for _, nd := range s.Nodes() {
		m := map[string]uint64{}
		in, ok := nd.Machine().(spec.Inspector)
		if !ok {
			continue // crashed
		}
		for _, c := range in.Counters() {
			m[c.Name] = c.Value
		}
		counters[nd.Name] = m
	}
	return verified, counters, last
}

// In the trees on a healthy network the server sends each chunk once,
// only to the roots and only unasked, and every other peer gets every
// chunk once, pushed by its parents.
func TestTreesCarryTheFile(t *testing.T) {
	for _, d := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("%d trees", d), func(t *testing.T) {
			const n = 7
			verified, cnt := treeRun(t, n, d, -1)
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

// A peer that crashes for good, wherever it sits in the trees, leaves
// its subtree to pull what the trees no longer bring: everyone else still
// gets the file.
func TestTreesSurviveALostPeer(t *testing.T) {
	const n = 7
	for crash := range n {
		t.Run(fmt.Sprintf("p%d", crash), func(t *testing.T) {
			verified, _ := treeRun(t, n, 2, crash)
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
		_, _, full := treeRunExpect(t, c.n, c.n, 2, -1)
		verified, _, took := treeRunExpect(t, c.n, c.expect, 2, -1)
		t.Logf("%d of %d expected peers: %v (all of them: %v)", c.n, c.expect, took, full)
		if len(verified) != c.n {
			t.Fatalf("%d of %d peers verified the file with %d expected", len(verified), c.n, c.expect)
		}
		if took > time.Second+2*full {
			t.Errorf("with %d of %d expected the last peer took %v, more than 1 s and twice the %v of full trees", c.n, c.expect, took, full)
		}
	}
}

// A peer whose uplink is a tenth of the others' forwards its tree at that
// rate; its subtree, once that tree lags the others by treeLag chunks,
// pulls what it has not brought, and finishes within twice the time of a
// swarm without the slow peer (it would take ten times as long waiting
// for the tree).
func TestTreesRouteAroundASlowParent(t *testing.T) {
	const n = 7
	data, err := cs.Generate(cs.FileSpec{Seed: 9, Size: 160 * 4096})
	if err != nil {
		t.Fatal(err)
	}
	content, err := p2p.NewContent(data, 4096)
	if err != nil {
		t.Fatal(err)
	}
	run := func(slow bool) time.Duration {
		var last time.Duration
		verified := 0
		s := sim.New(sim.Config{
			Seed: 9, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}), MSS: 1460,
			OnEvent: func(nd *sim.Node, now spec.Time, ev spec.Event) {
				if ev.Name == "verified" {
					verified++
					last = now.Sub(spec.SimEpoch)
				}
			},
		})
		scfg := p2p.ServerConfig{Addr: serverAddr, ChunkSize: 4096, Seed: 9, Expect: n, Trees: 2, UploadRate: 9.9e6}
		s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return p2p.NewServer(scfg, content) }})
		for i := range n {
			cfg := p2p.PeerConfig{Server: serverAddr, Seed: uint64(i), Linger: -1, UploadRate: 9.9e6}
			ns := sim.NodeSpec{Name: fmt.Sprintf("p%d", i), Start: time.Duration(i) * time.Millisecond,
				New: func() spec.Machine { return p2p.NewPeer(cfg, p2p.LightStore{C: content}) }}
			if slow && i == 0 {
				// The first to join: the root of tree 0.
				l := sim.Link{Up: sim.Dir{Rate: 1e6, Delay: 2 * time.Millisecond}, Down: sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}}
				ns.Link = &l
				cfg.UploadRate = 0.99e6
			}
			s.MustAddNode(ns)
		}
		s.RunUntil(func() bool { return verified == n }, 2*time.Minute)
		if verified != n {
			t.Fatalf("%d of %d peers verified the file (slow %v)", verified, n, slow)
		}
		return last
	}
	fast, slowed := run(false), run(true)
	t.Logf("all 10 Mbit/s: %v; the root of tree 0 at 1 Mbit/s up: %v", fast, slowed)
	if slowed > 2*fast {
		t.Errorf("a slow parent held its subtree back: %v against %v", slowed, fast)
	}
}
