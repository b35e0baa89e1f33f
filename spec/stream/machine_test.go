package stream_test

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/stream"
	"github.com/pion/rtcp"
)

var (
	alice = netip.MustParseAddrPort("10.0.0.2:40000")
	bob   = netip.MustParseAddrPort("10.0.0.3:40000")
)

// rig steps one machine by hand.
type rig struct {
	t   *testing.T
	m   spec.Machine
	now spec.Time
	out []spec.Output
}

func (r *rig) step(in spec.Input) []spec.Output {
	r.out = r.m.Step(r.now, in, r.out[:0])
	return r.out
}

func (r *rig) at(d time.Duration) *rig { r.now = spec.SimEpoch.Add(d); return r }

func (r *rig) datagram(from netip.AddrPort, b []byte) []spec.Output {
	return r.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: b})
}

func sends(out []spec.Output, to netip.AddrPort) [][]byte {
	var b [][]byte
	for _, o := range out {
		if o.Kind == spec.OutSend && o.Addr == to {
			b = append(b, o.Data)
		}
	}
	return b
}

func kinds(out []spec.Output, k spec.OutKind) []spec.Output {
	var r []spec.Output
	for _, o := range out {
		if o.Kind == k {
			r = append(r, o)
		}
	}
	return r
}

func newServerRig(t *testing.T, cfg stream.ServerConfig) *rig {
	if !cfg.Addr.IsValid() {
		cfg.Addr = serverAddr
	}
	r := &rig{t: t, m: stream.NewServer(cfg), now: spec.SimEpoch}
	r.step(spec.Input{Kind: spec.InStart})
	r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: cfg.Addr})
	return r
}

// subscribe runs the handshake for from and returns the token.
func (r *rig) subscribe(from netip.AddrPort, ssrc uint32) [stream.TokenSize]byte {
	r.t.Helper()
	hello := stream.EncodeJoin(ssrc, "cn", nil)
	got := sends(r.datagram(from, hello), from)
	if len(got) != 1 {
		r.t.Fatalf("hello drew %d datagrams", len(got))
	}
	c, err := stream.DecodeControl(got[0])
	if err != nil || c.App == nil || c.App.Subtype != stream.AppChallenge {
		r.t.Fatalf("hello drew %+v, %v; want a challenge", c, err)
	}
	got = sends(r.datagram(from, stream.EncodeJoin(ssrc, "cn", c.App.Data)), from)
	if len(got) != 1 {
		r.t.Fatalf("echo drew %d datagrams", len(got))
	}
	c, _ = stream.DecodeControl(got[0])
	if c.App == nil || c.App.Subtype != stream.AppWelcome {
		r.t.Fatalf("echo drew %+v; want a welcome", c)
	}
	w, err := stream.DecodeWelcome(c.App.Data)
	if err != nil {
		r.t.Fatal(err)
	}
	return w.Token
}

func report(ssrc uint32, tok [stream.TokenSize]byte, bye bool) []byte {
	return stream.EncodeReport(ssrc, "cn", &rtcp.ReceptionReport{SSRC: 1}, stream.Tally{Token: tok, Packets: 3, Sum: 12}, bye, "done")
}

// Before the cookie comes back the server answers a HELLO with one
// challenge no larger than the HELLO, streams to nobody, and keeps no
// state; after it, the address gets a WELCOME and the stream.
func TestServerHandshake(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{Delay: 10 * time.Millisecond})
	hello := stream.EncodeJoin(7, "cn", nil)
	out := r.datagram(alice, hello)
	if len(out) != 1 || out[0].Kind != spec.OutSend || len(out[0].Data) > len(hello) {
		t.Fatalf("hello drew %v", out)
	}
	r.at(10 * time.Millisecond)
	if got := sends(r.step(spec.Input{Kind: spec.InTimer, Timer: 1}), alice); len(got) != 0 {
		t.Fatalf("streamed %d packets to an unvalidated address", len(got))
	}
	r.subscribe(alice, 7)
	r.at(20 * time.Millisecond)
	got := sends(r.step(spec.Input{Kind: spec.InTimer, Timer: 1}), alice)
	if len(got) != 1 {
		t.Fatalf("subscriber got %d packets at its first tick", len(got))
	}
	d, err := stream.DecodeData(got[0])
	if err != nil || d.Index != 2 || d.Value != 6 {
		t.Fatalf("data %+v, %v; want index 2", d, err)
	}
	// An ECHO with a cookie made for another address or SSRC is only
	// challenged again.
	ch, _ := stream.DecodeControl(sends(r.datagram(bob, stream.EncodeJoin(8, "cn", nil)), bob)[0])
	for _, try := range []struct {
		from netip.AddrPort
		ssrc uint32
	}{{alice, 8}, {bob, 9}} {
		got := sends(r.datagram(try.from, stream.EncodeJoin(try.ssrc, "cn", ch.App.Data)), try.from)
		c, _ := stream.DecodeControl(got[0])
		if len(got) != 1 || c.App.Subtype != stream.AppChallenge {
			t.Fatalf("a stolen cookie from %v/%d drew %v", try.from, try.ssrc, c.App)
		}
	}
	// A stale cookie is challenged again too.
	r.at(time.Minute)
	got = sends(r.datagram(bob, stream.EncodeJoin(8, "cn", ch.App.Data)), bob)
	if c, _ := stream.DecodeControl(got[0]); c.App.Subtype != stream.AppChallenge {
		t.Fatalf("a stale cookie drew %v", c.App)
	}
}

