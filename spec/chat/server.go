package chat

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netspec/netspec/spec"
)

const sock spec.Sock = 1

// Server timers.
const (
	timerExpire spec.Timer = 1 // the longest-silent member's deadline
	timerHold   spec.Timer = 2 // the longest-waiting out-of-order datagram
)

// Reasons a member leaves.
const (
	ReasonQuit     = "quit"
	ReasonExpired  = "expired"
	ReasonReplaced = "replaced"
)

// Server is a chat server machine.
type Server struct {
	cfg  ServerConfig
	rate spec.Rate // lines per member

	members map[netip.AddrPort]*member
	nicks   map[string]*member // folded nick -> member
	order   []*member          // broadcast order
	oldest  *member            // least recently heard (expires first)
	newest  *member
	nSeq    int // members that speak the sequenced dialect

	pending []*member // members with datagrams waiting in their window
	tombs   map[tombKey]spec.Time
	tombQ   []tomb
	// floors remember, for FloorKeep after a sequenced member expired,
	// the first number its window had not passed: if the session
	// rejoins, its new membership starts there, so a straggler the old
	// one already broadcast is not broadcast again (at most FloorKeep
	// Intervals' worth of members, MaxMembers at most).
	floors  map[tombKey]floor
	floorQ  []tomb
	lastMID uint64
	guests  uint64

	expAt, holdAt spec.Time // when the timers are set (0: not set)

	joinRate         spec.Rate     // joins and answers to strangers, server-wide
	joinTAT          spec.Time     // its state
	joinLog, fullLog spec.Throttle // the join and member limits' warnings, at most one a second

	out   []spec.Output
	deliv [][]byte
	c     ServerCounters
	// local is the Local of the datagram being handled: answers leave
	// from the address they were asked on.
	local netip.Addr
	// answering is the source of the datagram being handled, and budget
	// the bytes it may still draw if it is a member not yet validated.
	answering netip.AddrPort
	budget    int
}

// member is one client in the chat.
type member struct {
	addr    netip.AddrPort
	local   netip.Addr // the server's address it last sent to (Input.Local)
	nick    string
	key     string // folded nick
	session uint64 // 0: a plain (nc) client
	mid     uint64 // this membership's id in the server's headers
	prefix  []byte // "^SESSION.MEMBERSHIP.": the constant part of its headers
	outSeq  uint32 // last sequence number sent
	heard   spec.Time
	tat     spec.Time // rate limiter: theoretical arrival time (GCRA)
	limited bool      // the rate-limit notice has been sent this episode
	win     window
	// token is what the member must send back ("/ok TOKEN") to show it
	// receives at its address; until then it is not validated.
	token     string
	validated bool
	reminded  spec.Time // when it was last told its token
	idx       int       // in Server.order
	pending   bool
	older     *member // expiry list neighbours
	newer     *member
}

// header is the header of the datagram numbered m.outSeq.
func (m *member) header() Header {
	return Header{Session: m.session, Membership: m.mid, Seq: m.outSeq, Server: true}
}

// appendHeader appends header() from the cached prefix: a broadcast
// formats a thousand of them.
func (m *member) appendHeader(dst []byte) []byte {
	return append(strconv.AppendUint(append(dst, m.prefix...), uint64(m.outSeq), 10), '^')
}

// floor is where a rejoining session's window starts (see Server.floors).
type floor struct {
	next  uint64
	until spec.Time
}

// FloorKeep is how many Intervals a server remembers where an expired
// sequenced member's window stood.
const FloorKeep = 8

type tombKey struct {
	addr    netip.AddrPort
	session uint64
}

type tomb struct {
	key tombKey
	at  spec.Time // expiry
}

// ServerCounters are what a server counts; see Counters for their names.
type ServerCounters struct {
	Datagrams, Heartbeats, Lines, Joins, Quits, Expired, Replaced         uint64
	JoinsLimited                                                          uint64
	Messages, Sent, Full, RateLimited, Oversized, Malformed, InvalidUTF8  uint64
	Control, TooLong, BadNick, NickTaken, UnknownCommand, Empty           uint64
	Duplicate, Stale, Reordered, Lost, ClosedSession, StaleSession, Port0 uint64
	// ServerOutput counts strangers' datagrams that looked like a chat
	// server's output; RepliesTooBig and RepliesLimited count answers to
	// strangers left unsent because they would have been larger than the
	// datagram they answered, or were over the strangers' rate limit.
	ServerOutput, RepliesTooBig, RepliesLimited uint64
	// Validated counts members that sent their token back, OkAgain the
	// tokens sent again by members already validated (answered ^ok^
	// again: the first was lost), BadTokens wrong tokens, and Withheld
	// what was not sent to members not yet validated (broadcasts, and
	// replies larger than what they answer).
	Validated, OkAgain, BadTokens, Withheld uint64
	// Cookies counts the cookies sent to sequenced strangers the join
	// limit turned away, CookieJoins the joins that came back with a
	// good one (past the limit), BadCookies the ones that did not.
	Cookies, CookieJoins, BadCookies uint64
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	cfg.fill()
	s := &Server{
		cfg:     cfg,
		members: map[netip.AddrPort]*member{},
		nicks:   map[string]*member{},
		tombs:   map[tombKey]spec.Time{},
		floors:  map[tombKey]floor{},
	}
	s.rate = spec.NewRate(cfg.Rate, cfg.Burst)
	s.joinRate = spec.NewRate(cfg.JoinRate, cfg.JoinBurst)
	return s
}

