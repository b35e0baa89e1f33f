package chat

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/netspec/netspec/spec"
)

// Client timers.
const (
	timerBeat spec.Timer = 1 // next heartbeat
	timerWait spec.Timer = 2 // the longest-waiting out-of-order datagram
	timerQuit spec.Timer = 3 // send (or resend) quit
	timerHeld spec.Timer = 4 // stop holding typed lines for the server's ^ok^
)

// Client states.
type clientState uint8

const (
	stateStarting clientState = iota // waiting for the socket
	stateActive                      // in the chat
	stateLeaving                     // quit sent or about to be
	stateClosing                     // an unsequenced bye came: linger, then exit
	stateDone                        // exited
)

// Client is a chat client machine: the terminal client behind `netspec
// chat join`. Its commands are "line" (Data: one line the user typed;
// "quit" leaves) and "quit".
type Client struct {
	cfg      ClientConfig
	state    clientState
	session  uint64
	seq      uint32 // last sequence number used
	interval time.Duration
	beat     time.Duration
	lastSent spec.Time
	lastMsg  spec.Time
	heard    spec.Time // when the server last sent this session anything
	queued   [][]byte  // lines typed before the membership was validated (see MaxHeld)
	// heldTimer: timerHeld is armed; noHold: lines go out as typed until
	// the next welcome (the hold ran out); quitHeld: quit waits for the
	// held lines to go.
	heldTimer, noHold, quitHeld bool

	nick     string // as the server last said
	want     string // the nick to hold (cfg.Nick, then what /nick got)
	asked    uint64 // membership for which want was last requested
	mid      uint64 // current membership id
	win      window
	waiting  bool
	quitSeq  uint32
	quitSent int
	// token is the current membership's, sent back ("/ok TOKEN") with
	// every heartbeat until the server confirms it (ok).
	token string
	ok    bool
	// cookie is the one the server gave us (at cookieAt) when its join
	// limit turned us away, sent with heartbeats until a welcome, or for
	// an Interval: a late copy after the welcome, or an old one, is no
	// use (the server takes one for one to two Intervals).
	cookie   string
	cookieAt spec.Time

	deliv [][]byte
	c     ClientCounters
}

// ClientCounters are what a client counts.
type ClientCounters struct {
	Sent, Heartbeats, Received, Lines, Duplicate, Stale, Reordered, Lost uint64
	OldMembership, Foreign, Strangers, Malformed                         uint64
	// Cookies counts the cookies the join limit answered us with.
	Cookies uint64
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	cfg.fill()
	c := &Client{cfg: cfg, interval: cfg.Interval, want: cfg.Nick}
	c.beat = c.interval / 3
	return c
}

// Counters implements spec.Inspector.
func (c *Client) Counters() []spec.Counter {
	k := &c.c
	return []spec.Counter{
		{Name: "sent", Value: k.Sent},
		{Name: "heartbeats", Value: k.Heartbeats},
		{Name: "received", Value: k.Received},
		{Name: "lines", Value: k.Lines},
		{Name: "dropped_duplicate", Value: k.Duplicate},
		{Name: "dropped_stale", Value: k.Stale},
		{Name: "reordered", Value: k.Reordered},
		{Name: "lost", Value: k.Lost},
		{Name: "dropped_old_membership", Value: k.OldMembership},
		{Name: "dropped_other_session", Value: k.Foreign},
		{Name: "dropped_strangers", Value: k.Strangers},
		{Name: "unknown_control_lines", Value: k.Malformed},
		{Name: "cookies", Value: k.Cookies},
	}
}

// Stats returns the counters as a struct.
func (c *Client) Stats() ClientCounters { return c.c }

// Session is the client's session (0 until its socket is bound).
func (c *Client) Session() uint64 { return c.session }

