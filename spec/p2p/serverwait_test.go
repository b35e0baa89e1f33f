package p2p

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// A peer the server never welcomes gives up after ServerWait with an
// error saying so; without ServerWait it keeps trying.
func TestServerWait(t *testing.T) {
	for _, tc := range []struct {
		name string
		wait time.Duration
		down bool // the server's host is down (SYNs vanish), not merely refusing
	}{
		{"refused, wait 5s", 5 * time.Second, false},
		{"host down, wait 5s", 5 * time.Second, true},
		{"refused, for ever", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var at time.Duration
			s := sim.New(sim.Config{OnExit: func(_ *sim.Node, now spec.Time, _ string) { at = now.Sub(spec.SimEpoch) }})
			s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return idle{} }})
			if tc.down {
				s.Crash(0, "server")
			}
			cfg := PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, ServerWait: tc.wait}
			peer := s.MustAddNode(sim.NodeSpec{Name: "peer", New: func() spec.Machine { return NewPeer(cfg, &MemStore{}) }})
			s.Run(time.Minute)
			exited, why := peer.Exited()
			if tc.wait == 0 {
				if exited {
					t.Fatalf("without ServerWait the peer gave up: %q", why)
				}
				return
			}
			if !exited || !strings.Contains(why, "no welcome from the server 10.0.0.1:52000") {
				t.Fatalf("exited %v %q, want it to give up on the server", exited, why)
			}
			// It tries a last time at the deadline (to the next 100 ms
			// tick) and gives up when that dial fails: refused at once,
			// or after DialTimeout.
			limit := tc.wait + 100*time.Millisecond + 100*time.Millisecond
			if tc.down {
				limit += s.Config().DialTimeout
			}
			if at < tc.wait || at > limit {
				t.Errorf("gave up at %v, want between %v and %v", at, tc.wait, limit)
			}
		})
	}
}

// idle is a host with no sockets: dials to it are refused.
type idle struct{}

func (idle) Step(_ spec.Time, _ spec.Input, out []spec.Output) []spec.Output { return out }
