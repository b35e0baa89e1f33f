package echo_test

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/echo"
)

// Datagrams forged in one echo server's name to another must not set
// them bouncing for ever: on the same port the first server drops them
// at once; on different ports each payload's loop ends after MaxRepeats
// round trips, as many payloads at once as the rate limit lets loop.
func TestForgedDatagramCannotLoop(t *testing.T) {
	for _, tc := range []struct {
		name      string
		portA     uint16
		portB     uint16
		delay     time.Duration // each access link's, one way
		payloads  int           // forged datagrams, each a different payload
		maxEchoes int
	}{
		{"same port", 9999, 9999, time.Millisecond, 1, 0},
		// Each server lets the payload come back MaxRepeats times in a
		// row, then drops it.
		{"different ports", 9999, 7777, time.Millisecond, 1, 2 * (echo.MaxRepeats + 1)},
		// A loop slower than the rate limit (50 a second, over a 20 ms
		// round trip) used to be capped, not ended.
		{"different ports, slow path", 9999, 7777, 5 * time.Millisecond, 1, 2 * (echo.MaxRepeats + 1)},
		// Two loops at once, together under the rate limit (2 x 31 a
		// second): the guard followed one payload per source, so
		// alternating payloads reset it and bounced for ever.
		{"two payloads, slow path", 9999, 7777, 8 * time.Millisecond, 2, 2 * 2 * (echo.MaxRepeats + 1)},
		{"many payloads, over the rate limit", 9999, 7777, 8 * time.Millisecond, echo.RecentPayloads, echo.RecentPayloads * 2 * (echo.MaxRepeats + 1)},
		// More loops than the old 16-entry table, together just under
		// the rate limit (17 per 200 ms, 45 per 460 ms): each payload
		// evicted the oldest, itself, and they bounced for ever.
		{"seventeen payloads under the rate limit", 9999, 7777, 50 * time.Millisecond, 17, 17 * 2 * (echo.MaxRepeats + 1)},
		{"forty-five payloads under the rate limit", 9999, 7777, 115 * time.Millisecond, 45, 45 * 2 * (echo.MaxRepeats + 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.1"), tc.portA)
			b := netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), tc.portB)
			echoes := -tc.payloads // the forged datagrams are sent too
			var last spec.Time
			s := sim.New(sim.Config{Seed: 1, Link: sim.Symmetric(sim.Dir{Delay: tc.delay}), OnNet: func(ev sim.NetEvent) {
				if ev.Kind == sim.NetSend && ev.Proto == spec.UDP {
					echoes++
					last = ev.T
				}
			}})
			for _, ap := range []netip.AddrPort{a, b} {
				cfg := echo.ServerConfig{UDP: ap}
				s.MustAddNode(sim.NodeSpec{Name: ap.Addr().String(), Addr: ap.Addr(), Protocol: "echo", Role: "server", Config: cfg,
					New: func() spec.Machine { return echo.NewServer(cfg) }})
			}
			for i := range tc.payloads {
				s.Inject(10*time.Millisecond, a, b, []byte(fmt.Sprintf("forged datagram %d", i)))
			}
			s.Run(30 * time.Second)
			if echoes > tc.maxEchoes {
				t.Errorf("%d forged datagrams drew %d echoes between the servers in 30 s, want at most %d", tc.payloads, echoes, tc.maxEchoes)
			}
			quiet := max(3*time.Second, time.Duration(echo.MaxRepeats+2)*4*tc.delay+time.Second)
			if echoes > 0 && last.Sub(spec.SimEpoch) > quiet {
				t.Errorf("the servers were still echoing to each other at %v", last.Sub(spec.SimEpoch))
			}
		})
	}
}