// Nick is the client's nick as the server last confirmed it.
func (c *Client) Nick() string { return c.nick }

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		local := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if c.cfg.Server.Addr().Is6() {
			local = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
		out = append(out, spec.Bind(sock, spec.UDP, local))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("chat: bind: "+in.Err))
		}
		// A session is named by the time it starts (microseconds), so a
		// restarted client's session is newer than its last one and the
		// server drops the old one's late datagrams.
		c.session = max(uint64(now)/1000, 1)
		leaving := c.state == stateLeaving
		c.state = stateActive
		if c.want != "" {
			out = c.sendSeq(now, []byte("/nick "+c.want), out)
		} else {
			out = c.heartbeat(now, out)
		}
		if len(c.queued) > 0 {
			out = c.armHold(now, out)
		}
		if leaving { // the lines typed meanwhile go first
			out = c.leave(now, out, false)
		}
	case spec.InCommand:
		switch in.Cmd.Name {
		case "line":
			for rest := in.Cmd.Data; len(rest) > 0 && c.state < stateLeaving; {
				var line []byte
				line, rest = nextLine(rest)
				switch k, _ := Classify(line); {
				case k == KindQuit:
					out = c.leave(now, out, false)
				case len(line) == 0:
				case c.state == stateStarting:
					c.queued = append(c.queued, line)
				case !c.ok && !c.noHold && len(c.queued) < MaxHeld:
					if len(c.queued) == 0 {
						out = c.armHold(now, out)
					}
					c.queued = append(c.queued, line)
				default:
					out = c.sendSeq(now, line, c.releaseHeld(now, out))
				}
			}
		case "quit":
			out = c.leave(now, out, false)
		default:
			out = append(out, spec.Debug("chat: unknown command", slog.String("name", in.Cmd.Name)))
		}
	case spec.InDatagram:
		out = c.datagram(now, in.Addr, in.Data, out)
	case spec.InTimer:
		switch in.Timer {
		case timerBeat:
			if c.state == stateActive {
				out = c.heartbeat(now, out)
			}
		case timerWait:
			c.waiting = false
			st := windowStats{}
			dst := c.win.due(now, c.cfg.Hold, c.deliv[:0], &st)
			c.c.Lost += st.lost
			out = c.deliver(now, dst, out)
			out = c.rearmWait(out)
		case timerHeld:
			c.heldTimer = false
			out = c.releaseHeld(now, out)
		case timerQuit:
			if c.state == stateClosing {
				st := windowStats{}
				out = c.deliver(now, c.win.flush(c.deliv[:0], &st), out)
				c.c.Lost += st.lost
				return c.exit(out)
			}
			out = c.sendQuit(now, out)
		}
	case spec.InStop:
		if c.session == 0 { // never bound: nobody to tell
			return append(out, spec.Exit(""))
		}
		if c.state < stateLeaving {
			out = c.leave(now, out, true)
		}
	}
	return out
}

// MaxHeld is how many typed lines a client holds until the server has
// validated its membership ("^ok^"): sent before that, a line reaches the
// others but not its sender (the server withholds everything else from
// an unvalidated address), so a line typed at once, or piped in, would
// never come back to the one who typed it. It holds them for a third of
// the interval at most (a heartbeat's time, which resends the token),
// and not past MaxHeld: then they and what follows go out as typed until
// the next welcome (a server that never validates, or a plain one).
// MaxHeld is below the server's DefaultBurst, so the held lines, sent at
// once, leave room in the sender's rate limit for what it types next.
const MaxHeld = DefaultBurst - 2

// armHold starts the hold's time limit.
func (c *Client) armHold(now spec.Time, out []spec.Output) []spec.Output {
	if c.heldTimer {
		return out
	}
	c.heldTimer = true
	return append(out, spec.SetTimer(timerHeld, now.Add(c.beat)))
}

// releaseHeld sends the held lines, in order, and, unless the membership
// is validated, stops holding until the next welcome; a quit that waited
// for them follows.
func (c *Client) releaseHeld(now spec.Time, out []spec.Output) []spec.Output {
	if c.heldTimer {
		c.heldTimer = false
		out = append(out, spec.CancelTimer(timerHeld))
	}
	if len(c.queued) > 0 && !c.ok {
		c.noHold = true
	}
	for _, l := range c.queued {
		out = c.sendSeq(now, l, out)
	}
	c.queued = nil
	if c.quitHeld {
		c.quitHeld = false
		out = c.sendQuitAfterHold(now, out)
	}
	return out
}

