package echo_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/echo"
	"pgregory.net/rapid"
)

var server = netip.MustParseAddrPort("10.0.0.1:7007")

type clientLog struct {
	sent    [][]byte
	replies [][]byte
	matched int
	failed  int
	exited  bool
}

// world is what a property observes of one run: the clients' events and
// the network's ground truth. The same checks serve the rapid properties
// and the regression traces re-simulated from testdata/regressions.
type world struct {
	tcp     bool
	pauseAt int // the server's PauseAt (0: its default)
	faults  sim.Faults
	clients map[string]*clientLog
	// delivered[client] is every datagram the network handed to it.
	delivered map[string][][]byte
	names     map[netip.Addr]string
}

func newWorld() *world {
	return &world{clients: map[string]*clientLog{}, delivered: map[string][][]byte{}, names: map[netip.Addr]string{}}
}

// observe points cfg's observers at w.
func (w *world) observe(cfg *sim.Config) {
	w.faults = cfg.Faults
	cfg.OnEvent = func(n *sim.Node, _ spec.Time, ev spec.Event) {
		l := w.clients[n.Name]
		if l == nil {
			return
		}
		switch ev.Name {
		case "reply":
			l.replies = append(l.replies, ev.Data)
			if r, ok := ev.Value.(echo.Reply); ok && r.Matched {
				l.matched++
			}
		case "timeout", "error":
			l.failed++
		}
	}
	cfg.OnExit = func(n *sim.Node, _ spec.Time, _ string) {
		if l := w.clients[n.Name]; l != nil {
			l.exited = true
		}
	}
	cfg.OnNet = func(ev sim.NetEvent) {
		if ev.Kind == sim.NetDeliver && ev.Proto == spec.UDP {
			if name, ok := w.names[ev.To.Addr()]; ok {
				w.delivered[name] = append(w.delivered[name], ev.Data)
			}
		}
	}
}

// build adds a server (made by newServer) and clients sending msgs.
func (w *world) build(net *simtest.Net, seed uint64, f sim.Faults, clients int, msgs [][]byte, newServer func(echo.ServerConfig) spec.Machine) *sim.Sim {
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}), Faults: f, Protocol: "echo"}
	w.observe(&cfg)
	s := net.New(cfg)
	scfg := echo.ServerConfig{UDP: server, TCP: server, PauseAt: w.pauseAt}
	s.MustAddNode(sim.NodeSpec{Name: "server", Role: "server", Config: scfg, New: func() spec.Machine { return newServer(scfg) }})
	for i := 0; i < clients; i++ {
		name := fmt.Sprintf("c%d", i)
		ccfg := echo.ClientConfig{Server: server, TCP: w.tcp, Timeout: 100 * time.Millisecond, Retries: 8}
		n := s.MustAddNode(sim.NodeSpec{Name: name, Role: "client", Config: ccfg, New: func() spec.Machine { return echo.NewClient(ccfg) }})
		w.names[n.Addr] = name
		w.clients[name] = &clientLog{sent: msgs}
		for j, m := range msgs {
			s.Command(time.Duration(j)*time.Millisecond, name, spec.Command{Name: "send", Data: m})
		}
		s.Command(time.Duration(len(msgs))*time.Millisecond, name, spec.Command{Name: "close"})
	}
	return s
}

type fataler interface{ Fatalf(string, ...any) }

