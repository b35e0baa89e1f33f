package sim

import "github.com/netspec/netspec/spec"

type evKind uint8

const (
	evStart evKind = iota + 1
	evInput        // deliver a prepared input (bound, writable, accepted, connected, closed, command, stop)
	evTimer
	evArrive  // packet reaches the receiver's downlink
	evDeliver // packet reaches the receiver
	evAck     // stream segment acknowledged
	evResend  // lost stream segment retransmitted
	evSyn     // connection request reaches the listener
	evFunc    // scenario callback
	evCrash   // node crashes
	evRestart // node restarts
	evPartOn  // partition starts
	evPartOff // partition heals
	evStreamRst
)

// event is one entry of the queue. Events at the same time run in the
// order they were scheduled, which is what makes runs reproducible.
type event struct {
	at   spec.Time
	seq  uint64
	kind evKind
	node int32
	gen  uint32
	a    uint64 // timer id, token, partition index
	b    uint64
	pkt  *packet
	x    any // rarely used payloads: *spec.Input, func(), *conn
}

// queue is a 4-ary min-heap of small keys (time, sequence, slot) over a
// slab of event bodies: sifting moves 24-byte keys instead of whole
// events, and a shallower heap touches fewer cache lines.
type queue struct {
	keys []qkey
	slab []event
	free []uint32
}

type qkey struct {
	at   spec.Time
	seq  uint64
	slot uint32
}

func (k qkey) less(o qkey) bool {
	if k.at != o.at {
		return k.at < o.at
	}
	return k.seq < o.seq
}

func (q *queue) len() int { return len(q.keys) }

// peek returns the time of the next event; the queue must not be empty.
func (q *queue) peek() spec.Time { return q.keys[0].at }

func (q *queue) push(e event) {
	var slot uint32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = e
	} else {
		slot = uint32(len(q.slab))
		q.slab = append(q.slab, e)
	}
	k := qkey{at: e.at, seq: e.seq, slot: slot}
	q.keys = append(q.keys, k)
	h := q.keys
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !k.less(h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = k
}

func (q *queue) pop() event {
	h := q.keys
	top := h[0]
	n := len(h) - 1
	last := h[n]
	h = h[:n]
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < c+4 && j < n; j++ {
			if h[j].less(h[m]) {
				m = j
			}
		}
		if !h[m].less(last) {
			break
		}
		h[i] = h[m]
		i = m
	}
	if n > 0 {
		h[i] = last
	}
	q.keys = h
	e := q.slab[top.slot]
	q.slab[top.slot] = event{}
	q.free = append(q.free, top.slot)
	return e
}