// Config returns the configuration with defaults filled in.
func (s *Server) Config() ServerConfig { return s.cfg }

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	c := &s.c
	return []spec.Counter{
		{Name: "datagrams", Value: c.Datagrams},
		{Name: "heartbeats", Value: c.Heartbeats},
		{Name: "lines", Value: c.Lines},
		{Name: "joins", Value: c.Joins},
		{Name: "joins_limited", Value: c.JoinsLimited},
		{Name: "quits", Value: c.Quits},
		{Name: "expired", Value: c.Expired},
		{Name: "replaced", Value: c.Replaced},
		{Name: "messages", Value: c.Messages},
		{Name: "sent", Value: c.Sent},
		{Name: "members", Value: uint64(len(s.members))},
		{Name: "refused_full", Value: c.Full},
		{Name: "rate_limited", Value: c.RateLimited},
		{Name: "dropped_oversized", Value: c.Oversized},
		{Name: "dropped_malformed", Value: c.Malformed},
		{Name: "dropped_port0", Value: c.Port0},
		{Name: "refused_invalid_utf8", Value: c.InvalidUTF8},
		{Name: "refused_control_chars", Value: c.Control},
		{Name: "refused_too_long", Value: c.TooLong},
		{Name: "refused_bad_nick", Value: c.BadNick},
		{Name: "refused_nick_taken", Value: c.NickTaken},
		{Name: "unknown_commands", Value: c.UnknownCommand},
		{Name: "dropped_empty", Value: c.Empty},
		{Name: "dropped_duplicate", Value: c.Duplicate},
		{Name: "dropped_stale", Value: c.Stale},
		{Name: "reordered", Value: c.Reordered},
		{Name: "lost", Value: c.Lost},
		{Name: "dropped_closed_session", Value: c.ClosedSession},
		{Name: "dropped_stale_session", Value: c.StaleSession},
		{Name: "dropped_server_output", Value: c.ServerOutput},
		{Name: "replies_too_big", Value: c.RepliesTooBig},
		{Name: "replies_limited", Value: c.RepliesLimited},
		{Name: "validated", Value: c.Validated},
		{Name: "ok_again", Value: c.OkAgain},
		{Name: "bad_tokens", Value: c.BadTokens},
		{Name: "cookies", Value: c.Cookies},
		{Name: "cookie_joins", Value: c.CookieJoins},
		{Name: "bad_cookies", Value: c.BadCookies},
		{Name: "withheld_unvalidated", Value: c.Withheld},
	}
}

// Stats returns the counters as a struct.
func (s *Server) Stats() ServerCounters { return s.c }

// MemberInfo describes a member, for tests and tools.
type MemberInfo struct {
	Addr      netip.AddrPort
	Nick      string
	Heard     spec.Time
	Validated bool
}

// Members lists the members, by address.
func (s *Server) Members() []MemberInfo {
	out := make([]MemberInfo, 0, len(s.order))
	for _, m := range s.order {
		out = append(out, MemberInfo{Addr: m.addr, Nick: m.nick, Heard: m.heard, Validated: m.validated})
	}
	slices.SortFunc(out, func(a, b MemberInfo) int { return a.Addr.Compare(b.Addr) })
	return out
}

// Len is the number of members.
func (s *Server) Len() int { return len(s.members) }

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	s.out = out
	switch in.Kind {
	case spec.InStart:
		s.out = append(s.out, spec.Bind(sock, spec.UDP, s.cfg.Addr))
	case spec.InBound:
		if in.Err != "" {
			s.out = append(s.out, spec.Exit("chat: bind "+s.cfg.Addr.String()+": "+in.Err))
			break
		}
		s.out = append(s.out,
			spec.Info("chat server listening", slog.String("addr", in.Addr.String()), slog.Duration("interval", s.cfg.Interval)),
			spec.Emit(spec.Event{Name: "listening", Text: "udp " + in.Addr.String()}))
	case spec.InDatagram:
		s.expire(now)
		s.local = in.Local
		s.datagram(now, in.Addr, in.Data)
		s.local = netip.Addr{}
	case spec.InTimer:
		// Whichever timer fires, members whose time has come go first:
		// the hold timer may fall due at the instant a member expires,
		// and what it releases must not be sent to that member.
		s.expire(now)
		switch in.Timer {
		case timerExpire:
			s.expAt = 0
		case timerHold:
			s.holdAt = 0
			s.holds(now)
		}
	case spec.InStop:
		s.expire(now)
		s.sendAll(now, []byte("*** server shutting down\n"), nil)
		s.out = append(s.out, spec.Exit(""))
		out, s.out = s.out, nil
		return out
	}
	s.arm()
	out, s.out = s.out, nil
	return out
}

// arm sets the timers no later than the earliest deadlines. A timer that
// fires early (its member was heard since) just re-arms.
func (s *Server) arm() {
	if m := s.oldest; m != nil {
		at := m.heard.Add(s.cfg.Interval)
		if s.expAt == 0 || at < s.expAt {
			s.expAt = at
			s.out = append(s.out, spec.SetTimer(timerExpire, at))
		}
	}
	if len(s.pending) > 0 {
		var at spec.Time
		for i, m := range s.pending {
			d, _ := m.win.deadline(s.cfg.Hold)
			if i == 0 || d < at {
				at = d
			}
		}
		if s.holdAt == 0 || at < s.holdAt {
			s.holdAt = at
			s.out = append(s.out, spec.SetTimer(timerHold, at))
		}
	}
}