// sendSeq sends one line with the next sequence number.
func (c *Client) sendSeq(now spec.Time, line []byte, out []spec.Output) []spec.Output {
	c.seq++
	c.lastMsg = now
	b := make([]byte, 0, headerMax+len(line)+1)
	b = append(append(AppendHeader(b, Header{Session: c.session, Seq: c.seq}), line...), '\n')
	return c.send(now, b, out)
}

func (c *Client) heartbeat(now spec.Time, out []spec.Output) []spec.Output {
	c.c.Heartbeats++
	b := make([]byte, 0, headerMax+5)
	b = AppendHeader(b, Header{Session: c.session})
	if c.cookie != "" && now.Sub(c.cookieAt) < c.interval {
		// Turned away by the join limit: the cookie joins us past it.
		b = append(append(append(b, "^cookie "...), c.cookie...), "^\n"...)
	}
	if c.token != "" && !c.ok {
		// Not validated yet: the token keeps the membership as a
		// heartbeat does, and validates it.
		b = append(append(append(b, "/ok "...), c.token...), '\n')
	} else {
		b = append(b, "^hb^\n"...)
	}
	return c.send(now, b, out)
}

// StrangerPad is the size the client pads to a datagram the server may
// answer as a stranger's: those it sends before its first welcome, or
// after an Interval without a word from the server, which may have
// expired it meanwhile (the server may answer "chat is full"), and quit
// (a quit that meets a closed session is answered with a bye). The server never sends a stranger
// more than it received (its source is not validated), and both answers,
// behind the server's header, are shorter than this.
const StrangerPad = 96

// pad pads b with spaces after its last LF to StrangerPad bytes: a line
// of spaces is an empty line, which the server ignores.
func pad(b []byte) []byte {
	for len(b) < StrangerPad {
		b = append(b, ' ')
	}
	return b
}

// send sends b and moves the heartbeat: any datagram keeps the client
// a member, so a talking client sends no heartbeats. Until the server
// has welcomed it, and whenever the server has been silent for an
// Interval (in a quiet room, or after a partition that expired it), the
// client may be a stranger there, and pads b.
func (c *Client) send(now spec.Time, b []byte, out []spec.Output) []spec.Output {
	if c.mid == 0 || now.Sub(c.heard) >= c.interval {
		b = pad(b)
	}
	c.c.Sent++
	c.lastSent = now
	out = append(out, spec.Send(sock, c.cfg.Server, b))
	if c.state == stateActive {
		out = append(out, spec.SetTimer(timerBeat, now.Add(c.beat)))
	}
	return out
}

// leave starts leaving: quit goes out once Hold has passed since the
// last message, so a message the network reorders is not overtaken by
// the quit that would close its session. Held lines go first: when
// the ^ok^ comes or the hold runs out, or at once if stopping (then
// quit goes at once too: no time to wait for stragglers).
func (c *Client) leave(now spec.Time, out []spec.Output, stopping bool) []spec.Output {
	if c.state >= stateLeaving {
		return out
	}
	wasStarting := c.state == stateStarting
	c.state = stateLeaving
	if wasStarting {
		return out // InBound sends it
	}
	if len(c.queued) > 0 && !stopping {
		c.quitHeld = true
		return out
	}
	out = c.releaseHeld(now, out)
	if stopping {
		c.lastMsg = 0
	}
	return c.sendQuitAfterHold(now, out)
}

// sendQuitAfterHold numbers the quit and sends it once Hold has passed
// since the last message.
func (c *Client) sendQuitAfterHold(now spec.Time, out []spec.Output) []spec.Output {
	out = append(out, spec.CancelTimer(timerBeat))
	c.seq++
	c.quitSeq = c.seq
	at := now
	if c.lastMsg != 0 {
		at = max(now, c.lastMsg.Add(c.cfg.Hold))
	}
	if at == now {
		return c.sendQuit(now, out)
	}
	return append(out, spec.SetTimer(timerQuit, at))
}

