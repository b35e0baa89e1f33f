package sim

import (
	"slices"

	"github.com/netspec/netspec/spec"
)

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
	kind evKind
	node int32
	gen  uint32
	a    uint64 // timer id, token, partition index
	b    uint64
	pkt  *packet
	x    any // rarely used payloads: *spec.Input, func(), *conn
}

// queue is a 4-ary min-heap of 16-byte keys over a slab of event bodies.
// A key packs the event's sequence number and slab slot into one word, so
// four siblings fill exactly one 64-byte cache line; the heap starts at
// index keyRoot so that every group of siblings is line-aligned (the
// backing array of a large heap is page-aligned).
type queue struct {
	keys []qkey // keys[:keyRoot] is padding
	slab []event
	free []uint32
	seq  uint64 // sequence number of the last event pushed
}

// qkey orders events by time, then by ord = seq<<slotBits | slot: slots
// are distinct, so ord compares like seq alone.
type qkey struct {
	at  spec.Time
	ord uint64
}

const (
	keyRoot  = 3
	slotBits = 28 // 268M queued events: far beyond any slab that fits in memory
	slotMask = 1<<slotBits - 1
	maxSeq   = 1<<(64-slotBits) - 1
)

func (k qkey) less(o qkey) bool {
	return k.at < o.at || k.at == o.at && k.ord < o.ord
}

func (q *queue) len() int { return max(len(q.keys)-keyRoot, 0) }

// peek returns the time of the next event; the queue must not be empty.
func (q *queue) peek() spec.Time { return q.keys[keyRoot].at }

// push adds e, after every queued event with the same time.
func (q *queue) push(e event) {
	if q.seq == maxSeq {
		q.renumber()
	}
	q.seq++
	var slot uint32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slab[slot] = e
	} else {
		if len(q.slab) > slotMask {
			panic("sim: event queue overflow")
		}
		slot = uint32(len(q.slab))
		q.slab = append(q.slab, e)
	}
	if q.keys == nil {
		q.keys = make([]qkey, keyRoot, 64)
	}
	k := qkey{at: e.at, ord: q.seq<<slotBits | uint64(slot)}
	q.keys = append(q.keys, k)
	h := q.keys
	i := len(h) - 1
	for i > keyRoot {
		p := (i + 8) / 4 // children of p are 4p-8 .. 4p-5
		if !k.less(h[p]) {
			break
		}
		h[i] = h[p]
		i = p
	}
	h[i] = k
}

// pop removes and returns the next event; the queue must not be empty.
func (q *queue) pop() event {
	h := q.keys
	top := h[keyRoot]
	n := len(h) - 1
	last := h[n]
	h = h[:n]
	i := keyRoot
	for {
		c := 4*i - 8
		if c+3 < n {
			// All four children exist (the usual case): a tournament
			// compares the pairs independently.
			m0, m1 := c, c+2
			if h[c+1].less(h[c]) {
				m0 = c + 1
			}
			if h[c+3].less(h[c+2]) {
				m1 = c + 3
			}
			if h[m1].less(h[m0]) {
				m0 = m1
			}
			if !h[m0].less(last) {
				break
			}
			h[i] = h[m0]
			i = m0
			continue
		}
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < n; j++ {
			if h[j].less(h[m]) {
				m = j
			}
		}
		if h[m].less(last) {
			h[i] = h[m]
			i = m
		}
		break
	}
	if n > keyRoot {
		h[i] = last
	}
	q.keys = h
	slot := uint32(top.ord & slotMask)
	e := q.slab[slot]
	q.slab[slot] = event{}
	q.free = append(q.free, slot)
	return e
}

// renumber gives the queued events fresh sequence numbers 1..n in their
// current order, so that sequence numbers never wrap. A sorted array is a
// valid heap.
func (q *queue) renumber() {
	h := q.keys[keyRoot:]
	slices.SortFunc(h, func(a, b qkey) int {
		if a.less(b) {
			return -1
		}
		return 1
	})
	for i := range h {
		h[i].ord = uint64(i+1)<<slotBits | h[i].ord&slotMask
	}
	q.seq = uint64(len(h))
}
