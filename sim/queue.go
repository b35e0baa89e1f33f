package sim

import (
	"math"
	"math/bits"

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
	seq  uint64 // set by the queue
	kind evKind
	node int32
	gen  uint32
	a    uint64 // timer id, token, partition index
	b    uint64
	pkt  *packet
	x    any // rarely used payloads: *spec.Input, func(), *conn
}

// queue orders events by (time, scheduling order). The near future is a
// timing wheel of unsorted slots, each wheelSlot long: scheduling an event
// appends it to its slot, and when the slot comes due its events become
// cur, ordered by a heap of small keys that stays in cache. The events of
// a slot sit together, so running them touches few cache lines, where a
// heap of every queued event would miss the cache on each level of each
// pop. Events beyond the wheel's horizon wait in far, a heap of keys over
// a slab, and move to the wheel as it turns. The wheel starts small, so
// that a small simulation is cheap to make, and grows while many events
// go to far.
//
// Invariant: front indexes exactly the pending events before end (and,
// once end saturates, any at MaxInt64), the wheel holds those in
// [end, end+q.span()) and far the rest.
type queue struct {
	front heap      // keys of cur's pending events
	cur   []event   // events before end, in the order they arrived
	end   spec.Time // a multiple of wheelSlot, or MaxInt64
	wheel [][]event // minWheel to maxWheel slots, a power of two; nil at first
	used  []uint64  // bit i: wheel[i] is not empty
	inWh  int       // events in the wheel
	spare [][]event // storage of spent slots, the most recent (hottest) last
	far   heap      // keys of the events in slab
	slab  []event
	free  []uint32
	seq   uint64 // sequence number of the last event pushed
	// farPushes counts pushes to far since the last multiple of growCheck.
	farPushes int
}

const (
	wheelShift = 14 // a slot is 16.4µs: a few hundred events on a busy network
	wheelSlot  = 1 << wheelShift
	minWheel   = 64   // a horizon of 1ms
	maxWheel   = 8192 // a horizon of 134ms covers most link delays
	growCheck  = 1024 // pushes between decisions to grow the wheel
)

// span is the wheel's horizon.
func (q *queue) span() spec.Time { return spec.Time(len(q.wheel)) * wheelSlot }

// qkey orders events by time, then by ord = seq<<slotBits | i, where i
// is the event's index in cur or slab: sequence numbers are distinct, so
// ord compares like seq alone.
type qkey struct {
	at  spec.Time
	ord uint64
}

const (
	slotBits = 28 // 268M events in cur or slab: more than fit in memory
	slotMask = 1<<slotBits - 1
	maxSeq   = 1<<(64-slotBits) - 1
)

func (k qkey) less(o qkey) bool {
	return k.at < o.at || k.at == o.at && k.ord < o.ord
}

func (q *queue) len() int { return q.front.len() + q.inWh + q.far.len() }

// peek returns the time of the next event; the queue must not be empty.
func (q *queue) peek() spec.Time {
	if q.front.len() == 0 {
		q.advance()
	}
	return q.front.min().at
}

// push adds e, after every queued event with the same time.
func (q *queue) push(e event) {
	if q.seq == maxSeq {
		q.renumber()
	}
	q.seq++
	e.seq = q.seq
	q.place(e)
	// Each event that misses the wheel costs a heap push and pop more
	// than it would have: widen the horizon if many do.
	if q.seq%growCheck == 0 {
		if q.farPushes > growCheck/8 && len(q.wheel) < maxWheel {
			q.grow()
		}
		q.farPushes = 0
	}
}

// place files e where the invariant wants it.
func (q *queue) place(e event) {
	switch {
	case e.at < q.end:
		q.front.push(qkey{at: e.at, ord: e.seq<<slotBits | index(len(q.cur))})
		q.cur = append(q.cur, e)
	case e.at-q.end < q.span():
		i := int(e.at>>wheelShift) & (len(q.wheel) - 1)
		if q.wheel[i] == nil {
			if n := len(q.spare); n > 0 {
				q.wheel[i] = q.spare[n-1]
				q.spare = q.spare[:n-1]
			}
		}
		q.wheel[i] = append(q.wheel[i], e)
		q.used[i/64] |= 1 << (i % 64)
		q.inWh++
	default:
		var slot uint32
		if n := len(q.free); n > 0 {
			slot = q.free[n-1]
			q.free = q.free[:n-1]
			q.slab[slot] = e
		} else {
			slot = uint32(index(len(q.slab)))
			q.slab = append(q.slab, e)
		}
		q.far.push(qkey{at: e.at, ord: e.seq<<slotBits | uint64(slot)})
		q.farPushes++
		if q.wheel == nil {
			q.grow()
		}
	}
}

// grow doubles the wheel's horizon, or makes the first wheel.
func (q *queue) grow() {
	old := q.wheel
	q.wheel = make([][]event, max(2*len(old), minWheel))
	q.used = make([]uint64, len(q.wheel)/64)
	q.inWh = 0
	for _, b := range old {
		for _, e := range b {
			q.place(e)
		}
	}
	for _, b := range old {
		if cap(b) > 0 {
			clear(b)
			q.spare = append(q.spare, b[:0])
		}
	}
	q.fill()
}

