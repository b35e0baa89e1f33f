package sim

import (
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
)

// conn is a simulated TCP connection. ends[0] dialed, ends[1] accepted.
type conn struct {
	id       uint64
	synID    uint64
	synTries int // SYNs sent so far
	ends     [2]*end
	listener spec.Sock
	dialedAt spec.Time
	dead     bool
}

// end is one side of a conn, as its node sees it.
type end struct {
	conn   *conn
	side   uint8
	node   *Node
	gen    uint32
	id     spec.Stream
	local  netip.AddrPort
	remote netip.AddrPort
	open   bool // segments may flow
	told   bool // the machine knows the stream (it dialed it, or was told of the accept)

	// sending
	q            [][]byte
	queued       int
	next         uint64
	inflight     int
	wantWritable bool
	finQueued    bool
	finSent      bool
	finAcked     bool
	lost         []*segment // lost, waiting for their resend

	// receiving
	rnext  uint64
	ooo    []*segment
	gotFin bool
	// paused: the machine stopped reading (spec.OutPause); what arrives
	// is held, in order, and counts against the sender's window.
	paused    bool
	held      []spec.Input
	heldBytes int
}

// segment is a piece of one direction of a conn; a lost or duplicated
// packet carries the same segment again.
type segment struct {
	conn  *conn
	dir   uint8
	off   uint64
	data  []byte
	fin   bool
	acked bool
	tx    uint32 // transmissions so far
	dups  uint8  // segments sent after it acknowledged while it was lost
}

// dupThresh is how many later segments must be acknowledged (SACKed)
// before a lost one is resent without waiting for the RTO (RFC 6675).
const dupThresh = 3

func (g *segment) flags() string {
	if g.fin {
		return "F"
	}
	return ""
}

type rst struct {
	e   *end
	err string
}

func owd(a, b *Node) time.Duration { return a.link.Up.Delay + b.link.Down.Delay }

// postTo schedules an input for e's node at t, if the node is still the
// same incarnation then.
func (s *Sim) postTo(e *end, t spec.Time, in spec.Input) {
	s.schedule(event{at: t, kind: evInput, node: e.node.idx, gen: e.gen, x: &in})
}

func (s *Sim) dial(n *Node, id spec.Stream, to netip.AddrPort) {
	if id == 0 || id&spec.AcceptedStream != 0 {
		s.violate(n, "dial with stream id %#x", uint64(id))
		return
	}
	if _, dup := n.streams[id]; dup {
		s.violate(n, "dial reuses stream %d", id)
		return
	}
	s.connID++
	c := &conn{id: s.connID, dialedAt: s.now}
	port := n.ephem
	n.ephem++
	if n.ephem < 49152 {
		n.ephem = 49152
	}
	e := &end{conn: c, node: n, gen: n.gen, id: id, local: netip.AddrPortFrom(n.Addr, port), remote: to, told: true}
	c.ends[0] = e
	n.streams[id] = e
	dst := s.host(to.Addr())
	if dst == nil {
		s.failDial(e, s.now.Add(s.cfg.DialTimeout), "connection timed out")
		return
	}
	s.sendSyn(e, dst)
}

// synRTO is the initial retransmission timeout of a SYN (RFC 6298 5.7:
// 1 s, doubled for each retry, as kernels do).
const synRTO = time.Second

// sendSyn sends c's SYN (again) towards dst.
func (s *Sim) sendSyn(e *end, dst *Node) {
	c := e.conn
	c.synTries++
	s.pktID++
	c.synID = s.pktID
	s.live++
	s.recordNet(NetEvent{Kind: NetSend, ID: c.synID, Proto: spec.TCP, From: e.local, To: e.remote, Conn: c.id, Flags: "S", Len: s.cfg.TCPOverhead})
	s.schedule(event{at: s.now.Add(owd(e.node, dst)), kind: evSyn, x: c})
}