// expire removes every member silent for Interval or longer, before
// anything is sent: an expired member gets nothing more (the seed sent
// it the message in the same pass). Closed sessions are forgotten after
// Interval too.
func (s *Server) expire(now spec.Time) {
	if s.oldest == nil || s.oldest.heard.Add(s.cfg.Interval) > now {
		s.purge(now)
		return
	}
	// Remove every expired member before telling anyone, so no notice
	// goes to a member expiring at the same time.
	var due []*member
	for m := s.oldest; m != nil && m.heard.Add(s.cfg.Interval) <= now; m = m.newer {
		due = append(due, m)
	}
	s.removeAll(due)
	for _, m := range due {
		s.farewell(now, m, ReasonExpired)
	}
	s.purge(now)
}

// purge forgets closed sessions after Interval, and the oldest ones
// beyond MaxMembers.
func (s *Server) purge(now spec.Time) {
	// Bounded by the floors kept, not the queue: its entries for floors a
	// rejoin took or a later expiry replaced are stale, and trimming by
	// them forgot live floors early.
	for len(s.floorQ) > 0 && (s.floorQ[0].at <= now || len(s.floors) > s.cfg.MaxMembers) {
		if t := s.floorQ[0]; s.floors[t.key].until == t.at {
			delete(s.floors, t.key)
		}
		s.floorQ[0] = tomb{}
		s.floorQ = s.floorQ[1:]
	}
	if len(s.floorQ) == 0 {
		s.floorQ = nil
	}
	for len(s.tombQ) > 0 && (s.tombQ[0].at <= now || len(s.tombQ) > s.cfg.MaxMembers) {
		t := s.tombQ[0]
		if s.tombs[t.key] == t.at {
			delete(s.tombs, t.key)
		}
		s.tombQ[0] = tomb{}
		s.tombQ = s.tombQ[1:]
	}
	if len(s.tombQ) == 0 {
		s.tombQ = nil
	}
}

func (s *Server) datagram(now spec.Time, from netip.AddrPort, data []byte) {
	s.c.Datagrams++
	// What this datagram may draw back to its source if that is a member
	// not yet validated: no more bytes than it holds.
	s.answering, s.budget = from, len(data)
	defer func() { s.answering, s.budget = netip.AddrPort{}, 0 }()
	if from.Port() == 0 {
		s.c.Port0++
		s.out = append(s.out, spec.Debug("chat: dropped datagram from port 0", slog.String("from", from.String())))
		return
	}
	m := s.members[from]
	if len(data) > s.cfg.MaxDatagram {
		s.c.Oversized++
		s.out = append(s.out, spec.Debug("chat: dropped oversized datagram", slog.String("from", from.String()), slog.Int("len", len(data))))
		if m != nil {
			s.refresh(now, m)
			if s.allow(now, m) {
				s.notice(now, m, fmt.Sprintf("error: datagram of %d bytes is over the limit of %d; dropped", len(data), s.cfg.MaxDatagram))
			}
		}
		return
	}
	h, body, seq := ParseHeader(data)
	if seq && (h.Session == 0 || h.Server) {
		s.c.Malformed++
		s.out = append(s.out, spec.Debug("chat: dropped datagram with a bad header", slog.String("from", from.String())))
		return
	}
	quit := hasQuit(body)
	if seq {
		if _, dead := s.tombs[tombKey{from, h.Session}]; dead {
			s.c.ClosedSession++
			s.out = append(s.out, spec.Debug("chat: dropped datagram of a closed session", slog.String("from", from.String())))
			if quit {
				s.answerStranger(now, from, h.Session, len(data), []byte("*** bye\n^bye^\n"))
			}
			return
		}
	}
	if m != nil && m.session != h.Session {
		if h.Session < m.session {
			s.c.StaleSession++
			s.out = append(s.out, spec.Debug("chat: dropped datagram of an older session", slog.String("from", from.String())))
			return
		}
		s.leave(now, m, ReasonReplaced)
		m = nil
	}
	if m == nil {
		if m = s.admit(now, from, h.Session, &body, quit, len(data)); m == nil {
			return
		}
	}
	s.refresh(now, m)
	if !seq || h.Seq == 0 || quit {
		if quit && seq {
			// quit closes the session at once: what waits is delivered
			// first, in order; later stragglers meet the tombstone.
			st := windowStats{}
			dst := m.win.flush(s.deliv[:0], &st)
			s.c.Lost += st.lost
			s.deliver(now, m, dst)
		}
		s.lines(now, m, body)
		return
	}
	st := windowStats{}
	dst, v := m.win.push(now, h.Seq, body, s.deliv[:0], &st)
	s.c.Lost += st.lost
	switch v {
	case duplicate, stale:
		if v == duplicate {
			s.c.Duplicate++
		} else {
			s.c.Stale++
		}
		s.out = append(s.out, spec.Debug("chat: dropped repeated or late datagram", slog.String("from", from.String()), slog.Uint64("seq", uint64(h.Seq))))
	case buffered:
		s.c.Reordered++
	}
	s.deliver(now, m, dst)
	s.track(m)
}

