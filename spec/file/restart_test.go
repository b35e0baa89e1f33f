package file_test

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
)

// A server that crashes and restarts mid-download answers the client's
// next keepalive with a RST naming the session it no longer knows; the
// client must take it (it names the server's id, not the client's) and
// fail at once, not wait out the 30 s idle timeout.
func TestClientLearnsServerRestarted(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.1:6000")
	var failedAt time.Duration
	var why string
	s := sim.New(sim.Config{
		Seed:   1,
		Link:   sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}),
		Faults: sim.Faults{Crashes: []sim.Crash{{Node: "server", At: 500 * time.Millisecond, Restart: 600 * time.Millisecond}}},
		OnEvent: func(n *sim.Node, now spec.Time, ev spec.Event) {
			if ev.Name == "file-error" && failedAt == 0 {
				failedAt, why = now.Sub(spec.SimEpoch), ev.Text
			}
		},
	})
	scfg := file.ServerConfig{Addr: server, Files: []file.SynthFile{{Name: "f", Size: 4 << 20, Seed: 1}}, Session: rudp.Config{Seed: 2}}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), New: func() spec.Machine { return file.NewServer(scfg, nil) }})
	ccfg := file.ClientConfig{Server: server, Session: rudp.Config{Seed: 3}}
	s.MustAddNode(sim.NodeSpec{Name: "client", New: func() spec.Machine { return file.NewClient(ccfg) }})
	s.Command(0, "client", spec.Command{Name: "get", Args: []string{"f"}})
	s.Run(time.Minute)
	const keepalive = 5 * time.Second // rudp's default
	if failedAt == 0 || failedAt > 600*time.Millisecond+keepalive+time.Second {
		t.Fatalf("the client failed at %v (%q); want within a keepalive (%v) and a round trip of the restart at 600ms", failedAt, why, keepalive)
	}
	if !strings.Contains(why, "reset") && !strings.Contains(why, "unknown") {
		t.Errorf("the client failed for another reason: %q", why)
	}
	t.Logf("client failed at %v: %s", failedAt, why)
}
