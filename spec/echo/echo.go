package echo

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/netspec/netspec/spec"
)

// Protocol describes echo to the generic tools.
var Protocol = spec.NewProtocol("echo",
	func(b []byte) string { return fmt.Sprintf("%d bytes %s", len(b), preview(b)) },
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) { return NewServer(c), nil }),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) { return NewClient(c), nil }),
)

func preview(b []byte) string {
	s, cut := spec.Clip(string(b[:min(len(b), 25)]), 24) // no copy of a big datagram
	if cut {
		return strconv.Quote(s) + "..."
	}
	return strconv.Quote(s)
}

// Sockets of the server.
const (
	sockUDP spec.Sock = 1
	sockTCP spec.Sock = 2
)

// ServerConfig configures an echo server. An invalid address disables
// that transport.
type ServerConfig struct {
	UDP netip.AddrPort `json:"udp"`
	TCP netip.AddrPort `json:"tcp"`
	// MaxStreams bounds concurrent TCP connections (default 1024), and
	// MaxPerAddr those from one IP address (default 64), so one host
	// cannot take every place.
	MaxStreams int `json:"maxStreams,omitempty"`
	MaxPerAddr int `json:"maxPerAddr,omitempty"`
	// Idle resets a TCP connection that has sent nothing and taken none
	// of its echo for this long (default 60s): held-open idle
	// connections cannot keep the places for ever.
	Idle time.Duration `json:"idle,omitempty"`
	// PauseAt is how many echoed bytes a TCP client may leave untaken
	// before the server stops reading from it (default 64 KiB); it reads
	// again once the transport has taken them all, so TCP's flow control
	// slows a client that sends faster than it reads.
	PauseAt int `json:"pauseAt,omitempty"`
	// MaxUnread bounds echoed bytes a TCP client has not taken yet
	// (default 1 MiB); past it the connection is reset. With PauseAt
	// below it, only a runner that kept delivering data after a pause
	// could get there.
	MaxUnread int `json:"maxUnread,omitempty"`
	// AllowLowPorts answers sources below port 1024 too.
	AllowLowPorts bool `json:"allowLowPorts,omitempty"`
	// SourceRate and SourceBurst bound the datagrams answered per source
	// address (default 100 per second, bursts of 100; a negative
	// SourceRate disables the limit). Two reflectors that a forged
	// datagram sets bouncing between each other each see one source, so
	// the limit ends the loop (or, across a slow path, caps it).
	SourceRate  float64 `json:"sourceRate,omitempty"`
	SourceBurst int     `json:"sourceBurst,omitempty"`
	// Sources bounds the sources the limit remembers (default 256); past
	// it the one with the most credit left is forgotten, so memory stays
	// fixed whatever sources a flood forges.
	Sources int `json:"sources,omitempty"`
}

// Defaults of the per-source limit.
const (
	DefaultSourceRate  = 100.0
	DefaultSourceBurst = 100
	DefaultSources     = 256
)

// Server is an echo server machine.
type Server struct {
	cfg      ServerConfig
	port     uint16 // the UDP port bound, once known
	limit    *sourceLimit
	streams  map[spec.Stream]conn
	perAddr  spec.PerAddr
	limitLog spec.Throttle // the MaxStreams warning
	addrLog  spec.Throttle // the MaxPerAddr warning
	sweep    bool          // the idle timer is set
	c        serverCounters
}

// conn is an accepted connection the server holds.
type conn struct {
	unread int  // echoed bytes the transport has not taken yet
	paused bool // we stopped reading until the transport takes them
	fin    bool // the peer half-closed; we have closed our side too
	addr   netip.Addr
	port   uint16    // the client's, for the log
	last   spec.Time // when it last sent, or the transport took its echo
}

// from is the client's address, for the log.
func (c conn) from() string { return netip.AddrPortFrom(c.addr, c.port).String() }

type serverCounters struct {
	datagrams, echoed, lowPort, samePort, limited, repeats, streams, refused, cutOff, idle, paused uint64
}