// deliver processes datagram bodies a window released, in order.
func (s *Server) deliver(now spec.Time, m *member, bodies [][]byte) {
	for i, b := range bodies {
		s.lines(now, m, b)
		bodies[i] = nil
	}
	s.deliv = bodies[:0]
}

// track keeps the set of members whose windows hold datagrams.
func (s *Server) track(m *member) {
	waiting := len(m.win.slots) > 0
	if waiting == m.pending {
		return
	}
	m.pending = waiting
	if waiting {
		s.pending = append(s.pending, m)
		return
	}
	if i := slices.Index(s.pending, m); i >= 0 {
		s.pending = slices.Delete(s.pending, i, i+1)
	}
}

// holds delivers out-of-order datagrams that have waited long enough.
func (s *Server) holds(now spec.Time) {
	for _, m := range slices.Clone(s.pending) {
		st := windowStats{}
		dst := m.win.due(now, s.cfg.Hold, s.deliv[:0], &st)
		s.c.Lost += st.lost
		s.deliver(now, m, dst)
		s.track(m)
	}
}

// hasQuit reports whether any line of body is quit.
func hasQuit(body []byte) bool {
	for len(body) > 0 {
		var line []byte
		line, body = nextLine(body)
		if k, _ := Classify(line); k == KindQuit {
			return true
		}
	}
	return false
}

// admit makes a member of a client that is not one. A datagram of only
// empty lines, or a quit, joins no one; a first line "/nick NAME" joins
// under that name. size is the datagram's size: no answer to a stranger
// is larger.
func (s *Server) admit(now spec.Time, from netip.AddrPort, session uint64, body *[]byte, quit bool, size int) *member {
	first, rest := nextLine(*body)
	for len(first) == 0 && len(rest) > 0 {
		first, rest = nextLine(rest)
	}
	// A sequenced client turned away by the join limit comes back with
	// the cookie it was given, which proves it receives at its address:
	// forged sources cannot, so it joins past the limit they exhaust.
	proven := false
	if ck, ok := cookieLine(first); ok && session != 0 {
		if proven = hmac.Equal([]byte(s.cookieFor(now, from, session, 0)), []byte(ck)) || hmac.Equal([]byte(s.cookieFor(now, from, session, -1)), []byte(ck)); proven {
			s.c.CookieJoins++
		} else {
			s.c.BadCookies++
		}
		first, rest = nextLine(rest)
		for len(first) == 0 && len(rest) > 0 {
			first, rest = nextLine(rest)
		}
	}
	kind, arg := Classify(first)
	switch {
	case kind == KindEmpty:
		s.c.Empty++
		s.out = append(s.out, spec.Debug("chat: dropped empty datagram from a non-member", slog.String("from", from.String())))
		return nil
	case bytes.HasPrefix(first, []byte("*** ")):
		// A notice, as a server sends: most likely another chat server
		// that a forged datagram set talking to us. Answering it, or
		// making it a member, could start the two talking for ever.
		s.c.ServerOutput++
		s.out = append(s.out, spec.Debug("chat: dropped a stranger's datagram that looks like a server's", slog.String("from", from.String())))
		return nil
	case quit:
		// Not a member: acknowledge, and close the session so its late
		// datagrams do not make it one.
		if session != 0 {
			s.bury(now, tombKey{from, session})
		}
		s.answerStranger(now, from, session, size, []byte("*** bye\n^bye^\n"))
		return nil
	case len(s.members) >= s.cfg.MaxMembers:
		s.c.Full++
		s.out = append(s.out, spec.Debug("chat: full, refusing", slog.String("from", from.String())))
		if _, ok := s.fullLog.Hit(now, time.Second); ok {
			s.out = append(s.out, spec.Warn("chat: member limit reached; refusing joins", slog.Int("max", s.cfg.MaxMembers), slog.Uint64("refused_so_far", s.c.Full)))
		}
		s.answerStranger(now, from, session, size,
			fmt.Appendf(nil, "*** chat is full (%d members); try again later\n", len(s.members)),
			[]byte("*** chat is full\n"))
		return nil
	}
	if !proven && !s.allowJoin(now, from, session, size) {
		return nil
	}
	nick, note := "", ""
	if kind == KindNick {
		switch {
		case !ValidNick(arg):
			s.c.BadNick++
			note = " (not a valid nick: 1 to 16 letters, digits, _ or -, starting with a letter)"
		case s.nicks[foldNick(string(arg))] != nil:
			s.c.NickTaken++
			note = fmt.Sprintf(" (nick %s is taken)", arg)
		default:
			nick = string(arg)
		}
		// Answered here: the notice a later /nick would draw is held
		// until the member says /ok, and a client that joined with a
		// nick (nc) would never learn why it is a guest.
		*body = rest
	}
	return s.join(now, from, session, nick, note)
}