func (c *Client) sendQuit(now spec.Time, out []spec.Output) []spec.Output {
	if c.quitSent >= c.cfg.QuitTries {
		c.state = stateDone
		if c.mid == 0 {
			// Never welcomed: whatever was typed reached no one.
			return append(out,
				spec.Emit(spec.Event{Name: "left", Text: "never joined"}),
				spec.Exit(fmt.Sprintf("chat: the server %v never answered: nothing typed was delivered", c.cfg.Server)))
		}
		return append(out,
			spec.Warn("chat: the server did not acknowledge quit; leaving anyway"),
			spec.Emit(spec.Event{Name: "left", Text: "no answer to quit"}),
			spec.Exit(""))
	}
	c.quitSent++
	b := make([]byte, 0, StrangerPad)
	b = pad(append(append(AppendHeader(b, Header{Session: c.session, Seq: c.quitSeq}), "quit"...), '\n'))
	out = c.send(now, b, out)
	return append(out, spec.SetTimer(timerQuit, now.Add(c.cfg.QuitTimeout)))
}

func (c *Client) datagram(now spec.Time, from netip.AddrPort, data []byte, out []spec.Output) []spec.Output {
	if from != c.cfg.Server {
		c.c.Strangers++
		return append(out, spec.Debug("chat: dropped datagram from a stranger", slog.String("from", from.String())))
	}
	c.c.Received++
	h, body, ok := ParseHeader(data)
	if !ok || (h.Server && h.Session == c.session) {
		c.heard = now
	}
	switch {
	case ok && (!h.Server || h.Session != c.session):
		// For another session: most likely an earlier process that
		// had this port.
		c.c.Foreign++
		return append(out, spec.Debug("chat: dropped datagram for another session", slog.Uint64("session", h.Session)))
	case !ok:
		// No header: a plain server's line, or a forgery. The server
		// sends control lines only behind our session's header.
		return c.lines(now, body, out, 0, false)
	case h.Seq == 0 || h.Membership == 0:
		return c.lines(now, body, out, 0, true)
	}
	switch {
	case h.Membership < c.mid:
		c.c.OldMembership++
		return append(out, spec.Debug("chat: dropped datagram of an older membership", slog.Uint64("seq", uint64(h.Seq))))
	case h.Membership > c.mid:
		// A new membership (we joined, rejoined after expiry, or the
		// server restarted): its numbering starts at 1.
		c.mid = h.Membership
		c.win = window{next: 1}
	}
	st := windowStats{}
	dst, v := c.win.push(now, h.Seq, append(c.seqTag(h.Seq), body...), c.deliv[:0], &st)
	c.c.Lost += st.lost
	switch v {
	case duplicate:
		c.c.Duplicate++
		out = append(out, spec.Debug("chat: dropped duplicate datagram", slog.Uint64("seq", uint64(h.Seq))))
	case stale:
		c.c.Stale++
		out = append(out, spec.Debug("chat: dropped late datagram", slog.Uint64("seq", uint64(h.Seq))))
	case buffered:
		c.c.Reordered++
	}
	out = c.deliver(now, dst, out)
	return c.rearmWait(out)
}

func (c *Client) deliver(now spec.Time, bodies [][]byte, out []spec.Output) []spec.Output {
	for i, b := range bodies {
		seq, body := untag(b)
		out = c.lines(now, body, out, seq, true)
		bodies[i] = nil
	}
	c.deliv = bodies[:0]
	return out
}

func (c *Client) rearmWait(out []spec.Output) []spec.Output {
	at, ok := c.win.deadline(c.cfg.Hold)
	switch {
	case ok:
		c.waiting = true
		return append(out, spec.SetTimer(timerWait, at))
	case c.waiting:
		c.waiting = false
		return append(out, spec.CancelTimer(timerWait))
	}
	return out
}

// seqTag prefixes a body with its sequence number while it waits in
// the window, so it is shown with it.
func (c *Client) seqTag(seq uint32) []byte {
	return []byte{byte(seq >> 24), byte(seq >> 16), byte(seq >> 8), byte(seq)}
}

func untag(b []byte) (uint32, []byte) {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), b[4:]
}