// idleTimer sweeps the connections for idle ones.
const idleTimer spec.Timer = 1

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 1024
	}
	if cfg.MaxUnread <= 0 {
		cfg.MaxUnread = 1 << 20
	}
	if cfg.PauseAt <= 0 {
		cfg.PauseAt = 64 << 10
	}
	if cfg.MaxPerAddr <= 0 {
		cfg.MaxPerAddr = 64
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Minute
	}
	if cfg.SourceRate == 0 {
		cfg.SourceRate = DefaultSourceRate
	}
	if cfg.SourceBurst <= 0 {
		cfg.SourceBurst = DefaultSourceBurst
	}
	if cfg.Sources <= 0 {
		cfg.Sources = DefaultSources
	}
	s := &Server{cfg: cfg, port: cfg.UDP.Port(), streams: map[spec.Stream]conn{}, perAddr: spec.NewPerAddr(cfg.MaxPerAddr)}
	if cfg.SourceRate > 0 {
		s.limit = newSourceLimit(cfg.SourceRate, cfg.SourceBurst, cfg.Sources)
	}
	return s
}

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	return []spec.Counter{
		{Name: "datagrams", Value: s.c.datagrams},
		{Name: "echoed", Value: s.c.echoed},
		{Name: "dropped_low_port", Value: s.c.lowPort},
		{Name: "dropped_same_port", Value: s.c.samePort},
		{Name: "dropped_rate_limited", Value: s.c.limited},
		{Name: "dropped_repeats", Value: s.c.repeats},
		{Name: "streams", Value: s.c.streams},
		{Name: "streams_refused", Value: s.c.refused},
		{Name: "streams_cut_off", Value: s.c.cutOff},
		{Name: "streams_paused", Value: s.c.paused},
		{Name: "streams_idle", Value: s.c.idle},
	}
}

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		if s.cfg.UDP.IsValid() {
			out = append(out, spec.Bind(sockUDP, spec.UDP, s.cfg.UDP))
		}
		if s.cfg.TCP.IsValid() {
			out = append(out, spec.Bind(sockTCP, spec.TCP, s.cfg.TCP))
		}
		if !s.cfg.UDP.IsValid() && !s.cfg.TCP.IsValid() {
			out = append(out, spec.Exit("echo: no address to serve"))
		}
	case spec.InBound:
		net, addr := "udp", s.cfg.UDP
		if in.Sock == sockTCP {
			net, addr = "tcp", s.cfg.TCP
		}
		if in.Err != "" {
			return append(out, spec.Exit(fmt.Sprintf("echo: %s %s: %s", net, addr, in.Err)))
		}
		if in.Sock == sockUDP {
			// The UDP port picked, if the config left it to the system:
			// the reflector guard compares datagrams' sources with it
			// (the TCP listener's port, bound after, took its place).
			s.port = in.Addr.Port()
		}
		out = append(out, spec.Info("echo server listening", slog.String("net", net), slog.String("addr", in.Addr.String())),
			spec.Emit(spec.Event{Name: "listening", Text: net + " " + in.Addr.String()}))
	case spec.InDatagram:
		return s.datagram(now, in, out)
	case spec.InAccepted:
		a := in.Addr.Addr().Unmap()
		switch {
		case len(s.streams) >= s.cfg.MaxStreams:
			s.c.refused++
			out = append(out, spec.Abort(in.Stream), spec.Debug("echo: connection limit reached, refusing", slog.String("from", in.Addr.String())))
			if n, ok := s.limitLog.Hit(now, time.Second); ok {
				out = append(out, spec.Warn("echo: connection limit reached, refusing", slog.Int("max", s.cfg.MaxStreams), slog.Uint64("refused", n)))
			}
			return out
		case !s.perAddr.Take(a):
			s.c.refused++
			out = append(out, spec.Abort(in.Stream), spec.Debug("echo: connection limit for the address reached, refusing", slog.String("from", in.Addr.String())))
			if n, ok := s.addrLog.Hit(now, time.Second); ok {
				out = append(out, spec.Warn("echo: connections from one address at the limit, refusing (--max-per-addr)", slog.String("addr", a.String()), slog.Int("max", s.cfg.MaxPerAddr), slog.Uint64("refused", n)))
			}
			return out
		}
		s.c.streams++
		s.streams[in.Stream] = conn{addr: a, port: in.Addr.Port(), last: now}
		// The seed's server said "Conectado em" and "Fechando a conexão".
		out = append(out, spec.Info("echo: connected", slog.String("from", in.Addr.String())))
		if !s.sweep {
			s.sweep = true
			out = append(out, spec.SetTimer(idleTimer, now.Add(s.cfg.Idle/4)))
		}
	case spec.InStreamData:
		c, ok := s.streams[in.Stream]
		if !ok || c.fin {
			return out // data racing our own reset (the runner has none after a FIN)
		}
		c.unread += len(in.Data)
		c.last = now
		if c.unread > s.cfg.MaxUnread {
			s.c.cutOff++
			s.forget(in.Stream)
			return append(out, spec.Abort(in.Stream), spec.Warn("echo: client is not reading its echo, resetting", slog.String("from", c.from()), slog.Int("unread", c.unread)),
				spec.Info("echo: connection closed", slog.String("from", c.from()), slog.String("err", "reset: echo not read")))
		}
		out = append(out, spec.Write(in.Stream, in.Data))
		if c.unread >= s.cfg.PauseAt && !c.paused {
			c.paused = true
			s.c.paused++
			out = append(out, spec.Pause(in.Stream))
		}
		s.streams[in.Stream] = c
	case spec.InStreamWritable:
		c, ok := s.streams[in.Stream]
		switch {
		case !ok:
		case c.fin:
			// The last of the echo is with the transport: the
			// connection stops counting only now, so clients that
			// half-close without reading cannot pile up echo in the
			// runner beyond MaxStreams × MaxUnread.
			s.forget(in.Stream)
		default:
			c.unread, c.last = 0, now
			if c.paused {
				c.paused = false
				out = append(out, spec.Resume(in.Stream))
			}
			s.streams[in.Stream] = c
		}
	case spec.InStreamClosed:
		c, ok := s.streams[in.Stream]
		if !ok {
			return out
		}
		if !c.fin {
			if in.Err != "" {
				out = append(out, spec.Info("echo: connection closed", slog.String("from", c.from()), slog.String("err", in.Err)))
			} else {
				out = append(out, spec.Info("echo: connection closed", slog.String("from", c.from())))
			}
		}
		if in.Err != "" || c.fin {
			s.forget(in.Stream)
			return out
		}
		// The peer is done sending: close our side after the queued
		// echo. A connection whose echo is all with the transport is
		// forgotten now; one with echo still waiting keeps its place
		// until the transport takes it ("writable") or the peer resets.
		out = append(out, spec.Close(in.Stream))
		if c.unread == 0 {
			s.forget(in.Stream)
		} else {
			c.fin = true
			s.streams[in.Stream] = c
		}
	case spec.InTimer:
		if in.Timer == idleTimer {
			out = s.sweepIdle(now, out)
		}
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// forget releases a connection's place.
func (s *Server) forget(st spec.Stream) {
	c, ok := s.streams[st]
	if !ok {
		return
	}
	delete(s.streams, st)
	s.perAddr.Release(c.addr)
}