// Too many joins in a second are dropped, with one warning line a second
// that says how many.
func TestServerJoinRateLimit(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{JoinRate: 5})
	challenges, warns := 0, []string{}
	for i := 0; i < 20; i++ {
		from := netip.AddrPortFrom(alice.Addr(), uint16(1000+i))
		out := r.datagram(from, stream.EncodeJoin(uint32(i), "cn", nil))
		challenges += len(sends(out, from))
		for _, l := range kinds(out, spec.OutLog) {
			if l.Log.Level > 0 {
				warns = append(warns, l.Log.Msg)
			}
		}
	}
	if challenges != 5 || len(warns) != 1 || !strings.Contains(warns[0], "rate limit") {
		t.Fatalf("%d challenges and warnings %q; want 5 and one rate-limit line", challenges, warns)
	}
	r.at(time.Second)
	if got := sends(r.datagram(alice, stream.EncodeJoin(1, "cn", nil)), alice); len(got) != 1 {
		t.Fatal("the bucket did not refill after a second")
	}
	cs := counters(r.m)
	if cs["join_rate_limited"] != 15 || cs["challenges"] != 6 {
		t.Fatalf("counters %v", cs)
	}
}

// A flood of HELLOs that empties the challenge bucket does not keep out
// a receiver that already holds a good cookie: validated joins have a
// bucket of their own (they shared one, so that forged HELLOs at the
// join rate locked every listener out).
func TestServerValidatedJoinsHaveTheirOwnBucket(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{JoinRate: 5})
	ch, _ := stream.DecodeControl(sends(r.datagram(alice, stream.EncodeJoin(7, "cn", nil)), alice)[0])
	for i := range 50 { // forged HELLOs, from everywhere
		from := netip.AddrPortFrom(bob.Addr(), uint16(1000+i))
		r.datagram(from, stream.EncodeJoin(uint32(i), "cn", nil))
	}
	got := sends(r.datagram(alice, stream.EncodeJoin(7, "cn", ch.App.Data)), alice)
	if c, _ := stream.DecodeControl(got[0]); len(got) != 1 || c.App == nil || c.App.Subtype != stream.AppWelcome {
		t.Fatalf("a good cookie after a HELLO flood drew %v, want a welcome", got)
	}
	// Validated joins are limited too, apart.
	r2 := newServerRig(t, stream.ServerConfig{JoinRate: 2, MaxSubscribers: 10})
	var echoes [][]byte
	var froms []netip.AddrPort
	for i := range 4 { // two challenged, two over the limit
		from := netip.AddrPortFrom(alice.Addr(), uint16(2000+i))
		if got := sends(r2.datagram(from, stream.EncodeJoin(uint32(i), "cn", nil)), from); len(got) == 1 {
			c, _ := stream.DecodeControl(got[0])
			echoes, froms = append(echoes, stream.EncodeJoin(uint32(i), "cn", c.App.Data)), append(froms, from)
		}
	}
	if len(echoes) != 2 {
		t.Fatalf("%d HELLOs challenged, want 2", len(echoes))
	}
	r2.at(time.Second) // both buckets full again
	for i := range 3 {
		from, echo := froms[i%2], echoes[i%2]
		r2.datagram(from, echo)
	}
	if cs := counters(r2.m); cs["subscribed"] != 2 || cs["validated_join_rate_limited"] != 1 || cs["join_rate_limited"] != 2 {
		t.Fatalf("counters %v; want 2 subscribed, 1 validated join and 2 HELLOs over the limits", cs)
	}
}

func counters(m spec.Machine) map[string]uint64 {
	c := map[string]uint64{}
	for _, k := range m.(spec.Inspector).Counters() {
		c[k.Name] = k.Value
	}
	return c
}

