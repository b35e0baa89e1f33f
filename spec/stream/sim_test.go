package stream_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/stream"
	"github.com/pion/rtcp"
	"pgregory.net/rapid"
)

// session draws how a client's session ends: after a count, after a
// duration, or stopped from outside (Ctrl-C), and adds the client.
func session(t *rapid.T, w *world, name string, cfg stream.ClientConfig, start time.Duration, maxLen time.Duration, countOK bool) {
	var stopAt time.Duration
	defer func() {
		w.addClient(name, cfg, start, nil)
		if stopAt > 0 {
			w.s.Stop(stopAt, name)
		}
	}()
	modes := 3
	if !countOK {
		modes = 2
	}
	switch rapid.IntRange(0, modes-1).Draw(t, name+" ends by") {
	case 0:
		cfg.Duration = time.Duration(rapid.IntRange(100, int(maxLen/time.Millisecond)).Draw(t, name+" duration ms")) * time.Millisecond
	case 1:
		stopAt = start + time.Duration(rapid.IntRange(100, int(maxLen/time.Millisecond)).Draw(t, name+" stopped after ms"))*time.Millisecond
	case 2:
		cfg.Count = uint64(rapid.IntRange(1, 300).Draw(t, name+" count"))
	}
}

// For any loss, duplication, reordering and delay on the data path, every
// client's final statistics, every receiver report it sent and every
// packet it printed equal what the simulator recorded for it: RFC 3550
// A.1/A.3/A.8 and RFC 4737 computed from the ground truth with true
// 64-bit indices; the sum is the sum of the distinct packets delivered;
// the sequence number wraps past 65535 within most runs; lost packets are
// exactly those sent and never delivered; and no client that keeps
// reporting is ever dropped.
func TestStatisticsEqualGroundTruth(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		seed := rapid.Uint64().Draw(t, "seed")
		delay := time.Duration(rapid.IntRange(2, 20).Draw(t, "delay ms")) * time.Millisecond
		base := sim.Dir{Rate: 10e6, Delay: time.Duration(rapid.IntRange(0, 10).Draw(t, "link delay ms")) * time.Millisecond}
		link, f := drawLinkFaults(t, base)
		seq0 := uint16(65535 - rapid.IntRange(0, 400).Draw(t, "packets before the sequence wraps"))
		w := newWorldOn(net, sim.Config{Seed: seed, Link: sim.Symmetric(base)})
		w.addServer(stream.ServerConfig{Addr: serverAddr, Delay: delay, ReportInterval: 200 * time.Millisecond, Seed: seed, InitialSeq: &seq0}, &link)
		n := rapid.IntRange(1, 4).Draw(t, "clients")
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("c%d", i)
			start := time.Duration(rapid.IntRange(0, 1000).Draw(t, name+" joins at ms")) * time.Millisecond
			cfg := stream.ClientConfig{Server: serverAddr, Seed: uint64(i) + seed, JoinTimeout: 50 * time.Millisecond, JoinTries: 40}
			session(t, w, name, cfg, start, 4*time.Second, true)
		}
		w.equalGroundTruth(t, f)
	}, nil)
}

type fataler interface{ Fatalf(string, ...any) }

// equalGroundTruth runs w and judges it as TestStatisticsEqualGroundTruth
// does, for the property and for the runs kept under
// testdata/regressions; faults describes the data path's faults.
func (w *world) equalGroundTruth(t fataler, faults any) {
	w.s.Run(30 * time.Second)
	if v := w.s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	if len(w.violations) > 0 {
		t.Fatalf("%v", w.violations)
	}
	for _, name := range w.names() {
		c := w.clients[name]
		if !c.exited || c.exitErr != "" {
			t.Fatalf("%s: exited=%v err=%q (faults %v)", name, c.exited, c.exitErr, faults)
		}
		if err := c.check(); err != nil {
			t.Fatalf("%v (faults %v)", err, faults)
		}
		checkLostIsTrue(t, c)
		for _, d := range w.departures {
			if d.d.Reason == "expired" && netip.MustParseAddrPort(d.d.Addr).Addr() == c.addr && d.at <= c.exitAt {
				t.Fatalf("%s kept reporting but was dropped at %v", name, d.at.Sub(spec.SimEpoch))
			}
		}
	}
}

