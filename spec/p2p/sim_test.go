package p2p_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
	"pgregory.net/rapid"
)

var serverAddr = netip.MustParseAddrPort("10.0.0.1:52000")

// debugLogger logs the machines at debug level when P2P_DEBUG is set.
func debugLogger() *slog.Logger {
	if os.Getenv("P2P_DEBUG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// liar is a malicious peer: a real peer whose DATA answers and PUSHes
// have their last byte flipped on the way out; with lists, so do its
// hash lists (HASH answers, and lists it passes down a tree), in their
// first byte.
type liar struct {
	m     spec.Machine
	lists bool
}

func (l liar) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	n := len(out)
	out = l.m.Step(now, in, out)
	for i := n; i < len(out); i++ {
		o := &out[i]
		if o.Kind != spec.OutWrite || o.Stream&spec.AcceptedStream == 0 {
			continue
		}
		data := bytes.Contains(o.Data, []byte("DATA ")) || bytes.Contains(o.Data, []byte("PUSH "))
		list := -1
		if l.lists {
			list = hashBody(o.Data)
		}
		if !data && list < 0 {
			continue
		}
		d := append([]byte(nil), o.Data...)
		if data {
			d[len(d)-1] ^= 0x5a
		}
		if list >= 0 {
			d[list] ^= 0x5a
		}
		o.Data = d
	}
	return out
}

// hashBody is where the body of the first HASH message in a write
// starts, if the write holds a byte of it (-1 if not).
func hashBody(b []byte) int {
	for k := 0; k < len(b); {
		if bytes.HasPrefix(b[k:], []byte("HASH ")) {
			if e := bytes.IndexByte(b[k:], '\n'); e >= 0 && k+e+1 < len(b) {
				return k + e + 1
			}
			return -1
		}
		e := bytes.IndexByte(b[k:], '\n')
		if e < 0 {
			return -1
		}
		k += e + 1
	}
	return -1
}

// tracked is a peer (or a liar) built with a MemStore the test can read,
// and the MD5 this incarnation verified.
type tracked struct {
	spec.Machine
	store    *p2p.MemStore
	verified string
}

// lightPeerConfig is a light peer's config in trace headers: a peer whose
// LightStore holds the file File and ChunkSize make.
type lightPeerConfig struct {
	p2p.PeerConfig
	File      cs.FileSpec `json:"file"`
	ChunkSize int         `json:"chunkSize"`
}

// proberConfig is a prober's config in trace headers.
type proberConfig struct {
	To    netip.AddrPort `json:"to"`
	Reqs  []string       `json:"reqs"`
	Hello bool           `json:"hello,omitempty"`
}

// machines is p2p with the test's own roles, so that a simulation of them
// can be rebuilt from its trace (conformance.Resimulate): "peer" and
// "liar" and "list-liar" (a peer, or a malicious one, with a MemStore the
// test reads; a list-liar corrupts hash lists too),
// "light-peer" (a peer with a LightStore) and "probe" (a prober).
var machines = func() spec.Protocol {
	p := p2p.Protocol
	inner := p.New
	p.Roles = append(slices.Clone(p.Roles), "liar", "list-liar", "light-peer", "probe")
	p.New = func(role string, config []byte) (spec.Machine, error) {
		switch role {
		case "peer", "liar", "list-liar":
			var c p2p.PeerConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, err
			}
			st := &p2p.MemStore{}
			var m spec.Machine = p2p.NewPeer(c, st)
			if role != "peer" {
				m = liar{m: m, lists: role == "list-liar"}
			}
			return &tracked{Machine: m, store: st}, nil
		case "light-peer":
			var c lightPeerConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, err
			}
			data, err := cs.Generate(c.File)
			if err != nil {
				return nil, err
			}
			content, err := p2p.NewContent(data, c.ChunkSize)
			if err != nil {
				return nil, err
			}
			return p2p.NewPeer(c.PeerConfig, p2p.LightStore{C: content}), nil
		case "probe":
			var c proberConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, err
			}
			return &prober{to: c.To, reqs: c.Reqs, hello: c.Hello}, nil
		}
		return inner(role, config)
	}
	return p
}()