// The per-source limit answers a burst, then the rate; sources are
// limited independently; the table never grows past Sources, and a
// source deep in debt (a loop) is not the one forgotten to make room.
func TestSourceRateLimit(t *testing.T) {
	now := spec.SimEpoch
	srv := boundUDP(echo.ServerConfig{UDP: server, SourceRate: 10, SourceBurst: 5, Sources: 4}, now)
	from := func(i int) netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 40000)
	}
	sent := 0
	echoed := func(at spec.Time, src netip.AddrPort, n int) int {
		got := 0
		for range n {
			sent++ // a new payload each time: repeats are another defence
			got += answers(t, srv, at, src, []byte(fmt.Sprint(sent)))
		}
		return got
	}
	if got := echoed(now, from(1), 20); got != 5 {
		t.Fatalf("20 datagrams at once from one source: %d echoed, want the burst of 5", got)
	}
	if got := echoed(now, from(2), 3); got != 3 {
		t.Fatalf("another source was limited too: %d of 3 echoed", got)
	}
	if got := echoed(now.Add(300*time.Millisecond), from(1), 20); got != 3 {
		t.Fatalf("300 ms later at 10/s: %d echoed, want 3", got)
	}
	// Three new sources fill the table; a fourth forgets the one with
	// the most credit (source 3, which sent one datagram), never source
	// 1, which is out of credit.
	later := now.Add(300 * time.Millisecond)
	for i := 3; i <= 6; i++ {
		if got := echoed(later, from(i), 1); got != 1 {
			t.Fatalf("new source %d: %d echoed", i, got)
		}
	}
	if got := echoed(later, from(1), 1); got != 0 {
		t.Fatalf("the source out of credit was forgotten to make room: it got %d more echoes", got)
	}
	var limited uint64
	for _, c := range srv.Counters() {
		if c.Name == "dropped_rate_limited" {
			limited = c.Value
		}
	}
	if limited != 15+17+1 {
		t.Fatalf("dropped_rate_limited = %d, want 33", limited)
	}
}

// Connections whose client half-closes without reading keep counting
// against MaxStreams until the transport has taken their echo: 1,000 of
// them with 1 MiB each cannot get past MaxStreams = 2.
func TestHalfClosedConnectionsStillCount(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{TCP: server, MaxStreams: 2, MaxUnread: 1 << 20})
	now := spec.SimEpoch
	srv.Step(now, spec.Input{Kind: spec.InStart}, nil)
	srv.Step(now, spec.Input{Kind: spec.InBound, Sock: 2, Addr: server}, nil)
	unsent, accepted := 0, 0
	for i := 1; i <= 1000; i++ {
		id := spec.AcceptedStream | spec.Stream(i)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), uint16(40000+i))
		refused := false
		for _, o := range srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: id, Addr: from}, nil) {
			refused = refused || o.Kind == spec.OutAbort
		}
		if refused {
			continue
		}
		accepted++
		for _, o := range srv.Step(now, spec.Input{Kind: spec.InStreamData, Stream: id, Data: make([]byte, 1<<20)}, nil) {
			if o.Kind == spec.OutWrite {
				unsent += len(o.Data)
			}
		}
		closed := false
		for _, o := range srv.Step(now, spec.Input{Kind: spec.InStreamClosed, Stream: id}, nil) {
			closed = closed || (o.Kind == spec.OutClose && o.Stream == id)
		}
		if !closed {
			t.Fatalf("connection %d: the peer's FIN was not answered with our own close", i)
		}
	}
	if accepted != 2 || unsent > 2<<20 {
		t.Fatalf("MaxStreams 2: %d half-closed connections accepted, %d MiB of echo not taken by the transport", accepted, unsent>>20)
	}
	// Once the transport takes a connection's echo it stops counting.
	srv.Step(now, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
	out := srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 1001, Addr: netip.MustParseAddrPort("192.0.2.1:50000")}, nil)
	for _, o := range out {
		if o.Kind == spec.OutAbort {
			t.Fatal("a connection whose echo was flushed still holds its place")
		}
	}
}

// A client resending a datagram whose echo was lost, or a person typing
// the same line again, is answered every time: only a payload that comes
// straight back, round trip after round trip, is taken for a loop.
func TestRepeatsAnsweredUnlessLooping(t *testing.T) {
	now := spec.SimEpoch
	srv := boundUDP(echo.ServerConfig{UDP: server}, now)
	src := netip.MustParseAddrPort("192.0.2.9:40000")
	payload := []byte("same line")
	answered := func(gap time.Duration, n int) int {
		got := 0
		for range n {
			now = now.Add(gap)
			got += answers(t, srv, now, src, payload)
		}
		return got
	}
	if got := answered(echo.RepeatGap, 50); got != 50 {
		t.Errorf("the same payload every %v: %d of 50 answered, want all", echo.RepeatGap, got)
	}
	now = now.Add(echo.RepeatGap)
	if got := answered(20*time.Millisecond, 50); got != echo.MaxRepeats {
		t.Errorf("the same payload every 20 ms: %d of 50 answered, want %d", got, echo.MaxRepeats)
	}
	if got := answered(20*time.Millisecond, 1); got != 0 {
		t.Error("a looping payload was answered again")
	}
	now = now.Add(echo.RepeatGap)
	if got := answered(0, 1); got != 1 {
		t.Error("the payload was not answered after a pause")
	}
	// A payload never seen before starts with no repeats: its first
	// arrival is not one, so MaxRepeats copies in a row are answered.
	payload = []byte("a new line")
	if got := answered(20*time.Millisecond, 50); got != echo.MaxRepeats {
		t.Errorf("a new payload every 20 ms: %d of 50 answered, want %d", got, echo.MaxRepeats)
	}
}

