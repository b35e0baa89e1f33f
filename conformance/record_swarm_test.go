package conformance_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
	"github.com/netspec/netspec/spec/trace"
)

// TestRecordSwarm re-records seed 001's corpus with -update: simulated
// C/S and P2P runs of the swarm scenario over a lossy network, and on
// real loopback sockets a C/S server and client, and a P2P server with
// two peers (one speaking only the seed's protocol, the other in the
// distribution trees) plus a seed-style client typing at the server.
func TestRecordSwarm(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	for _, mode := range []string{"cs", "p2p"} {
		var buf bytes.Buffer
		sc := &scenario.Swarm{FileSize: 20_000, ChunkSize: 4096, N: "2", Mode: mode, Loss: 0.03, Rate: 10e6, Delay: 2 * time.Millisecond, MTU: 1500, Trees: 2}
		res, err := sc.Run(scenario.Options{Seed: 5, Trace: &buf})
		if err != nil || res.Failed != "" {
			t.Fatalf("%s scenario: %v %s", mode, err, res.Failed)
		}
		write(t, "testdata/"+mode+"-sim.ndjson", buf.Bytes())
	}
	recordCS(t)
	recordP2P(t)
}

// startSwarmServer runs m on sockets, recording into tr, and returns its
// address and a function that stops it.
func startSwarmServer(t *testing.T, m spec.Machine, tr *bytes.Buffer, h trace.Header) (netip.AddrPort, func()) {
	t.Helper()
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := impl.New(m, impl.Options{
		Trace: tr, TraceNode: "server", TraceHeader: h,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-listening)
	return addr, func() {
		time.Sleep(100 * time.Millisecond) // let the last streams finish
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func recordCS(t *testing.T) {
	var srvTrace, cliTrace bytes.Buffer
	file := cs.FileSpec{Seed: 3, Size: 9000}
	data, _ := cs.Generate(file)
	scfg := cs.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), File: file, Piece: 4000}
	addr, stop := startSwarmServer(t, cs.NewServer(scfg, data), &srvTrace, nodeHeader("cs", "server", "server", scfg))
	// A client that sends bytes the server must ignore, then half-closes:
	// it still gets the whole file.
	if c, err := net.Dial("tcp4", addr.String()); err == nil {
		_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got bytes.Buffer
		_, _ = got.ReadFrom(c)
		c.Close()
		if !bytes.Equal(got.Bytes(), data) {
			t.Fatalf("a half-closed client got %d bytes, want %d", got.Len(), len(data))
		}
	}
	ccfg := cs.ClientConfig{Server: addr, Keep: true, Expect: &file}
	cl := impl.New(cs.NewClient(ccfg, data), impl.Options{Trace: &cliTrace, TraceNode: "client", TraceHeader: nodeHeader("cs", "client", "client", ccfg)})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cl.Run(ctx); err != nil {
		t.Fatal(err)
	}
	stop()
	write(t, "testdata/cs-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/cs-impl-client.ndjson", cliTrace.Bytes())
}

func recordP2P(t *testing.T) {
	var srvTrace bytes.Buffer
	file := cs.FileSpec{Seed: 4, Size: 10_000}
	data, _ := cs.Generate(file)
	content, _ := p2p.NewContent(data, 2048)
	// Two places in the trees, for the one peer that takes one: it is
	// fed one tree by the server and pulls the other when it stalls.
	scfg := p2p.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), File: file, ChunkSize: 2048, Seed: 1, Expect: 2}
	addr, stop := startSwarmServer(t, p2p.NewServer(scfg, content), &srvTrace, nodeHeader("p2p", "server", "server", scfg))

	// A seed-style client typing at the server: a request before CHEL,
	// junk, a chunk past the end, a chunk, a good CHECK.
	if c, err := net.Dial("tcp4", addr.String()); err == nil {
		sum := cs.Digest(data)
		var req bytes.Buffer
		req.WriteString("CLREQ\r\nCHEL 40000\r\nBOGUS\r\nDREQ 99\r\nDREQ 4\r\n")
		req.Write(p2p.AppendCHECK(nil, sum))
		_, _ = c.Write(req.Bytes())
		_ = c.(*net.TCPConn).CloseWrite()
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		var got bytes.Buffer
		_, _ = got.ReadFrom(c)
		c.Close()
		if !bytes.Contains(got.Bytes(), []byte("ERROR OFFSET_OVERFLOW")) || !bytes.HasSuffix(got.Bytes(), p2p.AppendCHECK(nil, sum)) {
			t.Fatalf("the seed-style client got %q", got.Bytes())
		}
	}

	var peers [2]bytes.Buffer
	done := make(chan error, 2)
	for i := range peers {
		cfg := p2p.PeerConfig{Server: addr, Listen: netip.MustParseAddrPort("127.0.0.1:0"), Seed: uint64(i + 1), Legacy: i == 1, Linger: 1500 * time.Millisecond, TreeStall: 200 * time.Millisecond}
		r := impl.New(p2p.NewPeer(cfg, &p2p.MemStore{}), impl.Options{Trace: &peers[i], TraceNode: "peer", TraceHeader: nodeHeader("p2p", "peer", "peer", cfg)})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			done <- r.Run(ctx)
		}()
		time.Sleep(50 * time.Millisecond) // join one after the other
	}
	for range peers {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	stop()
	write(t, "testdata/p2p-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/p2p-impl-peer.ndjson", peers[0].Bytes())
	write(t, "testdata/p2p-impl-legacy-peer.ndjson", peers[1].Bytes())
}
