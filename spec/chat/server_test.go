package chat_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

var srvAddr = netip.MustParseAddrPort("10.0.0.1:9999")

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 40000+uint16(i))
}

func at(d time.Duration) spec.Time { return spec.SimEpoch.Add(d) }

// bench drives a machine by hand and keeps what it did. Unless raw, a
// client the server welcomes sends its token back at once (as netspec
// clients do), in a step of its own whose outputs are dropped: tests of
// everything but validation see validated members.
type bench struct {
	t   testing.TB
	m   spec.Machine
	out []spec.Output
	raw bool
}

func newServer(t testing.TB, cfg chat.ServerConfig) (*bench, *chat.Server) {
	if !cfg.Addr.IsValid() {
		cfg.Addr = srvAddr
	}
	s := chat.NewServer(cfg)
	b := &bench{t: t, m: s}
	b.step(0, spec.Input{Kind: spec.InStart})
	b.step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: cfg.Addr})
	return b, s
}

func (b *bench) step(now time.Duration, in spec.Input) []spec.Output {
	b.out = b.m.Step(at(now), in, b.out[:0])
	return b.out
}

// dgram delivers a datagram from a client and returns the sends, by
// destination, as strings.
func (b *bench) dgram(now time.Duration, from netip.AddrPort, data string) map[netip.AddrPort][]string {
	got := sends(b.step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte(data)}))
	if !b.raw {
		for to, ds := range got {
			for _, d := range ds {
				if tok := tokenIn(d); tok != "" {
					ok := []byte("/ok " + tok + "\n")
					if h, _, seq := chat.ParseHeader([]byte(d)); seq {
						ok = append(chat.AppendHeader(nil, chat.Header{Session: h.Session}), ok...)
					}
					b.m.Step(at(now), spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: to, Data: ok}, nil)
				}
			}
		}
	}
	return got
}

// tokenIn returns the token a welcome in d asks for, or "".
func tokenIn(d string) string { return string(chat.TokenAsked([]byte(d))) }

func sends(out []spec.Output) map[netip.AddrPort][]string {
	m := map[netip.AddrPort][]string{}
	for _, o := range out {
		if o.Kind == spec.OutSend {
			m[o.Addr] = append(m[o.Addr], string(o.Data))
		}
	}
	return m
}

func events(out []spec.Output, name string) []spec.Event {
	var evs []spec.Event
	for _, o := range out {
		if o.Kind == spec.OutEvent && o.Event.Name == name {
			evs = append(evs, o.Event)
		}
	}
	return evs
}

func timerAt(out []spec.Output, id spec.Timer) (spec.Time, bool) {
	for _, o := range out {
		if o.Kind == spec.OutSetTimer && o.Timer == id {
			return o.At, true
		}
	}
	return 0, false
}

// The seed's behaviour with nc: lines are broadcast to every member,
// the sender included, as "[nick] text".
func TestPlainClientsChat(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{})
	a, c := addr(1), addr(2)
	got := b.dgram(0, a, "/nick alice\n")
	if len(got[a]) != 1 || !strings.HasPrefix(got[a][0], "*** welcome alice: 1 member(s) online") {
		t.Fatalf("welcome: %q", got)
	}
	got = b.dgram(time.Second, c, "hello there\n")
	if want := "*** guest1 joined\n"; len(got[a]) != 2 || got[a][0] != want {
		t.Fatalf("alice got %q, want the join notice then the message", got[a])
	}
	// The joiner has not yet shown it receives at its address: the
	// others hear its line, it gets only its welcome.
	if got[a][1] != "[guest1] hello there\n" || len(got[c]) != 1 {
		t.Fatalf("broadcast: %q", got)
	}
	// Several lines in one datagram (nc fed by a pipe) are several
	// messages; CR LF and surrounding blanks are trimmed.
	got = b.dgram(2*time.Second, a, "one\r\n\n  two  \n")
	if strings.Join(got[c], "") != "[alice] one\n[alice] two\n" {
		t.Fatalf("multi-line datagram: %q", got[c])
	}
	if n := len(srv.Members()); n != 2 {
		t.Fatalf("%d members", n)
	}
	// Plain clients never see control lines.
	for _, ds := range got {
		for _, d := range ds {
			if strings.Contains(d, "^") {
				t.Fatalf("plain client got a control line: %q", d)
			}
		}
	}
}

