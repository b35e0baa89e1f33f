package sim

import (
	"time"

	"github.com/netspec/netspec/spec"
)

// Dir is one direction of a node's access link.
type Dir struct {
	// Rate is the serialisation rate in bits per second; 0 is unlimited.
	Rate float64 `json:"rate,omitempty"`
	// Delay is the propagation delay.
	Delay time.Duration `json:"delay,omitempty"`
	// Jitter adds a uniform random delay in [0, Jitter) per packet, after
	// serialisation, so packets may overtake each other.
	Jitter time.Duration `json:"jitter,omitempty"`
	// Loss and Dup are per-packet probabilities. A datagram lost on the
	// uplink costs it nothing; a stream segment still takes its turn
	// (its sender's retransmission timers run from when it left).
	Loss float64 `json:"loss,omitempty"`
	Dup  float64 `json:"dup,omitempty"`
	// Queue is the FIFO's capacity in bytes, including the packet being
	// serialised; a datagram that does not fit is tail-dropped. 0 means
	// DefaultQueue.
	Queue int `json:"queue,omitempty"`
}

// Link is a node's access link to the network's core, a switch with
// unlimited capacity: a packet from A to B is serialised on A's uplink,
// propagates for A's uplink delay, waits for and is serialised on B's
// downlink, and propagates for B's downlink delay. This is the topology of
// a mininet single-switch network, the seed experiment's.
type Link struct {
	Up   Dir `json:"up"`
	Down Dir `json:"down"`
}

// Symmetric returns a link with the same parameters in both directions.
func Symmetric(d Dir) Link { return Link{Up: d, Down: d} }

// DefaultQueue is the default FIFO capacity: 1,000 full-size packets.
const DefaultQueue = 1000 * 1500

// fifo tracks one direction's serialisation queue without an event per
// packet: departures are computed on arrival, and the bytes still queued
// are found by forgetting the departures already past.
type fifo struct {
	free    spec.Time // when the line is next idle
	pending []queued  // ring of packets not yet departed, in order
	head    int
	bytes   int
}

type queued struct {
	depart spec.Time
	size   int
}

// txTime is how long size bytes take at rate bits/s.
func txTime(size int, rate float64) time.Duration {
	if rate <= 0 {
		return 0
	}
	return time.Duration(float64(size) * 8 / rate * float64(time.Second))
}

// enqueue offers a packet of size bytes at now. It returns its departure
// time (end of serialisation) and false if the queue is full and the
// packet must be dropped; force skips the capacity check.
func (f *fifo) enqueue(now spec.Time, size int, d *Dir, force bool) (spec.Time, bool) {
	if d.Rate <= 0 {
		return now, true
	}
	for f.head < len(f.pending) && f.pending[f.head].depart <= now {
		f.bytes -= f.pending[f.head].size
		f.head++
	}
	if f.head == len(f.pending) {
		f.pending, f.head = f.pending[:0], 0
	} else if f.head > 1024 && f.head > len(f.pending)/2 {
		n := copy(f.pending, f.pending[f.head:])
		f.pending, f.head = f.pending[:n], 0
	}
	limit := d.Queue
	if limit <= 0 {
		limit = DefaultQueue
	}
	if !force && f.bytes+size > limit {
		return 0, false
	}
	start := now
	if f.free > start {
		start = f.free
	}
	dep := start.Add(txTime(size, d.Rate))
	f.free = dep
	f.pending = append(f.pending, queued{dep, size})
	f.bytes += size
	return dep, true
}
