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

// queue is a binary min-heap of events by (at, seq), written out by hand
// because container/heap's interface calls cost a third of the event rate.
type queue []event

func (q queue) less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}

func (q *queue) push(e event) {
	*q = append(*q, e)
	h := *q
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !h.less(i, p) {
			break
		}
		h[i], h[p] = h[p], h[i]
		i = p
	}
}

func (q *queue) pop() event {
	h := *q
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = event{}
	h = h[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.less(r, l) {
			m = r
		}
		if !h.less(m, i) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	*q = h
	return top
}
