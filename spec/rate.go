package spec

import (
	"net/netip"
	"time"
)

// Rate is a rate limit kept as GCRA (a token bucket without a timer):
// Burst events at once, then one per Every on average. The state per
// limited thing is one Time, its theoretical arrival time, kept by the
// caller; the zero Rate allows everything.
type Rate struct {
	Every time.Duration // one event per...
	Tau   time.Duration // ...with this much credit (Burst-1 periods)
}

// NewRate returns a limit of perSecond events a second in bursts of
// burst; perSecond <= 0 (or NaN) gives the zero Rate, no limit. A rate
// so low that its period would overflow is held at a period of decades,
// which refuses all but the burst as surely, without a negative period
// that would refuse everything.
func NewRate(perSecond float64, burst int) Rate {
	if !(perSecond > 0) {
		return Rate{}
	}
	burst = max(burst, 1)
	limit := float64(maxPeriod / time.Duration(burst))
	every := time.Duration(min(float64(time.Second)/perSecond, limit))
	if every <= 0 {
		return Rate{} // over a billion a second: nothing a clock can limit
	}
	return Rate{Every: every, Tau: time.Duration(burst-1) * every}
}

// maxPeriod bounds a Rate's Tau plus one period: some 36 years, so that
// adding it to any clock reading fits a Time.
const maxPeriod = time.Duration(1) << 60

// Allow reports whether an event at now fits the limit, given the
// limited thing's theoretical arrival time tat, and charges it if so.
func (r Rate) Allow(now Time, tat *Time) bool {
	if r.Every == 0 {
		return true
	}
	t := max(*tat, now)
	if t.Sub(now) > r.Tau {
		return false
	}
	*tat = t.Add(r.Every)
	return true
}

// PerAddr counts a server's connections by IP address, so that one host
// holding connections open cannot take every place. The zero value
// allows none; use NewPerAddr.
type PerAddr struct {
	n   map[netip.Addr]int
	max int
}

// NewPerAddr allows max connections per address.
func NewPerAddr(max int) PerAddr { return PerAddr{n: map[netip.Addr]int{}, max: max} }

// Take counts one more connection from a and reports true, or reports
// false if a already holds its max.
func (p *PerAddr) Take(a netip.Addr) bool {
	a = a.Unmap()
	if p.n[a] >= p.max {
		return false
	}
	p.n[a]++
	return true
}

// Release gives back one of a's places.
func (p *PerAddr) Release(a netip.Addr) {
	a = a.Unmap()
	if p.n[a]--; p.n[a] <= 0 {
		delete(p.n, a)
	}
}

// Throttle rate-limits a log line that hostile input can trigger at will
// (a limit refusing connections): at most one line per interval, each
// saying how many times it was suppressed since the last.
type Throttle struct {
	last  Time
	n     uint64
	armed bool
}

// Hit records one occurrence at now and reports whether to log it, with
// the occurrences since the last line logged, this one included.
func (e *Throttle) Hit(now Time, interval time.Duration) (uint64, bool) {
	e.n++
	if e.armed && now.Sub(e.last) < interval {
		return 0, false
	}
	n := e.n
	e.armed, e.last, e.n = true, now, 0
	return n, true
}