// An expired member is removed before anything is sent in the step that
// finds it expired: the seed sent it the message first.
func TestExpiredMemberGetsNothing(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second})
	a, c := addr(1), addr(2)
	b.dgram(0, a, "hi\n")
	b.dgram(5*time.Second, c, "hi\n")
	// At exactly a's deadline c talks: a is expired first.
	out := b.step(10*time.Second, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: c, Data: []byte("anyone?\n")})
	got := sends(out)
	if len(got[a]) != 0 {
		t.Fatalf("expired member was sent %q", got[a])
	}
	if strings.Join(got[c], "") != "*** guest1 timed out\n[guest2] anyone?\n" {
		t.Fatalf("c got %q", got[c])
	}
	if ev := events(out, "leave"); len(ev) != 1 || ev[0].Value.(chat.MemberEvent).Reason != chat.ReasonExpired {
		t.Fatalf("leave events %v", ev)
	}
	if ms := srv.Members(); len(ms) != 1 || ms[0].Addr != c {
		t.Fatalf("members %v", ms)
	}
}

// Expiry happens on time with nobody talking: the timer is set for the
// earliest deadline, and a timer that fires early (its member was heard
// since) re-arms for the next one.
func TestExpiryTimer(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 3 * time.Second})
	a, c := addr(1), addr(2)
	out := b.step(0, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: a, Data: []byte("^hb^")})
	if when, ok := timerAt(out, 1); !ok || when != at(3*time.Second) {
		t.Fatalf("expiry timer %v %v", when, ok)
	}
	b.dgram(0, a, "/ok "+tokenIn(sends(out)[a][0])) // a hears the notices
	b.dgram(time.Second, c, "^hb^")
	// A heartbeat sets no timer and sends nothing.
	if out := b.step(2*time.Second, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: a, Data: []byte("^hb^\n")}); len(out) != 0 {
		t.Fatalf("a heartbeat produced %v", out)
	}
	out = b.step(3*time.Second, spec.Input{Kind: spec.InTimer, Timer: 1})
	if len(events(out, "leave")) != 0 {
		t.Fatal("a member heard at 2s expired at 3s")
	}
	if when, ok := timerAt(out, 1); !ok || when != at(4*time.Second) {
		t.Fatalf("re-armed for %v, want c's deadline 4s", when)
	}
	out = b.step(4*time.Second, spec.Input{Kind: spec.InTimer, Timer: 1})
	if ev := events(out, "leave"); len(ev) != 1 || ev[0].Value.(chat.MemberEvent).Addr != c {
		t.Fatalf("at 4s: %v", ev)
	}
	if got := sends(out); strings.Join(got[a], "") != "*** guest2 timed out\n" || len(got[c]) != 0 {
		t.Fatalf("notices %q", got)
	}
	if srv.Len() != 1 {
		t.Fatalf("%d members", srv.Len())
	}
}

func TestQuit(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{})
	a, c := addr(1), addr(2)
	b.dgram(0, a, "/nick alice")
	b.dgram(0, c, "/nick bob")
	got := b.dgram(time.Second, c, "bye all\nquit\nignored\n")
	if strings.Join(got[c], "") != "[bob] bye all\n*** bye bob\n" {
		t.Fatalf("bob got %q", got[c])
	}
	if strings.Join(got[a], "") != "[bob] bye all\n*** bob left\n" {
		t.Fatalf("alice got %q", got[a])
	}
	// A quit from a non-member (a duplicate) joins no one, and is
	// answered only if the bye is no larger than the quit.
	got = b.dgram(2*time.Second, c, "quit\n")
	if len(got) != 0 || srv.Len() != 1 || srv.Stats().RepliesTooBig != 1 {
		t.Fatalf("second quit: %q, %d members, %+v", got, srv.Len(), srv.Stats())
	}
	got = b.dgram(2*time.Second, c, "quit\n   ")
	if strings.Join(got[c], "") != "*** bye\n" || len(got[a]) != 0 || srv.Len() != 1 {
		t.Fatalf("third quit: %q, %d members", got, srv.Len())
	}
	// An empty datagram joins no one either.
	if got := b.dgram(3*time.Second, c, " \r\n\n"); len(got) != 0 || srv.Len() != 1 {
		t.Fatalf("empty datagram: %q", got)
	}
}

