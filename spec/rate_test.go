package spec_test

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// A burst goes through at once, then the rate; credit comes back with
// time; the zero Rate limits nothing.
func TestRate(t *testing.T) {
	r := spec.NewRate(10, 3) // one per 100 ms, bursts of 3
	var tat spec.Time
	now := spec.SimEpoch
	allowed := func(at spec.Time, n int) int {
		got := 0
		for range n {
			if r.Allow(at, &tat) {
				got++
			}
		}
		return got
	}
	tests := []struct {
		after time.Duration
		tries int
		want  int
	}{
		{0, 10, 3},                       // the burst
		{50 * time.Millisecond, 5, 0},    // no credit yet
		{100 * time.Millisecond, 5, 1},   // one period: one more
		{time.Second, 10, 3},             // long idle: a burst again, not more
		{1050 * time.Millisecond, 10, 0}, // spent
	}
	for _, tc := range tests {
		if got := allowed(now.Add(tc.after), tc.tries); got != tc.want {
			t.Errorf("at +%v: %d of %d allowed, want %d", tc.after, got, tc.tries, tc.want)
		}
	}
	var free spec.Rate
	for range 1000 {
		if !free.Allow(now, &tat) {
			t.Fatal("the zero Rate refused an event")
		}
	}
	if spec.NewRate(0, 5) != (spec.Rate{}) {
		t.Error("NewRate(0, ...) is a limit")
	}
}

// Rates no float division turns into a period: NaN limits nothing, as
// zero does; one too low for a Duration still lets the burst through and
// then refuses, rather than overflowing to a negative period that
// refuses everything.
func TestRateExtremes(t *testing.T) {
	now := spec.Time(time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC).UnixNano())
	tests := []struct {
		name      string
		perSecond float64
		burst     int
		want      int // of 10 events at once
	}{
		{"NaN", math.NaN(), 3, 10},
		{"negative", -1, 3, 10},
		{"minus infinity", math.Inf(-1), 3, 10},
		{"tiny", 1e-300, 3, 3},
		{"tiny, no burst", 1e-12, 0, 1},
		{"huge", math.Inf(1), 3, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := spec.NewRate(tc.perSecond, tc.burst)
			if r.Every < 0 || r.Tau < 0 {
				t.Fatalf("NewRate(%g, %d) = %+v: a negative period", tc.perSecond, tc.burst, r)
			}
			var tat spec.Time
			got := 0
			for range 10 {
				if r.Allow(now, &tat) {
					got++
				}
			}
			if got != tc.want {
				t.Errorf("NewRate(%g, %d): %d of 10 allowed, want %d", tc.perSecond, tc.burst, got, tc.want)
			}
			if tat < 0 {
				t.Errorf("theoretical arrival time overflowed: %d", tat)
			}
		})
	}
}

// PerAddr allows max places per address, counts an IPv4-mapped address
// as its IPv4 one, and frees a place on Release.
func TestPerAddr(t *testing.T) {
	p := spec.NewPerAddr(2)
	a, mapped, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("::ffff:192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	got := []bool{p.Take(a), p.Take(mapped), p.Take(a), p.Take(b)}
	if fmt.Sprint(got) != "[true true false true]" {
		t.Fatalf("takes %v", got)
	}
	p.Release(mapped)
	if !p.Take(a) || p.Take(a) {
		t.Fatal("a released place was not freed once")
	}
}

// A throttled line is logged at the first occurrence and then at most
// once an interval, each time counting the occurrences since the last.
func TestThrottle(t *testing.T) {
	var th spec.Throttle
	at := func(ms int) spec.Time { return spec.SimEpoch.Add(time.Duration(ms) * time.Millisecond) }
	var got []uint64
	for _, ms := range []int{0, 1, 2, 500, 999, 1000, 1001, 5000} {
		if n, ok := th.Hit(at(ms), time.Second); ok {
			got = append(got, n)
		}
	}
	if want := []uint64{1, 5, 2}; !slices.Equal(got, want) {
		t.Fatalf("logged counts %v, want %v (at 0 ms, 1000 ms, 5000 ms)", got, want)
	}
}

// Idle gives the keys idle for at least d, in order whatever the map's.
func TestIdle(t *testing.T) {
	now := spec.SimEpoch.Add(time.Minute)
	last := map[spec.Stream]spec.Time{9: spec.SimEpoch, 3: now, 7: now.Add(-30 * time.Second), 1: now.Add(-29 * time.Second)}
	got := spec.Idle(last, now, 30*time.Second, func(t spec.Time) spec.Time { return t })
	if want := []spec.Stream{7, 9}; !slices.Equal(got, want) {
		t.Fatalf("Idle = %v, want %v", got, want)
	}
}
