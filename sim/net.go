package sim

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// NetKind is what happened to a packet, or to the network.
type NetKind uint8

// What the network does.
const (
	NetSend      NetKind = iota + 1 // a packet entered the sender's uplink
	NetDeliver                      // it reached the receiver
	NetLoss                         // random loss
	NetQueueDrop                    // tail drop at a full queue
	NetDup                          // a copy was made
	NetCut                          // dropped by a partition
	NetNoRoute                      // no host has the destination address
	NetHostDown                     // the destination host is down
	NetNoPort                       // no socket bound at the destination port
	NetCrash                        // a node crashed
	NetPartition                    // a partition started
	NetHeal                         // a partition healed
)

var netNames = [...]string{"", "send", "deliver", "loss", "queue-drop", "dup", "cut", "no-route", "host-down", "no-port", "crash", "partition", "heal"}

func (k NetKind) String() string {
	if int(k) < len(netNames) && k != 0 {
		return netNames[k]
	}
	return fmt.Sprintf("net(%d)", uint8(k))
}

// Dropped reports whether k is a packet being dropped.
func (k NetKind) Dropped() bool {
	switch k {
	case NetLoss, NetQueueDrop, NetCut, NetNoRoute, NetHostDown, NetNoPort:
		return true
	}
	return false
}

// NetEvent is the ground truth about one packet (or a crash or partition):
// what the network did with it. Data is the payload, shared with the
// machines: read-only.
type NetEvent struct {
	T        spec.Time
	Kind     NetKind
	ID       uint64 // packet id; a duplicate has its own id
	Orig     uint64 // for NetDup: the id it copies
	Proto    spec.Net
	From, To netip.AddrPort
	Data     []byte
	Len      int // bytes on the wire, headers included
	// Stream segments: connection id, byte offset and flags.
	Conn  uint64
	Seq   uint64
	Flags string
	// Extra is the delay added beyond propagation and serialisation
	// (queueing and jitter), on NetDeliver; Jitter is the part of it the
	// fault model added at random.
	Extra  time.Duration
	Jitter time.Duration
	Node   string // for NetCrash
	Note   string
}

// packet is a datagram or stream segment in flight.
type packet struct {
	id       uint64
	proto    spec.Net
	src, dst netip.AddrPort
	from     *Node // nil for forged packets injected at the core
	to       *Node // set when the packet reaches the core
	data     []byte
	size     int
	sent     spec.Time
	minDelay time.Duration
	jitter   time.Duration
	seg      *segment
	dir      uint8 // stream direction: 0 from the dialer
}

func (s *Sim) newPacket() *packet {
	s.live++
	if n := len(s.pool); n > 0 {
		p := s.pool[n-1]
		s.pool = s.pool[:n-1]
		return p
	}
	return &packet{}
}

func (s *Sim) free(p *packet) {
	s.live--
	*p = packet{}
	s.pool = append(s.pool, p)
}

func (s *Sim) recordNet(ev NetEvent) {
	ev.T = s.now
	if s.cfg.OnNet != nil {
		s.cfg.OnNet(ev)
	}
	if s.tw != nil {
		r := trace.Record{T: int64(s.now - spec.SimEpoch), Net: ev.Kind.String(), ID: ev.ID, Len: ev.Len, Node: ev.Node, Err: ev.Note, Delay: int64(ev.Extra), Jitter: int64(ev.Jitter)}
		if ev.Kind == NetDup {
			r.Delay, r.Jitter = 0, 0
			r.Name = fmt.Sprintf("copy of %d", ev.Orig)
		}
		if ev.From.IsValid() {
			r.From = ev.From.String()
		}
		if ev.To.IsValid() {
			r.Addr = ev.To.String()
		}
		if ev.Proto != 0 {
			r.Proto = ev.Proto.String()
		}
		if ev.Conn != 0 {
			r.Stream, r.At, r.Msg = ev.Conn, int64(ev.Seq), ev.Flags
		}
		if ev.Kind == NetSend {
			r.SetPayload(ev.Data)
		}
		s.record(r)
	}
}

func (s *Sim) netEvent(k NetKind, p *packet, note string) NetEvent {
	ev := NetEvent{Kind: k, ID: p.id, Proto: p.proto, From: p.src, To: p.dst, Data: p.data, Len: p.size, Note: note}
	if p.seg != nil {
		ev.Conn, ev.Seq, ev.Flags = p.seg.conn.id, p.seg.off, p.seg.flags()
	}
	return ev
}

func (s *Sim) overhead(proto spec.Net) int {
	if proto == spec.TCP {
		return s.cfg.TCPOverhead
	}
	return s.cfg.UDPOverhead
}

// chance draws a Bernoulli(p) outcome; p <= 0 draws nothing, so adding a
// zero-probability fault does not shift the random sequence.
func (s *Sim) chance(p float64) bool {
	return p > 0 && s.rng.Float64() < p
}

func (s *Sim) jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return time.Duration(s.rng.Int64N(int64(max)))
}

var noFaults Faults

// faults returns the random faults in force now.
func (s *Sim) faults() *Faults {
	f := &s.cfg.Faults
	if f.Until > 0 && s.now >= spec.SimEpoch.Add(f.Until) {
		return &noFaults
	}
	return f
}

// maxUDPPayload is the most an IPv4 UDP datagram can carry; a real
// socket refuses more with EMSGSIZE.
const maxUDPPayload = 65507

func (s *Sim) sendDatagram(n *Node, src, dst netip.AddrPort, data []byte) {
	if len(data) > maxUDPPayload {
		s.violate(n, "sent a %d-byte datagram: UDP carries at most %d", len(data), maxUDPPayload)
		return
	}
	s.pktID++
	p := s.newPacket()
	*p = packet{id: s.pktID, proto: spec.UDP, src: src, dst: dst, from: n, data: data, size: len(data) + s.cfg.UDPOverhead, sent: s.now}
	if s.observed() {
		s.recordNet(s.netEvent(NetSend, p, ""))
	}
	s.transmit(p, false)
}