func TestNick(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{})
	a, c := addr(1), addr(2)
	b.dgram(0, a, "/nick alice")
	b.dgram(0, c, "hi")
	tests := []struct {
		line, want string
	}{
		{"/nick", "*** you are guest1; /nick NAME changes it\n"},
		{"/nick ALICE", "*** error: nick ALICE is taken\n"},
		{"/nick 9lives", "*** error: a nick is 1 to 16 letters, digits, _ or -, starting with a letter\n"},
		{"/nick " + strings.Repeat("x", 17), "*** error: a nick is 1 to 16 letters, digits, _ or -, starting with a letter\n"},
		{"/nick bo b", "*** error: a nick is 1 to 16 letters, digits, _ or -, starting with a letter\n"},
		{"/nick bøb", "*** error: a nick is 1 to 16 letters, digits, _ or -, starting with a letter\n"},
		{"/nick Bob_the-2nd", "*** guest1 is now known as Bob_the-2nd\n"},
		{"/nick Bob_the-2nd", "*** you are already Bob_the-2nd\n"},
		{"/nick bob_THE-2nd", "*** Bob_the-2nd is now known as bob_THE-2nd\n"},
	}
	for i, tc := range tests {
		got := b.dgram(time.Duration(i+1)*time.Millisecond, c, tc.line)
		if strings.Join(got[c], "") != tc.want {
			t.Errorf("%q: got %q, want %q", tc.line, got[c], tc.want)
		}
	}
	if got := b.dgram(time.Second, a, "/who"); strings.Join(got[a], "") != "*** 2 member(s): alice, bob_THE-2nd\n" {
		t.Fatalf("/who: %q", got[a])
	}
}

// A client that joins with a nick it cannot have (nc's first line,
// /nick carol, with carol online) is told why it is a guest in the
// welcome itself: the error notice a later /nick draws is held until the
// member says /ok, so it used to be renamed silently.
func TestJoinWithANickItCannotHave(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{})
	b.dgram(0, addr(1), "/nick carol")
	for i, tc := range []struct{ line, want string }{
		{"/nick CAROL", "*** welcome guest1 (nick CAROL is taken): "},
		{"/nick 9lives", "*** welcome guest2 (not a valid nick: 1 to 16 letters, digits, _ or -, starting with a letter): "},
		{"/nick dave", "*** welcome dave: "},
	} {
		got := b.dgram(time.Millisecond, addr(2+i), tc.line)[addr(2+i)]
		if len(got) != 1 || !strings.HasPrefix(got[0], tc.want) {
			t.Errorf("%q: got %q, want a welcome starting %q", tc.line, got, tc.want)
		}
	}
}

func TestRefusedLines(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{MaxLine: 20, MaxDatagram: 100, Rate: -1})
	a, c := addr(1), addr(2)
	b.dgram(0, a, "/nick alice")
	b.dgram(0, c, "/nick bob")
	tests := []struct {
		name, data, toSender string
		broadcast            bool
	}{
		{"utf-8", "olá, 世界 👋", "[bob] olá, 世界 👋\n", true},
		{"tab", "a\tb", "[bob] a\tb\n", true},
		{"invalid utf-8", "caf\xe9", "*** error: not valid UTF-8; dropped\n", false},
		{"escape", "\x1b[2Jgotcha", "*** error: control characters are not allowed; dropped\n", false},
		{"c1 control", "a\u009bb", "*** error: control characters are not allowed; dropped\n", false},
		{"del", "a\x7f", "*** error: control characters are not allowed; dropped\n", false},
		{"too long", strings.Repeat("x", 21), "*** error: message of 21 bytes is over the limit of 20; dropped\n", false},
		{"max", strings.Repeat("x", 20), "[bob] " + strings.Repeat("x", 20) + "\n", true},
		{"oversized datagram", strings.Repeat("y", 101), "*** error: datagram of 102 bytes is over the limit of 100; dropped\n", false},
		{"max datagram", strings.Repeat("y", 99), "*** error: message of 99 bytes is over the limit of 20; dropped\n", false},
		{"unknown command", "/kick alice", "*** error: unknown command /kick; /help lists commands\n", false},
		{"escaped slash", "//kick is not a command", "", false},
		{"me", "/me waves", "* bob waves\n", true},
		{"me without action", "/me", "*** error: usage: /me ACTION\n", false},
	}
	for i, tc := range tests {
		got := b.dgram(time.Duration(i+1)*time.Millisecond, c, tc.data+"\n")
		if tc.name == "escaped slash" {
			if strings.Join(got[c], "") != "*** error: message of 22 bytes is over the limit of 20; dropped\n" {
				t.Errorf("%s: %q", tc.name, got[c])
			}
			continue
		}
		if strings.Join(got[c], "") != tc.toSender {
			t.Errorf("%s: sender got %q, want %q", tc.name, got[c], tc.toSender)
		}
		if tc.broadcast != (len(got[a]) == 1) {
			t.Errorf("%s: alice got %q", tc.name, got[a])
		}
	}
	st := srv.Stats()
	if st.InvalidUTF8 != 1 || st.Control != 3 || st.TooLong != 3 || st.Oversized != 1 || st.UnknownCommand != 1 {
		t.Fatalf("counters %+v", st)
	}
	// Garbage from a stranger joins no one and is not answered.
	if got := b.dgram(time.Second, addr(9), strings.Repeat("z", 200)); len(got) != 0 || srv.Len() != 2 {
		t.Fatalf("oversized from a stranger: %q", got)
	}
	// So does a datagram from port 0, which no reply could reach.
	if got := b.dgram(time.Second, netip.AddrPortFrom(addr(9).Addr(), 0), "hello"); len(got) != 0 || srv.Len() != 2 || srv.Stats().Port0 != 1 {
		t.Fatalf("from port 0: %q, %d members, %d counted", got, srv.Len(), srv.Stats().Port0)
	}
}

