package sim

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Node is a host of the simulated network running one machine.
type Node struct {
	// The fields every packet and input touch come first, together, so
	// a node costs few cache lines in a big network.
	up       bool
	lastOK   bool   // lastPort and lastSock cache the UDP port last
	lastPort uint16 // looked up (most nodes have one socket)
	gen      uint32 // incarnation: bumped by crashes so stale events are ignored
	lastSock spec.Sock
	lastWild bool
	lastAddr netip.Addr
	idx      int32
	sim      *Sim
	m        spec.Machine
	upQ      fifo
	downQ    fifo
	link     Link
	udp      map[uint16]spec.Sock
	out      []spec.Output

	// Name and Addr identify the node.
	Name string
	Addr netip.Addr
	spec NodeSpec

	exited bool
	exit   string
	starts int

	socks    map[spec.Sock]sockState
	tcp      map[uint16]spec.Sock
	timers   map[spec.Timer]uint64
	streams  map[spec.Stream]*end
	token    uint64
	accepted uint64
	ephem    uint16
}

type sockState struct {
	net  spec.Net
	port uint16
	wild bool       // bound to an unspecified address: datagrams carry Local
	addr netip.Addr // the address bound, if not unspecified
}

// Has reports whether a is one of the node's addresses.
func (n *Node) Has(a netip.Addr) bool {
	return a == n.Addr || slices.Contains(n.spec.Aliases, a)
}

func (n *Node) reset() {
	n.socks = map[spec.Sock]sockState{}
	n.udp = map[uint16]spec.Sock{}
	n.lastOK = false
	n.tcp = map[uint16]spec.Sock{}
	n.timers = map[spec.Timer]uint64{}
	n.streams = map[spec.Stream]*end{}
	n.accepted = 0
	n.ephem = 49152
}

// Machine returns the node's current machine (nil while it is down).
func (n *Node) Machine() spec.Machine {
	if !n.up {
		return nil
	}
	return n.m
}

// Up reports whether the node is running.
func (n *Node) Up() bool { return n.up }

// Exited reports whether the machine emitted Exit, and its error.
func (n *Node) Exited() (bool, string) { return n.exited, n.exit }

// Starts counts how many times the node's machine has been started.
func (n *Node) Starts() int { return n.starts }

// Link returns the node's access link.
func (n *Node) Link() Link { return n.link }

func (n *Node) start() {
	n.gen++
	n.up, n.exited, n.exit = true, false, ""
	n.starts++
	n.reset()
	n.m = n.spec.New()
	n.deliver(spec.Input{Kind: spec.InStart})
}

// crash drops the machine and everything it had; peers of its streams are
// reset after a one-way delay, as if its kernel answered with RST.
func (n *Node) crash() {
	if !n.up {
		return
	}
	n.sim.recordNet(NetEvent{Kind: NetCrash, Node: n.Name, Note: "node crashed"})
	n.halt(false)
	n.m = nil
}

// halt takes the node down: timers die with the incarnation, sockets
// close and the peers of its open streams are reset. On an exit (not a
// crash) a stream whose two FINs are both through, our own acknowledged,
// ends quietly: the kernel would acknowledge what is still in flight to
// it and never send a reset, and the peer's last segments are then as
// good as acknowledged.
func (n *Node) halt(exit bool) {
	ids := make([]spec.Stream, 0, len(n.streams))
	for id := range n.streams {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		e := n.streams[id]
		if exit && e.gotFin && e.finAcked && !e.conn.dead {
			n.sim.finishPeer(e)
			continue
		}
		if !e.conn.dead {
			e.conn.dead = true
			n.sim.resetPeer(e, "connection reset by peer")
		}
	}
	n.up = false
	n.gen++
	n.reset()
}

// deliver steps the machine with in and carries out its outputs.
func (n *Node) deliver(in spec.Input) {
	if !n.up {
		return
	}
	s := n.sim
	if s.tw != nil {
		s.record(trace.FromInput(spec.SimEpoch, s.now, n.Name, in))
	}
	n.out = n.m.Step(s.now, in, n.out[:0])
	out := n.out
	for i := range out {
		n.apply(&out[i])
		if !n.up {
			break
		}
	}
	for i := range out {
		out[i] = spec.Output{} // let the collector have payloads
	}
}

func (n *Node) fire(e event) {
	if e.gen != n.gen || !n.up {
		return
	}
	id := spec.Timer(e.a)
	if tok, ok := n.timers[id]; !ok || tok != e.b {
		return
	}
	delete(n.timers, id)
	n.deliver(spec.Input{Kind: spec.InTimer, Timer: id})
}

// post schedules an input for the node's current incarnation, now.
func (n *Node) post(in spec.Input) {
	n.sim.schedule(event{at: n.sim.now, kind: evInput, node: n.idx, gen: n.gen, x: &in})
}