// addNode adds a node of machines: ns.Role and ns.Config build it, so
// the trace rebuilds the same machine.
func addNode(s *sim.Sim, ns sim.NodeSpec) *sim.Node {
	config, err := json.Marshal(ns.Config)
	if err != nil {
		panic(err)
	}
	ns.Protocol = machines.Name
	ns.New = func() spec.Machine {
		m, err := machines.New(ns.Role, config)
		if err != nil {
			panic(fmt.Sprintf("%s: %v", ns.Name, err))
		}
		return m
	}
	return s.MustAddNode(ns)
}

type fataler interface{ Fatalf(string, ...any) }

// swarm is one simulated distribution.
type swarm struct {
	n         int
	legacy    []bool // peers that speak only the seed's protocol
	oldServer bool   // a server that speaks only the seed's protocol
	expect    int    // peers the server arranges in trees (0: none)
	trees     int
	paced     bool // peers pace by rate, so relays in the trees cut through
	liar      bool // the last peer corrupts what it serves
	listLiar  bool // and the hash lists it passes on
	faults    sim.Faults
	size      int
	chunk     int
	seed      uint64

	content *p2p.Content
	s       *sim.Sim
	corrupt map[string][]string // peer -> senders of the corrupt chunks it rejected
	banned  map[string][]string
}

func (w *swarm) honest(name string) bool { return !(w.liar && name == w.peer(w.n-1)) }

// down reports whether the fault schedule leaves name crashed for good
// (a crash whose restart is not after it).
func (w *swarm) down(name string) bool {
	type change struct {
		at time.Duration
		up bool
	}
	var cs []change
	for _, c := range w.faults.Crashes {
		if c.Node != name {
			continue
		}
		cs = append(cs, change{c.At, false})
		if c.Restart > c.At {
			cs = append(cs, change{c.Restart, true})
		}
	}
	slices.SortStableFunc(cs, func(a, b change) int { return int(a.at - b.at) })
	return len(cs) > 0 && !cs[len(cs)-1].up
}

// expected reports whether name must end with the file.
func (w *swarm) expected(name string) bool { return w.honest(name) && !w.down(name) }

func (w *swarm) peer(i int) string { return fmt.Sprintf("p%d", i) }

// newSim builds the simulator (by net, if not nil) with w's observers.
func (w *swarm) newSim(net *simtest.Net) *sim.Sim {
	cfg := sim.Config{
		Seed:     w.seed,
		Link:     sim.Symmetric(sim.Dir{Rate: 20e6, Delay: 2 * time.Millisecond}),
		Faults:   w.faults,
		MSS:      1460,
		Protocol: "p2p",
	}
	w.observe(&cfg)
	if net != nil {
		return net.New(cfg)
	}
	return sim.New(cfg)
}

// observe points cfg's observers at w.
func (w *swarm) observe(cfg *sim.Config) {
	cfg.Logger = debugLogger()
	w.corrupt, w.banned = map[string][]string{}, map[string][]string{}
	cfg.OnEvent = func(n *sim.Node, _ spec.Time, ev spec.Event) {
		switch ev.Name {
		case "verified":
			if m, ok := n.Machine().(*tracked); ok {
				m.verified = ev.Value.(p2p.Verified).MD5
			}
		case "corrupt":
			w.corrupt[n.Name] = append(w.corrupt[n.Name], ev.Value.(p2p.Corrupt).From)
		case "banned":
			w.banned[n.Name] = append(w.banned[n.Name], ev.Text)
		}
	}
}

func (w *swarm) build(net *simtest.Net, t fataler) {
	file := cs.FileSpec{Seed: w.seed, Size: int64(w.size)}
	data, err := cs.Generate(file)
	if err != nil {
		t.Fatalf("%v", err)
	}
	w.content, err = p2p.NewContent(data, w.chunk)
	if err != nil {
		t.Fatalf("%v", err)
	}
	w.s = w.newSim(net)
	scfg := p2p.ServerConfig{Addr: serverAddr, File: file, ChunkSize: w.chunk, Seed: w.seed, Legacy: w.oldServer, MaxList: 4, Expect: w.expect, Trees: w.trees}
	addNode(w.s, sim.NodeSpec{Name: "server", Role: "server", Config: scfg})
	for i := 0; i < w.n; i++ {
		name := w.peer(i)
		cfg := p2p.PeerConfig{Server: serverAddr, Seed: w.seed + uint64(i), Linger: -1, Legacy: w.legacy[i],
			ReqTimeout: 2 * time.Second, MaxOut: 3, MaxIn: 6}
		if w.paced {
			cfg.UploadRate = 19e6
		}
		role := "peer"
		if !w.honest(name) {
			role = "liar"
			if w.listLiar {
				role = "list-liar"
			}
		}
		addNode(w.s, sim.NodeSpec{Name: name, Role: role, Config: cfg})
	}
}