func TestRateLimit(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Rate: 2, Burst: 3})
	a := addr(1)
	b.dgram(0, a, "^hb^")
	var lines []string
	for i := 0; i < 6; i++ {
		got := b.dgram(time.Second, a, fmt.Sprintf("m%d", i))
		lines = append(lines, got[a]...)
	}
	want := []string{"[guest1] m0\n", "[guest1] m1\n", "[guest1] m2\n",
		"*** rate limit: at most 2 lines per second (bursts of 3); dropping your lines\n"}
	if strings.Join(lines, "") != strings.Join(want, "") {
		t.Fatalf("got %q", lines)
	}
	// Heartbeats are not limited; after 1/Rate one more line passes.
	if got := b.dgram(time.Second+time.Second/2, a, "^hb^"); len(got) != 0 {
		t.Fatalf("heartbeat: %q", got)
	}
	if got := b.dgram(time.Second+time.Second/2, a, "again"); strings.Join(got[a], "") != "[guest1] again\n" {
		t.Fatalf("after the period: %q", got)
	}
	// A line was accepted, so the next refused one starts a new episode,
	// which gets its own notice.
	if got := b.dgram(time.Second+time.Second/2, a, "too soon"); strings.Join(got[a], "") != want[3] {
		t.Fatalf("a second episode: %q, want its notice", got)
	}
	if st := srv.Stats(); st.RateLimited != 4 {
		t.Fatalf("rate limited %d", st.RateLimited)
	}
}

func TestMemberLimit(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{MaxMembers: 2})
	b.dgram(0, addr(1), "hi")
	b.dgram(0, addr(2), "hi")
	// The refusal is never larger than the datagram it answers: the
	// whole notice, a short one, or (counted) nothing.
	for _, tc := range []struct{ line, want string }{
		{"hello everyone, is there room for one more in here?", "*** chat is full (2 members); try again later\n"},
		{"let me in, please", "*** chat is full\n"},
		{"let me in", ""},
	} {
		got := b.dgram(0, addr(3), tc.line)
		if strings.Join(got[addr(3)], "") != tc.want || len(got) > 1 {
			t.Fatalf("third client said %q and got %q, want %q", tc.line, got, tc.want)
		}
	}
	if st := srv.Stats(); srv.Len() != 2 || st.Full != 3 || st.RepliesTooBig != 1 {
		t.Fatalf("%d members, %+v", srv.Len(), st)
	}
	// The limit is logged as a warning at most once a second, with a
	// count (it was at debug level only).
	var warns []string
	for i, at := range []time.Duration{0, 0, time.Second / 2, time.Second} {
		out := b.step(at, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: addr(10 + i), Data: []byte("room for me?")})
		for _, o := range out {
			if o.Kind == spec.OutLog && o.Log.Level >= slog.LevelWarn && strings.Contains(o.Log.Msg, "member limit") {
				warns = append(warns, fmt.Sprint(o.Log.Attrs))
			}
		}
	}
	if len(warns) != 1 || !strings.Contains(warns[0], "refused_so_far=7") {
		t.Fatalf("member-limit warnings %q; want one more a second after the first, counting 7", warns)
	}
	b.dgram(time.Second, addr(1), "quit")
	if got := b.dgram(time.Second, addr(3), "now?"); len(got[addr(3)]) != 1 || got[addr(2)][1] != "[guest3] now?\n" {
		t.Fatalf("after a quit: %q, want a welcome and the line broadcast", got)
	}
}

// hdr is a client's header.
func hdr(session uint64, seq uint32) string {
	return string(chat.AppendHeader(nil, chat.Header{Session: session, Seq: seq}))
}

// shdr is the server's header.
func shdr(session, membership uint64, seq uint32) string {
	return string(chat.AppendHeader(nil, chat.Header{Session: session, Membership: membership, Seq: seq, Server: true}))
}

// body strips the header of a datagram sent to a sequenced member.
func body(t *testing.T, d string) (chat.Header, string) {
	t.Helper()
	h, b, ok := chat.ParseHeader([]byte(d))
	if !ok {
		t.Fatalf("no header on %q", d)
	}
	return h, string(b)
}