// join makes from a member as nick (a guest name if empty); note, if
// any, goes in its welcome.
func (s *Server) join(now spec.Time, from netip.AddrPort, session uint64, nick, note string) *member {
	if nick == "" {
		for {
			s.guests++
			nick = "guest" + strconv.FormatUint(s.guests, 10)
			if s.nicks[nick] == nil {
				break
			}
		}
	}
	// Membership ids grow with the clock (microseconds), so a client can
	// tell a newer membership, also across server restarts, from an old
	// one's late datagrams.
	s.lastMID = max(s.lastMID+1, uint64(now)/1000)
	m := &member{addr: from, local: s.local, nick: nick, key: foldNick(nick), session: session, mid: s.lastMID, heard: now, idx: len(s.order)}
	if f, ok := s.floors[tombKey{from, session}]; ok && session != 0 {
		// The session was a member before and expired: its numbers
		// below where that membership's window stood have been
		// processed (or declared lost), and must not be again.
		m.win.next = f.next
		delete(s.floors, tombKey{from, session})
	}
	m.token, m.reminded = s.tokenFor(m), now
	if session != 0 {
		h := AppendHeader(make([]byte, 0, headerMax), m.header())
		m.prefix = h[:len(h)-2] // up to the sequence number
	}
	s.members[from] = m
	s.nicks[m.key] = m
	s.order = append(s.order, m)
	if session != 0 {
		s.nSeq++
	}
	s.link(m)
	s.c.Joins++
	s.out = append(s.out,
		spec.Info("chat: join", slog.String("addr", from.String()), slog.String("nick", nick)),
		spec.Emit(spec.Event{Name: "join", Text: nick, Value: MemberEvent{Addr: from, Nick: nick}}))
	s.sendAll(now, fmt.Appendf(nil, "*** %s joined\n", nick), m)
	w := fmt.Appendf(nil, "*** welcome %s%s: %d member(s) online; type /ok %s to hear the chat; silence for %v drops you (send ^hb^ to stay); /help lists commands\n",
		nick, note, len(s.members), m.token, s.cfg.Interval)
	if session != 0 {
		w = fmt.Appendf(w, "^welcome %s %d %s^\n", nick, s.cfg.Interval.Milliseconds(), m.token)
	}
	s.sendAlways(m, w)
	return m
}

// cookieFor is the cookie of a sequenced stranger at from with session,
// for the Interval-long epoch now falls in (ago 0) or the one before
// (ago -1): 16 hex digits of an HMAC under the server's secret, so only
// a client that receives at from has it, and it is good for one to two
// Intervals. The server keeps nothing: a flood of joins costs no state.
func (s *Server) cookieFor(now spec.Time, from netip.AddrPort, session uint64, ago int64) string {
	epoch := int64(now)/int64(s.cfg.Interval) + ago
	mac := hmac.New(sha256.New, s.cfg.Secret)
	mac.Write([]byte("chat cookie"))
	a := from.Addr().As16()
	mac.Write(a[:])
	var b [18]byte
	binary.BigEndian.PutUint16(b[0:], from.Port())
	binary.BigEndian.PutUint64(b[2:], session)
	binary.BigEndian.PutUint64(b[10:], uint64(epoch))
	mac.Write(b[:])
	return hex.EncodeToString(mac.Sum(nil)[:8])
}

// tokenFor is m's token: 8 hex digits of an HMAC of its address,
// session and membership under the server's secret, which a forger who
// does not receive at the address cannot know.
func (s *Server) tokenFor(m *member) string {
	mac := hmac.New(sha256.New, s.cfg.Secret)
	a := m.addr.Addr().As16()
	mac.Write(a[:])
	var b [18]byte
	binary.BigEndian.PutUint16(b[0:], m.addr.Port())
	binary.BigEndian.PutUint64(b[2:], m.session)
	binary.BigEndian.PutUint64(b[10:], m.mid)
	mac.Write(b[:])
	return hex.EncodeToString(mac.Sum(nil)[:4])
}

// remind tells a member that is still not validated its token again
// when it sends something, at most every half interval: its welcome may
// have been lost, and it would hear nothing of the chat for as long as
// it stays. Reminders draw on the strangers' budget, as welcomes do, so
// forged members kept alive cannot make them a flood.
func (s *Server) remind(now spec.Time, m *member) {
	if m.validated || s.members[m.addr] != m || now.Sub(m.reminded) < s.cfg.Interval/2 {
		return
	}
	if !s.strangerCredit(now) {
		s.c.RepliesLimited++
		return
	}
	m.reminded = now
	b := fmt.Appendf(nil, "*** type /ok %s to hear the chat\n", m.token)
	if m.session != 0 {
		b = fmt.Appendf(nil, "^token %s^\n", m.token) // shown to nobody: the client answers it
	}
	s.sendAlways(m, b)
}

// validate takes a member's "/ok TOKEN".
func (s *Server) validate(now spec.Time, m *member, token []byte) {
	switch {
	case m.validated:
		// Its ^ok^ was lost (the client sends the token with every
		// heartbeat until one comes, and holds its lines till then).
		if m.session != 0 && hmac.Equal(token, []byte(m.token)) {
			s.c.OkAgain++
			s.send(m, []byte("^ok^\n"))
		}
		return
	case !hmac.Equal(token, []byte(m.token)):
		s.c.BadTokens++
		s.out = append(s.out, spec.Debug("chat: wrong token", slog.String("from", m.addr.String())))
		s.notice(now, m, "error: wrong token")
		return
	}
	m.validated = true
	s.c.Validated++
	s.out = append(s.out, spec.Debug("chat: validated", slog.String("addr", m.addr.String()), slog.String("nick", m.nick)),
		spec.Emit(spec.Event{Name: "validated", Text: m.nick, Value: MemberEvent{Addr: m.addr, Nick: m.nick}}))
	b := fmt.Appendf(nil, "*** ok %s: you hear the chat now\n", m.nick)
	if m.session != 0 {
		b = append(b, "^ok^\n"...)
	}
	s.send(m, b)
}