// checkLostIsTrue: with one uninterrupted subscription, the server sent
// every index from the client's first to its last delivered packet, and
// RFC 3550's cumulative loss net of duplicates is exactly the number of
// those that never arrived.
func checkLostIsTrue(t fataler, c *clientTruth) {
	if len(c.delivered) == 0 {
		return
	}
	first, last := c.delivered[0].data.Index, c.delivered[0].data.Index
	got := map[uint64]bool{}
	for _, d := range c.delivered {
		first, last = min(first, d.data.Index), max(last, d.data.Index)
		got[d.data.Index] = true
	}
	sent := map[uint64]bool{}
	for _, i := range c.sent {
		sent[i] = true
	}
	base := c.delivered[0].data.Index
	var never int64
	for i := base; i <= last; i++ {
		if !sent[i] {
			t.Fatalf("%s: the server skipped index %d within an uninterrupted subscription", c.name, i)
		}
		if !got[i] {
			never++
		}
	}
	s := c.stats.Sources[0]
	if s.Lost+int64(s.Duplicates)+int64(countBelow(got, base)) != never {
		t.Fatalf("%s: lost %d + duplicates %d + early %d != %d sent and never delivered", c.name, s.Lost, s.Duplicates, countBelow(got, base), never)
	}
}

// countBelow counts delivered indices below the first delivered one
// (reordered ahead of it): A.1 counts them received but not expected.
func countBelow(got map[uint64]bool, base uint64) int {
	n := 0
	for i := range got {
		if i < base {
			n++
		}
	}
	return n
}

// The same equalities hold with loss, duplication and reordering on every
// packet (reports and handshakes too) and partitions: clients may be
// dropped and rejoin, and their statistics still equal the ground truth.
func TestStatisticsUnderGlobalFaults(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		seed := rapid.Uint64().Draw(t, "seed")
		delay := time.Duration(rapid.IntRange(2, 20).Draw(t, "delay ms")) * time.Millisecond
		n := rapid.IntRange(1, 3).Draw(t, "clients")
		var names []string
		for i := 0; i < n; i++ {
			names = append(names, fmt.Sprintf("c%d", i))
		}
		f := sim.DrawFaults(t, sim.FaultBounds{
			MaxLoss: 0.3, MaxDup: 0.2, MaxJitter: 20 * time.Millisecond, Horizon: 3 * time.Second,
			MaxPartitions: 2, Partitionable: append([]string{"server"}, names...),
		})
		w := newWorldOn(net, sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 2 * time.Millisecond}), Faults: f})
		w.addServer(stream.ServerConfig{Addr: serverAddr, Delay: delay, ReportInterval: 100 * time.Millisecond, ExpireAfter: 3, Seed: seed}, nil)
		for i, name := range names {
			start := time.Duration(rapid.IntRange(0, 1000).Draw(t, name+" joins at ms")) * time.Millisecond
			cfg := stream.ClientConfig{Server: serverAddr, Seed: uint64(i) ^ seed, JoinTimeout: 50 * time.Millisecond, JoinTries: 12}
			session(t, w, name, cfg, start, 4*time.Second, false)
		}
		w.underGlobalFaults(t, f)
	}, nil)
}

// underGlobalFaults runs w and judges it as
// TestStatisticsUnderGlobalFaults does.
func (w *world) underGlobalFaults(t fataler, f sim.Faults) {
	w.s.Run(30 * time.Second)
	if v := w.s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	for _, name := range w.names() {
		c := w.clients[name]
		if !c.exited {
			t.Fatalf("%s never finished", name)
		}
		if err := c.check(); err != nil {
			t.Fatalf("%v (faults %v)", err, f)
		}
	}
}