// At the subscriber limit a validated join is refused, with a warning,
// and the client exits saying why.
func TestServerSubscriberLimit(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{MaxSubscribers: 1})
	r.subscribe(alice, 1)
	hello := stream.EncodeJoin(2, "cn", nil)
	ch, _ := stream.DecodeControl(sends(r.datagram(bob, hello), bob)[0])
	out := r.datagram(bob, stream.EncodeJoin(2, "cn", ch.App.Data))
	got := sends(out, bob)
	c, _ := stream.DecodeControl(got[0])
	if len(got) != 1 || c.App.Subtype != stream.AppRefuse {
		t.Fatalf("the join over the limit drew %+v", c.App)
	}
	if w := kinds(out, spec.OutLog); len(w) != 1 || !strings.Contains(w[0].Log.Msg, "subscriber limit") {
		t.Fatalf("logs %v", w)
	}
	// The refused client exits with the reason.
	cl := &rig{t: t, m: stream.NewClient(stream.ClientConfig{Server: serverAddr, Seed: 1}), now: spec.SimEpoch}
	cl.step(spec.Input{Kind: spec.InStart})
	cl.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: bob})
	cl.datagram(serverAddr, stream.EncodeChallenge(9, "s", ch.App.Data))
	out = cl.datagram(serverAddr, got[0])
	ex := kinds(out, spec.OutExit)
	if len(ex) != 1 || !strings.Contains(ex[0].Err, "subscriber limit") {
		t.Fatalf("refused client: %v", out)
	}
}

// Reports and BYEs need the subscriber's SSRC and token: a forged one
// neither keeps a silent subscriber alive nor ends a live one.
func TestServerConsentNeedsToken(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{ReportInterval: 100 * time.Millisecond, ExpireAfter: 3})
	tok := r.subscribe(alice, 1)
	var bad [stream.TokenSize]byte
	r.at(200 * time.Millisecond)
	r.datagram(alice, report(1, bad, true))
	r.datagram(alice, report(2, tok, true))
	if n := r.m.(*stream.Server).Subscribers(); n != 1 {
		t.Fatalf("a forged BYE removed the subscriber")
	}
	r.at(300 * time.Millisecond)
	out := r.step(spec.Input{Kind: spec.InTimer, Timer: 2})
	var ev []spec.Output
	for _, o := range kinds(out, spec.OutEvent) {
		if o.Event.Name == "unsubscribed" {
			ev = append(ev, o)
		}
	}
	if len(ev) != 1 || ev[0].Event.Value.(stream.Departure).Reason != "expired" {
		t.Fatalf("after 3 silent intervals (forged reports only): %v", out)
	}
	logs := kinds(out, spec.OutLog)
	if len(logs) != 1 || !strings.Contains(logs[0].Log.Msg, "silent") {
		t.Fatalf("expiry logged %v", logs)
	}
	// A real report refreshes consent and a real BYE ends it.
	tok = r.subscribe(bob, 2)
	r.at(350 * time.Millisecond)
	r.datagram(bob, report(2, tok, false))
	r.at(600 * time.Millisecond)
	if out := r.step(spec.Input{Kind: spec.InTimer, Timer: 2}); len(kinds(out, spec.OutEvent)) != 0 {
		t.Fatalf("a reporting subscriber expired: %v", out)
	}
	out = r.datagram(bob, report(2, tok, true))
	if n := r.m.(*stream.Server).Subscribers(); n != 0 || len(kinds(out, spec.OutEvent)) != 1 {
		t.Fatalf("a real BYE left %d subscribers: %v", n, out)
	}
	if c := counters(r.m); c["reports_bad_token"] != 2 || c["byes"] != 1 || c["expired"] != 1 {
		t.Fatalf("counters %v", c)
	}
}

// A server that falls behind sends what is due, at most MaxBurst at
// once, and then slips its schedule instead of bursting on.
func TestServerCatchUp(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{Delay: time.Millisecond, MaxBurst: 8})
	r.subscribe(alice, 1)
	r.at(5 * time.Millisecond)
	if got := sends(r.step(spec.Input{Kind: spec.InTimer, Timer: 1}), alice); len(got) != 6 {
		t.Fatalf("5 ms late: %d packets, want 6 (indices 0-5)", len(got))
	}
	r.at(time.Second)
	out := r.step(spec.Input{Kind: spec.InTimer, Timer: 1})
	got := sends(out, alice)
	if len(got) != 8 {
		t.Fatalf("a second late: %d packets, want a burst of 8", len(got))
	}
	last, _ := stream.DecodeData(got[7])
	timers := kinds(out, spec.OutSetTimer)
	if last.Index != 13 || len(timers) != 1 || timers[0].At != r.now.Add(time.Millisecond) {
		t.Fatalf("after the burst: last index %d, timers %v", last.Index, timers)
	}
	if counters(r.m)["schedule_slips"] != 1 {
		t.Fatal("slip not counted")
	}
}

// With Count the stream ends after index Count-1: a goodbye to every
// subscriber and an exit.
func TestServerCount(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{Delay: time.Millisecond, Count: 3})
	r.subscribe(alice, 1)
	r.at(time.Second)
	out := r.step(spec.Input{Kind: spec.InTimer, Timer: 1})
	got := sends(out, alice)
	if len(got) != 4 {
		t.Fatalf("%d datagrams, want 3 data packets and a BYE", len(got))
	}
	if c, err := stream.DecodeControl(got[3]); err != nil || !c.Bye || len(kinds(out, spec.OutExit)) != 1 {
		t.Fatalf("after the last index: %v", out)
	}
}