// sweepIdle resets the connections idle for Idle, in stream order (so
// the outputs depend on nothing but the inputs), and sets the next sweep
// while any are held: a connection goes within a quarter of Idle of its
// deadline.
func (s *Server) sweepIdle(now spec.Time, out []spec.Output) []spec.Output {
	for _, st := range spec.Idle(s.streams, now, s.cfg.Idle, func(c conn) spec.Time { return c.last }) {
		s.c.idle++
		from := s.streams[st].from()
		s.forget(st)
		out = append(out, spec.Abort(st), spec.Debug("echo: idle connection reset", slog.Uint64("stream", uint64(st))),
			spec.Info("echo: connection closed", slog.String("from", from), slog.String("err", "reset: idle")))
	}
	s.sweep = len(s.streams) > 0
	if s.sweep {
		out = append(out, spec.SetTimer(idleTimer, now.Add(s.cfg.Idle/4)))
	}
	return out
}

// datagram answers one UDP datagram, unless its source is one that must
// not be answered: port 0 (no reply is possible), a well-known port
// (another service's: echo, chargen, DNS, NTP), the server's own port
// (most likely another echo server, so a forged datagram would bounce
// between the two for ever), or a source over its rate limit.
func (s *Server) datagram(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	s.c.datagrams++
	from := in.Addr
	switch p := from.Port(); {
	case p == 0 || (p < 1024 && !s.cfg.AllowLowPorts):
		s.c.lowPort++
		return append(out, spec.Debug("dropped datagram from a well-known port", slog.String("from", from.String())))
	case p == s.port:
		s.c.samePort++
		return append(out, spec.Debug("echo: dropped datagram from the server's own port (another reflector?)", slog.String("from", from.String())))
	}
	if s.limit != nil {
		switch s.limit.allow(now, from.Addr(), in.Data) {
		case overRate:
			s.c.limited++
			return append(out, spec.Debug("echo: dropped datagram over its source's rate limit", slog.String("from", from.String())))
		case looping:
			s.c.repeats++
			return append(out, spec.Debug("echo: dropped datagram its source keeps sending back (a loop)", slog.String("from", from.String())))
		}
	}
	s.c.echoed++
	return append(out, spec.SendFrom(sockUDP, in.Local, from, in.Data))
}