// A forged join names a victim's address: the server answers only with
// challenges, each no larger than the datagram that drew it, so the
// victim never gets more bytes than were sent in its name, and never a
// data packet, while a real client streams as usual.
func TestSpoofedJoinsDrawOnlyChallenges(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		seed := rapid.Uint64().Draw(t, "seed")
		w := newWorldOn(net, sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: time.Millisecond})})
		w.addServer(stream.ServerConfig{Addr: serverAddr, Delay: 10 * time.Millisecond, Seed: seed}, nil)
		w.addClient("real", stream.ClientConfig{Server: serverAddr, Seed: seed, Duration: 3 * time.Second}, 0, nil)
		victim := netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), uint16(rapid.IntRange(1, 65535).Draw(t, "victim port")))
		if rapid.Bool().Draw(t, "victim is a listening client") {
			// A listener that has joined nobody: it must not echo a
			// challenge it did not ask for.
			bc := bystanderConfig{Port: victim.Port()}
			w.s.MustAddNode(sim.NodeSpec{Name: "victim", Addr: victim.Addr(), Protocol: "stream", Role: "bystander", Config: bc, New: func() spec.Machine {
				return &sink{port: bc.Port}
			}})
		}
		k := rapid.IntRange(1, 40).Draw(t, "forged datagrams")
		for i := 0; i < k; i++ {
			at := time.Duration(rapid.IntRange(0, 2000).Draw(t, "forged at ms")) * time.Millisecond
			w.s.Inject(at, victim, serverAddr, forged(t, i))
		}
		w.challengesOnly(t, victim)
	}, nil)
}

// challengesOnly runs w and judges it as TestSpoofedJoinsDrawOnlyChallenges
// does: no data to the victim, no more bytes to it than were forged in
// its name, and a stream for the real client.
func (w *world) challengesOnly(t fataler, victim netip.AddrPort) {
	w.s.Run(5 * time.Second)
	if w.dataTo[victim.Addr()] > 0 {
		t.Fatalf("the server streamed %d data packets to the victim", w.dataTo[victim.Addr()])
	}
	if got, sent := w.toAddr[victim.Addr()], w.fromAddr[victim.Addr()]; got > sent {
		t.Fatalf("the server sent the victim %d bytes for %d forged bytes", got, sent)
	}
	if u := w.unasked[victim.Addr()]; len(u) > 0 {
		t.Fatalf("the server sent the victim %d datagrams each not answering a datagram at least as large: %v", len(u), u)
	}
	if real := w.clients["real"]; real == nil || len(real.delivered) == 0 || real.stats == nil || real.stats.Packets == 0 {
		t.Fatalf("the real client got no stream")
	}
}

// forged draws a hostile datagram sent in a victim's name: HELLOs of any
// size, ECHOs with made-up cookies, reports and BYEs with made-up tokens,
// truncations and garbage.
func forged(t *rapid.T, i int) []byte {
	ssrc := rapid.Uint32().Draw(t, "ssrc")
	var b []byte
	switch rapid.IntRange(0, 6).Draw(t, fmt.Sprintf("forged %d kind", i)) {
	case 0:
		b = stream.EncodeJoin(ssrc, rapid.StringN(0, 200, 255).Draw(t, "cname"), nil)
	case 1:
		b = stream.EncodeJoin(ssrc, "x", rapid.SliceOfN(rapid.Byte(), stream.CookieSize, stream.CookieSize).Draw(t, "cookie"))
	case 2:
		var tally stream.Tally
		copy(tally.Token[:], rapid.SliceOfN(rapid.Byte(), 8, 8).Draw(t, "token"))
		b = stream.EncodeReport(ssrc, "x", nil, tally, rapid.Bool().Draw(t, "bye"), "")
	case 3:
		b = rapid.SliceOfN(rapid.Byte(), 0, 300).Draw(t, "garbage")
	case 4:
		// The smallest valid HELLO: RR + APP, no SDES, no padding.
		b, _ = rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: ssrc},
			&rtcp.ApplicationDefined{SSRC: ssrc, Name: stream.AppName, SubType: stream.AppHello, Data: make([]byte, 4*rapid.IntRange(0, 20).Draw(t, "hello words"))}})
	default:
		b = stream.EncodeJoin(ssrc, "x", nil)
	}
	if cut := rapid.IntRange(0, len(b)).Draw(t, "truncate to"); rapid.Bool().Draw(t, "truncate") {
		b = b[:cut]
	}
	return b
}

// sink binds a port and ignores everything: a bystander.
type sink struct{ port uint16 }

// bystanderConfig is a sink's config in trace headers (role
// "bystander", which only this package's lookup builds).
type bystanderConfig struct {
	Port uint16 `json:"port"`
}

func (s *sink) Step(_ spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if in.Kind == spec.InStart {
		out = append(out, spec.Bind(1, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), s.port)))
	}
	return out
}