// lines shows a body's human lines and acts on its control lines (if
// control: the datagram had our session's header; else they are
// dropped and counted); seq is the number of the datagram that carried
// them (0: unsequenced).
func (c *Client) lines(now spec.Time, body []byte, out []spec.Output, seq uint32, control bool) []spec.Output {
	for len(body) > 0 {
		var raw []byte
		raw, body = nextLine(body)
		if len(raw) == 0 {
			continue
		}
		l := ParseLine(raw)
		l.Seq = seq
		switch {
		case l.Kind != LineControl:
			c.c.Lines++
			out = append(out, spec.Emit(spec.Event{Name: "line", Text: string(raw), Value: l}))
			continue
		case !control:
			c.c.Malformed++
			out = append(out, spec.Debug("chat: dropped a control line without a header", slog.String("line", l.Text)))
			continue
		}
		out = c.control(now, l.Text, out, seq != 0)
		if c.state == stateDone {
			return out
		}
	}
	return out
}

func (c *Client) control(now spec.Time, text string, out []spec.Output, inOrder bool) []spec.Output {
	f := bytes.Fields([]byte(text))
	if len(f) == 0 {
		return out
	}
	switch string(f[0]) {
	case "welcome":
		if len(f) != 4 {
			break
		}
		ms, err := strconv.ParseUint(string(f[2]), 10, 32)
		if err != nil || ms == 0 || len(f[3]) > MaxToken {
			break
		}
		c.nick = string(f[1])
		c.interval = max(time.Duration(ms)*time.Millisecond, MinInterval)
		c.beat = c.interval / 3
		c.token, c.ok, c.noHold = string(f[3]), false, false
		c.cookie = ""
		out = append(out, spec.Emit(spec.Event{Name: "joined", Text: c.nick, Value: Joined{Nick: c.nick, Interval: c.interval}}))
		if c.quitHeld {
			// Leaving, but the held lines wait for the ^ok^ the token
			// draws.
			return c.heartbeat(now, out)
		}
		if c.state == stateActive {
			// Show the server this address receives: until it has the
			// token back it sends this member nothing of the chat.
			out = c.heartbeat(now, out)
			out = append(out, spec.SetTimer(timerBeat, c.lastSent.Add(c.beat)))
			// Rejoined under another name (the server restarted, or we
			// expired): ask for ours back, once per membership.
			if c.want != "" && c.want != c.nick && c.asked != c.mid {
				c.asked = c.mid
				out = c.sendSeq(now, []byte("/nick "+c.want), out)
			}
		}
		return out
	case "ok":
		if len(f) == 1 {
			c.ok = true
			return c.releaseHeld(now, out)
		}
	case "token":
		// The server has not had our token (the welcome, or our
		// answer, was lost): answer again.
		if len(f) == 2 && len(f[1]) <= MaxToken {
			c.token, c.ok = string(f[1]), false
			if c.state == stateActive || c.quitHeld {
				out = c.heartbeat(now, out)
			}
			return out
		}
	case "cookie":
		// The join limit turned us away (a flood of strangers, most
		// likely): join again at once with the cookie, which proves
		// we receive at our address and so passes the limit.
		if len(f) == 2 && len(f[1]) <= MaxToken {
			c.cookie, c.cookieAt = string(f[1]), now
			c.c.Cookies++
			if c.state == stateActive {
				out = c.heartbeat(now, out)
			}
			return out
		}
	case "nick":
		if len(f) == 2 {
			c.nick = string(f[1])
			c.want = c.nick
			return out
		}
	case "bye":
		switch {
		case c.state != stateLeaving:
		case inOrder:
			// Everything the server sent before it has been shown.
			return c.exit(out)
		default:
			// A bye answering a resent (or duplicated) quit may overtake
			// the membership's last datagrams: show those that arrive
			// within two holds, then go.
			c.state = stateClosing
			out = append(out, spec.SetTimer(timerQuit, now.Add(2*c.cfg.Hold)))
		}
		return out
	}
	c.c.Malformed++
	return append(out, spec.Debug("chat: unknown control line", slog.String("line", text)))
}

func (c *Client) exit(out []spec.Output) []spec.Output {
	c.state = stateDone
	return append(out, spec.Emit(spec.Event{Name: "left", Text: c.nick}), spec.Exit(""))
}
