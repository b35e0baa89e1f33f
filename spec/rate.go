package spec

import "time"

// Rate is a rate limit kept as GCRA (a token bucket without a timer):
// Burst events at once, then one per Every on average. The state per
// limited thing is one Time, its theoretical arrival time, kept by the
// caller; the zero Rate allows everything.
type Rate struct {
	Every time.Duration // one event per...
	Tau   time.Duration // ...with this much credit (Burst-1 periods)
}

// NewRate returns a limit of perSecond events a second in bursts of
// burst; perSecond <= 0 gives the zero Rate, no limit.
func NewRate(perSecond float64, burst int) Rate {
	if perSecond <= 0 {
		return Rate{}
	}
	every := time.Duration(float64(time.Second) / perSecond)
	return Rate{Every: every, Tau: time.Duration(max(burst, 1)-1) * every}
}

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
