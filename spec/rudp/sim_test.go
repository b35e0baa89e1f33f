package rudp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
	"pgregory.net/rapid"
)

var serverAddr = netip.MustParseAddrPort("10.0.0.1:7000")

type flowLog struct {
	got     []byte
	at      []spec.Time // when each chunk of got arrived
	sizes   []int
	eofAt   spec.Time
	eof     bool
	closed  bool
	exited  bool
	exitErr string
	ctr     []spec.Counter // the client's counters when it exited
}

type run struct {
	s        *sim.Sim
	flows    map[string]*flowLog // by client name
	byAddr   map[string]string   // "ip:port" -> client name
	addrName map[netip.Addr]string
	srv      *sim.Node
	clients  []*sim.Node
}

type fataler interface{ Fatalf(string, ...any) }

// runBulk sends payloads[i] from client i to a sink over a network with
// faults f and runs until every client has exited or limit passes.
func runBulk(t fataler, seed uint64, link sim.Link, f sim.Faults, payloads [][]byte, cfg rudp.Config, limit time.Duration) *run {
	return runBulkOn(nil, t, seed, link, f, payloads, cfg, limit)
}

// runBulkOn is runBulk with the simulator built by net (nil: sim.New),
// so that a rapid property's failing run leaves its trace.
func runBulkOn(net *simtest.Net, t fataler, seed uint64, link sim.Link, f sim.Faults, payloads [][]byte, cfg rudp.Config, limit time.Duration) *run {
	r := newRun()
	scfg := sim.Config{Seed: seed, Link: link, Faults: f, Protocol: machines.Name}
	r.observe(&scfg)
	if net != nil {
		r.s = net.New(scfg)
	} else {
		r.s = sim.New(scfg)
	}
	sk := sinkConfig{Addr: serverAddr, Session: cfg}
	sk.Session.Seed = seed ^ 0x5e4e
	r.srv = r.s.MustAddNode(sim.NodeSpec{Name: "server", Addr: serverAddr.Addr(), Protocol: machines.Name, Role: "sink", Config: sk,
		New: func() spec.Machine { return newSink(sk.Addr, sk.Session) }})
	for i, p := range payloads {
		src := sourceConfig{Server: serverAddr, Payload: p, Session: cfg}
		src.Session.Seed = seed + uint64(i) + 1
		r.add(r.s.MustAddNode(sim.NodeSpec{Name: fmt.Sprintf("c%d", i), Protocol: machines.Name, Role: "source", Config: src,
			New: func() spec.Machine { return newSource(src.Server, src.Payload, src.Session) }}))
	}
	r.await(t, limit)
	return r
}

func newRun() *run {
	return &run{flows: map[string]*flowLog{}, byAddr: map[string]string{}, addrName: map[netip.Addr]string{}}
}

// observe points cfg's observers at r: the sink's events, by the client
// they come from, and the clients' exits.
func (r *run) observe(cfg *sim.Config) {
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		if n.Name != "server" {
			return
		}
		a := netip.MustParseAddrPort(ev.Text)
		name := r.addrName[a.Addr()]
		fl := r.flows[name]
		if fl == nil {
			return
		}
		switch ev.Name {
		case "data":
			fl.got = append(fl.got, ev.Data...)
			fl.at = append(fl.at, now)
			fl.sizes = append(fl.sizes, len(ev.Data))
		case "eof":
			fl.eof, fl.eofAt = true, now
		case "closed":
			fl.closed = true
		}
	}
	cfg.OnExit = func(n *sim.Node, _ spec.Time, err string) {
		if fl := r.flows[n.Name]; fl != nil {
			fl.exited, fl.exitErr = true, err
			if m, ok := n.Machine().(*source); ok {
				fl.ctr = m.Counters()
			}
		}
	}
}

// add makes n one of the clients r follows.
func (r *run) add(n *sim.Node) {
	r.addrName[n.Addr] = n.Name
	r.flows[n.Name] = &flowLog{}
	r.clients = append(r.clients, n)
}

// await runs until every client has exited or limit passes.
func (r *run) await(t fataler, limit time.Duration) {
	r.s.RunUntil(func() bool {
		for _, n := range r.clients {
			if ok, _ := n.Exited(); !ok {
				return false
			}
		}
		return true
	}, limit)
	if v := r.s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
}

func names(m map[string]*flowLog) []string {
	var n []string
	for k := range m {
		n = append(n, k)
	}
	slices.Sort(n)
	return n
}

func payload(seed uint64, n int) []byte {
	b := make([]byte, n)
	spec.NewRand(seed).Bytes(b)
	return b
}

func TestBulkLossless(t *testing.T) {
	link := sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond})
	p := payload(1, 1<<20)
	r := runBulk(t, 1, link, sim.Faults{}, [][]byte{p}, rudp.Config{}, time.Minute)
	fl := r.flows["c0"]
	if !fl.exited || fl.exitErr != "" {
		t.Fatalf("client did not finish cleanly: exited=%v err=%q", fl.exited, fl.exitErr)
	}
	if !bytes.Equal(fl.got, p) || !fl.eof {
		t.Fatalf("sink got %d bytes (eof %v), want %d", len(fl.got), fl.eof, len(p))
	}
	el := r.s.Elapsed()
	t.Logf("1 MiB over 10 Mbit/s: %v (%.2f Mbit/s goodput)", el, float64(len(p))*8/el.Seconds()/1e6)
}