// index checks that i fits in the low slotBits of a key's ord.
func index(i int) uint64 {
	if i > slotMask {
		panic("sim: event queue overflow")
	}
	return uint64(i)
}

// advance makes the wheel's next non-empty slot cur, turning the wheel
// (and taking in events from far) as it goes; cur must be spent.
func (q *queue) advance() {
	for q.inWh == 0 {
		if q.far.len() == 0 {
			return
		}
		// Nothing in the wheel: jump straight to far's first event.
		q.end = q.far.min().at &^ (wheelSlot - 1)
		q.fill()
	}
	mask := len(q.wheel) - 1
	i0 := int(q.end>>wheelShift) & mask
	i := q.next(i0)
	end := q.end + spec.Time((i-i0)&mask+1)*wheelSlot
	if end < q.end {
		// The slot is the last before time overflows; nothing is after
		// it, and later events at MaxInt64 sort after cur's anyway.
		end = math.MaxInt64
	}
	q.end = end
	// Slots reuse the storage spent last, which is still in cache: each
	// slot keeping its own would cycle through the whole wheel's.
	if cap(q.cur) > 0 {
		clear(q.cur) // let the collector have payloads
		q.spare = append(q.spare, q.cur[:0])
	}
	q.cur, q.wheel[i] = q.wheel[i], nil
	q.used[i/64] &^= 1 << (i % 64)
	q.inWh -= len(q.cur)
	for j := range q.cur {
		q.front.push(qkey{at: q.cur[j].at, ord: q.cur[j].seq<<slotBits | index(j)})
	}
	q.fill()
}

// next returns the first non-empty wheel slot from i on, circularly; the
// wheel must not be empty.
func (q *queue) next(i int) int {
	w := i / 64
	if m := q.used[w] >> (i % 64); m != 0 {
		return i + bits.TrailingZeros64(m)
	}
	for j := 1; j <= len(q.used); j++ {
		w := (i/64 + j) % len(q.used)
		if q.used[w] != 0 {
			return w*64 + bits.TrailingZeros64(q.used[w])
		}
	}
	panic("sim: empty wheel")
}

// fill moves the events of far that are now within the horizon to the
// wheel.
func (q *queue) fill() {
	for q.far.len() > 0 && q.far.min().at-q.end < q.span() {
		slot := uint32(q.far.pop().ord & slotMask)
		e := q.slab[slot]
		q.slab[slot] = event{}
		q.free = append(q.free, slot)
		q.place(e)
	}
}

// pop removes and returns the next event; the queue must not be empty.
func (q *queue) pop() event {
	if q.front.len() == 0 {
		q.advance()
	}
	return q.cur[q.front.pop().ord&slotMask]
}

// renumber gives the queued events fresh sequence numbers 1..n in their
// current order, so that sequence numbers never wrap.
func (q *queue) renumber() {
	all := make([]event, 0, q.len())
	for q.len() > 0 {
		all = append(all, q.pop())
	}
	q.seq = 0
	for _, e := range all {
		q.push(e)
	}
}

// heap is a 4-ary min-heap of keys. Four 16-byte siblings fill one
// 64-byte cache line; the root sits at index heapRoot so that every
// group of siblings is line-aligned (a large backing array is
// page-aligned).
type heap struct {
	h []qkey // h[:heapRoot] is padding
}

const heapRoot = 3

func (h *heap) len() int { return max(len(h.h)-heapRoot, 0) }

func (h *heap) keys() []qkey { return h.h[min(heapRoot, len(h.h)):] }

// min returns the least key; the heap must not be empty.
func (h *heap) min() qkey { return h.h[heapRoot] }

func (h *heap) push(k qkey) {
	if h.h == nil {
		h.h = make([]qkey, heapRoot, 16)
	}
	h.h = append(h.h, k)
	a := h.h
	i := len(a) - 1
	for i > heapRoot {
		p := (i + 8) / 4 // children of p are 4p-8 .. 4p-5
		if !k.less(a[p]) {
			break
		}
		a[i] = a[p]
		i = p
	}
	a[i] = k
}

// pop removes and returns the least key; the heap must not be empty.
func (h *heap) pop() qkey {
	a := h.h
	top := a[heapRoot]
	n := len(a) - 1
	last := a[n]
	a = a[:n]
	i := heapRoot
	for {
		c := 4*i - 8
		if c+3 < n {
			// All four children exist (the usual case): a tournament
			// compares the pairs independently.
			m0, m1 := c, c+2
			if a[c+1].less(a[c]) {
				m0 = c + 1
			}
			if a[c+3].less(a[c+2]) {
				m1 = c + 3
			}
			if a[m1].less(a[m0]) {
				m0 = m1
			}
			if !a[m0].less(last) {
				break
			}
			a[i] = a[m0]
			i = m0
			continue
		}
		if c >= n {
			break
		}
		m := c
		for j := c + 1; j < n; j++ {
			if a[j].less(a[m]) {
				m = j
			}
		}
		if a[m].less(last) {
			a[i] = a[m]
			i = m
		}
		break
	}
	if n > heapRoot {
		a[i] = last
	}
	h.h = a
	return top
}
