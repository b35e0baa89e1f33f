package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/netspec/netspec/spec"
	"pgregory.net/rapid"
)

// Faults is a fault schedule applied on top of the links: random loss,
// duplication and jitter on every packet until Until, and scheduled
// partitions and crashes.
type Faults struct {
	Loss   float64       `json:"loss,omitempty"`
	Dup    float64       `json:"dup,omitempty"`
	Jitter time.Duration `json:"jitter,omitempty"`
	// Until ends the random faults (0: never), so liveness can be checked
	// on a healed network.
	Until      time.Duration `json:"until,omitempty"`
	Partitions []Partition   `json:"partitions,omitempty"`
	Crashes    []Crash       `json:"crashes,omitempty"`
}

// Partition cuts Side off from every other node from Start to End (End 0:
// for ever). Streams across the cut are reset when it starts.
type Partition struct {
	Start time.Duration `json:"start"`
	End   time.Duration `json:"end,omitempty"`
	Side  []string      `json:"side"`
}

// Crash stops Node at At, losing its state, and restarts it at Restart
// (0: it stays down).
type Crash struct {
	Node    string        `json:"node"`
	At      time.Duration `json:"at"`
	Restart time.Duration `json:"restart,omitempty"`
}

// String is a one-line summary for test logs.
func (f Faults) String() string {
	return fmt.Sprintf("loss=%.3f dup=%.3f jitter=%v until=%v partitions=%d crashes=%d",
		f.Loss, f.Dup, f.Jitter, f.Until, len(f.Partitions), len(f.Crashes))
}

// FaultBounds bounds the faults Draw may pick.
type FaultBounds struct {
	MaxLoss, MaxDup float64
	MaxJitter       time.Duration
	// Horizon is when every drawn fault has healed: random faults stop,
	// partitions end and crashed nodes are back.
	Horizon time.Duration
	// MaxPartitions and Partitionable: how many partitions, among which
	// nodes.
	MaxPartitions int
	Partitionable []string
	// MaxCrashes and Crashable: how many crashes, of which nodes.
	MaxCrashes int
	Crashable  []string
}

// source is where a fault schedule's choices come from: rapid (so failing
// cases shrink towards fewer, milder faults) or a seed (VOPR-style).
type source interface {
	float(label string, max float64) float64
	intn(label string, lo, hi int) int
}

type rapidSource struct{ t *rapid.T }

// float draws in thousandths of max: rapid shrinks integers to zero
// reliably, floats less so.
func (r rapidSource) float(label string, max float64) float64 {
	if max <= 0 {
		return 0
	}
	return float64(rapid.IntRange(0, 1000).Draw(r.t, label+" (thousandths of max)")) * max / 1000
}

func (r rapidSource) intn(label string, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return rapid.IntRange(lo, hi).Draw(r.t, label)
}

type seedSource struct{ r spec.Rand }

func (s seedSource) float(_ string, max float64) float64 {
	if max <= 0 {
		return 0
	}
	return s.r.Float64() * max
}

func (s seedSource) intn(_ string, lo, hi int) int {
	if hi <= lo {
		return lo
	}
	return lo + s.r.IntN(hi-lo+1)
}

// DrawFaults draws a fault schedule from t within b; rapid shrinks it
// towards no faults at all.
func DrawFaults(t *rapid.T, b FaultBounds) Faults { return drawFaults(rapidSource{t}, b) }

// FaultsFromSeed picks a fault schedule within b from seed.
func FaultsFromSeed(seed uint64, b FaultBounds) Faults {
	return drawFaults(seedSource{spec.NewRand(seed ^ 0xfa017)}, b)
}

