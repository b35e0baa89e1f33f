package echo

import (
	"bytes"
	"fmt"
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
	const max = 24
	if len(b) > max {
		return strconv.QuoteToASCII(string(b[:max])) + "..."
	}
	return strconv.QuoteToASCII(string(b))
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
	// MaxStreams bounds concurrent TCP connections (default 1024).
	MaxStreams int `json:"maxStreams,omitempty"`
	// MaxUnread bounds echoed bytes a TCP client has not taken yet
	// (default 1 MiB); past it the connection is reset.
	MaxUnread int `json:"maxUnread,omitempty"`
	// AllowLowPorts answers sources below port 1024 too.
	AllowLowPorts bool `json:"allowLowPorts,omitempty"`
}

// Server is an echo server machine.
type Server struct {
	cfg     ServerConfig
	streams map[spec.Stream]int // unread bytes per open connection
	c       serverCounters
}

type serverCounters struct {
	datagrams, echoed, lowPort, streams, refused, cutOff uint64
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 1024
	}
	if cfg.MaxUnread <= 0 {
		cfg.MaxUnread = 1 << 20
	}
	return &Server{cfg: cfg, streams: map[spec.Stream]int{}}
}

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	return []spec.Counter{
		{Name: "datagrams", Value: s.c.datagrams},
		{Name: "echoed", Value: s.c.echoed},
		{Name: "dropped_low_port", Value: s.c.lowPort},
		{Name: "streams", Value: s.c.streams},
		{Name: "streams_refused", Value: s.c.refused},
		{Name: "streams_cut_off", Value: s.c.cutOff},
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
		if in.Err != "" {
			return append(out, spec.Exit(fmt.Sprintf("echo: bind %d: %s", in.Sock, in.Err)))
		}
		net := "udp"
		if in.Sock == sockTCP {
			net = "tcp"
		}
		out = append(out, spec.Info("echo server listening", slog.String("net", net), slog.String("addr", in.Addr.String())),
			spec.Emit(spec.Event{Name: "listening", Text: net + " " + in.Addr.String()}))
	case spec.InDatagram:
		s.c.datagrams++
		if p := in.Addr.Port(); (p < 1024 && !s.cfg.AllowLowPorts) || p == 0 {
			s.c.lowPort++
			return append(out, spec.Debug("dropped datagram from a well-known port", slog.String("from", in.Addr.String())))
		}
		s.c.echoed++
		out = append(out, spec.Send(sockUDP, in.Addr, in.Data))
	case spec.InAccepted:
		if len(s.streams) >= s.cfg.MaxStreams {
			s.c.refused++
			return append(out, spec.Abort(in.Stream), spec.Warn("echo: connection limit reached, refusing", slog.String("from", in.Addr.String())))
		}
		s.c.streams++
		s.streams[in.Stream] = 0
	case spec.InStreamData:
		unread, ok := s.streams[in.Stream]
		if !ok {
			return out // data racing our own reset
		}
		unread += len(in.Data)
		if unread > s.cfg.MaxUnread {
			s.c.cutOff++
			delete(s.streams, in.Stream)
			return append(out, spec.Abort(in.Stream), spec.Warn("echo: client is not reading its echo, resetting", slog.Int("unread", unread)))
		}
		s.streams[in.Stream] = unread
		out = append(out, spec.Write(in.Stream, in.Data))
	case spec.InStreamWritable:
		if _, ok := s.streams[in.Stream]; ok {
			s.streams[in.Stream] = 0
		}
	case spec.InStreamClosed:
		if _, ok := s.streams[in.Stream]; !ok {
			return out
		}
		delete(s.streams, in.Stream)
		if in.Err == "" {
			out = append(out, spec.Close(in.Stream))
		}
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
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
				c.failures++
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
			c.failures++
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
			c.failures++
			out = append(out, spec.Emit(spec.Event{Name: "error", Text: "echo: " + in.Err}))
		} else {
			out = append(out, spec.Emit(spec.Event{Name: "reply", Data: e.got, Value: Reply{Matched: bytes.Equal(e.got, e.sent)}}))
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
		return append(out, spec.Exit(fmt.Sprintf("echo: %d message(s) got no echo", c.failures)))
	}
	return append(out, spec.Exit(""))
}
