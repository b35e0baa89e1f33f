package scenario_test

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netspec/netspec/sim/scenario"
)

// FuzzParseCounts: any --n list parses or fails cleanly. What parses is
// what the doc comment says: counts in increasing order, each once,
// each 1..MaxCount; naming the list twice changes nothing; each item
// parses on its own, and the list is the union of its items (and fails
// if any of them does); and the counts, written out as a list, parse
// back to themselves.
func FuzzParseCounts(f *testing.F) {
	for _, s := range []string{"10", "1-5", "10-100/10", "5-12/4", "10000", "1-10000/999", " 3 , 1,2,3 ,", ",,",
		"0", "10001", "5-4", "1-5/0", "x", "1-2-3", "1/2/3", "+7", "007", "-1", "1-", "-", "/", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ns, err := scenario.ParseCounts(s)
		// Each item on its own.
		var union []int
		var itemErr error
		for _, item := range strings.Split(s, ",") {
			if strings.TrimSpace(item) == "" {
				continue
			}
			got, err := scenario.ParseCounts(item)
			if err != nil {
				itemErr = err
				continue
			}
			union = append(union, got...)
		}
		if err != nil {
			if itemErr == nil && len(union) > 0 {
				t.Fatalf("%q fails (%v), but each of its items parses", s, err)
			}
			return
		}
		if itemErr != nil {
			t.Fatalf("%q parses to %v, but one of its items fails: %v", s, ns, itemErr)
		}
		if len(ns) == 0 {
			t.Fatalf("%q parses to no count", s)
		}
		for i, n := range ns {
			if n < 1 || n > scenario.MaxCount || i > 0 && n <= ns[i-1] {
				t.Fatalf("%q parses to %v: not increasing counts within 1..%d", s, ns, scenario.MaxCount)
			}
		}
		slices.Sort(union)
		if union = slices.Compact(union); !slices.Equal(union, ns) {
			t.Fatalf("%q parses to %v, its items to %v", s, ns, union)
		}
		if twice, err := scenario.ParseCounts(s + "," + s); err != nil || !slices.Equal(twice, ns) {
			t.Fatalf("%q twice parses to %v, %v; once to %v", s, twice, err, ns)
		}
		list := make([]string, len(ns))
		for i, n := range ns {
			list[i] = strconv.Itoa(n)
		}
		if again, err := scenario.ParseCounts(strings.Join(list, ",")); err != nil || !slices.Equal(again, ns) {
			t.Fatalf("%v written out parses to %v, %v", ns, again, err)
		}
	})
}