// sorted returns the client names in order: a property must fail the same
// way every time it runs an example, or rapid cannot shrink it.
func (w *world) sorted() []string {
	names := make([]string, 0, len(w.clients))
	for n := range w.clients {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

func contains(set [][]byte, b []byte) bool {
	for _, s := range set {
		if bytes.Equal(s, b) {
			return true
		}
	}
	return false
}

// checkUDP: every datagram that comes back is byte-identical to one that
// was sent and is one the network really delivered; loss is allowed,
// alteration never. Every message ends echoed or timed out; with no loss
// at all, every message is echoed.
func (w *world) checkUDP(t fataler) {
	f := w.faults
	for _, name := range w.sorted() {
		l := w.clients[name]
		for _, r := range l.replies {
			if !contains(l.sent, r) {
				t.Fatalf("%s got a %d-byte echo that matches nothing it sent", name, len(r))
			}
		}
		if len(l.replies) != len(w.delivered[name]) {
			t.Fatalf("%s reported %d replies, the network delivered %d datagrams to it", name, len(l.replies), len(w.delivered[name]))
		}
		if !l.exited {
			t.Fatalf("%s never finished", name)
		}
		if l.matched+l.failed != len(l.sent) {
			t.Fatalf("%s: %d echoed + %d failed != %d sent", name, l.matched, l.failed, len(l.sent))
		}
		if f.Loss == 0 && len(f.Partitions) == 0 && len(f.Crashes) == 0 && l.failed > 0 {
			t.Fatalf("%s: %d messages failed on a network that loses nothing", name, l.failed)
		}
	}
}

// checkTCP: a reply is the message itself or the stream failed (reset by
// a partition or crash), never other bytes; without partitions and
// crashes every reply is exact.
func (w *world) checkTCP(t fataler) {
	f := w.faults
	for _, name := range w.sorted() {
		l := w.clients[name]
		for i, r := range l.replies {
			if !contains(l.sent, r) {
				t.Fatalf("%s: echo %d is %d bytes that match nothing sent", name, i, len(r))
			}
		}
		if l.matched+l.failed != len(l.sent) || !l.exited {
			t.Fatalf("%s: %d exact + %d failed of %d, exited=%v", name, l.matched, l.failed, len(l.sent), l.exited)
		}
		if len(f.Partitions) == 0 && len(f.Crashes) == 0 && l.failed > 0 {
			t.Fatalf("%s: %d streams failed with no partition or crash (faults: %v)", name, l.failed, f)
		}
	}
}

func drawFaults(t *rapid.T, clients int) sim.Faults {
	var nodes []string
	for i := 0; i < clients; i++ {
		nodes = append(nodes, fmt.Sprintf("c%d", i))
	}
	return sim.DrawFaults(t, sim.FaultBounds{
		MaxLoss: 0.4, MaxDup: 0.3, MaxJitter: 20 * time.Millisecond,
		Horizon:       3 * time.Second,
		MaxPartitions: 2, Partitionable: append([]string{"server"}, nodes...),
		MaxCrashes: 2, Crashable: []string{"server"},
	})
}

// dropAbsent removes clients that do not exist from partition sides.
func dropAbsent(f sim.Faults, clients int) sim.Faults {
	for i := range f.Partitions {
		var side []string
		for _, n := range f.Partitions[i].Side {
			var k int
			if _, err := fmt.Sscanf(n, "c%d", &k); err == nil && k >= clients {
				continue
			}
			side = append(side, n)
		}
		f.Partitions[i].Side = side
	}
	return f
}

func realServer(c echo.ServerConfig) spec.Machine { return echo.NewServer(c) }

// udpProperty is TestUDPEchoNeverAlters's body, parameterised by the
// server so the shrinking demonstration can break it.
//
// Faults are drawn first: rapid shrinks earlier draws first, so a failing
// case sheds its faults before its clients and messages.
func udpProperty(t *rapid.T, net *simtest.Net, newServer func(echo.ServerConfig) spec.Machine) {
	f := drawFaults(t, 4)
	clients := rapid.IntRange(1, 4).Draw(t, "clients")
	f = dropAbsent(f, clients)
	msgs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 1400), 1, 12).Draw(t, "messages")
	w := newWorld()
	s := w.build(net, rapid.Uint64().Draw(t, "seed"), f, clients, msgs, newServer)
	s.Run(2 * time.Minute)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	w.checkUDP(t)
}

func TestUDPEchoNeverAlters(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) { udpProperty(t, net, realServer) }, nil)
}

func TestTCPEchoReturnsTheStream(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		f := drawFaults(t, 3)
		clients := rapid.IntRange(1, 3).Draw(t, "clients")
		f = dropAbsent(f, clients)
		msgs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 20000), 1, 5).Draw(t, "messages")
		w := newWorld()
		w.tcp = true
		// A small PauseAt makes the server stop and start reading its
		// clients all the time: the echo must come back just the same.
		w.pauseAt = rapid.IntRange(1, 30000).Draw(t, "pauseAt")
		s := w.build(net, rapid.Uint64().Draw(t, "seed"), f, clients, msgs, realServer)
		s.Run(2 * time.Minute)
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("contract violations: %v", v)
		}
		w.checkTCP(t)
	}, nil)
}