// Stopping says goodbye to every subscriber; the report command lists
// them in join order, with what each last reported (an RR block about
// another source, such as a previous server's, is not the server's).
func TestServerStopAndReport(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{})
	tokA := r.subscribe(alice, 1)
	tok := r.subscribe(bob, 2)
	r.datagram(alice, report(1, tokA, false)) // its RR block is about SSRC 1
	rr := &rtcp.ReceptionReport{SSRC: r.m.(*stream.Server).SSRC(), LastSequenceNumber: 5}
	r.datagram(bob, stream.EncodeReport(2, "cn", rr, stream.Tally{Token: tok, Packets: 3, Sum: 12}, false, ""))
	out := r.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "report"}})
	rows := out[0].Event.Value.([]stream.SubscriberInfo)
	if len(rows) != 2 || rows[0].Addr != alice.String() || rows[0].Packets != 3 || rows[0].HasRR || rows[1].Packets != 3 || rows[1].Sum != 12 || !rows[1].HasRR || rows[1].ExtMax != 5 {
		t.Fatalf("report rows %+v", rows)
	}
	out = r.step(spec.Input{Kind: spec.InStop})
	for _, to := range []netip.AddrPort{alice, bob} {
		got := sends(out, to)
		if c, err := stream.DecodeControl(got[0]); len(got) != 1 || err != nil || !c.Bye {
			t.Fatalf("stop sent %v to %v", got, to)
		}
	}
	if len(kinds(out, spec.OutExit)) != 1 {
		t.Fatal("server did not exit")
	}
}

// A subscriber expires before anything else happens at the instant its
// silence reaches the limit, whichever input the runner delivers first
// at that instant (here the tick, set earlier, comes before the expiry
// timer): it is sent nothing, and its departure is reported in that step.
func TestServerExpiresBeforeAnythingElse(t *testing.T) {
	stranger := netip.MustParseAddrPort("10.0.0.9:40000")
	for _, tc := range []struct {
		name string
		in   spec.Input
	}{
		{"tick", spec.Input{Kind: spec.InTimer, Timer: 1}},
		{"datagram", spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: stranger, Data: stream.EncodeJoin(9, "cn", nil)}},
		{"report command", spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "report"}}},
		{"stop", spec.Input{Kind: spec.InStop}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Expiry after 2 s of silence: alice (heard at 0.5 s) expires
			// at 2.5 s, bob (heard at 1 s) at 3 s, when the tick is due.
			r := newServerRig(t, stream.ServerConfig{Delay: time.Second, ReportInterval: time.Second, ExpireAfter: 2})
			r.step(spec.Input{Kind: spec.InTimer, Timer: 1})
			r.at(500*time.Millisecond).subscribe(alice, 1)
			r.at(time.Second).step(spec.Input{Kind: spec.InTimer, Timer: 1})
			r.subscribe(bob, 2)
			r.at(2 * time.Second).step(spec.Input{Kind: spec.InTimer, Timer: 1})
			r.at(2500 * time.Millisecond).step(spec.Input{Kind: spec.InTimer, Timer: 2})
			out := r.at(3 * time.Second).step(tc.in)
			if got := sends(out, bob); len(got) > 0 {
				t.Errorf("at 3 s bob (last heard at 1 s, expiry 2 s) was sent %d datagrams", len(got))
			}
			gone := false
			for _, o := range kinds(out, spec.OutEvent) {
				switch v := o.Event.Value.(type) {
				case stream.Departure:
					gone = gone || (v.Addr == bob.String() && v.Reason == "expired")
				case []stream.SubscriberInfo:
					if len(v) != 0 {
						t.Errorf("the report lists %+v", v)
					}
				}
			}
			if !gone {
				t.Errorf("bob's expiry was not reported in the step at 3 s: %v", kinds(out, spec.OutEvent))
			}
		})
	}
}

// Garbage, RTP, port-0 sources and control packets a server does not
// take are dropped, counted and logged at debug level.
func TestServerDropsHostileInput(t *testing.T) {
	r := newServerRig(t, stream.ServerConfig{})
	inputs := []struct {
		from netip.AddrPort
		b    []byte
	}{
		{alice, []byte("hello")},
		{alice, stream.EncodeData(stream.Data{Index: 1, Value: 4})},
		{netip.AddrPortFrom(alice.Addr(), 0), stream.EncodeJoin(1, "cn", nil)},
		{alice, stream.EncodeChallenge(1, "cn", make([]byte, 20))},
		{alice, stream.EncodeBye(1, "cn", "")},
		{alice, report(1, [8]byte{}, true)},
		{alice, nil},
		{alice, withAppSSRC(stream.EncodeJoin(1, "cn", nil), 2)},
	}
	for _, in := range inputs {
		out := r.datagram(in.from, in.b)
		if len(out) != 1 || out[0].Kind != spec.OutLog || out[0].Log.Level != -4 {
			t.Errorf("% x from %v drew %v, want one debug log", in.b, in.from, out)
		}
	}
	c := counters(r.m)
	if c["datagrams"] != uint64(len(inputs)) || c["malformed"]+c["not_rtcp"]+c["source_port_zero"]+c["control_ignored"]+c["reports_from_strangers"] != uint64(len(inputs)) {
		t.Fatalf("counters %v", c)
	}
}

