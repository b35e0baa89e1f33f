package impl

import (
	"net"
	"net/netip"
	"syscall"

	"github.com/netspec/netspec/spec"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// batchIO is the recvmmsg/sendmmsg face of a UDP socket (x/net's ipv4 and
// ipv6 PacketConns share the Message type).
type batchIO interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

func newBatchIO(c *net.UDPConn, local netip.AddrPort) batchIO {
	if local.Addr().Is4() {
		return ipv4.NewPacketConn(c)
	}
	return ipv6.NewPacketConn(c)
}

// busyAfter is how many datagrams a socket reads one at a time before it
// switches to batched reads: idle sockets (a TFTP transfer's, a client's)
// never pay for a batch's buffers.
const busyAfter = 64

// pendingSend is a datagram a step emitted, waiting for the step's end so
// a run of them on one socket goes out in one sendmmsg.
type pendingSend struct {
	s    *sock
	to   netip.AddrPort
	from netip.Addr // the source address, if the machine named one
	data []byte
}

// flushSends writes the step's datagrams, batching runs on one socket.
func (r *Runner) flushSends() {
	q := r.sendQ
	for i := 0; i < len(q); {
		j := i + 1
		for j < len(q) && q[j].s == q[i].s {
			j++
		}
		r.writeRun(q[i].s, q[i:j])
		i = j
	}
	clear(q)
	r.sendQ = q[:0]
}

func (r *Runner) writeRun(s *sock, run []pendingSend) {
	if s.faulty != nil {
		// The injector decides each datagram's fate; what goes out now
		// still goes out in one batch.
		kept := r.faultQ[:0]
		for _, p := range run {
			now, later := s.faulty.plan()
			for i := 0; i < now; i++ {
				kept = append(kept, p)
			}
			for _, d := range later {
				s.faulty.hold(p.data, p.to, r.srcOOB(p.from), d)
			}
		}
		r.faultQ = kept
		run = kept
		if len(run) == 0 {
			return
		}
	}
	if s.batch == nil || len(run) == 1 {
		for i, p := range run {
			var err error
			if p.from.IsValid() {
				_, _, err = s.raw.WriteMsgUDPAddrPort(p.data, r.srcOOB(p.from), p.to)
			} else {
				_, err = s.raw.WriteToUDPAddrPort(p.data, p.to)
			}
			if err != nil {
				r.sendFailed(s, run[i:i+1], err)
			}
		}
		return
	}
	if cap(r.wmsgs) < len(run) {
		r.wmsgs = make([]ipv4.Message, len(run))
	}
	ms := r.wmsgs[:0]
	for i := 0; i < len(run); {
		n := 1
		if r.opt.GSO && !s.noGSO {
			n = gsoRun(run[i:])
		}
		bufs := make([][]byte, n)
		for k := range bufs {
			bufs[k] = run[i+k].data
		}
		m := ipv4.Message{Buffers: bufs, Addr: net.UDPAddrFromAddrPort(run[i].to)}
		switch src := run[i].from; {
		case n > 1 && src.IsValid():
			m.OOB = append(pktinfoControl(nil, src), r.gsoOOB(len(run[i].data))...)
		case n > 1:
			m.OOB = r.gsoOOB(len(run[i].data))
		case src.IsValid():
			m.OOB = r.srcOOB(src)
		}
		ms = append(ms, m)
		i += n
	}
	done := 0 // datagrams sent so far
	for len(ms) > 0 {
		n, err := s.batch.WriteBatch(ms, 0)
		if err != nil {
			n = max(n, 0) // sendmmsg reports -1 when the first message fails
			k := done + segmentsBefore(ms[:n])
			// A message that names a source may fail for the source
			// (EINVAL too): that says nothing about segmentation.
			if len(ms[n].Buffers) > 1 && gsoUnsupported(err) && !run[k].from.IsValid() {
				// This socket cannot segment: send the rest plainly
				// (noGSO keeps the retry from segmenting again).
				s.noGSO = true
				r.log.Debug("udp segmentation offload unavailable", "err", err)
				rest := run[done+segmentsBefore(ms[:n]):]
				clear(r.wmsgs[:cap(r.wmsgs)])
				r.writeRun(s, rest)
				return
			}
			// The message at n failed (unreachable, too big, a source
			// the host no longer has): retry it once from the kernel's
			// choice of source if it named one, else skip it.
			r.sendFailed(s, run[k:k+len(ms[n].Buffers)], err)
			n++
		}
		done += segmentsBefore(ms[:n])
		ms = ms[n:]
	}
	clear(r.wmsgs[:cap(r.wmsgs)])
}

// segmentsBefore counts the datagrams in messages already sent.
func segmentsBefore(ms []ipv4.Message) int {
	n := 0
	for _, m := range ms {
		n += len(m.Buffers)
	}
	return n
}

// gsoOOB returns the (cached) control message for segments of size bytes.
func (r *Runner) gsoOOB(size int) []byte {
	if r.gsoCache == nil {
		r.gsoCache = map[int][]byte{}
	}
	b, ok := r.gsoCache[size]
	if !ok {
		b = gsoControl(size)
		r.gsoCache[size] = b
	}
	return b
}

// sendFailed counts datagrams the kernel refused. Those that named a
// source go out once more from the kernel's choice: a source the host
// has lost (renumbered, an expired IPv6 address) should cost the
// answer's address, not the answer.
func (r *Runner) sendFailed(s *sock, ps []pendingSend, err error) {
	for _, p := range ps {
		if p.from.IsValid() {
			if _, err2 := s.raw.WriteToUDPAddrPort(p.data, p.to); err2 == nil {
				r.log.Debug("udp send from a source refused; sent from the kernel's choice", "from", p.from, "to", p.to, "err", err)
				continue
			}
		}
		r.sendErrors.Add(1)
		r.log.Debug("udp send failed", "to", p.to, "from", p.from, "err", err)
	}
}

// srcOOB returns the (cached) control message that sends from src, nil
// for none.
func (r *Runner) srcOOB(src netip.Addr) []byte {
	if !src.IsValid() {
		return nil
	}
	if r.srcCache == nil {
		r.srcCache = map[netip.Addr][]byte{}
	}
	b, ok := r.srcCache[src]
	if !ok {
		if len(r.srcCache) >= 64 {
			clear(r.srcCache) // a host has few addresses; bound it all the same
		}
		b = pktinfoControl(nil, src)
		r.srcCache[src] = b
	}
	return b
}

// readBatched reads with recvmmsg into buffers of size bytes, posting each
// batch as one item; a datagram longer than limit is dropped.
func (r *Runner) readBatched(s *sock, size, limit int) {
	n := r.opt.ReadBatch
	arena := make([]byte, n*size)
	ms := make([]ipv4.Message, n)
	for i := range ms {
		ms[i].Buffers = [][]byte{arena[i*size : (i+1)*size]}
	}
	if s.pktinfo {
		oob := make([]byte, n*oobSize)
		for i := range ms {
			ms[i].OOB = oob[i*oobSize : (i+1)*oobSize]
		}
	}
	for {
		k, err := s.batch.ReadBatch(ms, 0)
		if err != nil {
			if r.readFailed(err) {
				return
			}
			continue
		}
		batch := make([]spec.Input, 0, k)
		var cost int64
		for i := 0; i < k; i++ {
			m := &ms[i]
			if m.Flags&syscall.MSG_TRUNC != 0 || m.N > limit {
				r.oversize.Add(1)
				r.log.Debug("dropped oversized datagram", "limit", limit)
				continue
			}
			ua, ok := m.Addr.(*net.UDPAddr)
			if !ok {
				continue
			}
			if !r.admit(m.N) {
				r.log.Debug("dropped datagram: input queue full", "from", ua, "queued", r.opt.MaxQueuedInput)
				continue
			}
			cost += int64(m.N)
			// Each datagram its own allocation: machines own their
			// inputs' bytes and may keep one for long (a segment held
			// out of order), which in a buffer shared by the batch
			// would pin all of it.
			data := make([]byte, m.N)
			copy(data, m.Buffers[0][:m.N])
			batch = append(batch, spec.Input{Kind: spec.InDatagram, Sock: s.id, Addr: r.mapIn(unmapV4(ua.AddrPort())), Local: r.localAddr(s, m.OOB[:m.NN]), Data: data})
		}
		if len(batch) > 0 {
			r.post(item{kind: itDatagram, sk: s, batch: batch, cost: cost})
		}
	}
}