// sourceLimit is a rate limit per source address (GCRA, as a token
// bucket), over a table of fixed size.
type sourceLimit struct {
	rate   spec.Rate
	index  map[netip.Addr]int
	slots  []sourceSlot
	max    int
	recent int // payloads followed per source
}

type sourceSlot struct {
	addr netip.Addr
	tat  spec.Time // its rate limit's state
	// The source's last distinct payloads, up to sourceLimit.recent.
	recent []recentPayload
}

// recentPayload is a payload's hash, when it last came, and how many
// times in a row it came back within RepeatGap of the time before.
type recentPayload struct {
	sum     uint64
	at      spec.Time
	repeats int
}

// A loop between two reflectors is one payload coming back from one
// source every round trip, whatever the rate; a forger who sends several
// payloads sets several loops going at once. A payload answered
// MaxRepeats times in a row, each within RepeatGap of the one before, is
// dropped until its source pauses, which ends its loop. Each source's
// last distinct payloads are followed, as many as it can keep looping
// under its rate limit within RepeatGap (SourceRate × RepeatGap, 50 at
// the defaults) and at least RecentPayloads (64, which the defaults get): more loops than that at
// once exceed the rate limit, whose drops end them. A client resending a datagram
// whose echo was lost waits far longer between copies, and so does a
// person typing one line again into nc. (A loop whose round trip is
// longer than RepeatGap cannot be told from a client repeating itself
// at that pace: it carries one datagram per round trip per payload,
// within the source's rate limit.)
const (
	RepeatGap      = 500 * time.Millisecond
	MaxRepeats     = 16
	RecentPayloads = 64
)

type verdict uint8

const (
	allowed verdict = iota
	overRate
	looping
)

func newSourceLimit(rate float64, burst, size int) *sourceLimit {
	recent := RecentPayloads
	if n := rate * RepeatGap.Seconds(); n+1 > float64(recent) {
		recent = int(min(n+1, 4096))
	}
	return &sourceLimit{rate: spec.NewRate(rate, burst), index: map[netip.Addr]int{}, max: size, recent: recent}
}

// allow says whether a datagram from addr may be answered now, and
// charges it if so.
func (l *sourceLimit) allow(now spec.Time, addr netip.Addr, data []byte) verdict {
	addr = addr.Unmap()
	i, ok := l.index[addr]
	if !ok {
		i = l.slot()
		l.slots[i] = sourceSlot{addr: addr, recent: l.slots[i].recent[:0]} // the table is reused
		l.index[addr] = i
	}
	sl := &l.slots[i]
	h := fnv.New64a()
	h.Write(data)
	r := sl.payload(h.Sum64(), now, l.recent)
	if now.Sub(r.at) < RepeatGap {
		r.repeats++
	} else {
		r.repeats = 0
	}
	r.at = now
	if r.repeats >= MaxRepeats {
		return looping
	}
	if !l.rate.Allow(now, &sl.tat) {
		return overRate
	}
	return allowed
}