// observed reports whether anyone looks at network events: building one
// per packet for no one was a tenth of a big run.
func (s *Sim) observed() bool { return s.cfg.OnNet != nil || s.tw != nil }

// Inject puts a forged datagram on the network at t, as if a host with
// address from had sent it to to: it skips any uplink and arrives at the
// core at once. It models spoofing and hostile senders.
func (s *Sim) Inject(t time.Duration, from, to netip.AddrPort, data []byte) {
	s.At(t, func() {
		s.pktID++
		p := s.newPacket()
		*p = packet{id: s.pktID, proto: spec.UDP, src: from, dst: to, data: data, size: len(data) + s.cfg.UDPOverhead, sent: s.now}
		s.recordNet(s.netEvent(NetSend, p, "forged"))
		s.schedule(event{at: s.now, kind: evArrive, pkt: p})
	})
}

// transmit puts p on its sender's uplink: loss, duplication, queueing,
// serialisation, propagation and jitter. Stream segments are never
// tail-dropped (their window stands in for congestion control) and a
// lost one is resent (see lost).
func (s *Sim) transmit(p *packet, copy bool) {
	n := p.from
	up := &n.link.Up
	f := s.faults()
	if !copy && (s.chance(up.Dup) || s.chance(f.Dup)) {
		s.transmit(s.duplicate(p, ""), true)
	}
	if s.chance(up.Loss) || s.chance(f.Loss) {
		if p.seg != nil {
			// Lost on the wire: it takes its turn on the uplink, and its
			// sender's timers run from when it left (its window keeps a
			// queue of segments ahead of it that may be longer than the
			// RTO).
			dep, _ := n.upQ.enqueue(s.now, p.size, up, true)
			s.schedule(event{at: dep, kind: evFunc, x: func() { s.lost(p, NetLoss, "uplink loss") }})
			return
		}
		s.lost(p, NetLoss, "uplink loss")
		return
	}
	dep, ok := n.upQ.enqueue(s.now, p.size, up, p.seg != nil)
	if !ok {
		s.lost(p, NetQueueDrop, "uplink queue full")
		return
	}
	p.minDelay = txTime(p.size, up.Rate) + up.Delay
	p.jitter = s.jitter(up.Jitter) + s.jitter(f.Jitter)
	at := dep.Add(up.Delay + p.jitter)
	s.schedule(event{at: at, kind: evArrive, pkt: p})
}

// lost drops p; a stream segment is resent after the RTO, or sooner
// when later segments get through (see fastRetransmit).
func (s *Sim) lost(p *packet, k NetKind, note string) {
	s.recordNet(s.netEvent(k, p, note))
	if g := p.seg; g != nil {
		s.schedule(event{at: s.now.Add(s.cfg.RTO), kind: evResend, x: g, a: uint64(g.tx), b: uint64(p.dir)})
		if e := g.conn.ends[g.dir]; e != nil && !g.acked {
			e.lose(g)
		}
	}
	s.free(p)
}

// arrive runs when p reaches the core: routing, partitions, and the
// receiver's downlink.
func (s *Sim) arrive(p *packet) {
	dst := s.host(p.dst.Addr())
	if dst == nil {
		s.lost(p, NetNoRoute, "no host at destination")
		return
	}
	p.to = dst
	if p.from != nil && s.cut(p.from, dst) {
		s.lost(p, NetCut, "partition")
		return
	}
	down := &dst.link.Down
	if s.chance(down.Dup) {
		s.downlink(s.duplicate(p, "downlink"), dst)
	}
	s.downlink(p, dst)
}

// duplicate returns a copy of p with its own id, recorded as a
// duplication (note says where).
func (s *Sim) duplicate(p *packet, note string) *packet {
	s.pktID++
	c := s.newPacket()
	*c = *p
	c.id = s.pktID
	ev := s.netEvent(NetDup, c, note)
	ev.Orig = p.id
	s.recordNet(ev)
	return c
}

// downlink puts p, arrived at the core, on dst's downlink: loss,
// queueing, serialisation, propagation and jitter.
func (s *Sim) downlink(p *packet, dst *Node) {
	down := &dst.link.Down
	if s.chance(down.Loss) {
		s.lost(p, NetLoss, "downlink loss")
		return
	}
	dep, ok := dst.downQ.enqueue(s.now, p.size, down, p.seg != nil)
	if !ok {
		s.lost(p, NetQueueDrop, "downlink queue full")
		return
	}
	p.minDelay += txTime(p.size, down.Rate) + down.Delay
	j := s.jitter(down.Jitter)
	p.jitter += j
	s.schedule(event{at: dep.Add(down.Delay + j), kind: evDeliver, pkt: p})
}

func (s *Sim) deliverPkt(p *packet) {
	dst := p.to
	if p.seg != nil {
		s.deliverSegment(dst, p)
		return
	}
	if !dst.up {
		s.lost(p, NetHostDown, "host down")
		return
	}
	sock, wild, ok := dst.udpSock(p.dst.Port(), p.dst.Addr())
	if !ok {
		s.lost(p, NetNoPort, "port unreachable")
		return
	}
	if s.observed() {
		ev := s.netEvent(NetDeliver, p, "")
		ev.Extra, ev.Jitter = s.now.Sub(p.sent)-p.minDelay, p.jitter
		s.recordNet(ev)
	}
	in := spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: p.src, Data: p.data}
	if wild {
		in.Local = p.dst.Addr()
	}
	s.free(p)
	dst.deliver(in)
}
