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
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
)

// TestRecordFile re-records the file service's corpus with -update: a
// simulated run of two clients downloading over a lossy, duplicating,
// reordering network; and, on real loopback sockets, a server with a
// synthetic root, a client that uses the menu and downloads, and garbage
// thrown at the server.
func TestRecordFile(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	sc := &scenario.File{Clients: 2, Size: 30_000, Loss: 0.1, Dup: 0.05, Jitter: 3 * time.Millisecond, Rate: 10e6, Delay: 2 * time.Millisecond}
	recordScenario(t, sc, 11, "testdata/file-sim.ndjson")

	var srvTrace, cliTrace bytes.Buffer
	scfg := file.ServerConfig{
		Addr:    netip.MustParseAddrPort("127.0.0.1:0"),
		Files:   []file.SynthFile{{Name: "hello.bin", Size: 5000, Seed: 1}, {Name: "dir/empty.bin", Size: 0, Seed: 2}},
		Session: rudp.Config{Seed: 21},
	}
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := impl.New(file.NewServer(scfg, nil), impl.Options{
		Trace: &srvTrace, TraceNode: "server", TraceHeader: nodeHeader("file", "server", "server", scfg),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-listening)

	// Garbage and a spoofed-looking open from a real socket first.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		_, _ = c.WriteToUDPAddrPort([]byte("GET / HTTP/1.0\r\n\r\n"), addr)
		_, _ = c.WriteToUDPAddrPort((&rudp.Packet{Type: rudp.TypeSEG, Dst: 99, Ack: 1}).Append(nil), addr)
		c.Close()
		time.Sleep(50 * time.Millisecond)
	}

	ccfg := file.ClientConfig{Server: addr, Session: rudp.Config{Seed: 22}}
	cl := impl.New(file.NewClient(ccfg), impl.Options{Trace: &cliTrace, TraceNode: "client", TraceHeader: nodeHeader("file", "client", "client", ccfg)})
	for _, c := range []spec.Command{{Name: "help"}, {Name: "ls"}, {Name: "get", Args: []string{"hello.bin"}},
		{Name: "get", Args: []string{"../etc/passwd"}}, {Name: "get", Args: []string{"dir/empty.bin"}}, {Name: "time"}, {Name: "exit"}} {
		cl.Command(c)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	if err := cl.Run(cctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // let the server finish the teardown
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/file-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/file-impl-client.ndjson", cliTrace.Bytes())
}