// payload returns sum's entry, or a new one (its time far enough in the
// past to count as a pause) in place of the payload that came longest
// ago; ties go to the lowest entry.
func (sl *sourceSlot) payload(sum uint64, now spec.Time, max int) *recentPayload {
	for i := range sl.recent {
		if sl.recent[i].sum == sum {
			return &sl.recent[i]
		}
	}
	j := len(sl.recent)
	if j < max {
		sl.recent = append(sl.recent, recentPayload{})
	} else {
		j = 0
		for i := range sl.recent {
			if sl.recent[i].at < sl.recent[j].at {
				j = i
			}
		}
	}
	sl.recent[j] = recentPayload{sum: sum, at: now.Add(-RepeatGap)}
	return &sl.recent[j]
}

// slot returns a free slot, or forgets the source with the earliest
// theoretical arrival time (the most credit left) to make one: a source
// with full credit is forgotten at no cost, and a source deep in debt,
// such as a loop, is the last to be. Ties go to the lowest slot, so the
// choice depends on nothing but the inputs.
func (l *sourceLimit) slot() int {
	if len(l.slots) < l.max {
		l.slots = append(l.slots, sourceSlot{})
		return len(l.slots) - 1
	}
	j := 0
	for i := range l.slots {
		if l.slots[i].tat < l.slots[j].tat {
			j = i
		}
	}
	delete(l.index, l.slots[j].addr)
	return j
}

// ClientConfig configures an echo client.
type ClientConfig struct {
	Server netip.AddrPort `json:"server"`
	TCP    bool           `json:"tcp,omitempty"`
	// Timeout is how long a UDP message waits for its echo before it is
	// resent (default 1s); Retries is how many times (default 2).
	Timeout time.Duration `json:"timeout,omitempty"`
	Retries int           `json:"retries,omitempty"`
	// MaxReply bounds the bytes kept from a TCP echo (default 1 MiB).
	MaxReply int `json:"maxReply,omitempty"`
}

// Reply is the value of a client's "reply" event.
type Reply struct {
	// Matched says the bytes equal a message in flight, which is then
	// complete.
	Matched bool `json:"matched"`
}

// Client is an echo client machine.
type Client struct {
	cfg      ClientConfig
	bound    bool
	closing  bool
	queued   [][]byte // sends waiting for the socket
	inflight []*message
	streams  map[spec.Stream]*tcpEcho
	nextID   spec.Stream
	failures int
	why      string // the first failure's reason
}

type message struct {
	data     []byte
	deadline spec.Time
	tries    int
}

type tcpEcho struct {
	sent []byte
	got  []byte
}

