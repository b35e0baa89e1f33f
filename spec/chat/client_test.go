package chat_test

import (
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

var local = netipMust("10.0.0.2:49152")

func newClient(t *testing.T, cfg chat.ClientConfig) (*bench, *chat.Client, []spec.Output) {
	cfg.Server = srvAddr
	c := chat.NewClient(cfg)
	b := &bench{t: t, m: c}
	b.step(0, spec.Input{Kind: spec.InStart})
	out := append([]spec.Output(nil), b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})...)
	return b, c, out
}

// lines returns the "line" events' texts.
func lineTexts(out []spec.Output) []string {
	var s []string
	for _, ev := range events(out, "line") {
		s = append(s, ev.Text)
	}
	return s
}

// sh is the server's header for the client under test (whose session
// is the time it bound, in microseconds: SimEpoch here).
func sh(membership uint64, seq uint32) string {
	return shdr(uint64(spec.SimEpoch)/1000, membership, seq)
}

func (b *bench) fromServer(now time.Duration, data string) []spec.Output {
	return b.step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: srvAddr, Data: []byte(data)})
}

func TestClientJoinsAndHeartbeats(t *testing.T) {
	b, c, out := newClient(t, chat.ClientConfig{Nick: "alice", Interval: 9 * time.Second})
	got := sends(out)[srvAddr]
	if len(got) != 1 {
		t.Fatalf("join sent %q", got)
	}
	// Padded, so the server may answer "chat is full" without sending a
	// stranger more than it received.
	h, w := body(t, got[0])
	if h.Seq != 1 || strings.TrimRight(w, " ") != "/nick alice\n" || len(got[0]) != chat.StrangerPad || h.Session != c.Session() || h.Server {
		t.Fatalf("join datagram %q", got[0])
	}
	if when, ok := timerAt(out, 1); !ok || when != at(3*time.Second) {
		t.Fatalf("heartbeat timer %v, want a third of the interval", when)
	}
	// The welcome announces the server's interval: heartbeats follow it.
	out = b.fromServer(time.Millisecond, sh(500, 1)+"*** welcome alice: 1 member(s) online\n^welcome alice 3000 t0k3n^\n")
	if lt := lineTexts(out); len(lt) != 1 || !strings.HasPrefix(lt[0], "*** welcome alice") {
		t.Fatalf("lines %q", lt)
	}
	// It sends the welcome's token back at once, and heartbeats a third
	// of the interval after.
	if ok := sends(out)[srvAddr]; len(ok) != 1 || !strings.HasSuffix(ok[0], ".0^/ok t0k3n\n") {
		t.Fatalf("token sent back as %q", ok)
	}
	if when, ok := timerAt(out, 1); !ok || when != at(time.Second+time.Millisecond) {
		t.Fatalf("heartbeat re-armed for %v, want 1.001s", when)
	}
	if c.Nick() != "alice" || len(events(out, "joined")) != 1 {
		t.Fatalf("nick %q, events %v", c.Nick(), out)
	}
	// Until the server confirms the token, heartbeats carry it.
	out = b.step(time.Second, spec.Input{Kind: spec.InTimer, Timer: 1})
	if hb := sends(out)[srvAddr]; len(hb) != 1 || !strings.HasSuffix(hb[0], ".0^/ok t0k3n\n") {
		t.Fatalf("unconfirmed heartbeat %q", hb)
	}
	b.fromServer(time.Second+time.Millisecond, sh(500, 2)+"*** ok alice: you hear the chat now\n^ok^\n")
	out = b.step(time.Second, spec.Input{Kind: spec.InTimer, Timer: 1})
	if hb := sends(out)[srvAddr]; len(hb) != 1 || !strings.HasSuffix(hb[0], ".0^^hb^\n") {
		t.Fatalf("heartbeat %q", hb)
	}
	// A message moves the heartbeat on.
	out = b.step(1500*time.Millisecond, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("hello")}})
	if when, _ := timerAt(out, 1); when != at(2500*time.Millisecond) {
		t.Fatalf("after a message the heartbeat is at %v", when)
	}
	if m := sends(out)[srvAddr]; len(m) != 1 || !strings.HasSuffix(m[0], ".2^hello\n") {
		t.Fatalf("message %q", m)
	}
}