// verified is the MD5 the running incarnation of peer name verified ("":
// none; a restart starts over), and what it holds.
func (w *swarm) verified(name string) (md5 string, st *p2p.MemStore) {
	m, ok := w.s.Node(name).Machine().(*tracked)
	if !ok {
		return "", nil
	}
	return m.verified, m.store
}

// done: every honest peer that is up has verified.
func (w *swarm) done() bool {
	for i := 0; i < w.n; i++ {
		name := w.peer(i)
		if !w.expected(name) {
			continue
		}
		if md5, _ := w.verified(name); md5 == "" {
			return false
		}
	}
	return true
}

func drawSwarm(t *rapid.T) *swarm {
	w := &swarm{
		n:     rapid.IntRange(1, 6).Draw(t, "peers"),
		chunk: rapid.SampledFrom([]int{1000, 4096, 16384}).Draw(t, "chunk size"),
		seed:  rapid.Uint64().Draw(t, "seed"),
	}
	// Between 1 and 60 chunks, the last one often short.
	chunks := rapid.IntRange(1, 60).Draw(t, "chunks")
	w.size = chunks*w.chunk - rapid.IntRange(0, w.chunk-1).Draw(t, "bytes short of whole chunks")
	for i := 0; i < w.n; i++ {
		w.legacy = append(w.legacy, rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("p%d legacy (3 of 4 are not)", i)) == 3)
	}
	w.oldServer = rapid.IntRange(0, 4).Draw(t, "seed-style server (1 in 5)") == 4
	if rapid.Bool().Draw(t, "trees") {
		// Sometimes one more than will come: a hole in the trees.
		w.expect = w.n + rapid.IntRange(0, 1).Draw(t, "expected peers beyond those that come")
		w.trees = rapid.IntRange(1, 3).Draw(t, "trees")
		w.paced = rapid.Bool().Draw(t, "peers pace by rate (relays cut through)")
	}
	w.liar = w.n >= 2 && rapid.Bool().Draw(t, "one malicious peer")
	w.listLiar = w.liar && rapid.Bool().Draw(t, "the malicious peer corrupts hash lists too")
	var names []string
	for i := 0; i < w.n; i++ {
		names = append(names, w.peer(i))
	}
	w.faults = sim.DrawFaults(t, sim.FaultBounds{
		MaxLoss: 0.2, MaxDup: 0.1, MaxJitter: 10 * time.Millisecond,
		Horizon:       4 * time.Second,
		MaxPartitions: 2, Partitionable: append([]string{"server"}, names...),
		MaxCrashes: 2, Crashable: names,
	})
	return w
}

// Every honest peer ends with the exact file, whose MD5 the server
// confirmed, despite loss, duplication, reordering, partitions that heal,
// peers that crash and rejoin, a malicious peer serving corrupt chunks
// (and, sometimes, corrupt hash lists), and peers or a server that speak
// only the seed's protocol. A corrupt chunk is never kept: with the hash
// extension it is rejected on arrival and its sender banned; a corrupt
// list, adopted, would reject the honest peers' chunks for good.
func TestEveryPeerGetsTheFile(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		w := drawSwarm(t)
		w.build(net, t)
		w.everyPeerGetsTheFile(t)
	}, nil)
}