// leave ends a membership. An expired member is sent nothing; a member
// that quit gets its bye.
func (s *Server) leave(now spec.Time, m *member, reason string) {
	s.remove(m)
	s.farewell(now, m, reason)
}

// remove takes m out of the server's tables, keeping the others in join
// order (the order broadcasts go out in).
func (s *Server) remove(m *member) {
	s.unlist(m)
	copy(s.order[m.idx:], s.order[m.idx+1:])
	s.order[len(s.order)-1] = nil
	s.order = s.order[:len(s.order)-1]
	for _, o := range s.order[m.idx:] {
		o.idx--
	}
}

// removeAll takes every member of ms out of the server's tables with one
// pass over the broadcast order, however many expire at once.
func (s *Server) removeAll(ms []*member) {
	for _, m := range ms {
		s.unlist(m)
		m.idx = -1
	}
	keep := s.order[:0]
	for _, o := range s.order {
		if o.idx >= 0 {
			o.idx = len(keep)
			keep = append(keep, o)
		}
	}
	clear(s.order[len(keep):])
	s.order = keep
}

// unlist takes m out of every table but the broadcast order.
func (s *Server) unlist(m *member) {
	delete(s.members, m.addr)
	delete(s.nicks, m.key)
	if m.session != 0 {
		s.nSeq--
	}
	s.unlink(m)
	if m.pending {
		m.win.slots = nil
		s.track(m)
	}
}

// farewell reports that m left and tells the remaining members.
func (s *Server) farewell(now spec.Time, m *member, reason string) {
	s.out = append(s.out,
		spec.Info("chat: leave", slog.String("addr", m.addr.String()), slog.String("nick", m.nick), slog.String("reason", reason)),
		spec.Emit(spec.Event{Name: "leave", Text: m.nick, Value: MemberEvent{Addr: m.addr, Nick: m.nick, Reason: reason}}))
	var note string
	switch reason {
	case ReasonQuit:
		s.c.Quits++
		note = "*** %s left\n"
		s.sendAlways(m, fmt.Appendf(nil, "*** bye %s\n^bye^\n", m.nick)) // one per membership, as the welcome
	case ReasonExpired:
		s.c.Expired++
		note = "*** %s timed out\n"
		if m.session != 0 && m.win.next > 0 {
			k, at := tombKey{m.addr, m.session}, now.Add(FloorKeep*s.cfg.Interval)
			s.floors[k] = floor{next: m.win.next, until: at}
			s.floorQ = append(s.floorQ, tomb{key: k, at: at})
		}
	case ReasonReplaced:
		s.c.Replaced++
		note = "*** %s left (a new client took over the address)\n"
	}
	if m.session != 0 && reason != ReasonExpired {
		s.bury(now, tombKey{m.addr, m.session})
	}
	s.sendAll(now, fmt.Appendf(nil, note, m.nick), nil)
}

// bury closes a session for Interval: its late datagrams are dropped.
func (s *Server) bury(now spec.Time, k tombKey) {
	at := now.Add(s.cfg.Interval)
	s.tombs[k] = at
	s.tombQ = append(s.tombQ, tomb{key: k, at: at})
	s.purge(now)
}

// link appends m to the expiry list; refresh moves it to the end.
func (s *Server) link(m *member) {
	m.older, m.newer = s.newest, nil
	if s.newest != nil {
		s.newest.newer = m
	} else {
		s.oldest = m
	}
	s.newest = m
}

func (s *Server) unlink(m *member) {
	if m.older != nil {
		m.older.newer = m.newer
	} else {
		s.oldest = m.newer
	}
	if m.newer != nil {
		m.newer.older = m.older
	} else {
		s.newest = m.older
	}
	m.older, m.newer = nil, nil
}

// refresh records that m was heard from now: any datagram does it.
func (s *Server) refresh(now spec.Time, m *member) {
	m.heard, m.local = now, s.local
	if s.newest != m {
		s.unlink(m)
		s.link(m)
	}
}

// allow applies m's rate limit to one line (GCRA: Burst lines at once,
// then one per 1/Rate). The first refused line of an episode gets a
// notice; the rest are dropped quietly until a line is allowed again.
func (s *Server) allow(now spec.Time, m *member) bool {
	if !s.rate.Allow(now, &m.tat) {
		s.c.RateLimited++
		if !m.limited {
			m.limited = true
			s.notice(now, m, fmt.Sprintf("rate limit: at most %g lines per second (bursts of %d); dropping your lines", s.cfg.Rate, s.cfg.Burst))
		}
		return false
	}
	m.limited = false
	return true
}