// The client shows each datagram of its membership once, in order,
// and ignores older memberships and other sessions.
func TestClientOrdersAndDeduplicates(t *testing.T) {
	b, c, _ := newClient(t, chat.ClientConfig{Hold: 50 * time.Millisecond})
	var shown []string
	show := func(out []spec.Output) { shown = append(shown, lineTexts(out)...) }
	show(b.fromServer(0, sh(1000, 1)+"*** welcome guest1: 1 member(s) online\n^welcome guest1 10000 t0k3n^\n"))
	show(b.fromServer(1, sh(1000, 3)+"[bob] three\n"))
	show(b.fromServer(2, sh(1000, 2)+"[bob] two\n"))
	show(b.fromServer(3, sh(1000, 2)+"[bob] two\n"))
	show(b.fromServer(4, sh(1000, 5)+"[bob] five\n"))
	show(b.step(50*time.Millisecond+4, spec.Input{Kind: spec.InTimer, Timer: 2}))
	show(b.fromServer(60*time.Millisecond, sh(1000, 4)+"[bob] four, late\n"))
	// The server restarted: a newer membership starts at 1 again; the
	// old one's stragglers are dropped.
	show(b.fromServer(time.Second, sh(2000, 1)+"*** welcome guest7: 1 member(s) online\n^welcome guest7 10000 t0k3n^\n"))
	show(b.fromServer(time.Second, sh(1000, 6)+"[bob] from the old server\n"))
	show(b.fromServer(time.Second, sh(2000, 2)+"[carol] new\n"))
	// A datagram for another session (meant for a process that had this
	// port before) is not shown, whatever its numbers.
	show(b.fromServer(time.Second, shdr(uint64(spec.SimEpoch)/1000-1, 2000, 3)+"[bob] for someone else\n"))
	// Unsequenced datagrams are shown at once.
	show(b.fromServer(time.Second, "*** plain\n"))
	want := []string{"*** welcome guest1: 1 member(s) online", "[bob] two", "[bob] three", "[bob] five",
		"*** welcome guest7: 1 member(s) online", "[carol] new", "*** plain"}
	if strings.Join(shown, "|") != strings.Join(want, "|") {
		t.Fatalf("shown:\n%q\nwant:\n%q", shown, want)
	}
	st := c.Stats()
	if st.Duplicate != 0 || st.Stale != 2 || st.Lost != 1 || st.OldMembership != 1 || st.Foreign != 1 {
		t.Fatalf("counters %+v", st)
	}
	if got := b.step(time.Second, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: addr(9), Data: []byte("[eve] spoof\n")}); len(lineTexts(got)) != 0 {
		t.Fatal("a stranger's datagram was shown")
	}
}

// If a welcome names the client other than its nick (it was expired, or
// the server restarted), it asks for its nick back, once per membership.
func TestClientReclaimsNick(t *testing.T) {
	b, _, _ := newClient(t, chat.ClientConfig{Nick: "alice"})
	out := b.fromServer(0, sh(1000, 1)+"*** welcome guest3: 2 member(s) online\n^welcome guest3 10000 t0k3n^\n")
	if m := sends(out)[srvAddr]; len(m) != 2 || !strings.HasSuffix(m[0], ".0^/ok t0k3n\n") || !strings.HasSuffix(m[1], ".2^/nick alice\n") {
		t.Fatalf("reclaim %q, want the token back, then the nick asked for", m)
	}
	out = b.fromServer(1, sh(1000, 2)+"*** error: nick alice is taken\n")
	if len(sends(out)) != 0 {
		t.Fatal("asked again in the same membership")
	}
	// A /nick the user typed becomes the nick to hold.
	b.fromServer(2, sh(1000, 3)+"*** guest3 is now known as al\n")
	b.fromServer(3, sh(1000, 4)+"^nick al^\n")
	out = b.fromServer(4, sh(3000, 1)+"*** welcome guest9: 1 member(s) online\n^welcome guest9 10000 t0k3n^\n")
	if m := sends(out)[srvAddr]; len(m) != 2 || !strings.HasSuffix(m[1], "^/nick al\n") {
		t.Fatalf("reclaim after restart %q", m)
	}
}