// Sequenced datagrams are deduplicated and put in order; a gap is waited
// for Hold and then skipped.
func TestSequencedWindow(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Hold: 100 * time.Millisecond})
	a, p := addr(1), addr(2)
	const sess = 0x1234
	b.dgram(0, p, "/nick plain")
	got := b.dgram(0, a, hdr(sess, 1)+"/nick alice\n")
	h, w := body(t, got[a][0])
	if h.Seq != 1 || h.Session != sess || !h.Server || !strings.HasPrefix(w, "*** welcome alice:") || !strings.Contains(w, "\n^welcome alice 10000 ") {
		t.Fatalf("welcome %q", got[a])
	}
	mid := h.Membership
	if got := b.dgram(time.Millisecond, a, hdr(sess, 3)+"three\n"); len(got) != 0 {
		t.Fatalf("3 before 2 was delivered: %q", got)
	}
	got = b.dgram(2*time.Millisecond, a, hdr(sess, 2)+"two\n")
	if strings.Join(got[p], "") != "[alice] two\n[alice] three\n" {
		t.Fatalf("in order: %q", got[p])
	}
	if h, w := body(t, got[a][1]); h.Membership != mid || h.Seq != 4 || w != "[alice] three\n" { // 2 confirmed its token
		t.Fatalf("alice's copy: %q", got[a])
	}
	// Duplicates of anything passed are dropped.
	for _, s := range []uint32{1, 2, 3} {
		if got := b.dgram(3*time.Millisecond, a, hdr(sess, s)+"dup\n"); len(got) != 0 {
			t.Fatalf("duplicate %d: %q", s, got)
		}
	}
	// 4 and 5 are lost: 6 waits Hold, then goes out and 5 is late. The hold
	// timer is still set for 3's deadline (101ms): it fires early and
	// re-arms for 6's.
	out := b.step(10*time.Millisecond, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: a, Data: []byte(hdr(sess, 6) + "six\n")})
	if len(out) != 0 {
		t.Fatalf("6 waiting: %v", out)
	}
	out = b.step(101*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 2})
	if when, ok := timerAt(out, 2); !ok || when != at(110*time.Millisecond) || len(sends(out)) != 0 {
		t.Fatalf("hold timer %v %v; %v", when, ok, out)
	}
	if got := b.dgram(50*time.Millisecond, a, hdr(sess, 6)+"six\n"); len(got) != 0 {
		t.Fatalf("duplicate while waiting: %q", got)
	}
	got = sends(b.step(110*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 2}))
	if strings.Join(got[p], "") != "[alice] six\n" {
		t.Fatalf("after hold: %q", got)
	}
	if got := b.dgram(120*time.Millisecond, a, hdr(sess, 5)+"five\n"); len(got) != 0 {
		t.Fatalf("late 5: %q", got)
	}
	st := srv.Stats()
	if st.Duplicate != 1 || st.Stale != 4 || st.Lost != 2 || st.Reordered != 2 {
		t.Fatalf("counters %+v", st)
	}
}

// A sequenced quit closes the session: stragglers and duplicates of it
// neither rejoin nor show; a resent quit gets another bye.
func TestSessionClosedByQuit(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 5 * time.Second})
	a, p := addr(1), addr(2)
	const sess = 77
	b.dgram(0, p, "hi")
	b.dgram(0, a, hdr(sess, 1)+"/nick alice")
	b.dgram(time.Millisecond, a, hdr(sess, 3)+"waits for 2")
	got := b.dgram(2*time.Millisecond, a, hdr(sess, 4)+"quit")
	if strings.Join(got[p], "") != "[alice] waits for 2\n*** alice left\n" {
		t.Fatalf("quit flushes the window first: %q", got[p])
	}
	_, w := body(t, got[a][len(got[a])-1])
	if w != "*** bye alice\n^bye^\n" {
		t.Fatalf("bye %q", got[a])
	}
	for _, d := range []string{hdr(sess, 2) + "late", hdr(sess, 0) + "^hb^", hdr(sess, 3) + "waits for 2"} {
		if got := b.dgram(time.Second, a, d); len(got) != 0 || srv.Len() != 1 {
			t.Fatalf("straggler %q: %q", d, got)
		}
	}
	// A resent quit, padded as the client pads it, gets another bye.
	if got := b.dgram(time.Second, a, hdr(sess, 4)+"quit\n"+strings.Repeat(" ", 60)); len(got[a]) != 1 || got[a][0] != shdr(sess, 0, 0)+"*** bye\n^bye^\n" {
		t.Fatalf("resent quit: %q", got)
	}
	// After Interval the tombstone is gone and the session may rejoin.
	if got := b.dgram(6*time.Second, a, hdr(sess, 0)+"^hb^"); len(got[a]) != 1 {
		t.Fatalf("after the tombstone: %q", got)
	}
}