// resimulate runs a regression trace again with today's machines (or
// with lookup's) and checks the property it was recorded for.
func resimulate(t *testing.T, path string, lookup conformance.Lookup) error {
	tr, err := conformance.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	w := newWorld()
	s, err := conformance.Resimulate(tr, lookup, w.observe)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range s.Nodes() {
		if n.Name == "server" {
			continue
		}
		w.names[n.Addr] = n.Name
		l := &clientLog{}
		w.clients[n.Name] = l
		for _, r := range tr.NodeRecords(n.Name) {
			if r.In == "command" && r.Name == "send" {
				p, _ := r.Payload()
				l.sent = append(l.sent, p)
			}
		}
		var cfg echo.ClientConfig
		ni, _ := tr.Header.Node(n.Name)
		if err := json.Unmarshal(ni.Config, &cfg); err == nil {
			w.tcp = cfg.TCP
		}
	}
	s.Run(tr.Duration() + time.Minute)
	var failure error
	check := recorder{&failure}
	if w.tcp {
		w.checkTCP(check)
	} else {
		w.checkUDP(check)
	}
	return failure
}

type recorder struct{ err *error }

func (r recorder) Fatalf(format string, args ...any) {
	if *r.err == nil {
		*r.err = fmt.Errorf(format, args...)
	}
}

// TestRegressions re-simulates every failing run kept under
// testdata/regressions with today's machines: each must now pass.
func TestRegressions(t *testing.T) {
	files, _ := filepath.Glob("testdata/regressions/*.ndjson")
	if len(files) == 0 {
		t.Fatal("no regression traces: testdata/regressions holds at least the shrinking demonstration's")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			if err := resimulate(t, f, all.Lookup); err != nil {
				t.Fatalf("%s fails again: %v", f, err)
			}
		})
	}
}

// corrupting is an echo server broken on purpose: from the fourth
// datagram on, it appends a byte to every echo.
type corrupting struct {
	*echo.Server
	n int
}

func (c *corrupting) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	start := len(out)
	out = c.Server.Step(now, in, out)
	for i := start; i < len(out); i++ {
		if out[i].Kind == spec.OutSend {
			if c.n++; c.n > 3 {
				out[i].Data = append(append([]byte(nil), out[i].Data...), '!')
			}
		}
	}
	return out
}

func brokenLookup(name string) (spec.Protocol, bool) {
	p, ok := all.Lookup(name)
	if !ok || name != "echo" {
		return p, ok
	}
	inner := p.New
	p.New = func(role string, cfg []byte) (spec.Machine, error) {
		m, err := inner(role, cfg)
		if s, ok := m.(*echo.Server); ok && err == nil {
			return &corrupting{Server: s}, nil
		}
		return m, err
	}
	return p, true
}