// synLost handles a SYN that a down host or a partition swallowed: like
// a kernel, the dialer sends it again 1 s, 3 s, 7 s, ... after the dial
// (the timeout doubling each time), as long as that is before
// DialTimeout; then the dial fails.
func (s *Sim) synLost(d *end, dst *Node, k NetKind, why string) {
	c := d.conn
	s.live--
	s.recordNet(NetEvent{Kind: k, ID: c.synID, Proto: spec.TCP, From: d.local, To: d.remote, Conn: c.id, Flags: "S", Len: s.cfg.TCPOverhead, Note: why})
	retry := c.dialedAt.Add(synRTO * time.Duration(1<<c.synTries-1))
	deadline := c.dialedAt.Add(s.cfg.DialTimeout)
	if c.synTries >= 30 || !retry.Before(deadline) {
		s.failDial(d, deadline, "connection timed out")
		return
	}
	s.schedule(event{at: retry, kind: evFunc, x: func() {
		if c.dead || d.node.gen != d.gen || !d.node.up || d.node.streams[d.id] != d {
			return
		}
		s.sendSyn(d, dst)
	}})
}

// handshakeReply records the listener's answer to d's SYN, a SYN-ACK
// ("SA") or a RST ("R"), as sent now and, if deliver, delivered back
// after back; it returns the event for a caller that records the
// delivery itself. They carry no data and the model does not lose them: they are
// here so that a capture shows each connection's handshake.
func (s *Sim) handshakeReply(c *conn, d *end, flags string, back time.Duration, deliver bool) NetEvent {
	s.pktID++
	ev := NetEvent{Kind: NetSend, ID: s.pktID, Proto: spec.TCP, From: d.remote, To: d.local, Conn: c.id, Flags: flags, Len: s.cfg.TCPOverhead}
	s.live++
	s.recordNet(ev)
	if deliver {
		s.schedule(event{at: s.now.Add(back), kind: evFunc, x: func() {
			s.live--
			ev.Kind = NetDeliver
			s.recordNet(ev)
		}})
	}
	return ev
}

func (s *Sim) failDial(e *end, at spec.Time, why string) {
	e.conn.dead = true
	s.schedule(event{at: at, kind: evStreamRst, x: &rst{e: e, err: why}})
}

// syn runs when a connection request reaches the destination host.
func (s *Sim) syn(ev event) {
	c := ev.x.(*conn)
	d := c.ends[0]
	if c.dead || d.node.gen != d.gen {
		// The dialer gave up or restarted: the SYN arrives for a
		// connection that no longer exists.
		s.live--
		s.recordNet(NetEvent{Kind: NetHostDown, ID: c.synID, Proto: spec.TCP, From: d.local, To: d.remote, Conn: c.id, Flags: "S", Len: s.cfg.TCPOverhead, Note: "connection gone"})
		return
	}
	dst := s.host(d.remote.Addr())
	if !dst.up {
		s.synLost(d, dst, NetHostDown, "host down")
		return
	}
	if s.cut(d.node, dst) {
		s.synLost(d, dst, NetCut, "partition")
		return
	}
	back := owd(dst, d.node)
	s.live--
	s.recordNet(NetEvent{Kind: NetDeliver, ID: c.synID, Proto: spec.TCP, From: d.local, To: d.remote, Conn: c.id, Flags: "S", Len: s.cfg.TCPOverhead})
	sock, ok := dst.tcp[d.remote.Port()]
	if a := dst.socks[sock].addr; ok && a.IsValid() && a != d.remote.Addr() {
		ok = false // a listener on another of the host's addresses
	}
	if !ok {
		s.handshakeReply(c, d, "R", back, true)
		s.failDial(d, s.now.Add(back), "connection refused")
		return
	}
	dst.accepted++
	a := &end{conn: c, side: 1, node: dst, gen: dst.gen, id: spec.AcceptedStream | spec.Stream(dst.accepted), local: d.remote, remote: d.local}
	c.ends[1] = a
	c.listener = sock
	dst.streams[a.id] = a
	a.open = true
	// The dialer may send once the SYN-ACK is back: bytes it wrote while
	// connecting go out then, just before it hears it is connected.
	synAck := s.handshakeReply(c, d, "SA", back, false)
	s.schedule(event{at: s.now.Add(back), kind: evFunc, x: func() {
		s.live--
		if d.node.gen != d.gen || !d.node.up {
			synAck.Kind, synAck.Note = NetHostDown, "host down"
			s.recordNet(synAck)
			return
		}
		if c.dead {
			synAck.Kind, synAck.Note = NetHostDown, "connection gone"
			s.recordNet(synAck)
			return
		}
		synAck.Kind = NetDeliver
		s.recordNet(synAck)
		d.open = true
		s.pump(d)
		d.node.deliver(spec.Input{Kind: spec.InConnected, Stream: d.id, Addr: d.remote})
	}})
	// The acceptor hears of the connection only if it is still alive when
	// the handshake completes: a partition or crash in between removes it
	// silently, as a kernel drops a half-open connection from its queue.
	s.schedule(event{at: s.now.Add(back + owd(d.node, dst)), kind: evFunc, x: func() {
		n := a.node
		if n.gen != a.gen || !n.up || n.streams[a.id] != a {
			return
		}
		if c.dead {
			delete(n.streams, a.id)
			return
		}
		a.told = true
		n.deliver(spec.Input{Kind: spec.InAccepted, Sock: sock, Stream: a.id, Addr: a.remote})
	}})
}