// A newer session at a member's address is a new client there; an older
// one is a straggler.
func TestSessionReplaced(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{})
	a, p := addr(1), addr(2)
	b.dgram(0, p, "hi")
	got := b.dgram(0, a, hdr(100, 1)+"/nick alice")
	h1, _ := body(t, got[a][0])
	got = b.dgram(time.Second, a, hdr(200, 1)+"/nick alice")
	if strings.Join(got[p], "") != "*** alice left (a new client took over the address)\n*** alice joined\n" {
		t.Fatalf("replace: %q", got[p])
	}
	h2, _ := body(t, got[a][0])
	if h2.Membership <= h1.Membership || h2.Seq != 1 || h2.Session != 200 {
		t.Fatalf("headers %+v then %+v", h1, h2)
	}
	if got := b.dgram(2*time.Second, a, hdr(100, 2)+"old"); len(got) != 0 {
		t.Fatalf("older session: %q", got)
	}
	if got := b.dgram(2*time.Second, a, "plain from the same port"); len(got) != 0 {
		t.Fatalf("plain datagram at a sequenced member's address: %q", got)
	}
	// The replaced session is closed; the plain datagram is older than
	// any session.
	if st := srv.Stats(); st.Replaced != 1 || st.ClosedSession != 1 || st.StaleSession != 1 {
		t.Fatalf("%+v", st)
	}
}

func TestStopSaysGoodbye(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{})
	b.dgram(0, addr(1), "hi")
	out := b.step(time.Second, spec.Input{Kind: spec.InStop})
	got := sends(out)
	if strings.Join(got[addr(1)], "") != "*** server shutting down\n" || out[len(out)-1].Kind != spec.OutExit {
		t.Fatalf("stop: %v", out)
	}
}

// /who stays one datagram of bounded size however many members there
// are.
func TestWhoIsBounded(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{JoinRate: -1})
	for i := 0; i < 300; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), 5000)
		b.dgram(0, from, fmt.Sprintf("/nick user%03d", i))
	}
	b.dgram(time.Second, addr(1), "^hb^")
	got := b.dgram(time.Second, addr(1), "/who")
	w := got[addr(1)][0]
	if len(w) > 1000 || !strings.HasPrefix(w, "*** 301 member(s): guest1, user000, user001") || !strings.Contains(w, " more\n") {
		t.Fatalf("/who: %d bytes %q", len(w), w)
	}
}

func TestProtocolBuildsEveryRole(t *testing.T) {
	for _, role := range chat.Protocol.Roles {
		if _, err := chat.Protocol.New(role, []byte(`{"server":"10.0.0.1:9999","addr":"10.0.0.1:9999"}`)); err != nil {
			t.Errorf("%s: %v", role, err)
		}
	}
	if _, err := chat.Protocol.New("admin", []byte(`{}`)); err == nil {
		t.Error("unknown role accepted")
	}
	if _, err := chat.Protocol.New("server", []byte(`{"interval":"soon"}`)); err == nil {
		t.Error("bad config accepted")
	}
	for _, d := range []string{"", "hi", hdr(5, 7) + "x\ny", "\xff\x00"} {
		if s := chat.Protocol.Describe([]byte(d)); s == "" {
			t.Errorf("Describe(%q) is empty", d)
		}
	}
}

var _ = bytes.Equal

func netipMust(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// Members that expire at the same instant are all removed before any
// notice goes out: none of them hears of the others' expiry.
func TestSimultaneousExpiry(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{Interval: time.Second})
	b.dgram(0, addr(1), "hi")
	b.dgram(0, addr(2), "hi")
	b.dgram(500*time.Millisecond, addr(3), "hi")
	got := sends(b.step(time.Second, spec.Input{Kind: spec.InTimer, Timer: 1}))
	if len(got[addr(1)])+len(got[addr(2)]) != 0 {
		t.Fatalf("an expired member was told of another's expiry: %q", got)
	}
	if strings.Join(got[addr(3)], "") != "*** guest1 timed out\n*** guest2 timed out\n" {
		t.Fatalf("the survivor got %q", got[addr(3)])
	}
}