// Whatever the network does before it heals, the sink receives a prefix
// of what was sent, the whole of it exactly when the client reports
// success, and every session is gone once the network has healed.
func TestBulkSurvivesFaults(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		clients := rapid.IntRange(1, 3).Draw(t, "clients")
		var nodes []string
		for i := 0; i < clients; i++ {
			nodes = append(nodes, fmt.Sprintf("c%d", i))
		}
		f := sim.DrawFaults(t, sim.FaultBounds{
			MaxLoss: 0.3, MaxDup: 0.2, MaxJitter: 30 * time.Millisecond, Horizon: 10 * time.Second,
			MaxPartitions: 2, Partitionable: append([]string{"server"}, nodes...),
		})
		rate := float64(rapid.IntRange(1, 100).Draw(t, "Mbit/s")) * 1e6
		link := sim.Symmetric(sim.Dir{Rate: rate, Delay: time.Duration(rapid.IntRange(0, 50).Draw(t, "delay ms")) * time.Millisecond,
			Queue: rapid.IntRange(10, 1000).Draw(t, "queue packets") * 1500})
		var ps [][]byte
		for i := 0; i < clients; i++ {
			// Small and bulk payloads alike: one range would favour
			// small values, and bulk transfers are the point.
			size := rapid.OneOf(rapid.IntRange(0, 3000), rapid.IntRange(100_000, 400_000)).Draw(t, "size")
			ps = append(ps, payload(uint64(i), size))
		}
		seed := rapid.Uint64().Draw(t, "seed")
		r := runBulkOn(net, t, seed, link, f, ps, rudp.Config{}, bulkLimit)
		sent := map[string][]byte{}
		for i, name := range nodes {
			sent[name] = ps[i]
		}
		r.survives(t, f, sent)
	}, nil)
}

// A partition that outlasts the retransmission budget ends the transfer
// with an error, never a false success: the sink holds a prefix, the
// client says why, and no session outlives the healing. (The property
// above rarely draws one: its partitions end within the budget.)
func TestBulkFailsCleanlyUnderLongPartition(t *testing.T) {
	link := sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond})
	p := payload(7, 4<<20)
	f := sim.Faults{Partitions: []sim.Partition{{Start: time.Second, End: 10 * time.Minute, Side: []string{"server"}}}}
	r := runBulk(t, 7, link, f, [][]byte{p}, rudp.Config{}, bulkLimit)
	fl := r.flows["c0"]
	if !fl.exited || fl.exitErr == "" {
		t.Fatalf("the client did not fail: exited=%v err=%q, %d of %d bytes", fl.exited, fl.exitErr, len(fl.got), len(p))
	}
	if len(fl.got) == 0 || len(fl.got) >= len(p) {
		t.Fatalf("the sink has %d of %d bytes: the partition should have cut the transfer midway", len(fl.got), len(p))
	}
	t.Logf("failed after %d of %d bytes: %s", len(fl.got), len(p), fl.exitErr)
	r.survives(t, f, map[string][]byte{"c0": p})
}

// bulkLimit is how long TestBulkSurvivesFaults waits for its clients.
const bulkLimit = 10 * time.Minute

// survives is TestBulkSurvivesFaults's judgement of a finished run (sent:
// each client's payload), for the property and for the runs kept under
// testdata/regressions.
func (r *run) survives(t fataler, f sim.Faults, sent map[string][]byte) {
	for _, name := range names(r.flows) {
		fl, p := r.flows[name], sent[name]
		if !bytes.HasPrefix(p, fl.got) {
			t.Fatalf("%s: the sink's %d bytes are not a prefix of what was sent", name, len(fl.got))
		}
		if !fl.exited {
			t.Fatalf("%s never finished (faults %v)", name, f)
		}
		if fl.exitErr == "" && (!bytes.Equal(fl.got, p) || !fl.eof) {
			t.Fatalf("%s reported success, the sink has %d of %d bytes (eof %v)", name, len(fl.got), len(p), fl.eof)
		}
		if len(f.Partitions) == 0 && f.Loss < 0.2 && fl.exitErr != "" {
			t.Fatalf("%s failed without a partition: %s (faults %v)", name, fl.exitErr, f)
		}
	}
	// Bounded state: once everyone is done, sessions drain.
	r.s.Run(r.s.Elapsed() + 2*time.Minute)
	if n := r.srv.Machine().(*sink).ep.Sessions(); n != 0 {
		t.Fatalf("server still holds %d sessions two minutes after the clients finished", n)
	}
}

// bytesBy is how many bytes the flow had delivered by t.
func (fl *flowLog) bytesBy(t spec.Time) int {
	n := 0
	for i, at := range fl.at {
		if at > t {
			break
		}
		n += fl.sizes[i]
	}
	return n
}

// jain is Jain's fairness index of xs: 1 when all are equal, 1/n when one
// takes everything.
func jain(xs []float64) float64 {
	sum, sq := 0.0, 0.0
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}
