package rudp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
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
	s       *sim.Sim
	flows   map[string]*flowLog // by client name
	byAddr  map[string]string   // "ip:port" -> client name
	srv     *sim.Node
	clients []*sim.Node
}

// runBulk sends payloads[i] from client i to a sink over a network with
// faults f and runs until every client has exited or limit passes.
func runBulk(t interface{ Fatalf(string, ...any) }, seed uint64, link sim.Link, f sim.Faults, payloads [][]byte, cfg rudp.Config, limit time.Duration) *run {
	r := &run{flows: map[string]*flowLog{}, byAddr: map[string]string{}}
	addrName := map[netip.Addr]string{}
	r.s = sim.New(sim.Config{
		Seed: seed, Link: link, Faults: f,
		OnEvent: func(n *sim.Node, now spec.Time, ev spec.Event) {
			if n.Name != "server" {
				return
			}
			a := netip.MustParseAddrPort(ev.Text)
			name := addrName[a.Addr()]
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
		},
		OnExit: func(n *sim.Node, _ spec.Time, err string) {
			if fl := r.flows[n.Name]; fl != nil {
				fl.exited, fl.exitErr = true, err
				if m, ok := n.Machine().(*source); ok {
					fl.ctr = m.Counters()
				}
			}
		},
	})
	scfg := cfg
	scfg.Seed = seed ^ 0x5e4e
	r.srv = r.s.MustAddNode(sim.NodeSpec{Name: "server", Addr: serverAddr.Addr(), New: func() spec.Machine { return newSink(serverAddr, scfg) }})
	for i, p := range payloads {
		name := fmt.Sprintf("c%d", i)
		ccfg := cfg
		ccfg.Seed = seed + uint64(i) + 1
		n := r.s.MustAddNode(sim.NodeSpec{Name: name, New: func() spec.Machine { return newSource(serverAddr, p, ccfg) }})
		addrName[n.Addr] = name
		r.flows[name] = &flowLog{}
		r.clients = append(r.clients, n)
	}
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
	return r
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
	rapid.Check(t, func(t *rapid.T) {
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
			ps = append(ps, payload(uint64(i), rapid.IntRange(0, 200_000).Draw(t, "size")))
		}
		seed := rapid.Uint64().Draw(t, "seed")
		r := runBulk(t, seed, link, f, ps, rudp.Config{}, 10*time.Minute)
		for i, name := range names(r.flows) {
			fl := r.flows[name]
			if !bytes.HasPrefix(ps[i], fl.got) {
				t.Fatalf("%s: the sink's %d bytes are not a prefix of what was sent", name, len(fl.got))
			}
			if !fl.exited {
				t.Fatalf("%s never finished (faults %v)", name, f)
			}
			if fl.exitErr == "" && (!bytes.Equal(fl.got, ps[i]) || !fl.eof) {
				t.Fatalf("%s reported success, the sink has %d of %d bytes (eof %v)", name, len(fl.got), len(ps[i]), fl.eof)
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
	})
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