// everyPeerGetsTheFile runs the swarm and judges it as
// TestEveryPeerGetsTheFile does, for the property and for the runs kept
// under testdata/regressions.
func (w *swarm) everyPeerGetsTheFile(t fataler) {
	w.s.RunUntil(w.done, 3*time.Minute)
	if v := w.s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	want := w.content.MD5()
	wantHex := fmt.Sprintf("%x", want)
	for i := 0; i < w.n; i++ {
		name := w.peer(i)
		if !w.expected(name) {
			continue
		}
		got, st := w.verified(name)
		if got == "" {
			t.Fatalf("%s never verified the file (faults %+v, legacy %v, old server %v, liar %v, trees %d of %d, paced %v)", name, w.faults, w.legacy, w.oldServer, w.liar, w.trees, w.expect, w.paced)
		}
		if got != wantHex {
			t.Fatalf("%s verified MD5 %s, the file's is %s", name, got, wantHex)
		}
		if !bytes.Equal(st.Bytes(), w.content.Bytes()) {
			t.Fatalf("%s holds %d bytes that differ from the file", name, len(st.Bytes()))
		}
		// A corrupt chunk comes from the liar, or from a seed-style
		// peer that could not check what the liar gave it; its
		// sender is banned either way.
		for _, from := range w.corrupt[name] {
			if !w.liar {
				t.Fatalf("%s rejected a corrupt chunk from %s with no malicious peer", name, from)
			}
			if from != "server" && !slices.Contains(w.banned[name], from) {
				t.Fatalf("%s rejected a corrupt chunk from %s but did not ban it (banned %v)", name, from, w.banned[name])
			}
			if from != w.liarAddr() && !w.legacyAddr(from) {
				t.Fatalf("%s got a corrupt chunk from %s, an honest peer that checks hashes", name, from)
			}
		}
	}
}

func (w *swarm) legacyAddr(a string) bool {
	for i := 0; i < w.n; i++ {
		if w.legacy[i] && netip.AddrPortFrom(w.s.Node(w.peer(i)).Addr, p2p.DefaultPeerPort).String() == a {
			return true
		}
	}
	return false
}

func (w *swarm) liarAddr() string {
	if !w.liar {
		return ""
	}
	return netip.AddrPortFrom(w.s.Node(w.peer(w.n-1)).Addr, p2p.DefaultPeerPort).String()
}

// prober is a client written from the seed's description: it connects to
// a node, says CHEL, then sends its requests one at a time and records
// every answer.
type prober struct {
	to       netip.AddrPort
	reqs     []string // request lines, CRLF added
	hello    bool     // send CHEL first
	p        *p2p.Parser
	sent     int
	answers  []p2p.Msg
	waiting  bool
	finished bool
	fatal    string
}

func (pr *prober) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		pr.p = p2p.NewParser(p2p.Responses, p2p.Limits{})
		out = append(out, spec.Dial(1, pr.to))
	case spec.InConnected:
		if pr.hello {
			pr.waiting = true
			return append(out, spec.Write(1, []byte("CHEL 1234\r\n")))
		}
		return pr.next(out)
	case spec.InStreamData:
		pr.p.Feed(in.Data)
		for {
			m, err := pr.p.Next()
			if err == p2p.ErrMore {
				break
			}
			if err != nil {
				pr.fatal = err.Error()
				pr.finished = true
				return append(out, spec.Abort(1))
			}
			if len(m.Data) > 0 {
				m.Data = append([]byte(nil), m.Data...)
			}
			pr.answers = append(pr.answers, m)
			pr.waiting = false
			out = pr.next(out)
		}
	case spec.InStreamClosed:
		pr.finished = true
	}
	return out
}

func (pr *prober) next(out []spec.Output) []spec.Output {
	if pr.waiting || pr.finished {
		return out
	}
	if pr.sent == len(pr.reqs) {
		pr.finished = true
		return append(out, spec.Close(1))
	}
	pr.waiting = true
	pr.sent++
	return append(out, spec.Write(1, []byte(pr.reqs[pr.sent-1]+"\r\n")))
}

// probeWorld is what TestErrorsAgainstGroundTruth observes of one run.
type probeWorld struct {
	content *p2p.Content
	chunk   int
	// held[probe] is what the probed peer held when each of the probe's
	// DREQs reached it (the simulator reports delivery before the
	// machine steps).
	held   map[string][]bool
	names  map[netip.Addr]string    // probes by address
	peers  map[netip.Addr]*sim.Node // peers by address
	probes []*sim.Node
	target map[string]string // probe -> the node it talks to
}

func newProbeWorld(content *p2p.Content) *probeWorld {
	return &probeWorld{content: content, chunk: content.ChunkSize(), held: map[string][]bool{}, names: map[netip.Addr]string{},
		peers: map[netip.Addr]*sim.Node{}, target: map[string]string{}}
}