// A source's distinct payloads past the table of RecentPayloads push out
// the one that came longest ago, never a payload that keeps coming
// back: a loop interleaved with a stream of other payloads still ends
// after MaxRepeats.
func TestLoopFollowedPastRecentPayloads(t *testing.T) {
	now := spec.SimEpoch
	srv := boundUDP(echo.ServerConfig{UDP: server}, now)
	src := netip.MustParseAddrPort("192.0.2.9:40000")
	send := func(data string) bool { return answers(t, srv, now, src, []byte(data)) > 0 }
	// Fill the table but for one entry, within the rate limit's burst.
	for i := range echo.RecentPayloads - 1 {
		if !send(fmt.Sprint("filler ", i)) {
			t.Fatalf("filler %d was not answered", i)
		}
	}
	// The loop's payload comes back every 20 ms, another new payload
	// between each round trip (each evicts the one that came longest ago).
	loop := 0
	for i := range 2 * echo.MaxRepeats {
		now = now.Add(10 * time.Millisecond)
		if send("looping") {
			loop++
		}
		now = now.Add(10 * time.Millisecond)
		send(fmt.Sprint("other ", i))
	}
	if loop != echo.MaxRepeats {
		t.Errorf("a looping payload among new ones: answered %d times, want %d", loop, echo.MaxRepeats)
	}
}

// Idle connections do not hold the places for ever: one host gets at
// most MaxPerAddr of them, and a connection that sends nothing and takes
// none of its echo for Idle is reset, in time, while a busy one stays,
// whether it takes its echo or only sends.
func TestIdleConnectionsLoseTheirPlace(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{TCP: server, MaxStreams: 100, MaxPerAddr: 3, Idle: 8 * time.Second})
	now := spec.SimEpoch
	srv.Step(now, spec.Input{Kind: spec.InStart}, nil)
	srv.Step(now, spec.Input{Kind: spec.InBound, Sock: 2, Addr: server}, nil)
	holder := netip.MustParseAddr("192.0.2.66")
	accepted := 0
	var timerAt spec.Time
	for i := 1; i <= 10; i++ {
		from := netip.AddrPortFrom(holder, uint16(40000+i))
		refused := false
		for _, o := range srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | spec.Stream(i), Addr: from}, nil) {
			refused = refused || o.Kind == spec.OutAbort
			if o.Kind == spec.OutSetTimer {
				timerAt = o.At
			}
		}
		if !refused {
			accepted++
		}
	}
	if accepted != 3 {
		t.Fatalf("one address got %d connections, want MaxPerAddr 3", accepted)
	}
	other := spec.AcceptedStream | 100
	for _, o := range srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: other, Addr: netip.MustParseAddrPort("198.51.100.1:5000")}, nil) {
		if o.Kind == spec.OutAbort {
			t.Fatal("another address was refused")
		}
	}
	// A client that keeps sending but never takes its echo is not idle
	// either (it stays under PauseAt and MaxUnread).
	sender := spec.AcceptedStream | 101
	srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: sender, Addr: netip.MustParseAddrPort("198.51.100.2:5000")}, nil)
	// Stream 1 talks now and then and takes its echo; the sender talks
	// and takes nothing; the others never do either.
	var reset []spec.Stream
	for now < spec.SimEpoch.Add(12*time.Second) {
		if timerAt == 0 {
			t.Fatal("no idle sweep is set while connections are held")
		}
		now = timerAt
		srv.Step(now, spec.Input{Kind: spec.InStreamData, Stream: spec.AcceptedStream | 1, Data: []byte("x")}, nil)
		srv.Step(now, spec.Input{Kind: spec.InStreamWritable, Stream: spec.AcceptedStream | 1}, nil)
		srv.Step(now, spec.Input{Kind: spec.InStreamData, Stream: sender, Data: []byte("x")}, nil)
		timerAt = 0
		for _, o := range srv.Step(now, spec.Input{Kind: spec.InTimer, Timer: 1}, nil) {
			switch o.Kind {
			case spec.OutAbort:
				reset = append(reset, o.Stream)
			case spec.OutSetTimer:
				timerAt = o.At
			}
		}
	}
	want := []spec.Stream{spec.AcceptedStream | 2, spec.AcceptedStream | 3, other}
	if fmt.Sprint(reset) != fmt.Sprint(want) {
		t.Fatalf("reset %v, want the idle ones %v", reset, want)
	}
	// Their places are free again.
	for _, o := range srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 11, Addr: netip.AddrPortFrom(holder, 41000)}, nil) {
		if o.Kind == spec.OutAbort {
			t.Fatal("the idle connections' places were not freed")
		}
	}
}