func (n *Node) apply(o *spec.Output) {
	s := n.sim
	if s.tw != nil && o.Kind != spec.OutLog {
		s.record(trace.FromOutput(spec.SimEpoch, s.now, n.Name, *o))
	}
	switch o.Kind {
	case spec.OutBind:
		n.bind(o)
	case spec.OutUnbind:
		if st, ok := n.socks[o.Sock]; ok {
			delete(n.socks, o.Sock)
			if st.net == spec.UDP {
				delete(n.udp, st.port)
				n.lastOK = false
			} else {
				delete(n.tcp, st.port)
			}
		}
	case spec.OutSend:
		st, ok := n.socks[o.Sock]
		if !ok || st.net != spec.UDP {
			s.violate(n, "send on unbound socket %d", o.Sock)
			return
		}
		src := n.Addr
		switch {
		case o.Local.IsValid() && !n.Has(o.Local):
			// The kernel refuses it (EINVAL): a machine that names a
			// source must have been given it.
			s.violate(n, "send from %v, not an address of the node (%v)", o.Local, n.Addr)
			return
		case o.Local.IsValid():
			src = o.Local
		case st.addr.IsValid():
			src = st.addr
		}
		s.sendDatagram(n, netip.AddrPortFrom(src, st.port), o.Addr, o.Data)
	case spec.OutDial:
		s.dial(n, o.Stream, o.Addr)
	case spec.OutWrite:
		s.write(n, o.Stream, o.Data)
	case spec.OutClose:
		s.closeStream(n, o.Stream)
	case spec.OutAbort:
		s.abort(n, o.Stream)
	case spec.OutPause:
		s.pause(n, o.Stream)
	case spec.OutResume:
		s.resume(n, o.Stream)
	case spec.OutSetTimer:
		n.token++
		n.timers[o.Timer] = n.token
		s.schedule(event{at: o.At, kind: evTimer, node: n.idx, gen: n.gen, a: uint64(o.Timer), b: n.token})
	case spec.OutCancelTimer:
		delete(n.timers, o.Timer)
	case spec.OutEvent:
		if s.cfg.OnEvent != nil {
			s.cfg.OnEvent(n, s.now, o.Event)
		}
	case spec.OutLog:
		if s.tw != nil {
			s.record(trace.FromOutput(spec.SimEpoch, s.now, n.Name, *o))
		}
		if l := s.cfg.Logger; l != nil {
			l.LogAttrs(context.Background(), o.Log.Level, o.Log.Msg, append([]slog.Attr{slog.String("node", n.Name), slog.Duration("t", s.now.Sub(spec.SimEpoch))}, o.Log.Attrs...)...)
		}
	case spec.OutExit:
		n.exited, n.exit = true, o.Err
		if s.cfg.OnExit != nil {
			s.cfg.OnExit(n, s.now, o.Err)
		}
		n.halt(true)
	default:
		s.violate(n, "unknown output kind %d", o.Kind)
	}
}

func (n *Node) bind(o *spec.Output) {
	s := n.sim
	reply := spec.Input{Kind: spec.InBound, Sock: o.Sock}
	defer func() { n.post(reply) }()
	if _, dup := n.socks[o.Sock]; dup {
		reply.Err = "socket already bound"
		return
	}
	if a := o.Addr.Addr(); a.IsValid() && !a.IsUnspecified() && !n.Has(a) {
		reply.Err = "cannot assign requested address"
		return
	}
	ports := n.udp
	if o.Net == spec.TCP {
		ports = n.tcp
	} else if o.Net != spec.UDP {
		reply.Err = "unknown transport"
		return
	}
	port := o.Addr.Port()
	if port == 0 {
		for i := 0; ; i++ {
			if i == 16384 {
				reply.Err = "no free port"
				return
			}
			p := n.ephem
			n.ephem++
			if n.ephem < 49152 {
				n.ephem = 49152
			}
			if _, used := ports[p]; !used {
				port = p
				break
			}
		}
	} else if _, used := ports[port]; used {
		reply.Err = "address already in use"
		return
	}
	ports[port] = o.Sock
	st := sockState{net: o.Net, port: port, wild: !o.Addr.Addr().IsValid() || o.Addr.Addr().IsUnspecified()}
	// As a kernel does: a socket bound to the unspecified address says
	// so (with the port filled in), and learns its datagrams'
	// destinations as Local.
	unspec := netip.IPv4Unspecified()
	if a := o.Addr.Addr(); a.IsValid() {
		unspec = a
	} else if n.Addr.Is6() {
		unspec = netip.IPv6Unspecified()
	}
	reply.Addr = netip.AddrPortFrom(unspec, port)
	if !st.wild {
		st.addr = o.Addr.Addr()
		reply.Addr = netip.AddrPortFrom(st.addr, port)
	}
	n.socks[o.Sock] = st
	_ = s
}

// udpSock finds the socket bound to a UDP port that takes datagrams
// sent to dst, and whether it is bound to the unspecified address (a
// socket bound to one of the node's addresses takes only those sent to
// it, as a kernel's does).
func (n *Node) udpSock(port uint16, dst netip.Addr) (sock spec.Sock, wild, ok bool) {
	if !n.lastOK || n.lastPort != port {
		sock, ok = n.udp[port]
		if !ok {
			return 0, false, false
		}
		st := n.socks[sock]
		n.lastPort, n.lastSock, n.lastWild, n.lastAddr, n.lastOK = port, sock, st.wild, st.addr, true
	}
	if !n.lastWild && n.lastAddr != dst {
		return 0, false, false
	}
	return n.lastSock, n.lastWild, true
}