// observe points cfg's observers at w.
func (w *probeWorld) observe(cfg *sim.Config) {
	chunks := w.content.Chunks()
	cfg.OnNet = func(ev sim.NetEvent) {
		if ev.Kind != sim.NetDeliver || ev.Proto != spec.TCP {
			return
		}
		name, ok := w.names[ev.From.Addr()]
		nd := w.peers[ev.To.Addr()]
		if !ok || nd == nil || !bytes.HasPrefix(ev.Data, []byte("DREQ ")) {
			return
		}
		var i int
		if _, err := fmt.Sscanf(string(ev.Data), "DREQ %d", &i); err != nil || i < 0 || i >= chunks {
			return
		}
		pm, _ := nd.Machine().(*p2p.Peer)
		w.held[name] = append(w.held[name], pm != nil && pm.Has(i))
	}
}

// probe adds a probe node (added to the simulator already) talking to
// target.
func (w *probeWorld) probe(nd *sim.Node, target string) {
	w.probes = append(w.probes, nd)
	w.names[nd.Addr] = nd.Name
	w.target[nd.Name] = target
}

func (w *probeWorld) prober(nd *sim.Node) *prober {
	pr, _ := nd.Machine().(*prober)
	return pr
}

// errorsAgainstGroundTruth runs s and judges it as
// TestErrorsAgainstGroundTruth does, for the property and for the runs
// kept under testdata/regressions.
func (w *probeWorld) errorsAgainstGroundTruth(t fataler, s *sim.Sim) {
	chunks, chunk, content := w.content.Chunks(), w.chunk, w.content
	s.RunUntil(func() bool {
		for _, nd := range w.probes {
			if pr := w.prober(nd); pr == nil || !pr.finished {
				return false
			}
		}
		return true
	}, time.Minute)
	for _, nd := range w.probes {
		pr, target := w.prober(nd), w.target[nd.Name]
		if pr == nil {
			t.Fatalf("%s is not running", nd.Name)
		}
		if pr.fatal != "" {
			t.Fatalf("%s: unparseable answer from %s: %s", nd.Name, target, pr.fatal)
		}
		for _, m := range pr.answers {
			if m.Op.Extension() || m.Err == p2p.ErrBusy {
				t.Fatalf("%s (no XHEL) got the extension message %s %s from %s", nd.Name, m.Op, m.Err, target)
			}
		}
		ans := pr.answers
		if pr.hello {
			if len(ans) == 0 || (ans[0].Op != p2p.PHEL && ans[0].Op != p2p.SHEL) {
				t.Fatalf("%s: CHEL to %s answered %+v", nd.Name, target, ans)
			}
			ans = ans[1:]
		}
		if len(ans) != pr.sent {
			t.Fatalf("%s: %d answers from %s to %d requests %q", nd.Name, len(ans), target, pr.sent, pr.reqs)
		}
		h := w.held[nd.Name]
		hello := pr.hello
		for k, req := range pr.reqs[:pr.sent] {
			m := ans[k]
			var i int
			isDREQ := false
			if _, err := fmt.Sscanf(req, "DREQ %d", &i); err == nil && !strings.Contains(req, "-") {
				isDREQ = true
			}
			switch {
			case req == "CHEL 1" && !hello:
				hello = true
				if m.Op != p2p.PHEL && m.Op != p2p.SHEL {
					t.Fatalf("%s: late CHEL to %s answered %s %s", nd.Name, target, m.Op, m.Err)
				}
			case !hello:
				if isDREQ && i < chunks && target != "server" && len(h) > 0 {
					h = h[1:] // the ground truth saw it arrive
				}
				if m.Op != p2p.ERROR || m.Err != p2p.ErrUnknownCommand {
					t.Fatalf("%s: %q before CHEL to %s answered %s %s, want UNKNOWN_COMMAND", nd.Name, req, target, m.Op, m.Err)
				}
			case isDREQ && i >= chunks:
				if m.Op != p2p.ERROR || m.Err != p2p.ErrOffsetOverflow {
					t.Fatalf("%s: %q to %s (%d chunks) answered %s %s, want OFFSET_OVERFLOW", nd.Name, req, target, chunks, m.Op, m.Err)
				}
			case isDREQ:
				had := target == "server"
				if target != "server" {
					if len(h) == 0 {
						t.Fatalf("%s: no ground truth for %q", nd.Name, req)
					}
					had, h = h[0], h[1:]
				}
				switch {
				case had && (m.Op != p2p.DATA || !bytes.Equal(m.Data, content.Chunk(i)) || m.Offset != int64(i*chunk)):
					t.Fatalf("%s: %q to %s, which held it, answered %s %s", nd.Name, req, target, m.Op, m.Err)
				case !had && (m.Op != p2p.ERROR || m.Err != p2p.ErrChunkUndownloaded):
					t.Fatalf("%s: %q to %s, which lacked it, answered %s %s: a peer served a chunk it lacks", nd.Name, req, target, m.Op, m.Err)
				}
			case req == "CLREQ":
				if m.Op != p2p.CLRSP {
					t.Fatalf("%s: CLREQ to %s answered %s", nd.Name, target, m.Op)
				}
			default: // junk, and a second CHEL
				if m.Op != p2p.ERROR || m.Err != p2p.ErrUnknownCommand {
					t.Fatalf("%s: %q to %s answered %s %s, want UNKNOWN_COMMAND", nd.Name, req, target, m.Op, m.Err)
				}
			}
		}
	}
}