// allowJoin applies the strangers' budget (below) to a join. Refused
// strangers get no reply, but for a cookie to a sequenced one whose
// datagram is larger: stateless and no larger than what it answers, it
// costs no budget and reflects nothing, and lets the client join past
// the limit (see admit).
func (s *Server) allowJoin(now spec.Time, from netip.AddrPort, session uint64, size int) bool {
	if s.strangerCredit(now) {
		return true
	}
	s.c.JoinsLimited++
	if session != 0 {
		b := AppendHeader(make([]byte, 0, headerMax+32), Header{Session: session, Server: true})
		b = fmt.Appendf(b, "^cookie %s^\n", s.cookieFor(now, from, session, 0))
		if len(b) <= size {
			s.c.Cookies++
			s.c.Sent++
			s.out = append(s.out, spec.SendFrom(sock, s.local, from, b))
		} else {
			s.c.RepliesTooBig++
		}
	}
	s.out = append(s.out, spec.Debug("chat: join limit, dropped a stranger's datagram", slog.String("from", from.String())))
	if _, ok := s.joinLog.Hit(now, time.Second); ok {
		s.out = append(s.out, spec.Warn("chat: join limit reached; strangers are dropped", slog.Float64("per_second", s.cfg.JoinRate), slog.Uint64("dropped_so_far", s.c.JoinsLimited)))
	}
	return false
}

// strangerCredit takes one unit of the strangers' budget (GCRA: JoinRate
// a second, bursts of JoinBurst), which joins and answers to strangers
// share, so forged sources can make the server neither announce nor
// answer without limit.
func (s *Server) strangerCredit(now spec.Time) bool {
	return s.joinRate.Allow(now, &s.joinTAT)
}

// answerStranger answers a client that is not a member, unsequenced,
// with the first of bodies that, behind its header, is no larger than
// the size-byte datagram it answers, within the strangers' budget. The
// source is not validated, so the answer must not amplify: with no body
// small enough, or no credit left, nothing is sent, and that is counted.
func (s *Server) answerStranger(now spec.Time, to netip.AddrPort, session uint64, size int, bodies ...[]byte) {
	var b []byte
	for _, body := range bodies {
		if session != 0 {
			body = append(AppendHeader(make([]byte, 0, headerMax+len(body)), Header{Session: session, Server: true}), body...)
		} else {
			body = plainOnly(body)
		}
		if len(body) <= size {
			b = body
			break
		}
	}
	switch {
	case b == nil:
		s.c.RepliesTooBig++
		s.out = append(s.out, spec.Debug("chat: no answer to a stranger: it would be larger than its datagram", slog.String("to", to.String()), slog.Int("size", size)))
		return
	case !s.strangerCredit(now):
		s.c.RepliesLimited++
		s.out = append(s.out, spec.Debug("chat: no answer to a stranger: over the strangers' rate limit", slog.String("to", to.String())))
		return
	}
	s.c.Sent++
	s.out = append(s.out, spec.SendFrom(sock, s.local, to, b))
}

// lines processes a datagram body from member m, line by line.
func (s *Server) lines(now spec.Time, m *member, body []byte) {
	defer s.remind(now, m)
	for len(body) > 0 {
		var line []byte
		line, body = nextLine(body)
		if _, ok := cookieLine(line); ok && m.session != 0 {
			continue // the cookie it joined with, or one sent before its welcome came
		}
		kind, arg := Classify(line)
		switch kind {
		case KindEmpty:
			continue
		case KindHeartbeat:
			s.c.Heartbeats++
			continue
		case KindOK:
			s.validate(now, m, arg)
			continue
		case KindQuit:
			s.leave(now, m, ReasonQuit)
			return
		}
		s.c.Lines++
		if !s.allow(now, m) {
			continue
		}
		switch kind {
		case KindText:
			if s.checkText(now, m, arg) {
				s.broadcast(now, m, arg, false)
			}
		case KindMe:
			if len(arg) == 0 {
				s.notice(now, m, "error: usage: /me ACTION")
			} else if s.checkText(now, m, arg) {
				s.broadcast(now, m, arg, true)
			}
		case KindNick:
			s.nick(now, m, arg)
		case KindWho:
			s.who(now, m)
		case KindHelp:
			s.notice(now, m, "commands: /nick NAME, /who, /me ACTION, /help, quit; //text sends text that starts with /; ^hb^ keeps you online without talking")
		case KindUnknown:
			s.c.UnknownCommand++
			if len(arg) <= 24 && CheckText(arg, 24) == TextOK {
				s.notice(now, m, fmt.Sprintf("error: unknown command %s; /help lists commands", arg))
			} else {
				s.notice(now, m, "error: unknown command; /help lists commands")
			}
		}
	}
}

func (s *Server) checkText(now spec.Time, m *member, text []byte) bool {
	switch CheckText(text, s.cfg.MaxLine) {
	case TextInvalidUTF8:
		s.c.InvalidUTF8++
		s.notice(now, m, "error: not valid UTF-8; dropped")
	case TextControl:
		s.c.Control++
		s.notice(now, m, "error: control characters are not allowed; dropped")
	case TextTooLong:
		s.c.TooLong++
		s.notice(now, m, fmt.Sprintf("error: message of %d bytes is over the limit of %d; dropped", len(text), s.cfg.MaxLine))
	default:
		return true
	}
	s.out = append(s.out, spec.Debug("chat: refused a line", slog.String("from", m.addr.String())))
	return false
}

func (s *Server) broadcast(now spec.Time, m *member, text []byte, action bool) {
	s.c.Messages++
	b := make([]byte, 0, len(m.nick)+len(text)+4)
	if action {
		b = append(append(append(append(b, "* "...), m.nick...), ' '), text...)
	} else {
		b = append(append(append(append(b, '['), m.nick...), "] "...), text...)
	}
	b = append(b, '\n')
	s.out = append(s.out, spec.Emit(spec.Event{Name: "message", Value: MessageEvent{Addr: m.addr, Nick: m.nick, Text: string(text), Action: action}}))
	s.sendAll(now, b, nil)
}

