package stream_test

import (
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/stream"
	"pgregory.net/rapid"
)

// feed gives r packets with the sequence numbers seqs, 1 ms apart, with
// timestamps that match (90 units per ms), and returns the verdicts.
func feed(r *stream.Receiver, seqs ...uint16) []stream.Verdict {
	var v []stream.Verdict
	for _, s := range seqs {
		v = append(v, r.Update(spec.SimEpoch.Add(time.Duration(s)*time.Millisecond), s, uint32(s)*90))
	}
	return v
}

// Hand-worked cases of RFC 3550 A.1/A.3 and RFC 4737, each checked
// against the numbers the RFC's code gives.
func TestReceiverRFCCases(t *testing.T) {
	type want struct {
		base                     uint16
		ext, cycles              uint64
		expected                 int64
		received                 uint64
		lost                     int64
		dups, reordered, resyncs uint64
	}
	tests := []struct {
		name   string
		minSeq int
		seqs   []uint16
		want   want
	}{
		{"in order", 0, []uint16{10, 11, 12}, want{base: 10, ext: 12, expected: 3, received: 3}},
		{"wraps past 65535", 0, []uint16{65534, 65535, 0, 1}, want{base: 65534, ext: 65537, cycles: 1, expected: 4, received: 4}},
		{"first packet is seq 0", 0, []uint16{0, 1}, want{base: 0, ext: 1, expected: 2, received: 2}},
		{"a loss", 0, []uint16{10, 11, 13}, want{base: 10, ext: 13, expected: 4, received: 3, lost: 1}},
		{"a duplicate makes loss negative", 0, []uint16{10, 11, 11}, want{base: 10, ext: 11, expected: 2, received: 3, lost: -1, dups: 1}},
		{"reordered", 0, []uint16{10, 12, 11}, want{base: 10, ext: 12, expected: 3, received: 3, reordered: 1}},
		{"reordered across the wrap", 0, []uint16{65535, 1, 0}, want{base: 65535, ext: 65537, cycles: 1, expected: 3, received: 3, reordered: 1}},
		{"reordered before the first", 0, []uint16{10, 9}, want{base: 10, ext: 10, expected: 1, received: 2, lost: -1, reordered: 1}},
		{"late duplicate of a reordered one", 0, []uint16{10, 12, 11, 11}, want{base: 10, ext: 12, expected: 3, received: 4, lost: -1, reordered: 1, dups: 1}},
		{"probation: the first packet is not counted", 2, []uint16{100, 101, 102}, want{base: 101, ext: 102, expected: 2, received: 2}},
		{"probation restarts on a gap", 2, []uint16{100, 105, 106, 107}, want{base: 106, ext: 107, expected: 2, received: 2}},
		{"a jump then its successor resynchronises", 0, []uint16{10, 11, 5000, 5001}, want{base: 5001, ext: 5001, expected: 1, received: 1, resyncs: 1}},
		{"a lone jump is ignored", 0, []uint16{10, 5000, 11}, want{base: 10, ext: 11, expected: 2, received: 2}},
		{"151 behind is not counted", 0, []uint16{300, 301, 150}, want{base: 300, ext: 301, expected: 2, received: 2}},
		{"100 behind is not counted", 0, []uint16{300, 401, 301}, want{base: 300, ext: 401, expected: 102, received: 2, lost: 100}},
		{"99 behind is counted", 0, []uint16{300, 400, 301}, want{base: 300, ext: 400, expected: 101, received: 3, lost: 98, reordered: 1}},
		{"a gap of 2999 is in order", 0, []uint16{10, 3009}, want{base: 10, ext: 3009, expected: 3000, received: 2, lost: 2998}},
		{"a gap of 3000 (MAX_DROPOUT) is a jump", 0, []uint16{10, 3010}, want{base: 10, ext: 10, expected: 1, received: 1}},
		{"a duplicate from before the wrap", 0, []uint16{65534, 65535, 0, 1, 65535}, want{base: 65534, ext: 65537, cycles: 1, expected: 4, received: 5, lost: -1, dups: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := stream.NewReceiver(0, tc.minSeq)
			feed(r, tc.seqs...)
			s := r.Stats()
			got := want{s.BaseSeq, s.ExtMax, s.Cycles, s.Expected, s.Received, s.Lost, s.Duplicates, s.Reordered, s.Resyncs}
			if got != tc.want {
				t.Fatalf("after %v:\n got  %+v\n want %+v", tc.seqs, got, tc.want)
			}
		})
	}
}

