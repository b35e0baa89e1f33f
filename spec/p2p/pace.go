package p2p

import (
	"time"

	"github.com/netspec/netspec/spec"
)

// pacer decides when a node may write its next paced response (DATA or
// HASH). A node that writes every answer at once fills its uplink's queue
// with seconds of data: every later message, HAVE announcements and
// acknowledgments included, waits behind it, and what it promised can no
// longer be cancelled or reordered. So responses wait in the node, served
// round-robin across requesters, and go out only when the line is almost
// free:
//
//   - with a known upload rate (bits/s of payload), a token bucket: the
//     bytes written, drained at the rate, may not exceed Backlog;
//   - without one, a window: at most Window responses written and not yet
//     acknowledged (a HAVE from an extension peer, the next request from a
//     seed-style one, or AckTimeout).
type pacer struct {
	rate    float64 // payload bytes per second; 0: window mode
	backlog float64
	window  int
	queued  float64 // bytes ahead of the line at qAt (rate mode)
	qAt     spec.Time
	flight  int // unacknowledged responses (window mode)
}

func newPacer(bits float64, backlog, window int) pacer {
	return pacer{rate: bits / 8, backlog: float64(backlog), window: window}
}

func (p *pacer) drain(now spec.Time) {
	if now > p.qAt {
		p.queued -= p.rate * now.Sub(p.qAt).Seconds()
		if p.queued < 0 {
			p.queued = 0
		}
		p.qAt = now
	}
}

// ready reports whether a response may be written now.
func (p *pacer) ready(now spec.Time) bool {
	if p.rate > 0 {
		p.drain(now)
		return p.queued < p.backlog
	}
	return p.flight < p.window
}

// sent records a written response of n bytes.
func (p *pacer) sent(now spec.Time, n int) {
	if p.rate > 0 {
		p.drain(now)
		p.queued += float64(n)
		return
	}
	p.flight++
}

// windowed reports whether the pacer counts unacknowledged responses
// (no upload rate known).
func (p *pacer) windowed() bool { return p.rate == 0 }

// acked frees k window slots.
func (p *pacer) acked(k int) {
	if p.windowed() {
		p.flight = max(0, p.flight-k)
	}
}

// wake is when the next response may go, in rate mode (zero: when an
// acknowledgment comes).
func (p *pacer) wake(now spec.Time) spec.Time {
	if p.rate == 0 {
		return 0
	}
	p.drain(now)
	wait := (p.queued - p.backlog) / p.rate
	// At least a millisecond: a backlog too small for one response must
	// not make a node spin.
	return now.Add(max(time.Duration(wait*float64(time.Second))+time.Microsecond, time.Millisecond))
}

// pend is a paced response written and not yet acknowledged.
type pend struct {
	chunk int // -1: a hash list
	seq   uint64
}

// owed is a connection's unacknowledged responses. stalled marks one
// whose response timed out: it is served nothing more until it
// acknowledges something, so that a requester that never reads holds a
// window slot for one AckTimeout, not one in every round of the ring.
type owed struct {
	items   []pend
	dead    bool
	stalled bool
}

// ack removes the oldest response for chunk and reports whether there was
// one.
func (o *owed) ack(chunk int) bool {
	for i, p := range o.items {
		if p.chunk == chunk {
			o.items = append(o.items[:i], o.items[i+1:]...)
			return true
		}
	}
	return false
}

// clear removes every response and returns how many there were.
func (o *owed) clear() int {
	n := len(o.items)
	o.items = o.items[:0]
	return n
}

// ackLog remembers when each paced response was written, so that a
// response never acknowledged frees its slot after a timeout.
type ackLog struct {
	recs []ackRec
	seq  uint64
}

type ackRec struct {
	o   *owed
	seq uint64
	at  spec.Time
}

// add records a response for chunk on o.
func (l *ackLog) add(now spec.Time, o *owed, chunk int) {
	l.seq++
	o.items = append(o.items, pend{chunk: chunk, seq: l.seq})
	l.recs = append(l.recs, ackRec{o: o, seq: l.seq, at: now})
}

// expire drops responses older than timeout and returns how many were
// still unacknowledged.
func (l *ackLog) expire(now spec.Time, timeout time.Duration) int {
	n := 0
	for len(l.recs) > 0 {
		r := l.recs[0]
		if r.at.Add(timeout) > now && l.live(r) {
			break
		}
		l.recs = l.recs[1:]
		if r.o.dead {
			continue
		}
		for i, p := range r.o.items {
			if p.seq == r.seq {
				r.o.items = append(r.o.items[:i], r.o.items[i+1:]...)
				r.o.stalled = true
				n++
				break
			}
		}
	}
	if len(l.recs) == 0 {
		l.recs = nil
	}
	return n
}

func (l *ackLog) live(r ackRec) bool {
	if r.o.dead {
		return false
	}
	for _, p := range r.o.items {
		if p.seq == r.seq {
			return true
		}
	}
	return false
}

// next is when the oldest record times out (zero: none).
func (l *ackLog) next(timeout time.Duration) spec.Time {
	if len(l.recs) == 0 {
		return 0
	}
	return l.recs[0].at.Add(timeout)
}