// withAppSSRC is compound b with its APP packet's SSRC set to ssrc.
func withAppSSRC(b []byte, ssrc uint32) []byte {
	b = bytes.Clone(b)
	i := bytes.Index(b, []byte(stream.AppName))
	binary.BigEndian.PutUint32(b[i-4:], ssrc)
	return b
}

func newClientRig(t *testing.T, cfg stream.ClientConfig) *rig {
	if !cfg.Server.IsValid() {
		cfg.Server = serverAddr
	}
	return &rig{t: t, m: stream.NewClient(cfg), now: spec.SimEpoch}
}

// Like the seed's client, a listener given a port moves to the next one
// while ports are taken, and gives up after PortTries.
func TestClientMovesToTheNextPort(t *testing.T) {
	r := newClientRig(t, stream.ClientConfig{Port: 8889, PortTries: 3})
	out := r.step(spec.Input{Kind: spec.InStart})
	if b := kinds(out, spec.OutBind); len(b) != 1 || b[0].Addr.Port() != 8889 {
		t.Fatalf("start: %v", out)
	}
	out = r.step(spec.Input{Kind: spec.InBound, Sock: 1, Err: "address already in use"})
	if b := kinds(out, spec.OutBind); len(b) != 1 || b[0].Addr.Port() != 8890 {
		t.Fatalf("after a taken port: %v", out)
	}
	out = r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: netip.MustParseAddrPort("0.0.0.0:8890")})
	if got := sends(out, serverAddr); len(got) != 1 {
		t.Fatalf("bound: %v, want a HELLO", out)
	}
	r = newClientRig(t, stream.ClientConfig{Port: 8889, PortTries: 2})
	r.step(spec.Input{Kind: spec.InStart})
	r.step(spec.Input{Kind: spec.InBound, Sock: 1, Err: "address already in use"})
	out = r.step(spec.Input{Kind: spec.InBound, Sock: 1, Err: "address already in use"})
	if ex := kinds(out, spec.OutExit); len(ex) != 1 || ex[0].Err == "" {
		t.Fatalf("after 2 taken ports: %v", out)
	}
}