// quit waits Hold after the last message, is resent until the bye, and
// the client exits at the bye.
func TestClientQuit(t *testing.T) {
	b, _, _ := newClient(t, chat.ClientConfig{Hold: 100 * time.Millisecond, QuitTimeout: 200 * time.Millisecond, QuitTries: 2})
	b.fromServer(0, sh(1000, 1)+"*** welcome guest1: 1\n^welcome guest1 10000 t0k3n^\n")
	b.fromServer(time.Millisecond, sh(1000, 2)+"^ok^\n") // validated: nothing is held
	b.step(10*time.Millisecond, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("last words")}})
	out := b.step(20*time.Millisecond, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("quit")}})
	if len(sends(out)) != 0 {
		t.Fatalf("quit went out before Hold: %v", out)
	}
	if when, ok := timerAt(out, 3); !ok || when != at(110*time.Millisecond) {
		t.Fatalf("quit timer %v", when)
	}
	// Lines typed after quit are not sent.
	if out := b.step(30*time.Millisecond, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("too late")}}); len(sends(out)) != 0 {
		t.Fatal("sent a line after quit")
	}
	out = b.step(110*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 3})
	// Padded, so a bye can answer it even if it meets a closed session.
	q := sends(out)[srvAddr]
	if len(q) != 1 || !strings.HasSuffix(strings.TrimRight(q[0], " "), ".2^quit\n") || len(q[0]) != chat.StrangerPad {
		t.Fatalf("quit %q", q)
	}
	out = b.step(310*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 3})
	if r := sends(out)[srvAddr]; len(r) != 1 || r[0] != q[0] {
		t.Fatalf("resent quit %q, want the same datagram %q", r, q)
	}
	out = b.fromServer(320*time.Millisecond, sh(1000, 3)+"*** bye guest1\n^bye^\n")
	if last := out[len(out)-1]; last.Kind != spec.OutExit || last.Err != "" {
		t.Fatalf("after bye: %v", out)
	}
	// With no bye at all, it leaves after the last try.
	b, _, _ = newClient(t, chat.ClientConfig{QuitTries: 1})
	out = b.step(0, spec.Input{Kind: spec.InStop})
	if len(sends(out)) != 1 {
		t.Fatalf("stop sends quit at once: %v", out)
	}
	out = b.step(time.Second, spec.Input{Kind: spec.InTimer, Timer: 3})
	if last := out[len(out)-1]; last.Kind != spec.OutExit {
		t.Fatalf("gave up: %v", out)
	}
}

func TestPlainIsNc(t *testing.T) {
	p := chat.NewPlain(chat.PlainConfig{Server: srvAddr})
	b := &bench{t: t, m: p}
	b.step(0, spec.Input{Kind: spec.InStart})
	b.step(0, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("early")}})
	out := b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
	if got := sends(out)[srvAddr]; len(got) != 1 || got[0] != "early\n" {
		t.Fatalf("queued line %q", got)
	}
	out = b.fromServer(1, "[a] x\n[b] y\n")
	if lt := lineTexts(out); strings.Join(lt, "|") != "[a] x|[b] y" {
		t.Fatalf("lines %q", lt)
	}
}

// TestClientDistrustsWelcomes: control lines count only behind the
// client's session's header (a datagram without one is a plain server's
// or forged), and no welcome makes the client heartbeat more often than
// a third of MinInterval.
func TestClientDistrustsWelcomes(t *testing.T) {
	tests := []struct {
		name, data string
		joined     bool          // a "joined" event
		beat       time.Duration // when the heartbeat is due after it (if joined)
	}{
		{"headerless welcome", "^welcome evil 1 abc^\n", false, 0},
		{"headerless after a line", "*** hi\n^welcome evil 1 abc^\n", false, 0},
		{"1ms welcome", sh(500, 1) + "^welcome alice 1 abc^\n", true, chat.MinInterval / 3},
		{"3s welcome", sh(500, 1) + "^welcome alice 3000 abc^\n", true, time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, c, _ := newClient(t, chat.ClientConfig{Nick: "alice"})
			out := b.fromServer(time.Millisecond, tc.data)
			if got := len(events(out, "joined")) == 1; got != tc.joined {
				t.Fatalf("joined %v, want %v: %v", got, tc.joined, out)
			}
			if !tc.joined {
				if len(sends(out)[srvAddr]) != 0 || c.Stats().Malformed == 0 {
					t.Fatalf("a headerless control line was acted on: %v, %+v", out, c.Stats())
				}
				return
			}
			if when, ok := timerAt(out, 1); !ok || when != at(time.Millisecond+tc.beat) {
				t.Fatalf("heartbeat at %v, want %v", when, at(time.Millisecond+tc.beat))
			}
		})
	}
}

