package conformance_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec/all"
)

// A port the trace recorded may be held, on the wildcard address, by
// another process's socket (a test running beside this one): the replay
// waits it out when it is freed, and says so when it is not.
func TestReplayWhenARecordedPortIsTaken(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	f, err := os.Open("testdata/echo-impl-server.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := conformance.Parse(f)
	if err != nil {
		t.Fatal(err)
	}
	var port uint16
	udp := map[uint32]bool{}
	for _, r := range tr.NodeRecords("server") {
		if r.Out == "bind" && r.Proto == "udp" {
			udp[r.Sock] = true
		}
		if a, err := netip.ParseAddrPort(r.Addr); err == nil && r.In == "bound" && udp[r.Sock] {
			port = a.Port()
		}
	}
	if port == 0 {
		t.Fatal("the trace records no bound UDP port")
	}
	for _, tc := range []struct {
		name string
		hold time.Duration // how long the port stays taken
		ok   bool
	}{
		{"freed soon", 300 * time.Millisecond, true},
		{"held throughout", time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: int(port)})
			if err != nil {
				t.Fatalf("take the port: %v", err)
			}
			timer := time.AfterFunc(tc.hold, func() { c.Close() })
			defer func() {
				timer.Stop()
				c.Close()
			}()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = conformance.ReplayImpl(ctx, tr, "server", all.Lookup, conformance.ImplOptions{Timeout: 2 * time.Second})
			switch {
			case tc.ok && err != nil:
				t.Fatalf("replay after the port was freed: %v", err)
			case !tc.ok && !errors.Is(err, syscall.EADDRINUSE):
				t.Fatalf("replay with the port taken throughout: %v; want an error wrapping EADDRINUSE", err)
			}
		})
	}
}
