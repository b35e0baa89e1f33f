package echo_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
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

// run builds a server and clients on a network with faults f, sends msgs
// from every client, and runs until every client has exited or limit.
func run(t *rapid.T, f sim.Faults, seed uint64, clients int, tcp bool, msgs [][]byte) (map[string]*clientLog, map[string][][]byte, *sim.Sim) {
	logs := map[string]*clientLog{}
	// delivered[client] is the ground truth: every datagram the network
	// handed to that client's address.
	delivered := map[string][][]byte{}
	names := map[netip.Addr]string{}
	s := sim.New(sim.Config{
		Seed:   seed,
		Link:   sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}),
		Faults: f,
		OnEvent: func(n *sim.Node, _ spec.Time, ev spec.Event) {
			l := logs[n.Name]
			if l == nil {
				return
			}
			switch ev.Name {
			case "reply":
				l.replies = append(l.replies, ev.Data)
				if ev.Value.(echo.Reply).Matched {
					l.matched++
				}
			case "timeout", "error":
				l.failed++
			}
		},
		OnExit: func(n *sim.Node, _ spec.Time, _ string) {
			if l := logs[n.Name]; l != nil {
				l.exited = true
			}
		},
		OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetDeliver && ev.Proto == spec.UDP {
				if name, ok := names[ev.To.Addr()]; ok {
					delivered[name] = append(delivered[name], ev.Data)
				}
			}
		},
	})
	scfg := echo.ServerConfig{UDP: server, TCP: server}
	s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return echo.NewServer(scfg) }})
	for i := 0; i < clients; i++ {
		name := fmt.Sprintf("c%d", i)
		ccfg := echo.ClientConfig{Server: server, TCP: tcp, Timeout: 100 * time.Millisecond, Retries: 8}
		n := s.MustAddNode(sim.NodeSpec{Name: name, New: func() spec.Machine { return echo.NewClient(ccfg) }})
		names[n.Addr] = name
		logs[name] = &clientLog{sent: msgs}
		for j, m := range msgs {
			s.Command(time.Duration(j)*time.Millisecond, name, spec.Command{Name: "send", Data: m})
		}
		s.Command(time.Duration(len(msgs))*time.Millisecond, name, spec.Command{Name: "close"})
	}
	s.Run(2 * time.Minute)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	return logs, delivered, s
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

// sorted returns the client names in order: a property must fail the same
// way every time it runs an example, or rapid cannot shrink it.
func sorted(logs map[string]*clientLog) []string {
	names := make([]string, 0, len(logs))
	for n := range logs {
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

// Every datagram that comes back is byte-identical to one that was sent,
// and is one the network really delivered; loss is allowed, alteration
// never. Every message ends echoed or timed out, and with no loss at all
// every message is echoed.
func TestUDPEchoNeverAlters(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clients := rapid.IntRange(1, 4).Draw(t, "clients")
		f := drawFaults(t, clients)
		msgs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 1400), 1, 12).Draw(t, "messages")
		logs, delivered, _ := run(t, f, rapid.Uint64().Draw(t, "seed"), clients, false, msgs)
		for _, name := range sorted(logs) {
			l := logs[name]
			for _, r := range l.replies {
				if !contains(l.sent, r) {
					t.Fatalf("%s got a %d-byte echo that matches nothing it sent", name, len(r))
				}
			}
			if len(l.replies) != len(delivered[name]) {
				t.Fatalf("%s reported %d replies, the network delivered %d datagrams to it", name, len(l.replies), len(delivered[name]))
			}
			if !l.exited {
				t.Fatalf("%s never finished", name)
			}
			if l.matched+l.failed != len(msgs) {
				t.Fatalf("%s: %d echoed + %d failed != %d sent", name, l.matched, l.failed, len(msgs))
			}
			if f.Loss == 0 && len(f.Partitions) == 0 && len(f.Crashes) == 0 && l.failed > 0 {
				t.Fatalf("%s: %d messages failed on a network that loses nothing", name, l.failed)
			}
		}
	})
}

// TCP echo returns exactly the byte stream sent: a reply is the message
// itself or the stream failed (reset by a partition or crash), never
// other bytes; without partitions and crashes every reply is exact.
func TestTCPEchoReturnsTheStream(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		clients := rapid.IntRange(1, 3).Draw(t, "clients")
		f := drawFaults(t, clients)
		msgs := rapid.SliceOfN(rapid.SliceOfN(rapid.Byte(), 0, 20000), 1, 5).Draw(t, "messages")
		logs, _, _ := run(t, f, rapid.Uint64().Draw(t, "seed"), clients, true, msgs)
		for _, name := range sorted(logs) {
			l := logs[name]
			for i, r := range l.replies {
				if !contains(l.sent, r) {
					t.Fatalf("%s: echo %d is %d bytes that match nothing sent", name, i, len(r))
				}
			}
			if l.matched+l.failed != len(msgs) || !l.exited {
				t.Fatalf("%s: %d exact + %d failed of %d, exited=%v", name, l.matched, l.failed, len(msgs), l.exited)
			}
			if len(f.Partitions) == 0 && len(f.Crashes) == 0 && l.failed > 0 {
				t.Fatalf("%s: %d streams failed with no partition or crash (faults: %v)", name, l.failed, f)
			}
		}
	})
}

// The server's memory per connection is bounded: a client that sends
// without ever reading is reset once MaxUnread bytes wait.
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

// Datagrams from well-known ports (another reflector) are dropped.
func TestServerIgnoresReflectors(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{UDP: server})
	for _, port := range []uint16{0, 7, 19, 53, 123, 1023} {
		from := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.9"), port)
		out := srv.Step(0, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("x")}, nil)
		for _, o := range out {
			if o.Kind == spec.OutSend {
				t.Errorf("server echoed to port %d", port)
			}
		}
	}
}