// A client that quits without the server ever having answered exits with
// an error: nothing it sent reached anyone (it used to exit 0).
func TestClientNeverAnsweredFails(t *testing.T) {
	b, _, _ := newClient(t, chat.ClientConfig{Nick: "alice"})
	b.step(time.Second, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("hi\nquit\n")}})
	var why string
	exited := false
	for now := time.Second; now < 2*time.Minute && !exited; now += 100 * time.Millisecond {
		for _, o := range b.step(now, spec.Input{Kind: spec.InTimer, Timer: 3}) {
			if o.Kind == spec.OutExit {
				exited, why = true, o.Err
			}
		}
	}
	if !exited || !strings.Contains(why, "never answered") {
		t.Fatalf("exited %v %q, want an error saying the server never answered", exited, why)
	}
}

func TestWithoutTokenHint(t *testing.T) {
	for _, tc := range []struct {
		in, want string
		ok       bool
	}{
		{"*** welcome alice: 1 member(s) online; type /ok t0k3n to hear the chat; silence for 3s drops you (send ^hb^ to stay); /help lists commands",
			"*** welcome alice: 1 member(s) online; silence for 3s drops you (send ^hb^ to stay); /help lists commands", true},
		{"*** type /ok t0k3n to hear the chat", "", false},
		{"*** ok alice: you hear the chat now", "*** ok alice: you hear the chat now", true},
		// A member's words are never edited.
		{"[bob] type /ok t0k3n to hear the chat", "[bob] type /ok t0k3n to hear the chat", true},
		{"*** bob type /ok x to hear the chat, and more", "*** bob type /ok x to hear the chat, and more", true},
	} {
		got, ok := chat.WithoutTokenHint(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("WithoutTokenHint(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// Lines typed before the server validated the membership (piped in, or
// typed at once) are held until its ^ok^: sent earlier they would reach
// the others but never come back to their sender. The hold lasts a third
// of the interval at most, and MaxHeld lines; then lines go out as typed
// until the next welcome. A quit waits for the held lines, a stop does
// not.
func TestClientHoldsLinesUntilValidated(t *testing.T) {
	const interval = 9 * time.Second
	start := func(t *testing.T) *bench {
		c := chat.NewClient(chat.ClientConfig{Server: srvAddr, Nick: "alice", Interval: interval, Hold: 100 * time.Millisecond})
		b := &bench{t: t, m: c}
		b.step(0, spec.Input{Kind: spec.InStart})
		return b
	}
	line := func(b *bench, now time.Duration, text string) []spec.Output {
		return b.step(now, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte(text)}})
	}
	welcome := sh(500, 1) + "*** welcome alice: 1 member(s) online\n^welcome alice 3000 t0k3n^\n"
	trim := func(d string) string { return strings.TrimRight(d, " ") }

	t.Run("until ^ok^", func(t *testing.T) {
		b := start(t)
		line(b, 0, "before bind")
		out := b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		if got := sends(out)[srvAddr]; len(got) != 1 || !strings.Contains(got[0], "/nick alice") {
			t.Fatalf("at bind the client sent %q: want its join alone", got)
		}
		if got := sends(line(b, time.Millisecond, "after bind"))[srvAddr]; len(got) != 0 {
			t.Fatalf("sent %q before the welcome", got)
		}
		out = b.fromServer(2*time.Millisecond, welcome)
		if got := sends(out)[srvAddr]; len(got) != 1 || !strings.HasSuffix(got[0], "^/ok t0k3n\n") {
			t.Fatalf("after the welcome the client sent %q: want the token alone", got)
		}
		out = b.fromServer(3*time.Millisecond, sh(500, 2)+"*** ok alice: you hear the chat now\n^ok^\n")
		got := sends(out)[srvAddr]
		if len(got) != 2 || !strings.HasSuffix(got[0], ".2^before bind\n") || !strings.HasSuffix(got[1], ".3^after bind\n") {
			t.Fatalf("on ^ok^ the client sent %q: want the held lines, in order", got)
		}
		if got := sends(line(b, 4*time.Millisecond, "validated"))[srvAddr]; len(got) != 1 || !strings.HasSuffix(got[0], ".4^validated\n") {
			t.Fatalf("a line typed once validated went out as %q", got)
		}
	})
	t.Run("for a third of the interval", func(t *testing.T) {
		b := start(t)
		b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		out := line(b, time.Second, "one")
		if when, ok := timerAt(out, 4); !ok || when != at(time.Second+interval/3) {
			t.Fatalf("hold timer %v, ok %v: want a third of the interval after the first held line", when, ok)
		}
		line(b, 2*time.Second, "two")
		out = b.step(time.Second+interval/3, spec.Input{Kind: spec.InTimer, Timer: 4})
		if got := sends(out)[srvAddr]; len(got) != 2 || !strings.HasSuffix(trim(got[0]), "^one\n") || !strings.HasSuffix(trim(got[1]), "^two\n") {
			t.Fatalf("when the hold ran out the client sent %q", got)
		}
		if got := sends(line(b, 5*time.Second, "three"))[srvAddr]; len(got) != 1 {
			t.Fatalf("after the hold ran out a line went out as %q: want at once", got)
		}
		// A welcome (a new membership) holds again.
		b.fromServer(6*time.Second, welcome)
		if got := sends(line(b, 6*time.Second, "four"))[srvAddr]; len(got) != 0 {
			t.Fatalf("after a new welcome a line went out unvalidated: %q", got)
		}
	})
	t.Run("MaxHeld lines", func(t *testing.T) {
		b := start(t)
		b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		for i := range chat.MaxHeld {
			if got := sends(line(b, time.Millisecond, "held"))[srvAddr]; len(got) != 0 {
				t.Fatalf("line %d of %d went out unvalidated: %q", i+1, chat.MaxHeld, got)
			}
		}
		if got := sends(line(b, time.Millisecond, "one more"))[srvAddr]; len(got) != chat.MaxHeld+1 || !strings.HasSuffix(trim(got[chat.MaxHeld]), "^one more\n") {
			t.Fatalf("past MaxHeld the client sent %d datagrams, want %d ending with the new line", len(got), chat.MaxHeld+1)
		}
		if got := sends(line(b, 2*time.Millisecond, "and on"))[srvAddr]; len(got) != 1 {
			t.Fatalf("past MaxHeld the next line went out as %q: want at once", got)
		}
	})
	t.Run("quit waits for them", func(t *testing.T) {
		b := start(t)
		b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		b.fromServer(time.Millisecond, welcome)
		line(b, 2*time.Millisecond, "last words")
		if out := line(b, 3*time.Millisecond, "quit"); len(sends(out)) != 0 {
			t.Fatalf("quit sent %q before the ^ok^", sends(out)[srvAddr])
		}
		out := b.fromServer(10*time.Millisecond, sh(500, 2)+"^ok^\n")
		if got := sends(out)[srvAddr]; len(got) != 1 || !strings.HasSuffix(got[0], "^last words\n") {
			t.Fatalf("on ^ok^ the leaving client sent %q: want the held line", got)
		}
		if when, ok := timerAt(out, 3); !ok || when != at(110*time.Millisecond) {
			t.Fatalf("quit timer %v: want Hold after the held line", when)
		}
	})
	t.Run("end of input before the welcome", func(t *testing.T) {
		b := start(t)
		line(b, 0, "piped")
		line(b, 0, "quit") // printf 'piped\n' | netspec chat join
		b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		out := b.fromServer(time.Millisecond, welcome)
		if got := sends(out)[srvAddr]; len(got) != 1 || !strings.HasSuffix(got[0], "^/ok t0k3n\n") {
			t.Fatalf("a leaving client with held lines answered the welcome with %q: want its token", got)
		}
		out = b.fromServer(2*time.Millisecond, sh(500, 2)+"^ok^\n")
		if got := sends(out)[srvAddr]; len(got) != 1 || !strings.HasSuffix(got[0], "^piped\n") {
			t.Fatalf("on ^ok^ it sent %q: want the piped line", got)
		}
		if _, ok := timerAt(out, 3); !ok {
			t.Fatal("no quit after the piped line")
		}
	})
	t.Run("stop does not wait", func(t *testing.T) {
		b := start(t)
		b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local})
		line(b, time.Millisecond, "unsaid")
		got := sends(b.step(2*time.Millisecond, spec.Input{Kind: spec.InStop}))[srvAddr]
		if len(got) != 2 || !strings.HasSuffix(trim(got[0]), "^unsaid\n") || !strings.HasSuffix(trim(got[1]), "^quit\n") {
			t.Fatalf("on stop the client sent %q: want the held line and quit at once", got)
		}
	})
}