func (s *Server) nick(now spec.Time, m *member, name []byte) {
	switch {
	case len(name) == 0:
		s.notice(now, m, "you are "+m.nick+"; /nick NAME changes it")
		return
	case !ValidNick(name):
		s.c.BadNick++
		s.notice(now, m, "error: a nick is 1 to 16 letters, digits, _ or -, starting with a letter")
		return
	case string(name) == m.nick:
		s.notice(now, m, "you are already "+m.nick)
		return
	}
	key := foldNick(string(name))
	if o := s.nicks[key]; o != nil && o != m {
		s.c.NickTaken++
		s.notice(now, m, fmt.Sprintf("error: nick %s is taken", name))
		return
	}
	old := m.nick
	delete(s.nicks, m.key)
	m.nick, m.key = string(name), key
	s.nicks[key] = m
	s.out = append(s.out,
		spec.Info("chat: nick", slog.String("addr", m.addr.String()), slog.String("old", old), slog.String("nick", m.nick)),
		spec.Emit(spec.Event{Name: "nick", Text: m.nick, Value: MemberEvent{Addr: m.addr, Nick: m.nick, Old: old}}))
	s.sendAll(now, fmt.Appendf(nil, "*** %s is now known as %s\n", old, m.nick), nil)
	if m.session != 0 {
		s.send(m, fmt.Appendf(nil, "^nick %s^\n", m.nick))
	}
}

// maxWho bounds the /who line.
const maxWho = 900

func (s *Server) who(now spec.Time, m *member) {
	ms := slices.Clone(s.order)
	slices.SortFunc(ms, func(a, b *member) int { return strings.Compare(a.key, b.key) })
	b := fmt.Appendf(nil, "*** %d member(s): ", len(ms))
	for i, o := range ms {
		if len(b)+len(o.nick) > maxWho {
			b = fmt.Appendf(b, "and %d more", len(ms)-i)
			break
		}
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, o.nick...)
	}
	s.send(m, append(b, '\n'))
}

// notice sends m one "*** " line.
func (s *Server) notice(now spec.Time, m *member, text string) {
	b := make([]byte, 0, len(text)+5)
	b = append(append(append(b, "*** "...), text...), '\n')
	s.send(m, b)
}

// send sends body to m, behind m's next header if m is sequenced; to a
// member not yet validated, only what the datagram being answered pays
// for (withheld counts the rest).
func (s *Server) send(m *member, body []byte) {
	if !m.validated && !s.pays(m, len(body)) {
		return
	}
	s.sendAlways(m, body)
}

// pays reports whether a reply of n bytes (and m's header) to a member
// not yet validated fits what the datagram being answered holds, and
// takes it from that budget; if not, the reply is withheld.
func (s *Server) pays(m *member, n int) bool {
	if m.session != 0 {
		n += headerMax
	}
	if m.addr != s.answering || n > s.budget {
		s.c.Withheld++
		return false
	}
	// One reply per datagram answered: a datagram of many lines must
	// not draw many datagrams back, however small.
	s.budget = 0
	return true
}

// sendAlways sends body to m whether or not m is validated: the welcome
// (which the join limit bounds) and the bye.
func (s *Server) sendAlways(m *member, body []byte) {
	if !m.validated && m.addr == s.answering {
		s.budget = 0 // the one datagram this one draws back
	}
	s.c.Sent++
	if m.session == 0 {
		s.out = append(s.out, spec.SendFrom(sock, m.local, m.addr, plainOnly(body)))
		return
	}
	m.outSeq++
	b := append(m.appendHeader(make([]byte, 0, headerMax+len(body))), body...)
	s.out = append(s.out, spec.SendFrom(sock, m.local, m.addr, b))
}

// plainOnly drops control lines (the lines that start with '^'; no
// human line does): plain clients never see them.
func plainOnly(b []byte) []byte {
	if (len(b) == 0 || b[0] != '^') && !bytes.Contains(b, []byte("\n^")) {
		return b
	}
	out := make([]byte, 0, len(b))
	for len(b) > 0 {
		line, rest := b, []byte(nil)
		for i, c := range b {
			if c == '\n' {
				line, rest = b[:i+1], b[i+1:]
				break
			}
		}
		b = rest
		if line[0] == '^' {
			continue
		}
		out = append(out, line...)
	}
	return out
}

// sendAll sends body to every member but except, in one allocation:
// plain members share body, sequenced ones get it behind their header.
func (s *Server) sendAll(now spec.Time, body []byte, except *member) {
	if len(s.order) == 0 {
		return
	}
	var buf []byte
	if s.nSeq > 0 {
		buf = make([]byte, 0, s.nSeq*(headerMax+len(body)))
	}
	plain := plainOnly(body)
	for _, m := range s.order {
		if m == except {
			continue
		}
		if !m.validated {
			// Broadcasts, its own line back included, wait for the
			// token.
			s.c.Withheld++
			continue
		}
		s.c.Sent++
		if m.session == 0 {
			s.out = append(s.out, spec.SendFrom(sock, m.local, m.addr, plain))
			continue
		}
		m.outSeq++
		start := len(buf)
		buf = append(m.appendHeader(buf), body...)
		s.out = append(s.out, spec.SendFrom(sock, m.local, m.addr, buf[start:len(buf):len(buf)]))
	}
}