const retryTimer spec.Timer = 1

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.Retries < 0 {
		cfg.Retries = 0
	} else if cfg.Retries == 0 {
		cfg.Retries = 2
	}
	if cfg.MaxReply <= 0 {
		cfg.MaxReply = 1 << 20
	}
	return &Client{cfg: cfg, streams: map[spec.Stream]*tcpEcho{}}
}

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		if !c.cfg.TCP {
			out = append(out, spec.Bind(sockUDP, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 0)))
			if c.cfg.Server.Addr().Is6() {
				out[len(out)-1].Addr = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
			}
		}
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("echo: bind: "+in.Err))
		}
		c.bound = true
		for _, d := range c.queued {
			out = c.sendUDP(now, d, out)
		}
		c.queued = nil
	case spec.InCommand:
		switch in.Cmd.Name {
		case "send":
			if c.cfg.TCP {
				c.nextID++
				c.streams[c.nextID] = &tcpEcho{sent: in.Cmd.Data}
				out = append(out, spec.Dial(c.nextID, c.cfg.Server))
			} else if c.bound {
				out = c.sendUDP(now, in.Cmd.Data, out)
			} else {
				c.queued = append(c.queued, in.Cmd.Data)
			}
		case "close":
			c.closing = true
		default:
			out = append(out, spec.Debug("echo: unknown command", slog.String("name", in.Cmd.Name)))
		}
	case spec.InDatagram:
		if in.Addr != c.cfg.Server {
			return append(out, spec.Debug("echo: datagram from a stranger", slog.String("from", in.Addr.String())))
		}
		matched := false
		for i, m := range c.inflight {
			if bytes.Equal(m.data, in.Data) {
				c.inflight = slices.Delete(c.inflight, i, i+1)
				matched = true
				break
			}
		}
		out = append(out, spec.Emit(spec.Event{Name: "reply", Data: in.Data, Value: Reply{Matched: matched}}))
		out = c.rearm(out)
	case spec.InTimer:
		keep := c.inflight[:0]
		for _, m := range c.inflight {
			switch {
			case m.deadline > now:
				keep = append(keep, m)
			case m.tries <= c.cfg.Retries:
				m.tries++
				m.deadline = now.Add(c.cfg.Timeout)
				out = append(out, spec.Send(sockUDP, c.cfg.Server, m.data))
				keep = append(keep, m)
			default:
				c.fail("no echo")
				out = append(out, spec.Emit(spec.Event{Name: "timeout", Data: m.data}))
			}
		}
		c.inflight = keep
		out = c.rearm(out)
	case spec.InConnected:
		if e := c.streams[in.Stream]; e != nil {
			out = append(out, spec.Write(in.Stream, e.sent), spec.Close(in.Stream))
		}
	case spec.InStreamData:
		e := c.streams[in.Stream]
		if e == nil {
			return out
		}
		if len(e.got)+len(in.Data) > c.cfg.MaxReply {
			delete(c.streams, in.Stream)
			c.fail("reply too long")
			out = append(out, spec.Abort(in.Stream), spec.Emit(spec.Event{Name: "error", Text: "echo: reply too long"}))
			return c.maybeExit(out)
		}
		e.got = append(e.got, in.Data...)
	case spec.InStreamClosed:
		e := c.streams[in.Stream]
		if e == nil {
			return out
		}
		delete(c.streams, in.Stream)
		if in.Err != "" {
			c.fail(in.Err)
			out = append(out, spec.Emit(spec.Event{Name: "error", Text: "echo: " + in.Err}))
		} else {
			matched := bytes.Equal(e.got, e.sent)
			if !matched {
				c.fail(fmt.Sprintf("the echo differs from the message (%d bytes back for %d sent)", len(e.got), len(e.sent)))
			}
			out = append(out, spec.Emit(spec.Event{Name: "reply", Data: e.got, Value: Reply{Matched: matched}}))
		}
	case spec.InStop:
		return append(out, spec.Exit(""))
	}
	return c.maybeExit(out)
}

func (c *Client) sendUDP(now spec.Time, d []byte, out []spec.Output) []spec.Output {
	c.inflight = append(c.inflight, &message{data: d, deadline: now.Add(c.cfg.Timeout), tries: 1})
	out = append(out, spec.Send(sockUDP, c.cfg.Server, d))
	return c.rearm(out)
}

// rearm points the retry timer at the earliest deadline.
func (c *Client) rearm(out []spec.Output) []spec.Output {
	if len(c.inflight) == 0 {
		return append(out, spec.CancelTimer(retryTimer))
	}
	next := c.inflight[0].deadline
	for _, m := range c.inflight[1:] {
		next = min(next, m.deadline)
	}
	return append(out, spec.SetTimer(retryTimer, next))
}

func (c *Client) maybeExit(out []spec.Output) []spec.Output {
	if !c.closing || len(c.inflight) > 0 || len(c.queued) > 0 || len(c.streams) > 0 {
		return out
	}
	c.closing = false
	if c.failures > 0 {
		return append(out, spec.Exit(fmt.Sprintf("echo: %d message(s) failed (first: %s)", c.failures, c.why)))
	}
	return append(out, spec.Exit(""))
}

// fail counts a message that got no correct echo, keeping the first
// reason for the exit message.
func (c *Client) fail(why string) {
	if c.failures == 0 {
		c.why = why
	}
	c.failures++
}