// A subscriber that falls silent (its host crashes) is dropped exactly
// ExpireAfter report intervals after the server last heard from it, and
// gets no data after that; one that keeps reporting is never dropped.
func TestSilentSubscribersAreDropped(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		seed := rapid.Uint64().Draw(t, "seed")
		interval := time.Duration(rapid.IntRange(50, 300).Draw(t, "report interval ms")) * time.Millisecond
		expire := rapid.IntRange(2, 6).Draw(t, "expire after intervals")
		n := rapid.IntRange(1, 4).Draw(t, "clients")
		base := sim.Dir{Rate: 10e6, Delay: time.Millisecond}
		link, _ := drawLinkFaults(t, base)
		// The crashes are the network's faults, so that a saved trace
		// carries them.
		var crashes []sim.Crash
		for i := 0; i < n; i++ {
			name := fmt.Sprintf("c%d", i)
			if rapid.Bool().Draw(t, name+" crashes") {
				at := time.Duration(rapid.IntRange(0, 3000).Draw(t, name+" crashes at ms")) * time.Millisecond
				crashes = append(crashes, sim.Crash{Node: name, At: at})
			}
		}
		w := newWorldOn(net, sim.Config{Seed: seed, Link: sim.Symmetric(base), Faults: sim.Faults{Crashes: crashes}})
		scfg := stream.ServerConfig{Addr: serverAddr, Delay: 10 * time.Millisecond, ReportInterval: interval, ExpireAfter: expire, Seed: seed}
		w.addServer(scfg, &link)
		for i := 0; i < n; i++ {
			w.addClient(fmt.Sprintf("c%d", i), stream.ClientConfig{Server: serverAddr, Seed: seed + uint64(i), JoinTimeout: 20 * time.Millisecond, JoinTries: 50, Duration: 6 * time.Second}, 0, nil)
		}
		w.silentDropped(t, scfg, crashes)
	}, nil)
}

// silentDropped runs w and judges it as TestSilentSubscribersAreDropped
// does: a client that crashed (for good) is dropped exactly scfg's
// expiry after the server last heard from it and sent nothing from
// then on; one that did not is never dropped while it runs.
func (w *world) silentDropped(t fataler, scfg stream.ServerConfig, crashes []sim.Crash) {
	crashed := map[string]time.Duration{}
	for _, c := range crashes {
		crashed[c.Node] = c.At
	}
	w.s.Run(10 * time.Second)
	for _, name := range w.names() {
		c := w.clients[name]
		addr := ""
		for _, a := range w.arrivals {
			if netip.MustParseAddrPort(a.Addr).Addr() == c.addr {
				addr = a.Addr
			}
		}
		var deps []departure
		for _, d := range w.departures {
			if d.d.Addr == addr {
				deps = append(deps, d)
			}
		}
		_, didCrash := crashed[name]
		if !didCrash {
			for _, d := range deps {
				if d.d.Reason == "expired" && d.at <= c.exitAt {
					t.Fatalf("%s kept reporting and was dropped at %v", name, d.at.Sub(spec.SimEpoch))
				}
			}
			continue
		}
		if addr == "" {
			continue // crashed before it subscribed
		}
		if len(deps) != 1 || deps[0].d.Reason != "expired" {
			t.Fatalf("%s crashed at %v; departures %+v", name, crashed[name], deps)
		}
		last := w.lastConsent[addr]
		expiry := time.Duration(scfg.ExpireAfter) * scfg.ReportInterval // the configured values, not the code under test
		want := last.Add(expiry)
		if deps[0].at != want {
			t.Fatalf("%s: last heard at %v, dropped at %v, want exactly %v later", name, last.Sub(spec.SimEpoch), deps[0].at.Sub(spec.SimEpoch), expiry)
		}
		for _, r := range w.replies {
			if r.to.String() == addr && r.at >= deps[0].at {
				t.Fatalf("%s: the server sent it %d bytes at %v, when or after it expired", name, r.size, r.at.Sub(spec.SimEpoch))
			}
		}
	}
}

