package chat

import (
	"time"

	"github.com/netspec/netspec/spec"
)

// Window bounds, per sender: how many datagrams may wait for a gap to
// fill, and how many bytes they may hold.
const (
	windowSlots = 32
	windowBytes = 16 << 10
)

// window turns one sender's sequenced datagrams, as the network delivers
// them (lost, duplicated, reordered), into a sequence delivered at most
// once each and in strictly increasing sequence order. A datagram that
// arrives out of order waits at most hold for the gap before it to fill;
// then the gap is declared lost. The delivered sequence numbers only
// ever increase, which is the whole guarantee: no duplicate, no reorder.
type window struct {
	// next is the next sequence number to deliver (0: not known yet).
	// It is wider than a sequence number: once 4294967295 has gone out
	// it is 1<<32, and every number is stale, where a uint32 would wrap
	// to "not known" and take the same numbers again.
	next  uint64
	slots []slot // waiting datagrams, sorted by seq, all > next
	bytes int
}

type slot struct {
	seq  uint32
	at   spec.Time
	data []byte
}

// verdict is what push did with a datagram.
type verdict uint8

const (
	delivered verdict = iota // delivered (maybe with waiting ones after it)
	buffered                 // waits for a gap to fill
	duplicate                // already waiting
	stale                    // at or below a sequence number already passed
)

// windowStats counts what the window declared lost.
type windowStats struct {
	lost uint64 // sequence numbers skipped without arriving
}

// push offers datagram seq and appends what may now be delivered to dst,
// in order.
func (w *window) push(now spec.Time, seq uint32, data []byte, dst [][]byte, st *windowStats) ([][]byte, verdict) {
	if w.next == 0 && seq == 1 {
		w.next = 1
	}
	// w.next == 0: the base is unknown (this membership began with a
	// heartbeat, or after a restart): wait hold for lower numbers.
	if w.next != 0 {
		if uint64(seq) < w.next {
			return dst, stale
		}
		if uint64(seq)-w.next >= windowSlots {
			// Too far ahead to wait for everything before it: slide the
			// window so seq is its last slot.
			dst = w.advance(uint64(seq)-windowSlots+1, dst, st)
			if uint64(seq) < w.next {
				return dst, duplicate // it was waiting, and just went out
			}
		}
	}
	if uint64(seq) == w.next {
		dst = append(dst, data)
		w.next++
		return w.drain(dst), delivered
	}
	i := 0
	for i < len(w.slots) && w.slots[i].seq < seq {
		i++
	}
	if i < len(w.slots) && w.slots[i].seq == seq {
		return dst, duplicate
	}
	w.slots = append(w.slots, slot{})
	copy(w.slots[i+1:], w.slots[i:])
	w.slots[i] = slot{seq: seq, at: now, data: data}
	w.bytes += len(data)
	if len(w.slots) >= windowSlots || w.bytes > windowBytes {
		return w.flush(dst, st), buffered
	}
	return dst, buffered
}

// advance moves the window's base up to base: waiting datagrams below it
// are delivered, the gaps among them declared lost.
func (w *window) advance(base uint64, dst [][]byte, st *windowStats) [][]byte {
	n := 0
	for n < len(w.slots) && uint64(w.slots[n].seq) < base {
		s := w.slots[n]
		st.lost += uint64(s.seq) - w.next
		dst = append(dst, s.data)
		w.bytes -= len(s.data)
		w.next = uint64(s.seq) + 1
		n++
	}
	w.drop(n)
	if w.next < base {
		st.lost += base - w.next
		w.next = base
	}
	return w.drain(dst)
}

// drain delivers waiting datagrams that have become next in line.
func (w *window) drain(dst [][]byte) [][]byte {
	n := 0
	for n < len(w.slots) && uint64(w.slots[n].seq) == w.next {
		dst = append(dst, w.slots[n].data)
		w.bytes -= len(w.slots[n].data)
		w.next++
		n++
	}
	w.drop(n)
	return dst
}

func (w *window) drop(n int) {
	if n == 0 {
		return
	}
	m := copy(w.slots, w.slots[n:])
	clear(w.slots[m:])
	w.slots = w.slots[:m]
	if len(w.slots) == 0 {
		w.slots = nil // a quiet member holds no buffer
		w.bytes = 0
	}
}

// flush delivers everything waiting, declaring the gaps lost.
func (w *window) flush(dst [][]byte, st *windowStats) [][]byte {
	if len(w.slots) == 0 {
		return dst
	}
	return w.release(len(w.slots)-1, dst, st)
}

// release delivers slots[0..i], skipping the gaps before them, and then
// whatever follows without a gap.
func (w *window) release(i int, dst [][]byte, st *windowStats) [][]byte {
	for _, s := range w.slots[:i+1] {
		if w.next != 0 {
			st.lost += uint64(s.seq) - w.next
		}
		dst = append(dst, s.data)
		w.bytes -= len(s.data)
		w.next = uint64(s.seq) + 1
	}
	w.drop(i + 1)
	return w.drain(dst)
}

// due delivers every datagram that has waited hold, with everything
// before it, and reports whether anything still waits.
func (w *window) due(now spec.Time, hold time.Duration, dst [][]byte, st *windowStats) [][]byte {
	last := -1
	for i, s := range w.slots {
		if s.at.Add(hold) <= now {
			last = i
		}
	}
	if last < 0 {
		return dst
	}
	return w.release(last, dst, st)
}

// deadline is when the longest-waiting datagram is due; ok is false if
// nothing waits.
func (w *window) deadline(hold time.Duration) (spec.Time, bool) {
	if len(w.slots) == 0 {
		return 0, false
	}
	at := w.slots[0].at
	for _, s := range w.slots[1:] {
		at = min(at, s.at)
	}
	return at.Add(hold), true
}
