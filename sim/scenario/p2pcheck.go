package scenario

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
)

// p2pCheckPeers is how many peers a checked P2P run has.
const p2pCheckPeers = 4

// Targets implements Checked: the P2P server and its peers.
func (w *Swarm) Targets() (partitionable, crashable []string) {
	nodes := []string{"server"}
	for i := 0; i < p2pCheckPeers; i++ {
		nodes = append(nodes, fmt.Sprintf("h%d", i+2))
	}
	return nodes, nodes
}

// Check implements Checked with seed 001's P2P protocol: a 256 kB file in
// 16 kB chunks, four peers. Safety: no peer ever verifies a file whose
// MD5 differs from the server's (chunks are checked against the SHA-256
// list, and the peers' store refuses bytes that are not the file's).
// Liveness: once the network has healed, every peer has verified the
// file within 120 s; a peer that gave up (or whose host crashed, which
// restarts its download) tries again, as a user would.
func (w *Swarm) Check(seed uint64, faults sim.Faults, opt Options) Verdict {
	const size, chunk = 256 << 10, 16 << 10
	var v Verdict
	data, err := cs.Generate(cs.FileSpec{Seed: seed, Size: size})
	if err != nil {
		v.Safety = err.Error()
		return v
	}
	content, err := p2p.NewContent(data, chunk)
	if err != nil {
		v.Safety = err.Error()
		return v
	}
	sum := content.MD5()
	want := fmt.Sprintf("%x", sum[:])
	server := netip.MustParseAddrPort("10.0.0.1:52000")
	heal := faults.Until
	verified := map[string]bool{}
	var s *sim.Sim
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}), Faults: faults, MSS: 8960, Protocol: "p2p"}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		if ev.Name != "verified" {
			return
		}
		if got := ev.Value.(p2p.Verified).MD5; got != want {
			if v.Safety == "" {
				v.Safety = fmt.Sprintf("%s verified a file with MD5 %s, the server's is %s", n.Name, got, want)
			}
			return
		}
		verified[n.Name] = true
	}
	cfg.OnExit = func(n *sim.Node, now spec.Time, _ string) {
		if n.Name != "server" && !verified[n.Name] && now.Sub(spec.SimEpoch) >= heal {
			s.Restart(now.Sub(spec.SimEpoch)+time.Millisecond, n.Name)
		}
	}
	s = opt.NewSim(cfg)
	scfg := p2p.ServerConfig{Addr: server, File: cs.FileSpec{Seed: seed, Size: size}, ChunkSize: chunk, Seed: seed}
	if seed%2 == 0 {
		scfg.Expect = p2pCheckPeers // every other seed, in the trees
	}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), Protocol: "p2p", Role: "server", Config: scfg,
		New: func() spec.Machine { return opt.machine("server", p2p.NewServer(scfg, content)) }})
	var peers []*sim.Node
	for i := 0; i < p2pCheckPeers; i++ {
		pcfg := p2p.PeerConfig{Server: server, Seed: seed + uint64(i) + 1, Linger: -1}
		if seed%4 == 0 {
			pcfg.UploadRate = 9.9e6 // paced by rate: relays in the trees cut through
		}
		name := fmt.Sprintf("h%d", i+2)
		peers = append(peers, s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "p2p", Role: "peer", Config: pcfg,
			New: func() spec.Machine { return opt.machine(name, p2p.NewPeer(pcfg, p2p.LightStore{C: content})) }}))
	}
	s.At(heal, func() {
		for _, n := range peers {
			if done, _ := n.Exited(); done && !verified[n.Name] {
				s.Restart(heal, n.Name)
			}
		}
	})
	s.RunUntil(func() bool { return len(verified) == p2pCheckPeers }, heal+120*time.Second)
	v.Virtual, v.Events = s.Elapsed(), s.Events()
	if len(verified) < p2pCheckPeers {
		v.Live = fmt.Sprintf("%d of %d peers verified the file 120 s after the network healed", len(verified), p2pCheckPeers)
	}
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	_ = s.Close()
	return v
}
