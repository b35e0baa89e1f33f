package pcap

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// FromTrace writes the packets of a recorded trace. A simulator trace has
// the network's own records (every packet's fate); a socket run's trace
// has its node's inputs and outputs, from which the datagrams and stream
// bytes that crossed its sockets are rebuilt. A socket run records stream
// bytes in whatever chunks reads and writes moved, up to megabytes; they
// become TCP segments of at most SocketMSS bytes each.
func FromTrace(w *Writer, h trace.Header, recs []trace.Record) error {
	epoch := spec.Time(h.Epoch)
	if h.Source == "sim" {
		return fromSim(w, epoch, recs)
	}
	return fromNodes(w, epoch, recs)
}

func fromSim(w *Writer, epoch spec.Time, recs []trace.Record) error {
	type sent struct {
		data []byte
		ev   sim.NetEvent
	}
	inflight := map[uint64]sent{}
	for _, r := range recs {
		if r.Net == "" {
			continue
		}
		kind, ok := netKind(r.Net)
		if !ok {
			continue
		}
		from, _ := netip.ParseAddrPort(r.From)
		to, _ := netip.ParseAddrPort(r.Addr)
		ev := sim.NetEvent{T: epoch + spec.Time(r.T), Kind: kind, ID: r.ID, From: from, To: to, Len: r.Len, Conn: r.Stream, Seq: uint64(r.At), Flags: r.Msg, Note: r.Err, Extra: time.Duration(r.Delay), Jitter: time.Duration(r.Jitter)}
		if r.Proto == "tcp" {
			ev.Proto = spec.TCP
		} else if r.Proto == "udp" {
			ev.Proto = spec.UDP
		}
		switch kind {
		case sim.NetSend:
			data, err := r.Payload()
			if err != nil {
				return err
			}
			inflight[r.ID] = sent{data: data, ev: ev}
			continue
		case sim.NetDup:
			var orig uint64
			if _, err := fmt.Sscanf(r.Name, "copy of %d", &orig); err == nil {
				ev.Orig = orig
				if s, ok := inflight[orig]; ok {
					inflight[r.ID] = s
				}
			}
		}
		if s, ok := inflight[r.ID]; ok {
			ev.Data = s.data
			if kind != sim.NetDup {
				delete(inflight, r.ID)
			}
		}
		w.Observe(ev)
	}
	return w.err
}

func netKind(s string) (sim.NetKind, bool) {
	for k := sim.NetSend; k <= sim.NetHeal; k++ {
		if k.String() == s {
			return k, true
		}
	}
	return 0, false
}

// SocketMSS is the size of the TCP segments a socket run's stream bytes
// are cut into: Ethernet's, the simulator's default, so captures of both
// read alike (loopback's real MSS is ~64 KiB, but the kernel's segments
// are not in the trace anyway).
const SocketMSS = 1460

