package chat

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/netspec/netspec/spec"
)

// Protocol describes chat to the generic tools.
var Protocol = spec.NewProtocol("chat", Describe,
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) { return NewServer(c), nil }),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) { return NewClient(c), nil }),
	spec.JSONRole("plain", func(c PlainConfig) (spec.Machine, error) { return NewPlain(c), nil }),
)

// Describe summarises a datagram for timelines: its header, if any, and
// its first line. It accepts any bytes.
func Describe(b []byte) string {
	h, body, ok := ParseHeader(b)
	line, rest := nextLine(body)
	const max = 40
	s, cut := spec.Clip(string(line), max)
	if cut {
		s += "..."
	}
	// Quote keeps printable text as it is (你好, not \u4f60\u597d) and
	// escapes control and format characters, so timelines stay safe.
	d := strconv.Quote(s)
	if len(trim(rest)) > 0 {
		d += " +more lines"
	}
	switch {
	case ok && h.Server:
		return fmt.Sprintf("%016x.%016x.%d %s", h.Session, h.Membership, h.Seq, d)
	case ok:
		return fmt.Sprintf("%016x.%d %s", h.Session, h.Seq, d)
	}
	return d
}

// Defaults.
const (
	DefaultInterval    = 10 * time.Second
	DefaultMaxMembers  = 4096
	DefaultMaxLine     = 512
	DefaultMaxDatagram = 2048
	DefaultRate        = 5.0
	DefaultBurst       = 10
	DefaultHold        = 100 * time.Millisecond
	DefaultJoinRate    = 20.0
	DefaultJoinBurst   = 50
	// MinInterval is the shortest silence limit: a server takes a
	// shorter Interval as this, and a client a welcome's shorter one
	// (it heartbeats every third of it), so a forged welcome cannot
	// make it send heartbeats without pause.
	MinInterval = 10 * time.Millisecond
)

// ServerConfig configures a chat server. Zero fields take the defaults.
type ServerConfig struct {
	// Addr is the UDP address to serve.
	Addr netip.AddrPort `json:"addr"`
	// Interval is how long a member may stay silent before it is
	// expired (default 10s, the seed's; at least MinInterval).
	Interval time.Duration `json:"interval,omitempty"`
	// MaxMembers bounds the member table (default 4096).
	MaxMembers int `json:"maxMembers,omitempty"`
	// MaxLine bounds a message's text in bytes (default 512).
	MaxLine int `json:"maxLine,omitempty"`
	// MaxDatagram bounds a received datagram (default 2048).
	MaxDatagram int `json:"maxDatagram,omitempty"`
	// Rate and Burst limit each member's lines (default 5 per second,
	// bursts of 10); a negative Rate disables the limit.
	Rate  float64 `json:"rate,omitempty"`
	Burst int     `json:"burst,omitempty"`
	// JoinRate and JoinBurst limit new memberships and answers to
	// non-members across all sources (default 20 per second, bursts of
	// 50; a negative JoinRate disables the limit). Any datagram from a
	// stranger joins it, is announced to every validated member and
	// draws a welcome, so strangers are admitted and answered at a
	// bounded rate; beyond it they are dropped without a reply.
	JoinRate  float64 `json:"joinRate,omitempty"`
	JoinBurst int     `json:"joinBurst,omitempty"`
	// Hold is how long an out-of-order datagram waits for the gap before
	// it (default 100ms, at most a quarter of Interval).
	Hold time.Duration `json:"hold,omitempty"`
	// Secret keys the tokens that validate members' addresses (see the
	// package doc). A simulation may leave it empty; a server on a real
	// network must set it to random bytes, or tokens can be computed.
	Secret []byte `json:"secret,omitempty"`
}

func (c *ServerConfig) fill() {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	c.Interval = max(c.Interval, MinInterval)
	if c.MaxMembers <= 0 {
		c.MaxMembers = DefaultMaxMembers
	}
	if c.MaxLine <= 0 {
		c.MaxLine = DefaultMaxLine
	}
	if c.MaxDatagram <= 0 {
		c.MaxDatagram = DefaultMaxDatagram
	}
	if c.Rate == 0 {
		c.Rate = DefaultRate
	}
	if c.Burst <= 0 {
		c.Burst = DefaultBurst
	}
	if c.JoinRate == 0 {
		c.JoinRate = DefaultJoinRate
	}
	if c.JoinBurst <= 0 {
		c.JoinBurst = DefaultJoinBurst
	}
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	c.Hold = min(c.Hold, c.Interval/4)
}

// ClientConfig configures a chat client. Zero fields take the defaults.
type ClientConfig struct {
	// Server is the server's address.
	Server netip.AddrPort `json:"server"`
	// Nick is the nick to join with and to keep (none: the server
	// names the client guestN).
	Nick string `json:"nick,omitempty"`
	// Interval is the server's silence limit until the server's welcome
	// says what it is (default 10s); the client heartbeats every third
	// of it.
	Interval time.Duration `json:"interval,omitempty"`
	// Hold is how long an out-of-order datagram from the server waits
	// for the gap before it (default 100ms). The client also waits this
	// long after its last message before it sends quit.
	Hold time.Duration `json:"hold,omitempty"`
	// QuitTimeout and QuitTries: quit is sent up to QuitTries times
	// (default 3), QuitTimeout apart (default 300ms), until the server
	// says bye.
	QuitTimeout time.Duration `json:"quitTimeout,omitempty"`
	QuitTries   int           `json:"quitTries,omitempty"`
}

func (c *ClientConfig) fill() {
	if c.Interval <= 0 {
		c.Interval = DefaultInterval
	}
	c.Interval = max(c.Interval, MinInterval)
	if c.Hold <= 0 {
		c.Hold = DefaultHold
	}
	if c.QuitTimeout <= 0 {
		c.QuitTimeout = 300 * time.Millisecond
	}
	if c.QuitTries <= 0 {
		c.QuitTries = 3
	}
}

// MemberEvent is the value of a server's "join", "leave" and "nick"
// events.
type MemberEvent struct {
	Addr netip.AddrPort `json:"addr"`
	Nick string         `json:"nick"`
	// Old is the previous nick, for "nick".
	Old string `json:"old,omitempty"`
	// Reason says why a member left: "quit", "expired" or "replaced" (a
	// newer session of a client spoke from the same address).
	Reason string `json:"reason,omitempty"`
}

// MessageEvent is the value of a server's "message" event: one line
// broadcast to every member.
type MessageEvent struct {
	Addr   netip.AddrPort `json:"addr"`
	Nick   string         `json:"nick"`
	Text   string         `json:"text"`
	Action bool           `json:"action,omitempty"`
}

// Joined is the value of a client's "joined" event: the server welcomed
// it.
type Joined struct {
	Nick     string        `json:"nick"`
	Interval time.Duration `json:"interval"`
}