// Forged joins make no amplifier: 200 sources that send one byte each
// and never answer their welcome's token draw their welcome and nothing
// else of the chat (no join notices, no lines, no timeouts), however many
// of them there are, while a validated member hears everything.
func TestForgedMembersHearNothing(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second, JoinRate: -1})
	real := addr(1)
	b.dgram(0, real, "/nick real")
	b.raw = true // from here on, nobody answers a welcome
	forged := map[netip.AddrPort]bool{}
	var in, out, welcomes int
	heard := 0
	for i := 0; i < 200; i++ {
		from := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.7"), uint16(1024+i)) // one victim, many ports
		forged[from] = true
		now := time.Duration(i) * 50 * time.Millisecond
		in++
		for to, ds := range b.dgram(now, from, "q") {
			for _, d := range ds {
				switch {
				case forged[to] && strings.HasPrefix(d, "*** welcome "):
					welcomes++
					out += len(d)
				case forged[to]:
					t.Fatalf("forged member %v was sent %q", to, d)
				case to == real:
					heard++
				}
			}
		}
	}
	// The real member talks, and everyone forged expires.
	for to, ds := range b.dgram(10*time.Second, real, "anyone?") {
		if forged[to] {
			t.Fatalf("forged member %v was sent %q", to, ds)
		}
	}
	for to := range sends(b.step(30*time.Second, spec.Input{Kind: spec.InTimer, Timer: 1})) {
		if forged[to] {
			t.Fatalf("forged member %v was sent its timeout", to)
		}
	}
	if welcomes != 200 || out > 200*200 {
		t.Errorf("%d welcomes, %d bytes to the forged addresses for %d bytes from them", welcomes, out, in)
	}
	if heard != 400 { // each forged join: a join notice and its line
		t.Errorf("the real member heard %d datagrams of the forged joins, want 400", heard)
	}
	if st := srv.Stats(); st.Withheld == 0 || st.Validated != 1 {
		t.Errorf("counters %+v", st)
	}
}

// A member that sends back the wrong token stays unvalidated; the right
// one lets the chat through, and a reminder repeats the token at most
// every half interval to a member that has not answered.
func TestTokenValidation(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second})
	b.raw = true
	a, c := addr(1), addr(2)
	tok := tokenIn(b.dgram(0, a, "/nick alice\n")[a][0])
	b.dgram(0, c, "/nick carol\n")
	b.dgram(time.Second, c, "/ok "+tokenIn("type /ok 00000000 x"))
	if got := b.dgram(2*time.Second, a, "hello\n"); len(got[c]) != 0 {
		t.Fatalf("carol, with a wrong token, was sent %q", got[c])
	}
	// carol was reminded at her wrong /ok (1s) only if half an interval
	// had passed since her welcome (0s): it had not.
	got := b.dgram(5*time.Second, c, "^hb^\n")
	if len(got[c]) != 1 || !strings.HasPrefix(got[c][0], "*** type /ok ") {
		t.Fatalf("reminder after half an interval: %q", got[c])
	}
	ctok := tokenIn(got[c][0])
	if got := b.dgram(6*time.Second, c, "/ok "+ctok+"\n"); len(got[c]) != 1 || got[c][0] != "*** ok carol: you hear the chat now\n" {
		t.Fatalf("carol's right token: %q", got[c])
	}
	b.dgram(6*time.Second, a, "/ok "+tok+"\n")
	if got := b.dgram(7*time.Second, a, "hello again\n"); got[c][0] != "[alice] hello again\n" || got[a][0] != "[alice] hello again\n" {
		t.Fatalf("after both validated: %q", got)
	}
	if st := srv.Stats(); st.BadTokens != 1 || st.Validated != 2 {
		t.Errorf("counters %+v", st)
	}
}

// An Interval below MinInterval is taken as MinInterval, by servers and
// clients alike: members heartbeat every third of it.
func TestIntervalFloor(t *testing.T) {
	for _, iv := range []time.Duration{time.Nanosecond, time.Millisecond, chat.MinInterval - 1} {
		if got := chat.NewServer(chat.ServerConfig{Interval: iv}).Config().Interval; got != chat.MinInterval {
			t.Errorf("server Interval %v became %v, want %v", iv, got, chat.MinInterval)
		}
	}
	if got := chat.NewServer(chat.ServerConfig{Interval: time.Second}).Config().Interval; got != time.Second {
		t.Errorf("server Interval 1s became %v", got)
	}
}