func drawFaults(src source, b FaultBounds) Faults {
	f := Faults{
		Loss:   src.float("loss", b.MaxLoss),
		Dup:    src.float("dup", b.MaxDup),
		Jitter: time.Duration(src.float("jitter", float64(b.MaxJitter))),
		Until:  b.Horizon,
	}
	ms := int(b.Horizon / time.Millisecond)
	if ms <= 0 {
		return f
	}
	// Every fault has a fixed slot with its own on/off switch, drawn
	// whether it is on or not, so turning one fault off never shifts the
	// draws of the others: rapid can shrink them away one by one.
	if len(b.Partitionable) > 0 {
		for i := 0; i < b.MaxPartitions; i++ {
			on := src.intn(fmt.Sprintf("partition %d on", i), 0, 1) == 1
			// Every drawn fault is over by the horizon (a partition
			// or crash that begins at it would outlast the healing).
			start := src.intn("partition start ms", 0, ms-1)
			end := src.intn("partition end ms", start+1, ms)
			var side []string
			for _, name := range b.Partitionable {
				if src.intn("partition side "+name, 0, 1) == 1 {
					side = append(side, name)
				}
			}
			if len(side) == 0 {
				side = b.Partitionable[:1]
			}
			if on {
				// End 0 would mean "for ever": a drawn partition always heals.
				f.Partitions = append(f.Partitions, Partition{Start: ms2d(start), End: ms2d(end), Side: side})
			}
		}
	}
	if len(b.Crashable) > 0 {
		for i := 0; i < b.MaxCrashes; i++ {
			on := src.intn(fmt.Sprintf("crash %d on", i), 0, 1) == 1
			node := b.Crashable[src.intn("crash node", 0, len(b.Crashable)-1)]
			at := src.intn("crash at ms", 0, ms-1)
			up := src.intn("restart at ms", at+1, ms)
			if on {
				// Restart 0 would mean "stays down": a drawn crash always
				// comes back, by the horizon.
				f.Crashes = append(f.Crashes, Crash{Node: node, At: ms2d(at), Restart: ms2d(up)})
			}
		}
	}
	return f
}

func ms2d(ms int) time.Duration { return time.Duration(ms) * time.Millisecond }

type partState struct {
	active bool
	side   map[int32]bool
}

// cut reports whether an active partition separates a and b.
func (s *Sim) cut(a, b *Node) bool {
	for i := range s.parts {
		p := &s.parts[i]
		if p.active && p.side[a.idx] != p.side[b.idx] {
			return true
		}
	}
	return false
}

func (s *Sim) partitionOn(i int) {
	p := &s.parts[i]
	p.active = true
	p.side = map[int32]bool{}
	for _, name := range s.cfg.Faults.Partitions[i].Side {
		if n := s.byName[name]; n != nil {
			p.side[n.idx] = true
		}
	}
	s.recordNet(NetEvent{Kind: NetPartition, Note: fmt.Sprintf("partition %d cuts %v off", i, s.cfg.Faults.Partitions[i].Side)})
	for _, n := range s.nodes {
		ids := make([]spec.Stream, 0, len(n.streams))
		for id := range n.streams {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			e := n.streams[id]
			peer := e.conn.ends[1-e.side]
			if peer == nil || e.conn.dead || p.side[n.idx] == p.side[peer.node.idx] {
				continue
			}
			e.conn.dead = true
			s.schedule(event{at: s.now, kind: evStreamRst, x: &rst{e: e, err: "connection reset: network partition"}})
			s.schedule(event{at: s.now, kind: evStreamRst, x: &rst{e: peer, err: "connection reset: network partition"}})
		}
	}
}

// scheduleCrashes turns Faults.Crashes into events, once nodes exist.
func (s *Sim) scheduleCrashes() {
	for _, c := range s.cfg.Faults.Crashes {
		n := s.byName[c.Node]
		if n == nil {
			continue
		}
		s.schedule(event{at: spec.SimEpoch.Add(c.At), kind: evCrash, node: n.idx})
		if c.Restart != 0 {
			// A restart no later than the crash comes right after it.
			s.schedule(event{at: spec.SimEpoch.Add(max(c.Restart, c.At)), kind: evRestart, node: n.idx})
		}
	}
}