// The seed's error ids, checked against the simulator's ground truth: a
// peer answers DREQ with the exact chunk if it held it when the request
// arrived and CHUNK_UNDOWNLOADED if not, never serving a chunk it lacks;
// a chunk id past the end gets OFFSET_OVERFLOW; a line that is no command,
// or a request before CHEL, gets UNKNOWN_COMMAND; and a client that never
// said XHEL never sees an extension message.
func TestErrorsAgainstGroundTruth(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		n := rapid.IntRange(1, 4).Draw(t, "peers")
		size := rapid.IntRange(20_000, 200_000).Draw(t, "file size")
		chunk := 4096
		file := cs.FileSpec{Seed: 9, Size: int64(size)}
		data, _ := cs.Generate(file)
		content, _ := p2p.NewContent(data, chunk)
		chunks := content.Chunks()
		w := newProbeWorld(content)
		cfg := sim.Config{Seed: 3, Link: sim.Symmetric(sim.Dir{Rate: 5e6, Delay: 2 * time.Millisecond}), Protocol: "p2p"}
		w.observe(&cfg)
		s := net.New(cfg)
		addNode(s, sim.NodeSpec{Name: "server", Role: "server", Config: p2p.ServerConfig{Addr: serverAddr, File: file, ChunkSize: chunk}})
		var order []*sim.Node
		for i := 0; i < n; i++ {
			cfg := lightPeerConfig{PeerConfig: p2p.PeerConfig{Server: serverAddr, Seed: uint64(i), Linger: -1}, File: file, ChunkSize: chunk}
			nd := addNode(s, sim.NodeSpec{Name: fmt.Sprintf("p%d", i), Role: "light-peer", Config: cfg})
			w.peers[nd.Addr] = nd
			order = append(order, nd)
		}
		// Probes: each targets a peer or the server, at some time, with
		// a random script of requests.
		for k := rapid.IntRange(1, 4).Draw(t, "probes"); k > 0; k-- {
			ti := rapid.IntRange(0, n).Draw(t, "target (n: the server)")
			to, target := serverAddr, "server"
			if ti < n {
				to, target = netip.AddrPortFrom(order[ti].Addr, p2p.DefaultPeerPort), order[ti].Name
			}
			pc := proberConfig{To: to, Hello: rapid.IntRange(0, 5).Draw(t, "says CHEL (5 in 6)") > 0}
			for r := rapid.IntRange(1, 12).Draw(t, "requests"); r > 0; r-- {
				switch rapid.IntRange(0, 5).Draw(t, "request kind") {
				case 0, 1, 2:
					pc.Reqs = append(pc.Reqs, fmt.Sprintf("DREQ %d", rapid.IntRange(0, chunks+5).Draw(t, "chunk")))
				case 3:
					pc.Reqs = append(pc.Reqs, rapid.SampledFrom([]string{"HELLO", "DREQ", "DREQ -1", "DREQ one", "GET / HTTP/1.0", "CHEL 0", "chel 1"}).Draw(t, "junk"))
				case 4:
					pc.Reqs = append(pc.Reqs, "CLREQ")
				case 5:
					pc.Reqs = append(pc.Reqs, "CHEL 1")
				}
			}
			start := time.Duration(rapid.IntRange(0, 3000).Draw(t, "probe start ms")) * time.Millisecond
			nd := addNode(s, sim.NodeSpec{Name: fmt.Sprintf("probe%d", len(w.probes)), Start: start, Role: "probe", Config: pc})
			w.probe(nd, target)
		}
		w.errorsAgainstGroundTruth(t, s)
	}, nil)
}
