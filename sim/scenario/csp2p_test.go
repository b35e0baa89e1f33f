package scenario_test

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/netspec/netspec/sim/scenario"
)

func TestSwarmBounds(t *testing.T) {
	// The seed's setup: F = 10 MB, every link 10 Mbit/s.
	const f, r = 10_000_000, 10e6
	for _, tc := range []struct {
		n       int
		cs, p2p float64
	}{{1, 8, 8}, {2, 16, 8}, {5, 40, 8}, {1000, 8000, 8}} {
		if got := scenario.CSBound(tc.n, f, r, r); got != tc.cs {
			t.Errorf("C/S bound for N=%d: %v, want %v", tc.n, got, tc.cs)
		}
		if got := scenario.P2PBound(tc.n, f, r, r, r); got != tc.p2p {
			t.Errorf("P2P bound for N=%d: %v, want %v", tc.n, got, tc.p2p)
		}
	}
	// Peers that upload slowly: N*F/(u_s+N*u) dominates.
	if got := scenario.P2PBound(20, f, 10e6, 100e6, 1e6); math.Abs(got-160.0/3) > 1e-9 {
		t.Errorf("P2P bound, N=20 peers uploading 1 Mbit/s: %v, want 53.3 (20F/(30 Mbit/s))", got)
	}
}

func TestParseCounts(t *testing.T) {
	good := map[string][]int{
		"1-5":          {1, 2, 3, 4, 5},
		"1,2,10":       {1, 2, 10},
		"100-1000/300": {100, 400, 700, 1000},
		"7":            {7},
		" 3 , 4-4 ":    {3, 4},
	}
	for in, want := range good {
		if got, err := scenario.ParseCounts(in); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "5-1", "a", "1-", "1-5/0", "100001", "-3"} {
		if _, err := scenario.ParseCounts(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// Every downloader of a small swarm gets the exact file in both modes,
// no run beats its Kurose-Ross bound, and a seed gives the same result
// twice.
func TestSwarmScenario(t *testing.T) {
	run := func() scenario.SwarmResult {
		sc := &scenario.Swarm{FileSize: 1_000_000, ChunkSize: 8192, N: "1-4", Plot: filepath.Join(t.TempDir(), "plot.svg")}
		res, err := sc.Run(scenario.Options{Seed: 3})
		if err != nil || res.Failed != "" {
			t.Fatalf("run: %v %s", err, res.Failed)
		}
		v := res.Value.(scenario.SwarmResult)
		v.Plot = ""
		return v
	}
	a := run()
	for _, row := range a.Rows {
		for _, tm := range []*scenario.SwarmTiming{row.CS, row.P2P} {
			if tm.Done != row.N {
				t.Fatalf("N=%d: %d downloaders done", row.N, tm.Done)
			}
			if tm.Ratio < 1 {
				t.Fatalf("N=%d: %.3f s beats the bound %.3f s", row.N, tm.Seconds, tm.Bound)
			}
		}
		// The server sends the file N times in C/S, at least once in P2P.
		if row.CS.ServerBytes != int64(row.N)*1_000_000 || row.P2P.ServerBytes < 1_000_000 {
			t.Fatalf("N=%d: the server sent %d bytes (C/S) and %d (P2P)", row.N, row.CS.ServerBytes, row.P2P.ServerBytes)
		}
	}
	b := run()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("the same seed gave two results:\n%s\n%s", ja, jb)
	}
}

// The P2P swarm delivers the exact file over a lossy network too.
func TestSwarmScenarioLossy(t *testing.T) {
	sc := &scenario.Swarm{FileSize: 300_000, ChunkSize: 4096, N: "3", Mode: "p2p", Loss: 0.05, Delay: 2 * time.Millisecond, Plot: ""}
	res, err := sc.Run(scenario.Options{Seed: 8})
	if err != nil || res.Failed != "" {
		t.Fatalf("run: %v %s", err, res.Failed)
	}
	if row := res.Value.(scenario.SwarmResult).Rows[0]; row.P2P.Done != 3 || row.CS != nil {
		t.Fatalf("row %+v", row)
	}
}

func TestSwarmValidate(t *testing.T) {
	for _, sc := range []*scenario.Swarm{
		{N: "0"}, {FileSize: -1}, {ChunkSize: -4}, {MTU: 100}, {Loss: 1}, {Mode: "torrent"}, {Rate: -1},
	} {
		if err := sc.Validate(); err == nil {
			t.Errorf("%+v accepted", *sc)
		}
	}
	if err := (&scenario.Swarm{}).Validate(); err != nil {
		t.Errorf("the defaults: %v", err)
	}
}

// BenchmarkSwarm runs the targets: the seed's setup for one N per
// sub-benchmark, C/S and P2P side by side in one run, reporting each
// ratio to its Kurose-Ross bound and the wall time of simulating both.
// N=1000 takes about a minute: go test -bench 'Swarm/N=1000' -benchtime 1x.
func BenchmarkSwarm(b *testing.B) {
	for _, n := range []int{1, 5, 100, 1000} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			var r scenario.SwarmResult
			for i := 0; i < b.N; i++ {
				res, err := (&scenario.Swarm{N: fmt.Sprint(n), Delay: 5 * time.Millisecond, Plot: ""}).Run(scenario.Options{Seed: 1})
				if err != nil || res.Failed != "" {
					b.Fatalf("%v %s", err, res.Failed)
				}
				r = res.Value.(scenario.SwarmResult)
			}
			row := r.Rows[0]
			b.ReportMetric(row.CS.Ratio, "cs/bound")
			b.ReportMetric(row.P2P.Ratio, "p2p/bound")
			b.ReportMetric(row.CS.Seconds/row.P2P.Seconds, "cs/p2p")
			b.ReportMetric(float64(row.CS.Events+row.P2P.Events)/float64(b.Elapsed().Seconds())*float64(b.N), "events/s")
		})
	}
}