func (s *Sim) endOf(n *Node, id spec.Stream, op string) *end {
	e := n.streams[id]
	if e == nil {
		s.violate(n, "%s on unknown stream %d", op, id)
	}
	return e
}

func (s *Sim) write(n *Node, id spec.Stream, data []byte) {
	e := s.endOf(n, id, "write")
	if e == nil {
		return
	}
	if e.finQueued {
		s.violate(n, "write after close on stream %d", id)
		return
	}
	if e.conn.dead || len(data) == 0 {
		return
	}
	e.q = append(e.q, data)
	e.queued += len(data)
	e.wantWritable = true
	s.pump(e)
}

func (s *Sim) closeStream(n *Node, id spec.Stream) {
	e := s.endOf(n, id, "close")
	if e == nil || e.finQueued {
		return
	}
	e.finQueued = true
	if !e.conn.dead {
		s.pump(e)
	}
}

func (s *Sim) abort(n *Node, id spec.Stream) {
	e := s.endOf(n, id, "abort")
	if e == nil {
		return
	}
	delete(n.streams, id)
	if !e.conn.dead {
		e.conn.dead = true
		s.resetPeer(e, "connection reset by peer")
	}
}

// resetPeer tells the other side of e's connection that it was reset,
// after a one-way delay.
func (s *Sim) resetPeer(e *end, why string) {
	p := e.conn.ends[1-e.side]
	if p == nil {
		return
	}
	s.schedule(event{at: s.now.Add(owd(e.node, p.node)), kind: evStreamRst, x: &rst{e: p, err: why}})
}

func (s *Sim) streamReset(ev event) {
	r := ev.x.(*rst)
	e := r.e
	n := e.node
	if n.gen != e.gen || !n.up || n.streams[e.id] != e {
		return
	}
	delete(n.streams, e.id)
	if !e.told {
		return // never accepted as far as the machine knows
	}
	n.deliver(spec.Input{Kind: spec.InStreamClosed, Stream: e.id, Err: r.err})
}

// pump sends as much of e's queue as its window allows.
func (s *Sim) pump(e *end) {
	c := e.conn
	if !e.open || c.dead {
		return
	}
	for e.queued > 0 && e.inflight+e.peerHeld() < s.cfg.Window {
		b := e.q[0]
		k := min(len(b), s.cfg.MSS)
		g := &segment{conn: c, dir: e.side, off: e.next, data: b[:k:k]}
		if k == len(b) {
			e.q[0] = nil
			e.q = e.q[1:]
		} else {
			e.q[0] = b[k:]
		}
		e.queued -= k
		e.next += uint64(k)
		e.inflight += k
		s.sendSegment(e, g)
	}
	if e.queued == 0 {
		e.q = nil
		if e.wantWritable {
			e.wantWritable = false
			s.postTo(e, s.now, spec.Input{Kind: spec.InStreamWritable, Stream: e.id})
		}
		if e.finQueued && !e.finSent {
			e.finSent = true
			e.inflight++
			s.sendSegment(e, &segment{conn: c, dir: e.side, off: e.next, fin: true})
		}
	}
}