// A client joins, takes data only from the server and its SSRC, prints
// each packet once, ignores challenges it did not ask for and welcomes
// or refusals before a challenge, and on a stop
// sends a last report with a BYE.
func TestClientSession(t *testing.T) {
	r := newClientRig(t, stream.ClientConfig{Seed: 3})
	r.step(spec.Input{Kind: spec.InStart})
	r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: alice})
	cookie := bytes.Repeat([]byte{1}, stream.CookieSize)
	// A WELCOME or REFUSE before any CHALLENGE (forged, or drawn by
	// someone else's join), and a CHALLENGE whose APP SSRC is not its
	// RR's, are ignored: no echo, no stream, no exit.
	for _, b := range [][]byte{
		stream.EncodeWelcome(77, "s", stream.Welcome{Token: [stream.TokenSize]byte{1}, Interval: 1e7, Report: 1e9, Expire: 5}),
		stream.EncodeRefuse(77, "s", stream.RefuseFull),
		withAppSSRC(stream.EncodeChallenge(77, "s", cookie), 78),
	} {
		if out := r.datagram(serverAddr, b); len(kinds(out, spec.OutEvent))+len(kinds(out, spec.OutExit))+len(kinds(out, spec.OutSend)) != 0 {
			t.Fatalf("%s before a challenge drew %v", stream.Describe(b), out)
		}
	}
	echo := sends(r.datagram(serverAddr, stream.EncodeChallenge(77, "s", cookie)), serverAddr)
	if c, _ := stream.DecodeControl(echo[0]); c.App.Subtype != stream.AppEcho || !bytes.Equal(c.App.Data[:stream.CookieSize], cookie) {
		t.Fatalf("challenge drew %v", c.App)
	}
	var tok [stream.TokenSize]byte
	tok[0] = 9
	r.datagram(serverAddr, stream.EncodeWelcome(77, "s", stream.Welcome{Token: tok, Interval: 1e7, Report: 1e9, Expire: 5}))
	pkt := func(i uint64, ssrc uint32) []byte {
		return stream.EncodeData(stream.Data{Seq: uint16(i), Timestamp: uint32(i * 900), SSRC: ssrc, Index: i, Value: stream.DataValue(i)})
	}
	events := 0
	for _, in := range []struct {
		from netip.AddrPort
		b    []byte
	}{
		{serverAddr, pkt(1, 77)},
		{serverAddr, pkt(1, 77)},                              // duplicate: not printed again
		{bob, pkt(2, 77)},                                     // stranger
		{serverAddr, pkt(2, 78)},                              // unknown SSRC
		{serverAddr, stream.EncodeChallenge(77, "s", cookie)}, // unsolicited: no echo
		{serverAddr, pkt(3, 77)},
	} {
		out := r.datagram(in.from, in.b)
		events += len(kinds(out, spec.OutEvent))
		if len(sends(out, serverAddr)) != 0 {
			t.Fatalf("%s drew a send", stream.Describe(in.b))
		}
	}
	if events != 2 {
		t.Fatalf("%d packet events, want 2", events)
	}
	out := r.step(spec.Input{Kind: spec.InStop})
	bye := sends(out, serverAddr)
	c, err := stream.DecodeControl(bye[0])
	if err != nil || !c.Bye || c.App.Subtype != stream.AppReport || len(c.Reports) != 1 {
		t.Fatalf("stop sent %+v, %v", c, err)
	}
	ta, _ := stream.DecodeTally(c.App.Data)
	if ta.Token != tok || ta.Packets != 2 || ta.Duplicates != 1 || ta.Sum != 4+8 || c.Reports[0].LastSequenceNumber != 3 || stream.Lost24(c.Reports[0].TotalLost) != 0 {
		t.Fatalf("final report %+v %+v", ta, c.Reports[0])
	}
	var st *stream.Stats
	for _, o := range kinds(out, spec.OutEvent) {
		if o.Event.Name == "stats" {
			s := o.Event.Value.(stream.Stats)
			st = &s
		}
	}
	if st == nil || st.Ended != "stop" || st.Packets != 2 || st.Sources[0].Received != 3 {
		t.Fatalf("final stats %+v", st)
	}
	if c := counters(r.m); c["from_strangers"] != 1 || c["unknown_ssrc"] != 1 || c["duplicates"] != 1 || c["control_ignored"] != 4 {
		t.Fatalf("counters %v", c)
	}
}

// After a server restart (a new SSRC) a listener's REPORT counts the new
// server's packets alone: the restarted server logged "sent=70
// received=100", hearing its predecessor's packets counted too. The
// final statistics still count every packet the listener got.
func TestClientReportsTheCurrentSourceOnly(t *testing.T) {
	r := newClientRig(t, stream.ClientConfig{Seed: 3})
	r.step(spec.Input{Kind: spec.InStart})
	r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: alice})
	cookie := bytes.Repeat([]byte{1}, stream.CookieSize)
	var tok [stream.TokenSize]byte
	join := func(ssrc uint32) {
		r.datagram(serverAddr, stream.EncodeChallenge(ssrc, "s", cookie))
		r.datagram(serverAddr, stream.EncodeWelcome(ssrc, "s", stream.Welcome{Token: tok, Interval: 1e7, Report: 1e9, Expire: 5}))
	}
	pkt := func(i uint64, ssrc uint32) []byte {
		return stream.EncodeData(stream.Data{Seq: uint16(i), Timestamp: uint32(i * 900), SSRC: ssrc, Index: i, Value: stream.DataValue(i)})
	}
	join(77)
	for i := uint64(1); i <= 3; i++ {
		r.datagram(serverAddr, pkt(i, 77))
	}
	// The server is gone: silence, then the restarted one (SSRC 88).
	r.now = r.now.Add(time.Minute)
	r.step(spec.Input{Kind: spec.InTimer, Timer: 3})
	join(88)
	for i := uint64(1); i <= 2; i++ {
		r.datagram(serverAddr, pkt(i, 88))
	}
	out := r.step(spec.Input{Kind: spec.InStop})
	bye := sends(out, serverAddr)
	if len(bye) != 1 {
		t.Fatalf("stop sent %d datagrams", len(bye))
	}
	c, err := stream.DecodeControl(bye[0])
	if err != nil || c.App == nil || c.App.Subtype != stream.AppReport {
		t.Fatalf("stop sent %+v, %v", c, err)
	}
	ta, _ := stream.DecodeTally(c.App.Data)
	if ta.Packets != 2 || ta.Sum != stream.DataValue(1)+stream.DataValue(2) {
		t.Fatalf("the restarted server hears %d packets (sum %d), want its own 2", ta.Packets, ta.Sum)
	}
	for _, o := range kinds(out, spec.OutEvent) {
		if st, ok := o.Event.Value.(stream.Stats); ok && (st.Packets != 5 || len(st.Sources) != 2) {
			t.Fatalf("final stats: %d packets from %d sources, want 5 from 2", st.Packets, len(st.Sources))
		}
	}
}

