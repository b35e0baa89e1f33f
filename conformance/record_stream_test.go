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
	"github.com/netspec/netspec/spec/stream"
)

// TestRecordStream re-records the stream corpus with -update: a simulated
// run with loss, duplication, reordering, a listener whose host dies and
// forged joins; and a server and a listener on real loopback sockets,
// with a forged-size join and garbage thrown at the server.
func TestRecordStream(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	sc := &scenario.Stream{Clients: 2, Delay: 100 * time.Millisecond, Duration: 1500 * time.Millisecond, Loss: 0.1, Dup: 0.05,
		Jitter: 150 * time.Millisecond, Report: 200 * time.Millisecond, Expire: 3, Silent: true, Spoof: 4}
	recordScenario(t, sc, 11, "testdata/stream-sim.ndjson")

	var srvTrace, cliTrace bytes.Buffer
	scfg := stream.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Delay: 20 * time.Millisecond, ReportInterval: 100 * time.Millisecond,
		Secret: []byte("conformance corpus secret"), Seed: 3}
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := impl.New(stream.NewServer(scfg), impl.Options{
		Trace: &srvTrace, TraceNode: "server", TraceHeader: nodeHeader("stream", "server", "server", scfg),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-listening)

	// Hostile input first: garbage, and a HELLO too small to be answered.
	if c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr)); err == nil {
		_, _ = c.Write([]byte("not rtcp"))
		_, _ = c.Write(stream.EncodeJoin(1, "x", nil)[:20])
		c.Close()
	}
	ccfg := stream.ClientConfig{Server: addr, Count: 12, Seed: 4}
	cli := impl.New(stream.NewClient(ccfg), impl.Options{Trace: &cliTrace, TraceNode: "client", TraceHeader: nodeHeader("stream", "client", "client", ccfg)})
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := cli.Run(cctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // let the goodbye reach the server
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/stream-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/stream-impl-client.ndjson", cliTrace.Bytes())
}