func (s *Sim) sendSegment(e *end, g *segment) {
	g.tx++
	s.pktID++
	p := s.newPacket()
	*p = packet{id: s.pktID, proto: spec.TCP, src: e.local, dst: e.remote, from: e.node, data: g.data, size: len(g.data) + s.cfg.TCPOverhead, sent: s.now, seg: g, dir: e.side}
	if s.observed() {
		s.recordNet(s.netEvent(NetSend, p, ""))
	}
	s.transmit(p, false)
}

// resend is the RTO of a lost transmission (ev.a); a later one (a fast
// retransmit) has its own.
func (s *Sim) resend(ev event) {
	g := ev.x.(*segment)
	e := g.conn.ends[g.dir]
	if g.acked || g.conn.dead || e.node.gen != e.gen || uint64(g.tx) != ev.a {
		return
	}
	e.unlose(g)
	s.sendSegment(e, g)
}

// lose notes that g's latest transmission was lost: acknowledgments of
// later segments may resend it before the RTO.
func (e *end) lose(g *segment) {
	g.dups = 0
	for _, l := range e.lost {
		if l == g {
			return
		}
	}
	e.lost = append(e.lost, g)
}

func (e *end) unlose(g *segment) {
	for i, l := range e.lost {
		if l == g {
			e.lost = append(e.lost[:i], e.lost[i+1:]...)
			break
		}
	}
	if len(e.lost) == 0 {
		e.lost = nil
	}
}

// fastRetransmit resends the lost segments that dupThresh segments above
// them have been acknowledged past, as a SACK sender would: a loss costs
// about a round trip, not the RTO, unless it is at the tail of a burst.
func (s *Sim) fastRetransmit(e *end, acked *segment) {
	for i := 0; i < len(e.lost); i++ {
		l := e.lost[i]
		if l.acked || l.off >= acked.off {
			continue
		}
		if l.dups++; l.dups < dupThresh {
			continue
		}
		e.lost = append(e.lost[:i], e.lost[i+1:]...)
		i--
		s.sendSegment(e, l)
	}
}

func (s *Sim) deliverSegment(dst *Node, p *packet) {
	g := p.seg
	c := g.conn
	r := c.ends[1-g.dir]
	if c.dead || r == nil || r.node.gen != r.gen || !r.node.up {
		s.recordNet(s.netEvent(NetHostDown, p, "connection gone"))
		s.free(p)
		return
	}
	if s.observed() {
		ev := s.netEvent(NetDeliver, p, "")
		ev.Extra, ev.Jitter = s.now.Sub(p.sent)-p.minDelay, p.jitter
		s.recordNet(ev)
	}
	snd := c.ends[g.dir]
	s.schedule(event{at: s.now.Add(owd(r.node, snd.node)), kind: evAck, x: g})
	s.free(p)
	if r.gotFin || g.off < r.rnext || (g.off == r.rnext && len(g.data) == 0 && !g.fin) {
		return // a duplicate or a resend of something already delivered
	}
	if g.off > r.rnext {
		for _, o := range r.ooo {
			if o.off == g.off {
				return
			}
		}
		i := len(r.ooo)
		for i > 0 && r.ooo[i-1].off > g.off {
			i--
		}
		r.ooo = append(r.ooo, nil)
		copy(r.ooo[i+1:], r.ooo[i:])
		r.ooo[i] = g
		return
	}
	s.accept(r, g)
	for len(r.ooo) > 0 && r.ooo[0].off == r.rnext && !r.gotFin {
		g = r.ooo[0]
		r.ooo = r.ooo[1:]
		s.accept(r, g)
	}
}

// peerHeld is what the other side of e's connection holds unread: a
// receiver that stopped reading closes the sender's window (TCP's
// receive window, the same size as the send window here).
func (e *end) peerHeld() int {
	if p := e.conn.ends[1-e.side]; p != nil {
		return p.heldBytes
	}
	return 0
}

