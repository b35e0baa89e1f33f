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
	"github.com/netspec/netspec/spec/tftp"
)

// TestRecordTFTP re-records the TFTP corpus with -update: a simulated run
// of two clients getting a file in windows of 4 (one putting it back)
// over a lossy, duplicating, reordering network; and, on real loopback
// sockets, a server with a synthetic root and a client that negotiates
// options, downloads, is refused a missing file and uploads, with
// garbage and hostile requests thrown at the server first.
func TestRecordTFTP(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	sc := &scenario.TFTP{Clients: 2, Size: 8_000, Blksize: 512, Windowsize: 4, Put: true, Loss: 0.1, Dup: 0.05,
		Jitter: 3 * time.Millisecond, Rate: 10e6, Delay: 2 * time.Millisecond}
	recordScenario(t, sc, 11, "testdata/tftp-sim.ndjson")

	var srvTrace, cliTrace bytes.Buffer
	files := []file.SynthFile{{Name: "boot/pxelinux.0", Size: 3000, Seed: 1}, {Name: "empty", Size: 0, Seed: 2}}
	scfg := tftp.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Files: files, AllowWrite: true}
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := impl.New(tftp.NewServer(scfg, nil, nil), impl.Options{
		Trace: &srvTrace, TraceNode: "server", TraceHeader: nodeHeader("tftp", "server", "server", scfg), ReadBatch: 1,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-listening)

	// Garbage, a stray ACK, a request for a name outside the root and a
	// netascii request, from a real socket; each is dropped or refused.
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err == nil {
		for _, b := range [][]byte{
			[]byte("GET / HTTP/1.0\r\n\r\n"),
			tftp.AppendAck(nil, 1),
			tftp.Packet{Op: tftp.OpRRQ, Filename: "../etc/passwd", Mode: "octet"}.Append(nil),
			tftp.Packet{Op: tftp.OpRRQ, Filename: "empty", Mode: "netascii"}.Append(nil),
		} {
			_, _ = c.WriteToUDPAddrPort(b, addr)
			time.Sleep(20 * time.Millisecond)
		}
		c.Close()
	}

	ccfg := tftp.ClientConfig{Server: addr, Blksize: 1000, Windowsize: 2, Files: files}
	cl := impl.New(tftp.NewClient(ccfg, nil), impl.Options{Trace: &cliTrace, TraceNode: "client", TraceHeader: nodeHeader("tftp", "client", "client", ccfg), ReadBatch: 1})
	for _, c := range []spec.Command{
		{Name: "get", Args: []string{"boot/pxelinux.0"}},
		{Name: "get", Args: []string{"missing"}},
		{Name: "get", Args: []string{"empty"}},
		{Name: "put", Args: []string{"upload/copy", "boot/pxelinux.0"}},
		{Name: "exit"},
	} {
		cl.Command(c)
	}
	cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer ccancel()
	if err := cl.Run(cctx); err == nil || err.Error() != "tftp: get missing: server: file not found (error 1)" {
		t.Fatalf("client: %v", err)
	}
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/tftp-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/tftp-impl-client.ndjson", cliTrace.Bytes())
}