// TestShrinkingFindsMinimalCase breaks the echo server on purpose and
// checks that the property catches it, that rapid shrinks the failure to
// a few steps on a fault-free network, and that the saved trace
// re-simulates: failing with the broken server, passing with the real one.
func TestShrinkingFindsMinimalCase(t *testing.T) {
	// A fixed seed: the same shrink on every machine.
	defer simtest.RapidSeed(1)()
	path, logs := simtest.ExpectFailure("ShrinkDemo", t.TempDir(), 1, func(rt *rapid.T, net *simtest.Net) {
		udpProperty(rt, net, func(c echo.ServerConfig) spec.Machine { return &corrupting{Server: echo.NewServer(c)} })
	})
	if path == "" {
		t.Fatalf("the property did not catch a server that corrupts every echo after the third")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tr, _ := conformance.Load(path)
	cfg, err := tr.SimConfig()
	if err != nil {
		t.Fatal(err)
	}
	steps := simtest.Steps(raw)
	t.Logf("shrunk to %d steps, %d nodes, faults %v", steps, len(tr.Header.Nodes), cfg.Faults)
	replay := false
	for _, l := range logs {
		t.Log(l)
		replay = replay || strings.Contains(l, "replay it: go test ./spec/echo -run '^ShrinkDemo$'")
	}
	if !replay {
		t.Error("the failure does not print a command that replays it")
	}
	// Four echoes make the failure: one client sending four messages on
	// a clean network (five steps with its close) is the smallest on a
	// clean network. rapid shrinks one draw at a time and may stop at a
	// neighbour of it: two clients sending two each (six steps), four
	// sending one (eight), or fewer messages whose losses make the
	// client resend until the fourth echo (a duplicate can do the same).
	// All are a few steps; partitions and crashes never help, so they
	// never survive.
	if steps > 8 || len(cfg.Faults.Partitions)+len(cfg.Faults.Crashes) != 0 {
		t.Errorf("shrunk case is not small: %d steps (want <= 8), %d nodes, faults %v", steps, len(tr.Header.Nodes), cfg.Faults)
	}
	if err := resimulate(t, path, brokenLookup); err == nil {
		t.Error("the saved trace re-simulated with the broken server passes")
	}
	if err := resimulate(t, path, all.Lookup); err != nil {
		t.Errorf("the saved trace re-simulated with the real server fails: %v", err)
	}
	if os.Getenv("NETSPEC_UPDATE_REGRESSIONS") != "" && steps == 5 {
		_ = os.MkdirAll("testdata/regressions", 0o755)
		_ = os.WriteFile("testdata/regressions/corrupt-after-three.ndjson", raw, 0o644)
	}
}

// A client that sends faster than it takes its echo is paused once
// PauseAt bytes wait for the transport (exactly PauseAt is enough), and
// resumed when they have gone.
func TestServerPausesSlowReaders(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{TCP: server, PauseAt: 1000})
	const st = spec.AcceptedStream | 1
	kinds := func(out []spec.Output) (k []spec.OutKind) {
		for _, o := range out {
			k = append(k, o.Kind)
		}
		return k
	}
	srv.Step(0, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: st}, nil)
	for i, step := range []struct {
		n    int
		want []spec.OutKind
	}{
		{400, []spec.OutKind{spec.OutWrite}},
		{599, []spec.OutKind{spec.OutWrite}},
		{1, []spec.OutKind{spec.OutWrite, spec.OutPause}}, // 1000 wait: PauseAt
	} {
		if got := kinds(srv.Step(0, spec.Input{Kind: spec.InStreamData, Stream: st, Data: make([]byte, step.n)}, nil)); !slices.Equal(got, step.want) {
			t.Fatalf("data %d: %v, want %v", i+1, got, step.want)
		}
	}
	if got := kinds(srv.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: st}, nil)); !slices.Equal(got, []spec.OutKind{spec.OutResume}) {
		t.Fatalf("writable: %v, want a resume", got)
	}
	if got := kinds(srv.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: st}, nil)); len(got) != 0 {
		t.Fatalf("writable again: %v, want nothing", got)
	}
}

// The server's memory per connection is bounded even under a runner
// that ignores the pause: a client that sends without ever reading is
// reset once MaxUnread bytes wait.
func TestServerCutsOffNonReaders(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{TCP: server, MaxUnread: 1000})
	var out []spec.Output
	const st = spec.AcceptedStream | 1
	out = srv.Step(0, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: st}, out[:0])
	for i := 0; i < 3; i++ {
		out = srv.Step(0, spec.Input{Kind: spec.InStreamData, Stream: st, Data: make([]byte, 400)}, out[:0])
	}
	if len(out) == 0 || out[0].Kind != spec.OutAbort {
		t.Fatalf("after 1200 unread bytes the server did %v, want an abort", out)
	}
}

// Datagrams from port 0, from well-known ports (other services) and
// from the server's own port (another echo server, most likely) are
// dropped, also when the server learns its port only when it binds.
func TestServerIgnoresReflectors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   netip.AddrPort // what the server is told to bind
		bound netip.AddrPort // what the runner bound
	}{
		{"fixed port", server, server},
		{"port picked at bind", netip.MustParseAddrPort("10.0.0.1:0"), netip.MustParseAddrPort("10.0.0.1:43210")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// With TCP too, bound after UDP on another port: the
			// guard is about the UDP port (it took the TCP one).
			srv := echo.NewServer(echo.ServerConfig{UDP: tc.cfg, TCP: netip.MustParseAddrPort("10.0.0.1:7070")})
			srv.Step(0, spec.Input{Kind: spec.InStart}, nil)
			srv.Step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: tc.bound}, nil)
			srv.Step(0, spec.Input{Kind: spec.InBound, Sock: 2, Addr: netip.MustParseAddrPort("10.0.0.1:7070")}, nil)
			for _, port := range []uint16{0, 7, 19, 53, 123, 1023, tc.bound.Port()} {
				from := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), port)
				out := srv.Step(0, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("x")}, nil)
				for _, o := range out {
					if o.Kind == spec.OutSend {
						t.Errorf("server echoed to port %d", port)
					}
				}
			}
			from := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), 40000)
			if out := srv.Step(0, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("x")}, nil); len(out) != 1 || out[0].Kind != spec.OutSend {
				t.Errorf("an ordinary client drew %v, want its echo", out)
			}
		})
	}
}