// A member not yet validated draws at most one datagram back per
// datagram, no larger than it, and hears nothing of the chat, its own
// lines included: a datagram of 300 lines from a forged address used to
// draw eleven of them back. Its lines still reach validated members (as
// many as the rate limit lets through).
func TestUnvalidatedMemberDrawsOneReply(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{})
	a, g := addr(1), addr(2)
	b.dgram(0, a, "/nick alice\n") // validated by the bench
	b.raw = true
	var lines strings.Builder
	for i := 1; i <= 20; i++ {
		fmt.Fprintf(&lines, "line %d\n", i)
	}
	// Its joining datagram draws the welcome and nothing else (20 lines
	// also drew the rate limit's notice: more bytes than it held).
	if got := b.dgram(0, g, lines.String()); len(got[g]) != 1 || !strings.Contains(got[g][0], "welcome") {
		t.Fatalf("a joining datagram of 20 lines drew %q", got[g])
	}
	lines.Reset()
	for i := 1; i <= 300; i++ {
		fmt.Fprintf(&lines, "%d\n", i)
	}
	for _, d := range []string{lines.String(), "/who\n/who\n/who\n", "/nick x\n/me waves\n\xff\n"} {
		got := b.dgram(time.Second, g, d)
		if len(got[g]) > 1 || (len(got[g]) == 1 && len(got[g][0]) > len(d)) {
			t.Fatalf("an unvalidated member's %d-byte datagram drew %d datagrams back: %q", len(d), len(got[g]), got[g])
		}
		for _, r := range got[g] {
			if strings.HasPrefix(r, "[") || strings.HasPrefix(r, "* ") {
				t.Fatalf("an unvalidated member heard the chat: %q", r)
			}
		}
		if d == lines.String() && (len(got[a]) == 0 || got[a][0] != "[guest1] 1\n") {
			t.Fatalf("alice heard %q of the 300 lines (the rest over the rate limit)", got[a])
		}
	}
}

// A sequenced member that expires and rejoins (its datagrams delayed
// past the interval, as with jitter longer than it) starts its new
// membership where the old one's window stood: a straggler the old
// membership already broadcast is not broadcast again, and nothing
// older is broadcast after something newer. With the base unknown,
// 'sim chat --interval 10ms' broadcast a line twice on 5 of 60 seeds.
func TestRejoinDoesNotRebroadcastStragglers(t *testing.T) {
	b, _ := newServer(t, chat.ServerConfig{Interval: 10 * time.Second})
	a, c := addr(1), addr(2)
	const session = 7
	b.dgram(0, c, "^hb^\n")
	for seq := uint32(1); seq <= 5; seq++ {
		b.dgram(time.Duration(seq)*time.Millisecond, a, fmt.Sprintf("%sline %d\n", hdr(session, seq), seq))
	}
	b.dgram(9*time.Second, c, "^hb^\n")
	// a has been silent for the interval: the straggler of line 4 (a
	// network duplicate, held back) rejoins it, and must not be shown.
	got := b.dgram(11*time.Second, a, hdr(session, 4)+"line 4\n")
	for _, d := range got[c] {
		if strings.Contains(d, "line 4") {
			t.Fatalf("the rejoined session's straggler was broadcast again: %q", got[c])
		}
	}
	got = b.dgram(11*time.Second+time.Millisecond, a, hdr(session, 6)+"line 6\n")
	if !strings.Contains(strings.Join(got[c], ""), "line 6") {
		t.Fatalf("the next line of the rejoined session was not broadcast: %q", got[c])
	}
}

// A validated sequenced member whose ^ok^ was lost sends its token
// again with its heartbeats: each draws ^ok^ again (its client holds its
// lines until one comes). A wrong token draws nothing more, nor does a
// plain member's repeated /ok.
func TestOkAnsweredAgain(t *testing.T) {
	b, srv := newServer(t, chat.ServerConfig{Interval: 10 * time.Second})
	b.raw = true
	a, p := addr(1), addr(2)
	tok := tokenIn(b.dgram(0, a, hdr(7, 1)+"/nick alice\n")[a][0])
	if got := b.dgram(time.Millisecond, a, hdr(7, 0)+"/ok "+tok+"\n")[a]; len(got) != 1 || !strings.HasSuffix(got[0], "^ok^\n") {
		t.Fatalf("the token drew %q", got)
	}
	for i := range 3 {
		if got := b.dgram(time.Duration(i+2)*time.Second, a, hdr(7, 0)+"/ok "+tok+"\n")[a]; len(got) != 1 || !strings.HasSuffix(got[0], "^ok^\n") || strings.Contains(got[0], "***") {
			t.Fatalf("the token again (%d) drew %q: want ^ok^ alone", i+1, got)
		}
	}
	if got := b.dgram(6*time.Second, a, hdr(7, 0)+"/ok 00000000\n")[a]; len(got) != 0 {
		t.Fatalf("a wrong token from a validated member drew %q", got)
	}
	ptok := tokenIn(b.dgram(0, p, "/nick plain\n")[p][0])
	b.dgram(time.Millisecond, p, "/ok "+ptok+"\n")
	if got := b.dgram(time.Second, p, "/ok "+ptok+"\n")[p]; len(got) != 0 {
		t.Fatalf("a plain member's repeated /ok drew %q", got)
	}
	if st := srv.Stats(); st.OkAgain != 3 || st.Validated != 2 {
		t.Errorf("counters %+v: want 3 answered again, 2 validated", st)
	}
}