// The server logs each connection's start and end at info level, with
// the client's address, as the seed's did ("Conectado em", "Fechando a
// conexão"); a refused one only at debug level.
func TestConnectionsAreLogged(t *testing.T) {
	srv := echo.NewServer(echo.ServerConfig{TCP: server, MaxStreams: 1})
	now := spec.SimEpoch
	srv.Step(now, spec.Input{Kind: spec.InStart}, nil)
	srv.Step(now, spec.Input{Kind: spec.InBound, Sock: 2, Addr: server}, nil)
	info := func(out []spec.Output) []string {
		var s []string
		for _, o := range out {
			if o.Kind == spec.OutLog && o.Log.Level == slog.LevelInfo {
				line := o.Log.Msg
				for _, a := range o.Log.Attrs {
					line += " " + a.String()
				}
				s = append(s, line)
			}
		}
		return s
	}
	from := "192.0.2.7:40001"
	for _, tc := range []struct {
		in   spec.Input
		want []string
	}{
		{spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 1, Addr: netip.MustParseAddrPort(from)}, []string{"echo: connected from=" + from}},
		{spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 2, Addr: netip.MustParseAddrPort("192.0.2.8:40002")}, nil}, // over MaxStreams
		{spec.Input{Kind: spec.InStreamData, Stream: spec.AcceptedStream | 1, Data: []byte("hi")}, nil},
		{spec.Input{Kind: spec.InStreamClosed, Stream: spec.AcceptedStream | 1}, []string{"echo: connection closed from=" + from}},
		{spec.Input{Kind: spec.InStreamClosed, Stream: spec.AcceptedStream | 1, Err: "reset"}, nil}, // already closing
	} {
		if got := info(srv.Step(now, tc.in, nil)); !slices.Equal(got, tc.want) {
			t.Errorf("%v: info logs %q, want %q", tc.in.Kind, got, tc.want)
		}
	}
	// An idle connection's reset ends it in the log too.
	srv = echo.NewServer(echo.ServerConfig{TCP: server, Idle: time.Second})
	srv.Step(now, spec.Input{Kind: spec.InStart}, nil)
	srv.Step(now, spec.Input{Kind: spec.InBound, Sock: 2, Addr: server}, nil)
	srv.Step(now, spec.Input{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 1, Addr: netip.MustParseAddrPort(from)}, nil)
	want := []string{"echo: connection closed from=" + from + " err=reset: idle"}
	if got := info(srv.Step(now.Add(2*time.Second), spec.Input{Kind: spec.InTimer, Timer: 1}, nil)); !slices.Equal(got, want) {
		t.Errorf("idle reset: info logs %q, want %q", got, want)
	}
}

// boundUDP starts an echo server with cfg, its UDP socket bound on
// server at now.
func boundUDP(cfg echo.ServerConfig, now spec.Time) *echo.Server {
	srv := echo.NewServer(cfg)
	srv.Step(now, spec.Input{Kind: spec.InStart}, nil)
	srv.Step(now, spec.Input{Kind: spec.InBound, Sock: 1, Addr: server}, nil)
	return srv
}

// answers hands srv a datagram from src at now and counts the datagrams
// it sends back; one sent anywhere else fails the test.
func answers(t *testing.T, srv *echo.Server, now spec.Time, src netip.AddrPort, data []byte) int {
	t.Helper()
	got := 0
	for _, o := range srv.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: src, Data: data}, nil) {
		if o.Kind != spec.OutSend {
			continue
		}
		if o.Addr != src {
			t.Fatalf("a datagram from %v drew one to %v", src, o.Addr)
		}
		got++
	}
	return got
}