// fromNodes rebuilds packets from a node's own records.
func fromNodes(w *Writer, epoch spec.Time, recs []trace.Record) error {
	type node struct {
		socks   map[uint32]netip.AddrPort
		streams map[uint64][2]netip.AddrPort // local, remote
		seq     map[uint64][2]uint64         // bytes sent, received
		conn    map[uint64]uint64
		up      map[uint64]bool // dialed streams that connected
		dials   int             // dialed streams so far
	}
	nodes := map[string]*node{}
	var id uint64
	for _, r := range recs {
		if r.In == "" && r.Out == "" {
			continue
		}
		n := nodes[r.Node]
		if n == nil {
			n = &node{socks: map[uint32]netip.AddrPort{}, streams: map[uint64][2]netip.AddrPort{}, seq: map[uint64][2]uint64{}, conn: map[uint64]uint64{}, up: map[uint64]bool{}}
			nodes[r.Node] = n
		}
		addr, _ := netip.ParseAddrPort(r.Addr)
		// A socket on an unspecified (or unrecorded) address stands for
		// the loopback address of the peer's family.
		local := func(sock uint32) netip.AddrPort {
			a := n.socks[sock]
			if !a.Addr().IsValid() || a.Addr().IsUnspecified() {
				a = netip.AddrPortFrom(loopback(addr), a.Port())
			}
			return a
		}
		// A dialed stream's local port, the kernel's choice, is not in
		// the trace: each dial gets its own port from the ephemeral
		// range, 49152 up, so that readers keep the connections apart
		// (port 0 merged them, and is no TCP port).
		ephemeral := func() netip.AddrPort {
			n.dials++
			return netip.AddrPortFrom(loopback(addr), uint16(49152+(n.dials-1)%16384))
		}
		ev := sim.NetEvent{T: epoch + spec.Time(r.T), Kind: sim.NetDeliver}
		// emit writes a segment without data (handshake, FIN, RST).
		emit := func(conn uint64, from, to netip.AddrPort, flags string, seq uint64) {
			id++
			w.Observe(sim.NetEvent{T: ev.T, Kind: sim.NetDeliver, ID: id, Proto: spec.TCP, Conn: conn, From: from, To: to, Flags: flags, Seq: seq})
		}
		data, err := r.Payload()
		if err != nil {
			return err
		}
		switch {
		case r.In == "bound" && r.Err == "":
			n.socks[r.Sock] = addr
			continue
		case r.In == "datagram":
			ev.Proto, ev.From, ev.To, ev.Data = spec.UDP, addr, datagramLocal(local(r.Sock), r.Local), data
		case r.Out == "send":
			ev.Proto, ev.From, ev.To, ev.Data = spec.UDP, datagramLocal(local(r.Sock), r.Local), addr, data
		case r.In == "accepted":
			id++
			ends := [2]netip.AddrPort{local(r.Sock), addr}
			n.streams[r.Stream] = ends
			n.conn[r.Stream] = id
			// The kernel's handshake is not in the trace: the capture
			// shows one where a connection was made, so that readers
			// (tshark's TCP analysis) see where it starts.
			c := id
			emit(c, ends[1], ends[0], "S", 0)
			emit(c, ends[0], ends[1], "SA", 0)
			continue
		case r.Out == "dial":
			id++
			n.streams[r.Stream] = [2]netip.AddrPort{ephemeral(), addr}
			n.conn[r.Stream] = id
			continue
		case r.In == "connected":
			if ends, ok := n.streams[r.Stream]; ok {
				emit(n.conn[r.Stream], ends[0], ends[1], "S", 0)
				emit(n.conn[r.Stream], ends[1], ends[0], "SA", 0)
				n.up[r.Stream] = true
			}
			continue
		case r.Out == "close" || r.Out == "abort" || r.In == "closed":
			ends, ok := n.streams[r.Stream]
			if !ok {
				continue
			}
			c, sq, flags := n.conn[r.Stream], n.seq[r.Stream], "F"
			if r.Out == "abort" || r.Err != "" {
				flags = "R"
			}
			switch {
			case r.Out != "":
				emit(c, ends[0], ends[1], flags, sq[0])
			case r.Stream&uint64(spec.AcceptedStream) == 0 && !n.up[r.Stream] && r.Err != "":
				// A dial that failed: a refusal is the listener's RST
				// to the SYN; a timeout, SYNs the trace cannot date.
				if r.Err == "connection refused" {
					emit(c, ends[0], ends[1], "S", 0)
					emit(c, ends[1], ends[0], "R", 0)
				}
			default:
				emit(c, ends[1], ends[0], flags, sq[1])
			}
			if flags == "R" {
				delete(n.streams, r.Stream)
			}
			continue
		case r.In == "data" || r.Out == "write":
			ends, ok := n.streams[r.Stream]
			if !ok {
				continue
			}
			sq := n.seq[r.Stream]
			dir := 1
			ev.Proto, ev.Conn, ev.From, ev.To = spec.TCP, n.conn[r.Stream], ends[1], ends[0]
			if r.Out == "write" {
				dir, ev.From, ev.To = 0, ends[0], ends[1]
			}
			for len(data) > 0 {
				seg := data[:min(len(data), SocketMSS)]
				data = data[len(seg):]
				ev.Seq, ev.Data = sq[dir], seg
				sq[dir] += uint64(len(seg))
				id++
				ev.ID = id
				w.Observe(ev)
			}
			n.seq[r.Stream] = sq
			continue
		default:
			continue
		}
		id++
		ev.ID = id
		w.Observe(ev)
	}
	return w.err
}

// loopback is the loopback address of peer's family.
func loopback(peer netip.AddrPort) netip.Addr {
	if a := peer.Addr(); a.Is6() && !a.Is4In6() {
		return netip.IPv6Loopback()
	}
	return netip.AddrFrom4([4]byte{127, 0, 0, 1})
}

// datagramLocal is a datagram's address on the recording node: the one
// the runner saw it sent to or from (a socket on an unspecified address
// records it), else the socket's.
func datagramLocal(sock netip.AddrPort, local string) netip.AddrPort {
	if a, err := netip.ParseAddr(local); err == nil {
		return netip.AddrPortFrom(a.Unmap(), sock.Port())
	}
	return sock
}
