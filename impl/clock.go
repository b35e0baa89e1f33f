package impl

import (
	"sync"
	"time"

	"github.com/netspec/netspec/spec"
)

// Clock is where a runner gets time and timers: the real clock in
// production, a manual one when a harness replays a trace.
type Clock interface {
	Now() spec.Time
	AfterFunc(d time.Duration, f func()) Stopper
}

// Stopper stops a timer.
type Stopper interface{ Stop() bool }

// RealClock reads the wall clock once and advances it by the monotonic
// clock, so machines see wall time that never jumps.
type RealClock struct {
	start time.Time
	wall  spec.Time
}

// NewRealClock returns a clock starting now.
func NewRealClock() *RealClock {
	now := time.Now()
	return &RealClock{start: now, wall: spec.FromWall(now)}
}

// Now implements Clock.
func (c *RealClock) Now() spec.Time { return c.wall.Add(time.Since(c.start)) }

// AfterFunc implements Clock.
func (c *RealClock) AfterFunc(d time.Duration, f func()) Stopper { return time.AfterFunc(d, f) }

// ManualClock is a clock a harness moves by hand. Timers fire, in deadline
// order and then in the order they were set, when Advance passes them.
type ManualClock struct {
	mu     sync.Mutex
	now    spec.Time
	seq    uint64
	timers map[uint64]*manualTimer
}

type manualTimer struct {
	c  *ManualClock
	id uint64
	at spec.Time
	f  func()
}

// NewManualClock returns a clock reading start.
func NewManualClock(start spec.Time) *ManualClock {
	return &ManualClock{now: start, timers: map[uint64]*manualTimer{}}
}

// Now implements Clock.
func (c *ManualClock) Now() spec.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc implements Clock.
func (c *ManualClock) AfterFunc(d time.Duration, f func()) Stopper {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	t := &manualTimer{c: c, id: c.seq, at: c.now.Add(max(d, 0)), f: f}
	c.timers[t.id] = t
	return t
}

func (t *manualTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	_, ok := t.c.timers[t.id]
	delete(t.c.timers, t.id)
	return ok
}

// Advance moves the clock to t (never backwards) and runs the functions
// of the timers due by then, in order, from the calling goroutine.
func (c *ManualClock) Advance(t spec.Time) {
	for {
		c.mu.Lock()
		if t > c.now {
			c.now = t
		}
		var next *manualTimer
		for _, tm := range c.timers {
			if tm.at <= c.now && (next == nil || tm.at < next.at || tm.at == next.at && tm.id < next.id) {
				next = tm
			}
		}
		if next != nil {
			delete(c.timers, next.id)
		}
		c.mu.Unlock()
		if next == nil {
			return
		}
		next.f()
	}
}