// A.3's fraction lost is per report interval, and the RR's cumulative
// loss is 24-bit signed.
func TestReceiverReportIntervals(t *testing.T) {
	r := stream.NewReceiver(0, 0)
	if rr := r.Report(1); rr != nil {
		t.Fatalf("report before any packet: %+v", rr)
	}
	feed(r, 10, 11, 13) // expected 4, received 3
	rr := r.Report(7)
	if rr.SSRC != 7 || rr.FractionLost != 64 || rr.TotalLost != 1 || rr.LastSequenceNumber != 13 {
		t.Fatalf("first interval: %+v, want fraction 64/256, lost 1, ext 13", rr)
	}
	feed(r, 14, 15, 16, 17) // nothing lost in this interval
	if rr := r.Report(7); rr.FractionLost != 0 || rr.TotalLost != 1 {
		t.Fatalf("second interval: %+v, want fraction 0, lost still 1", rr)
	}
	feed(r, 17, 17) // duplicates only: loss in the interval is negative
	if rr := r.Report(7); rr.FractionLost != 0 || stream.Lost24(rr.TotalLost) != -1 {
		t.Fatalf("third interval: %+v, want fraction 0, lost -1", rr)
	}
	feed(r, 20, 24) // 7 expected (18..24), 2 received
	if rr := r.Report(7); rr.FractionLost != uint8(5*256/7) {
		t.Fatalf("fourth interval: fraction %d, want %d", rr.FractionLost, 5*256/7)
	}
}

// A.8 jitter, integer form: one packet 1 ms late moves J by |D|/16.
func TestReceiverJitter(t *testing.T) {
	r := stream.NewReceiver(0, 0)
	at := func(ms int) spec.Time { return spec.SimEpoch.Add(time.Duration(ms) * time.Millisecond) }
	r.Update(at(0), 0, 0)
	r.Update(at(1), 1, 90)
	if j := r.Stats().Jitter; j != 0 {
		t.Fatalf("jitter %d on a perfect stream", j)
	}
	r.Update(at(3), 2, 180) // 1 ms (90 units) late: J16 = 90
	if j := r.Stats().Jitter; j != 90>>4 {
		t.Fatalf("jitter %d, want %d", j, 90>>4)
	}
	r.Update(at(3), 3, 270) // back on time: D = 90 again, J16 = 90 + 90 - 6
	if j := r.Stats().Jitter; j != 174>>4 {
		t.Fatalf("jitter %d, want %d", j, 174>>4)
	}
	if us := r.Stats().JitterUs; us != 10*1_000_000/90000 {
		t.Fatalf("jitter %d us, want %d", us, 10*1_000_000/90000)
	}
}

// For any sequence of arrivals within A.1's limits (no packet more than
// 100 behind, no gap of 3000), the receiver's statistics equal those
// computed from the packets' true 64-bit indices, across any number of
// sequence number wraps.
func TestReceiverMatchesTrueIndices(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		seq0 := uint16(rapid.Uint32().Draw(t, "seq0"))
		r := stream.NewReceiver(0, 0)
		o := newOracle()
		next := uint64(rapid.IntRange(0, 1<<20).Draw(t, "first index"))
		n := rapid.IntRange(1, 400).Draw(t, "arrivals")
		now := spec.SimEpoch
		for i := 0; i < n; i++ {
			var idx uint64
			if o.started && rapid.IntRange(0, 3).Draw(t, "late") == 0 {
				// a duplicate, or a late first arrival, at most 99 behind
				back := min(uint64(rapid.IntRange(0, 99).Draw(t, "back")), o.maxIdx)
				idx = o.maxIdx - back
			} else {
				idx = next
				step := 1
				if rapid.Bool().Draw(t, "big step") {
					step = rapid.IntRange(1, 2999).Draw(t, "step")
				}
				next += uint64(step)
			}
			now = now.Add(time.Duration(rapid.IntRange(0, 5000).Draw(t, "gap us")) * time.Microsecond)
			d := delivery{at: now, data: stream.Data{Index: idx, Seq: seq0 + uint16(idx), Timestamp: uint32(idx * 90), Value: stream.DataValue(idx)}}
			o.add(d)
			r.Update(now, d.data.Seq, d.data.Timestamp)
		}
		s := r.Stats()
		want := stream.SourceStats{Valid: true, BaseSeq: o.baseSeq, ExtMax: o.ext(), Cycles: o.ext() >> 16,
			Expected: int64(o.expected()), Received: o.received, Lost: int64(o.expected()) - int64(o.received),
			Duplicates: o.dups, Reordered: o.reord, Jitter: uint32(o.jitter >> 4), JitterUs: o.jitter >> 4 * 1e6 / stream.ClockRate}
		if s != want {
			t.Fatalf("\n got  %+v\n want %+v", s, want)
		}
	})
}

// A long stream with 1% loss counts every 65536-cycle.
func TestReceiverManyWraps(t *testing.T) {
	r := stream.NewReceiver(0, 0)
	rng := spec.NewRand(1)
	var got uint64
	const n = 5 * 65536
	for i := uint64(0); i < n; i++ {
		if rng.IntN(100) == 0 {
			continue
		}
		got++
		r.Update(spec.SimEpoch.Add(time.Duration(i)*time.Millisecond), uint16(i+123), uint32(i*90))
	}
	s := r.Stats()
	if s.Cycles != 5 || s.Received != got || s.Expected != int64(s.ExtMax-123+1) {
		t.Fatalf("%+v after %d packets (%d received)", s, n, got)
	}
}
