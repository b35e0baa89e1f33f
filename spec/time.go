package spec

import (
	"slices"
	"time"
)

// Time is an instant, in nanoseconds since the Unix epoch. Runners pass it
// in with every input; machines never read a clock. The simulator starts
// its virtual clock at SimEpoch, the socket runner uses the wall clock
// advanced by the monotonic clock, so the same machine sees plausible wall
// time in both and durations are exact in both.
type Time int64

// SimEpoch is where virtual time starts: 2000-01-01T00:00:00Z.
const SimEpoch Time = 946684800 * Time(time.Second)

// Add returns t+d.
func (t Time) Add(d time.Duration) Time { return t + Time(d) }

// Sub returns the duration t-u.
func (t Time) Sub(u Time) time.Duration { return time.Duration(t - u) }

// Before reports whether t is before u.
func (t Time) Before(u Time) bool { return t < u }

// Wall converts t to a UTC time.Time, for display and for protocols that
// report the time of day.
func (t Time) Wall() time.Time { return time.Unix(0, int64(t)).UTC() }

// FromWall converts a time.Time to a Time.
func FromWall(w time.Time) Time { return Time(w.UnixNano()) }

// Idle returns, in order, the keys of m whose last activity (as last
// reads it from the value) is at least d before now: the connections a
// sweep resets. The order makes a sweep's outputs depend on its inputs
// alone, not on map iteration.
func Idle[K ~uint64, V any](m map[K]V, now Time, d time.Duration, last func(V) Time) []K {
	var keys []K
	for k, v := range m {
		if now.Sub(last(v)) >= d {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
