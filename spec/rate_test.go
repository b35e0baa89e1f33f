package spec_test

import (
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
