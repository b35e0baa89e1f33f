package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/echo"
)

var update = flag.Bool("update", false, "re-record the trace corpus in testdata/")

// TestCorpus replays every recorded trace against the pure machines and
// against impl on loopback; each must reproduce its trace exactly.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/*.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("empty corpus: run go test ./conformance -run TestRecord -update")
	}
	sources := map[string]int{}
	for _, f := range files {
		tr, err := conformance.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		sources[tr.Header.Protocol+"/"+tr.Header.Source]++
		for _, node := range tr.Nodes() {
			t.Run(filepath.Base(f)+"/"+node, func(t *testing.T) {
				if listensOnWildcard(tr, node) && !nettest.PrivateNet(t) {
					return
				}
				// The same path as `netspec replay`.
				rep := conformance.Replay(context.Background(), tr, all.Lookup, conformance.ReplayOptions{
					Nodes: []string{node}, NodeTimeout: time.Minute,
					Impl: conformance.ImplOptions{OnSkip: func(s conformance.Skip) { t.Log(s) }},
				})[0]
				if rep.Spec != nil {
					t.Fatalf("spec: %v", rep.Spec)
				}
				if errors.Is(rep.Impl, conformance.ErrSkip) {
					t.Skip(rep.Impl)
				}
				if rep.Impl != nil {
					t.Fatalf("impl: %v", rep.Impl)
				}
			})
		}
	}
	// Every protocol must have traces from both the simulator and sockets.
	for _, p := range all.Protocols() {
		if sources[p.Name+"/sim"] == 0 || sources[p.Name+"/impl"] == 0 {
			t.Errorf("protocol %s: corpus has %d sim and %d impl traces, want both", p.Name, sources[p.Name+"/sim"], sources[p.Name+"/impl"])
		}
	}
}

// TestDivergenceReported tampers with recorded outputs and checks that
// both replays catch it, at the tampered record.
func TestDivergenceReported(t *testing.T) {
	tr, err := conformance.Load("testdata/echo-sim.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	// Find the server's third echo and change one byte of it.
	seen := 0
	target := -1
	for i, r := range tr.Records {
		if r.Node == "server" && r.Out == "send" {
			seen++
			if seen == 3 {
				target = i
				break
			}
		}
	}
	if target < 0 {
		t.Fatal("trace has fewer than 3 server sends")
	}
	p, _ := tr.Records[target].Payload()
	if len(p) == 0 {
		t.Fatal("chose an empty datagram")
	}
	bad := append([]byte(nil), p...)
	bad[0] ^= 0xff
	tr.Records[target].SetPayload(bad)
	wantIdx := -1
	for i, r := range tr.NodeRecords("server") {
		pp, _ := r.Payload()
		if r.Out == "send" && bytes.Equal(pp, bad) {
			wantIdx = i
			break
		}
	}
	var d *conformance.Divergence
	err = conformance.ReplaySpec(tr, "server", all.Lookup)
	if !errors.As(err, &d) || d.Index != wantIdx || d.Against != "spec" {
		t.Fatalf("spec replay of a tampered trace: %v; want a divergence at record %d", err, wantIdx)
	}
	if !strings.Contains(err.Error(), "diff (-want +got)") {
		t.Errorf("divergence report lacks a diff:\n%v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = conformance.ReplayImpl(ctx, tr, "server", all.Lookup, conformance.ImplOptions{Timeout: 2 * time.Second})
	if !errors.As(err, &d) || d.Index != wantIdx || d.Against != "impl" {
		t.Fatalf("impl replay of a tampered trace: %v; want a divergence at record %d", err, wantIdx)
	}
}

// TestRecord re-records the corpus with -update: a simulated echo run
// with loss, and echo server and clients on real loopback sockets.
func TestRecord(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	if err := os.MkdirAll("testdata", 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sc := &scenario.Echo{Clients: 2, Messages: 6, MaxSize: 600, Loss: 0.15, Dup: 0.05, Jitter: 3 * time.Millisecond}
	res, err := sc.Run(scenario.Options{Seed: 7, Trace: &buf})
	if err != nil || res.Failed != "" {
		t.Fatalf("scenario: %v %s", err, res.Failed)
	}
	write(t, "testdata/echo-sim.ndjson", buf.Bytes())

	// Real sockets: a server, a UDP client and a TCP client, each
	// recording its own trace.
	var srvTrace, udpTrace, tcpTrace bytes.Buffer
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	listening := make(chan string, 2)
	ctx, cancel := context.WithCancel(context.Background())
	srv := impl.New(echo.NewServer(echo.ServerConfig{UDP: lo, TCP: lo}), impl.Options{
		Trace: &srvTrace, TraceNode: "server",
		TraceHeader: nodeHeader("echo", "server", "server", echo.ServerConfig{UDP: lo, TCP: lo}),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addrs := map[string]netip.AddrPort{}
	for i := 0; i < 2; i++ {
		f := strings.Fields(<-listening)
		addrs[f[0]] = netip.MustParseAddrPort(f[1])
	}
	for _, c := range []struct {
		cfg echo.ClientConfig
		out *bytes.Buffer
	}{
		{echo.ClientConfig{Server: addrs["udp"]}, &udpTrace},
		{echo.ClientConfig{Server: addrs["tcp"], TCP: true}, &tcpTrace},
	} {
		r := impl.New(echo.NewClient(c.cfg), impl.Options{Trace: c.out, TraceNode: "client", TraceHeader: nodeHeader("echo", "client", "client", c.cfg)})
		for _, m := range []string{"233\n", "hello, echo", strings.Repeat("x", 3000)} {
			r.Command(spec.Command{Name: "send", Data: []byte(m)})
		}
		r.Command(spec.Command{Name: "close"})
		cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := r.Run(cctx); err != nil {
			t.Fatal(err)
		}
		ccancel()
	}
	// A datagram from a well-known port, which the server must drop.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 19}); err == nil {
		_, _ = c.WriteToUDPAddrPort([]byte("chargen says hi"), addrs["udp"])
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/echo-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/echo-impl-udp-client.ndjson", udpTrace.Bytes())
	write(t, "testdata/echo-impl-tcp-client.ndjson", tcpTrace.Bytes())
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", path, len(b))
}

// listensOnWildcard reports whether node, replayed on sockets, listens
// on every address (a server bound to 0.0.0.0 or [::], a peer's TCP
// listener): such a replay runs in a network namespace of its own.
// Clients' ephemeral wildcard binds only answer what they sent to
// loopback.
func listensOnWildcard(tr *conformance.Trace, node string) bool {
	server := false
	for _, n := range tr.Header.Nodes {
		if n.Name == node {
			server = n.Role == "server"
		}
	}
	for _, r := range tr.Records {
		if r.Node != node || r.Out != "bind" {
			continue
		}
		if a, err := netip.ParseAddrPort(r.Addr); err == nil && a.Addr().IsUnspecified() && (server || r.Proto == "tcp") {
			return true
		}
	}
	return false
}
