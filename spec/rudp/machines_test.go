package rudp_test

import (
	"net/netip"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// The session layer is a library; these two machines embed it the way
// spec/file does, so its properties can be checked on the simulator on
// their own: a source dials, writes its payload and closes; a sink
// accepts sessions, reports every byte it receives and closes when the
// peer has.

const (
	sock      spec.Sock  = 1
	timerBase spec.Timer = 1 << 32
)

type sink struct {
	addr netip.AddrPort
	ep   *rudp.Endpoint
	cfg  rudp.Config
}

func newSink(addr netip.AddrPort, cfg rudp.Config) *sink {
	return &sink{addr: addr, cfg: cfg, ep: rudp.NewEndpoint(cfg, sock, timerBase, true)}
}

func (s *sink) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(sock, spec.UDP, s.addr))
	case spec.InStop:
		s.ep.Shutdown("stopping")
		out = s.ep.Flush(now, out)
		return append(out, spec.Exit(""))
	}
	out, _ = s.ep.Handle(now, in, out)
	for ev, ok := s.ep.Next(); ok; ev, ok = s.ep.Next() {
		switch ev.Kind {
		case rudp.Data:
			out = append(out, spec.Emit(spec.Event{Name: "data", Text: ev.Peer.String(), Data: ev.Data}))
		case rudp.PeerClosed:
			out = append(out, spec.Emit(spec.Event{Name: "eof", Text: ev.Peer.String()}))
			s.ep.Close(ev.Conn)
		case rudp.Closed:
			out = append(out, spec.Emit(spec.Event{Name: "closed", Text: ev.Peer.String(), Data: []byte(ev.Err)}))
		}
	}
	return s.ep.Flush(now, out)
}

func (s *sink) Counters() []spec.Counter { return s.ep.Counters() }

type source struct {
	server  netip.AddrPort
	payload []byte
	chunk   int
	ep      *rudp.Endpoint
	id      rudp.ConnID
	off     int
	closed  bool
	limit   int // bytes kept buffered
}

func newSource(server netip.AddrPort, payload []byte, cfg rudp.Config) *source {
	return &source{server: server, payload: payload, chunk: 4096, limit: 1 << 20, ep: rudp.NewEndpoint(cfg, sock, timerBase, false)}
}

func (c *source) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(sock, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 0)))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit(in.Err))
		}
		c.id = c.ep.Dial(now, c.server)
	case spec.InStop:
		c.ep.Shutdown("stopping")
		out = c.ep.Flush(now, out)
		return append(out, spec.Exit("stopped"))
	}
	out, _ = c.ep.Handle(now, in, out)
	for ev, ok := c.ep.Next(); ok; ev, ok = c.ep.Next() {
		switch ev.Kind {
		case rudp.Connected:
			out = append(out, spec.Emit(spec.Event{Name: "connected"}))
		case rudp.Closed:
			c.closed = true
			out = c.ep.Flush(now, out)
			return append(out, spec.Exit(ev.Err))
		}
	}
	if c.id != 0 && !c.closed {
		for c.off < len(c.payload) && c.ep.Buffered(c.id) < c.limit {
			n := min(c.chunk, len(c.payload)-c.off)
			_ = c.ep.Write(c.id, c.payload[c.off:c.off+n])
			c.off += n
		}
		if c.off == len(c.payload) {
			c.ep.Close(c.id)
		}
	}
	return c.ep.Flush(now, out)
}

func (c *source) Counters() []spec.Counter { return c.ep.Counters() }

// sinkConfig and sourceConfig are the machines' configs in trace
// headers: a source's payload is in its config, so a run rebuilt from a
// trace sends the same bytes.
type sinkConfig struct {
	Addr    netip.AddrPort `json:"addr"`
	Session rudp.Config    `json:"session"`
}

type sourceConfig struct {
	Server  netip.AddrPort `json:"server"`
	Payload []byte         `json:"payload"`
	Session rudp.Config    `json:"session"`
}

// machines rebuilds sinks and sources from a trace, so that a failing
// simulation of them can be re-simulated (conformance.Resimulate). It is
// not a protocol of its own: the session layer's packets, between two
// test machines.
var machines = spec.NewProtocol("rudp", rudp.Describe,
	spec.JSONRole("sink", func(c sinkConfig) (spec.Machine, error) { return newSink(c.Addr, c.Session), nil }),
	spec.JSONRole("source", func(c sourceConfig) (spec.Machine, error) { return newSource(c.Server, c.Payload, c.Session), nil }),
)