// A client with no answer gives up after JoinTries, backing off.
func TestClientGivesUp(t *testing.T) {
	r := newClientRig(t, stream.ClientConfig{JoinTimeout: 100 * time.Millisecond, JoinTries: 4})
	r.step(spec.Input{Kind: spec.InStart})
	out := r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: alice})
	var waits []time.Duration
	for i := 0; i < 10; i++ {
		st := kinds(out, spec.OutSetTimer)
		if len(st) == 0 {
			break
		}
		waits = append(waits, st[0].At.Sub(r.now))
		r.now = st[0].At
		out = r.step(spec.Input{Kind: spec.InTimer, Timer: 1})
		if ex := kinds(out, spec.OutExit); len(ex) == 1 {
			if !strings.Contains(ex[0].Err, "no answer") || len(waits) != 4 {
				t.Fatalf("gave up with %q after %v", ex[0].Err, waits)
			}
			want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond}
			for i := range want {
				if waits[i] != want[i] {
					t.Fatalf("waits %v, want %v", waits, want)
				}
			}
			return
		}
	}
	t.Fatalf("never gave up: waits %v", waits)
}

// FuzzServerDatagram: any datagram from an address that has not been
// validated draws at most as many bytes as it had, and nothing panics,
// whether or not the address is subscribed.
func FuzzServerDatagram(f *testing.F) {
	f.Add(stream.EncodeJoin(1, "cn", nil), false)
	f.Add(stream.EncodeJoin(1, "cn", make([]byte, 20)), false)
	f.Add(report(1, [8]byte{}, true), true)
	f.Add([]byte{0x80, 201, 0, 1, 0, 0, 0, 1}, false)
	// The smallest valid HELLO (RR + APP, no SDES, no padding): smaller
	// than the challenge, so it must draw nothing.
	small, err := rtcp.Marshal([]rtcp.Packet{&rtcp.ReceiverReport{SSRC: 1}, &rtcp.ApplicationDefined{SSRC: 1, Name: stream.AppName, SubType: stream.AppHello}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(small, false)
	f.Fuzz(func(t *testing.T, b []byte, subscribed bool) {
		r := newServerRig(t, stream.ServerConfig{})
		if subscribed {
			r.subscribe(alice, 1)
		}
		out := r.datagram(alice, b)
		if !subscribed {
			n := 0
			for _, s := range sends(out, alice) {
				n += len(s)
			}
			if n > len(b) {
				t.Fatalf("%d bytes in, %d out to an unvalidated address", len(b), n)
			}
		}
	})
}

// FuzzClientDatagram: any datagram from the server's address, to a
// client that is joining or streaming, is handled without panicking and
// is printed only if it is a valid data packet.
func FuzzClientDatagram(f *testing.F) {
	f.Add(stream.EncodeData(stream.Data{SSRC: 77, Index: 1, Value: 4}), true)
	f.Add(stream.EncodeBye(77, "s", "x"), true)
	f.Add(stream.EncodeWelcome(77, "s", stream.Welcome{Interval: 1, Report: 1, Expire: 1}), false)
	f.Add(stream.EncodeRefuse(77, "s", 1), false)
	f.Fuzz(func(t *testing.T, b []byte, streaming bool) {
		r := newClientRig(t, stream.ClientConfig{})
		r.step(spec.Input{Kind: spec.InStart})
		r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: alice})
		r.datagram(serverAddr, stream.EncodeChallenge(77, "s", make([]byte, stream.CookieSize)))
		if streaming {
			r.datagram(serverAddr, stream.EncodeWelcome(77, "s", stream.Welcome{Interval: 1e6, Report: 1e9, Expire: 5}))
		}
		out := r.datagram(serverAddr, b)
		for _, o := range kinds(out, spec.OutEvent) {
			if o.Event.Name == "packet" {
				if _, err := stream.DecodeData(b); err != nil {
					t.Fatalf("printed an invalid packet: %v", err)
				}
			}
		}
	})
}

