package p2p

import (
	"bytes"
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

// A welcomed peer outlives the server's absence, but not for ever: one
// that has lost the server and gets no chunk from anyone for ServerWait
// gives up, saying so; a server back within it is reconnected to and the
// download ends verified.
func TestWelcomedPeerGivesUpOnAGoneServer(t *testing.T) {
	const wait = 5 * time.Second
	for _, tc := range []struct {
		name    string
		restart time.Duration // 0: never
	}{
		{"server gone for good", 0},
		{"server back in time", 4 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var at time.Duration
			s := sim.New(sim.Config{Link: sim.Symmetric(sim.Dir{Rate: 1e6, Delay: time.Millisecond}),
				OnExit: func(_ *sim.Node, now spec.Time, _ string) { at = now.Sub(spec.SimEpoch) }})
			data := make([]byte, 2_000_000)
			for i := range data {
				data[i] = byte(i * 7)
			}
			scfg := ServerConfig{Addr: netip.MustParseAddrPort("10.0.0.1:52000")}
			s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine {
				srv, err := NewServerOf(scfg, data)
				if err != nil {
					t.Fatal(err)
				}
				return srv
			}})
			s.Crash(2*time.Second, "server")
			if tc.restart > 0 {
				s.Restart(tc.restart, "server")
			}
			cfg := PeerConfig{Server: scfg.Addr, Seed: 1, ServerWait: wait}
			peer := s.MustAddNode(sim.NodeSpec{Name: "peer", New: func() spec.Machine { return NewPeer(cfg, &MemStore{}) }})
			s.Run(2 * time.Minute)
			exited, why := peer.Exited()
			if tc.restart > 0 {
				if !exited || why != "" {
					t.Fatalf("exited %v %q, want a verified download", exited, why)
				}
				return
			}
			if !exited || !strings.Contains(why, "no chunk came from anyone for 5s; the server 10.0.0.1:52000") {
				t.Fatalf("exited %v %q, want it to give up on the server", exited, why)
			}
			// It notices at a reconnection attempt: backoff at most 8s,
			// and a dial to a down host takes DialTimeout to fail.
			if limit := 2*time.Second + wait + 8*time.Second + s.Config().DialTimeout; at < 2*time.Second+wait || at > limit {
				t.Errorf("gave up at %v, want between %v and %v", at, 2*time.Second+wait, limit)
			}
		})
	}
}

// brokenServer welcomes every connection and then breaks the framing.
type brokenServer struct{ accepts int }

func (b *brokenServer) Step(_ spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("10.0.0.1:52000")))
	case spec.InAccepted:
		b.accepts++
	case spec.InStreamData:
		out = append(out, spec.Write(in.Stream, []byte("SHEL 100 10\r\n[]\r\nDATA 0 99999999999\r\n")))
	}
	return out
}

// A server that welcomes and then breaks the protocol is retried with a
// growing backoff (its welcome used to reset it: a reconnection every
// Retry, for ever), and given up on after ServerWait without a chunk.
func TestBrokenServerBacksOff(t *testing.T) {
	b := &brokenServer{}
	exited, why, at := peerAgainst(b, 30*time.Second, 2*time.Minute)
	if !exited || !strings.Contains(why, "no chunk came from anyone for 30s") || !strings.Contains(why, "it last broke the protocol: p2p: bad DATA header") {
		t.Fatalf("exited %v %q after %d connections, want it to give up on the server", exited, why, b.accepts)
	}
	// 250 ms doubling to 8 s: about ten tries in 30 s, where a
	// reconnection every 250 ms made 120.
	if b.accepts > 15 || at > 45*time.Second {
		t.Errorf("%d connections to the broken server, giving up at %v", b.accepts, at)
	}
}

// silentServer welcomes every connection and then says nothing at all,
// its connections open.
type silentServer struct{}

func (silentServer) Step(_ spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("10.0.0.1:52000")))
	case spec.InStreamData:
		if bytes.HasPrefix(in.Data, []byte("CHEL")) {
			out = append(out, spec.Write(in.Stream, []byte("SHEL 100000 1000\r\n[]\r\n")))
		}
	}
	return out
}

// A server that welcomes and then goes silent, connection open, is given
// up on after ServerWait too (the give-up was only checked when the
// server's connection was lost).
func TestSilentServerGivenUpOn(t *testing.T) {
	exited, why, at := peerAgainst(silentServer{}, 5*time.Second, time.Minute)
	if !exited || !strings.Contains(why, "no chunk came from anyone for 5s; the server 10.0.0.1:52000: connected") {
		t.Fatalf("exited %v %q, want it to give up on the silent server", exited, why)
	}
	if at < 5*time.Second || at > 6*time.Second {
		t.Errorf("gave up at %v, want ServerWait after the welcome", at)
	}
}

// muteServer accepts connections and never says anything.
type muteServer struct{}

func (muteServer) Step(_ spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if in.Kind == spec.InStart {
		out = append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("10.0.0.1:52000")))
	}
	return out
}

// A server that accepts and never welcomes is given up on at ServerWait,
// not when the connection's own hello timeout (10 s) runs out.
func TestMuteServerGivenUpOnAtServerWait(t *testing.T) {
	exited, why, at := peerAgainst(muteServer{}, 3*time.Second, time.Minute)
	if !exited || !strings.Contains(why, "no welcome from the server 10.0.0.1:52000 in 3s (1 tries)") {
		t.Fatalf("exited %v %q, want it to give up on the server", exited, why)
	}
	if at < 3*time.Second || at > 3*time.Second+200*time.Millisecond {
		t.Errorf("gave up at %v, want at ServerWait", at)
	}
}

// peerAgainst runs one peer with ServerWait wait against server (on
// 10.0.0.1:52000) for run, and says whether and why it exited, and when.
func peerAgainst(server spec.Machine, wait, run time.Duration) (exited bool, why string, at time.Duration) {
	s := sim.New(sim.Config{OnExit: func(_ *sim.Node, now spec.Time, _ string) { at = now.Sub(spec.SimEpoch) }})
	s.MustAddNode(sim.NodeSpec{Name: "server", New: func() spec.Machine { return server }})
	cfg := PeerConfig{Server: netip.MustParseAddrPort("10.0.0.1:52000"), Seed: 1, ServerWait: wait}
	peer := s.MustAddNode(sim.NodeSpec{Name: "peer", New: func() spec.Machine { return NewPeer(cfg, &MemStore{}) }})
	s.Run(run)
	exited, why = peer.Exited()
	return exited, why, at
}