// accept hands an in-order segment to the receiving machine, or holds
// it while the machine has paused the stream.
func (s *Sim) accept(r *end, g *segment) {
	n := r.node
	r.rnext += uint64(len(g.data))
	if g.fin {
		r.gotFin = true
	}
	if n.streams[r.id] != r || !n.up || n.gen != r.gen {
		return
	}
	if len(g.data) > 0 {
		s.give(r, spec.Input{Kind: spec.InStreamData, Stream: r.id, Data: g.data})
	}
	if g.fin && n.up && n.gen == r.gen && n.streams[r.id] == r {
		s.give(r, spec.Input{Kind: spec.InStreamClosed, Stream: r.id})
	}
}

// give delivers a stream's data or EOF to its machine, behind what is
// held, or holds it.
func (s *Sim) give(r *end, in spec.Input) {
	if r.paused || len(r.held) > 0 {
		r.held = append(r.held, in)
		r.heldBytes += len(in.Data)
		return
	}
	r.node.deliver(in)
	if in.Kind == spec.InStreamClosed {
		s.maybeRelease(r)
	}
}

// pause stops handing the machine the stream's data (spec.OutPause).
func (s *Sim) pause(n *Node, id spec.Stream) {
	if e := s.endOf(n, id, "pause"); e != nil {
		e.paused = true
	}
}

// resume hands the machine what was held, as inputs of their own (the
// machine is in the middle of a step), then opens the sender's window
// again a one-way delay later (the window update's flight).
func (s *Sim) resume(n *Node, id spec.Stream) {
	e := s.endOf(n, id, "resume")
	if e == nil || !e.paused {
		return
	}
	e.paused = false
	if len(e.held) == 0 {
		return
	}
	s.schedule(event{at: s.now, kind: evFunc, x: func() {
		for len(e.held) > 0 && !e.paused && n.up && n.gen == e.gen && n.streams[e.id] == e {
			in := e.held[0]
			e.held[0] = spec.Input{}
			e.held = e.held[1:]
			e.heldBytes -= len(in.Data)
			n.deliver(in)
			if in.Kind == spec.InStreamClosed {
				s.maybeRelease(e)
			}
		}
		if len(e.held) == 0 {
			e.held = nil
		}
		snd := e.conn.ends[1-e.side]
		if snd == nil {
			return
		}
		s.schedule(event{at: s.now.Add(owd(n, snd.node)), kind: evFunc, x: func() {
			if snd.node.gen == snd.gen && snd.node.streams[snd.id] == snd {
				s.pump(snd)
			}
		}})
	}})
}

func (s *Sim) ack(ev event) {
	g := ev.x.(*segment)
	if g.acked {
		return
	}
	g.acked = true
	e := g.conn.ends[g.dir]
	if g.conn.dead || e.node.gen != e.gen {
		return
	}
	if len(e.lost) > 0 {
		e.unlose(g)
		if !g.fin {
			s.fastRetransmit(e, g)
		}
	}
	if g.fin {
		e.inflight--
		e.finAcked = true
		s.maybeRelease(e)
		return
	}
	e.inflight -= len(g.data)
	s.pump(e)
	s.maybeRelease(e)
}

// finishPeer is e's node exiting after both FINs: its kernel
// acknowledges every segment of the peer's that reached it, so the
// peer's end counts them as acknowledged and is released.
func (s *Sim) finishPeer(e *end) {
	p := e.conn.ends[1-e.side]
	if p == nil || !p.finSent {
		return
	}
	p.inflight, p.finAcked = 0, true
	s.maybeRelease(p)
}

// maybeRelease forgets a stream once both directions have finished: every
// byte it sent, FIN included, acknowledged, and the peer's FIN received.
// Until then a crash of either side resets the other.
func (s *Sim) maybeRelease(e *end) {
	if e.finAcked && e.inflight == 0 && e.gotFin && len(e.held) == 0 && e.node.streams[e.id] == e {
		delete(e.node.streams, e.id)
	}
}
