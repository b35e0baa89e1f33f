package sim

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/netspec/netspec/spec"
)

// The queue pops in (time, push order), also across sequence renumbering,
// wheel turns and jumps, and with pushes interleaved with pops.
func TestQueueOrder(t *testing.T) {
	testQueueOrder(t, spec.SimEpoch, 1)
	// Timers set for the end of time must not make the wheel overflow.
	testQueueOrder(t, math.MaxInt64-5*maxWheel*wheelSlot, 1)
	// Many events share a time (all are rounded up to a coarse grid),
	// pushed to the current slot, the wheel or far, whose slab reuses
	// slots: push order, not where an event was filed, breaks the ties.
	testQueueOrder(t, spec.SimEpoch, 256*wheelSlot)
}

// testQueueOrder pushes events from now on, at multiples of grain.
func testQueueOrder(t *testing.T, now spec.Time, grain spec.Time) {
	r := rand.New(rand.NewPCG(1, 2))
	var q queue
	type ref struct {
		at  spec.Time
		seq int
	}
	var want []ref // kept sorted
	seq := 0
	for step := 0; step < 20000; step++ {
		if step == 10000 {
			q.seq = maxSeq - 10 // force renumbering soon
		}
		if len(want) == 0 || r.IntN(3) != 0 {
			seq++
			// Same slot, next slots, and beyond the wheel's horizon.
			at := now + spec.Time(r.IntN([]int{50, 4 * wheelSlot, 3 * maxWheel * wheelSlot}[r.IntN(3)]))
			if at < now {
				at = math.MaxInt64
			}
			at = (at + grain - 1) / grain * grain
			q.push(event{at: at, a: uint64(seq)})
			i := len(want)
			for i > 0 && want[i-1].at > at {
				i--
			}
			want = append(want, ref{})
			copy(want[i+1:], want[i:])
			want[i] = ref{at, seq}
			continue
		}
		if got := q.peek(); got != want[0].at {
			t.Fatalf("step %d: peek %d, want %d", step, got, want[0].at)
		}
		e := q.pop()
		if e.at != want[0].at || e.a != uint64(want[0].seq) {
			t.Fatalf("step %d: popped (%d, %d), want (%d, %d)", step, e.at, e.a, want[0].at, want[0].seq)
		}
		now = e.at
		want = want[1:]
		if q.len() != len(want) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(want))
		}
	}
	if len(q.wheel) <= minWheel {
		t.Fatalf("the wheel did not grow")
	}
	if q.seq >= maxSeq-10 {
		t.Fatalf("sequence numbers were not renumbered")
	}
}