// Out-of-range intervals and expiries can neither reach the wire
// truncated (an ExpireAfter over 32 bits was sent as 0, which every
// listener rejects) nor make a listener report without pause or set its
// silence timer from an overflowed product.
func TestIntervalBounds(t *testing.T) {
	tests := []struct {
		name       string
		report     time.Duration
		expire     int
		wantReport time.Duration
		wantExpire uint32
	}{
		{"defaults", 0, 0, time.Second, 5},
		{"1ns reports", time.Nanosecond, 5, stream.MinReportInterval, 5},
		{"expire beyond 32 bits", time.Second, 1 << 32, time.Second, stream.MaxExpireAfter},
		{"expire 1001", time.Second, 1001, time.Second, stream.MaxExpireAfter},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newServerRig(t, stream.ServerConfig{ReportInterval: tc.report, ExpireAfter: tc.expire})
			c, _ := stream.DecodeControl(sends(r.datagram(alice, stream.EncodeJoin(7, "cn", nil)), alice)[0])
			got := sends(r.datagram(alice, stream.EncodeJoin(7, "cn", c.App.Data)), alice)
			c, _ = stream.DecodeControl(got[0])
			w, err := stream.DecodeWelcome(c.App.Data)
			if err != nil || time.Duration(w.Report) != tc.wantReport || w.Expire != tc.wantExpire {
				t.Fatalf("welcome %+v, %v; want report %v, expire %d", w, err, tc.wantReport, tc.wantExpire)
			}
		})
	}
	// A listener given a WELCOME outside those bounds (hostile or forged)
	// keeps to them.
	clients := []struct {
		name string
		w    stream.Welcome
		// the report timer is due in [MinReportInterval/2, report), the
		// silence timer at silence
		report, silence time.Duration
	}{
		{"listener, 1ns reports", stream.Welcome{Interval: 1e6, Report: 1, Expire: 5}, 3 * stream.MinReportInterval / 2, 5 * stream.MinReportInterval},
		{"listener, huge expiry", stream.Welcome{Interval: 1e6, Report: uint64(24 * time.Hour), Expire: 1<<32 - 1}, 36 * time.Hour, stream.MaxExpireAfter * 24 * time.Hour},
	}
	for _, tc := range clients {
		t.Run(tc.name, func(t *testing.T) {
			r := newClientRig(t, stream.ClientConfig{Seed: 3})
			r.step(spec.Input{Kind: spec.InStart})
			r.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: alice})
			r.datagram(serverAddr, stream.EncodeChallenge(77, "s", bytes.Repeat([]byte{1}, stream.CookieSize)))
			out := r.datagram(serverAddr, stream.EncodeWelcome(77, "s", tc.w))
			var report, silence spec.Time
			for _, o := range kinds(out, spec.OutSetTimer) {
				switch o.Timer {
				case 2:
					report = o.At
				case 3:
					silence = o.At
				}
			}
			if d := report.Sub(r.now); d < stream.MinReportInterval/2 || d >= tc.report {
				t.Errorf("report timer in %v, want [%v, %v)", d, stream.MinReportInterval/2, tc.report)
			}
			if d := silence.Sub(r.now); d != tc.silence {
				t.Errorf("silence timer in %v, want %v", d, tc.silence)
			}
		})
	}
}

// A client whose stream goes silent joins again, and goes on reporting
// meanwhile: the silence may be loss on the way (40% of it once left a
// client 100 ms without data), and a server that still has it must hear
// from it, or it expires a listener that never left (it stopped
// reporting, and the server dropped it).
func TestRejoiningClientKeepsReporting(t *testing.T) {
	srv := newServerRig(t, stream.ServerConfig{Delay: 10 * time.Millisecond, ReportInterval: 50 * time.Millisecond, ExpireAfter: 2})
	cl := &rig{t: t, m: stream.NewClient(stream.ClientConfig{Server: serverAddr, Seed: 1}), now: spec.SimEpoch}
	me := netip.MustParseAddrPort("10.0.0.2:49152")
	timers := map[spec.Timer]spec.Time{}
	var relay func(out []spec.Output)
	relay = func(out []spec.Output) {
		out = append([]spec.Output(nil), out...)
		for _, o := range out {
			switch o.Kind {
			case spec.OutSetTimer:
				timers[o.Timer] = o.At
			case spec.OutSend:
				for _, a := range sends(srv.datagram(me, o.Data), me) {
					// Handshake answers only: the server's timer never
					// runs, so no data comes.
					relay(cl.datagram(serverAddr, a))
				}
			}
		}
	}
	relay(cl.step(spec.Input{Kind: spec.InStart}))
	relay(cl.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: me}))
	if srv.m.(*stream.Server).Subscribers() != 1 {
		t.Fatal("the client did not join")
	}
	// No data comes: the silence timer fires, then the report timer.
	reports := 0
	for range 20 {
		var next spec.Timer
		var at spec.Time
		for tm, a := range timers {
			if at == 0 || a < at || a == at && tm < next {
				next, at = tm, a
			}
		}
		delete(timers, next)
		cl.now = at
		for _, o := range cl.step(spec.Input{Kind: spec.InTimer, Timer: next}) {
			if o.Kind == spec.OutSetTimer {
				timers[o.Timer] = o.At
			}
			if o.Kind == spec.OutSend {
				if c, err := stream.DecodeControl(o.Data); err == nil && c.App != nil && c.App.Subtype == stream.AppReport {
					reports++
				}
			}
		}
	}
	if reports < 5 {
		t.Fatalf("%d reports in 20 timer firings of a client joining again: it stopped reporting", reports)
	}
}
