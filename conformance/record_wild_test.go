package conformance_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/echo"
)

// TestRecordEchoWildcard re-records, with -update, an echo server
// listening on 0.0.0.0 that clients reach at two other loopback
// addresses: its trace records each datagram's Local, and replaying it
// on sockets must deliver each datagram to that address and see the
// answer leave from it.
func TestRecordEchoWildcard(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	if !nettest.PrivateNet(t) {
		return
	}
	var tr bytes.Buffer
	cfg := echo.ServerConfig{UDP: netip.MustParseAddrPort("0.0.0.0:0")}
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := impl.New(echo.NewServer(cfg), impl.Options{
		Trace: &tr, TraceNode: "server", TraceHeader: nodeHeader("echo", "server", "server", cfg),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- ev.Text
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	port := netip.MustParseAddrPort(strings.Fields(<-listening)[1]).Port()
	for _, dst := range []string{"127.0.0.2", "127.0.0.3"} {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(dst), port)))
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range []string{"to " + dst, "again"} {
			if _, err := c.Write([]byte(m)); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			buf := make([]byte, 64)
			if n, err := c.Read(buf); err != nil || string(buf[:n]) != m {
				t.Fatalf("echo via %s: %q, %v", dst, buf[:n], err)
			}
		}
		c.Close()
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tr.String(), `"local":"127.0.0.3"`) {
		t.Fatalf("the trace records no local address:\n%s", tr.String())
	}
	write(t, "testdata/echo-impl-wild-server.ndjson", tr.Bytes())
}