// A long stream crosses the 16-bit sequence space several times: the
// extended highest sequence number counts the cycles and the statistics
// still equal the ground truth.
func TestWraparoundManyCycles(t *testing.T) {
	seq0 := uint16(65000)
	w := newWorld(sim.Config{Seed: 7, Link: sim.Symmetric(sim.Dir{Delay: time.Millisecond, Jitter: 3 * time.Millisecond, Loss: 0.01, Dup: 0.01})})
	w.addServer(stream.ServerConfig{Addr: serverAddr, Delay: time.Millisecond, ReportInterval: time.Second, Seed: 7, InitialSeq: &seq0}, nil)
	c := w.addClient("c", stream.ClientConfig{Server: serverAddr, Seed: 1, Count: 140_000, JoinTries: 100}, 0, nil)
	w.s.Run(10 * time.Minute)
	if !c.exited || c.stats == nil {
		t.Fatal("the client did not finish")
	}
	if err := c.check(); err != nil {
		t.Fatal(err)
	}
	s := c.stats.Sources[0]
	if s.Cycles < 2 {
		t.Fatalf("crossed %d cycles, want >= 2 (ext max %d)", s.Cycles, s.ExtMax)
	}
	t.Logf("%d packets, ext max %d (%d cycles), lost %d, dups %d, reordered %d, jitter %d", c.stats.Packets, s.ExtMax, s.Cycles, s.Lost, s.Duplicates, s.Reordered, s.Jitter)
}

// When the server crashes and restarts it is a new RTP source; clients
// notice the silence, join again, and receive the new source's stream;
// every packet printed was delivered and is printed once.
func TestClientsRecoverFromServerRestart(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		seed := rapid.Uint64().Draw(t, "seed")
		n := rapid.IntRange(1, 3).Draw(t, "clients")
		f := sim.DrawFaults(t, sim.FaultBounds{MaxLoss: 0.2, MaxDup: 0.2, MaxJitter: 10 * time.Millisecond, Horizon: 3 * time.Second, MaxCrashes: 2, Crashable: []string{"server"}})
		w := newWorldOn(net, sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: time.Millisecond}), Faults: f})
		w.addServer(stream.ServerConfig{Addr: serverAddr, Delay: 10 * time.Millisecond, ReportInterval: 100 * time.Millisecond, ExpireAfter: 3, Seed: seed}, nil)
		for i := 0; i < n; i++ {
			w.addClient(fmt.Sprintf("c%d", i), stream.ClientConfig{Server: serverAddr, Seed: seed + uint64(i), JoinTimeout: 50 * time.Millisecond, JoinTries: 20, Duration: 8 * time.Second}, 0, nil)
		}
		w.recovers(t)
	}, nil)
}

// recovers runs w and judges it as TestClientsRecoverFromServerRestart
// does.
func (w *world) recovers(t fataler) {
	w.s.Run(20 * time.Second)
	srv, up := w.s.Node("server").Machine().(*stream.Server)
	for _, name := range w.names() {
		c := w.clients[name]
		if c.stats == nil {
			t.Fatalf("%s: no statistics (exit %q)", name, c.exitErr)
		}
		st := c.stats
		if !up {
			// The server stayed down: the client gave up or ran out
			// its time, either way with its statistics.
			if !c.exited {
				t.Fatalf("%s did not finish", name)
			}
		} else if c.exitErr != "" || len(st.Sources) == 0 || st.Sources[len(st.Sources)-1].SSRC != srv.SSRC() || !st.Sources[len(st.Sources)-1].Valid {
			t.Fatalf("%s (exit %q) never received the restarted server's stream %08x: %+v", name, c.exitErr, srv.SSRC(), st.Sources)
		}
		var sum uint64
		printed := map[[2]uint64]bool{}
		delivered := map[[2]uint64]bool{}
		for _, d := range c.delivered {
			delivered[[2]uint64{uint64(d.data.SSRC), d.data.Index}] = true
		}
		for _, p := range c.packets {
			k := [2]uint64{uint64(p.SSRC), p.Index}
			if printed[k] || !delivered[k] {
				t.Fatalf("%s printed packet %v twice or without its delivery", name, k)
			}
			printed[k] = true
			sum += p.Data
		}
		if sum != st.Sum || uint64(len(c.packets)) != st.Packets {
			t.Fatalf("%s: sum %d over %d packets, statistics say %d over %d", name, sum, len(c.packets), st.Sum, st.Packets)
		}
	}
}
