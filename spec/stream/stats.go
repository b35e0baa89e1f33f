package stream

import (
	"math"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/pion/rtcp"
)

// RFC 3550 A.1 parameters.
const (
	seqMod      = 1 << 16
	maxDropout  = 3000
	maxMisorder = 100
	// dupWindow is how many sequence numbers below the highest the
	// receiver remembers, to tell duplicates from late packets. It must
	// exceed maxMisorder, beyond which A.1 does not count a packet at all.
	dupWindow = 1024
)

// Verdict is what Receiver.Update decided about one data packet.
type Verdict uint8

// Verdicts.
const (
	// Accepted: a new packet in order, counted; deliver it.
	Accepted Verdict = iota
	// Reordered: a new packet that arrived after a later one (RFC 4737
	// §3.3), counted; deliver it.
	Reordered
	// Duplicate: a copy of a packet already counted. A.1 counts it in
	// received (so cumulative lost can go negative); it is not delivered
	// again.
	Duplicate
	// Probation: the source is not valid yet (A.1 MIN_SEQUENTIAL).
	Probation
	// Jump: a sequence number too far from the highest seen; not counted
	// unless the next packet follows it, when A.1 resynchronises.
	Jump
)

// Receiver computes the reception statistics of one RTP source exactly
// as RFC 3550 appendix A does: A.1 sequence number validation and
// extended highest sequence number across 16-bit wraparound, A.3
// expected, cumulative and interval loss, and A.8 interarrival jitter;
// plus duplicates and RFC 4737 §3.3 reordered packets. The zero value is
// not ready: use NewReceiver.
type Receiver struct {
	clock     uint32 // RTP clock rate, Hz
	minSeq    int    // MIN_SEQUENTIAL
	started   bool
	probation int

	maxSeq        uint16
	cycles        uint64 // A.1's cycles: wraps << 16, 64-bit so it never overflows
	baseSeq       uint32
	badSeq        uint32
	received      uint64
	expectedPrior uint64
	receivedPrior uint64
	fraction      uint8

	transit     int32
	haveTransit bool
	jitter      uint64 // A.8's jitter, scaled by 16

	duplicates uint64
	reordered  uint64
	resyncs    uint64
	seen       [dupWindow / 64]uint64 // bit e%dupWindow: ext seq e was counted
}

// NewReceiver returns a receiver for a source with RTP clock rate clock
// (Hz; 0 means ClockRate) that must send minSequential packets in
// sequence before it is valid (A.1's MIN_SEQUENTIAL; 0 when the source
// was validated otherwise, as here by the RTCP handshake).
func NewReceiver(clock uint32, minSequential int) *Receiver {
	if clock == 0 {
		clock = ClockRate
	}
	return &Receiver{clock: clock, minSeq: max(0, minSequential)}
}

// Started reports whether the receiver has seen a packet.
func (r *Receiver) Started() bool { return r.started }

// initSeq is A.1's init_seq.
func (r *Receiver) initSeq(seq uint16) {
	r.baseSeq = uint32(seq)
	r.maxSeq = seq
	r.badSeq = seqMod + 1
	r.cycles = 0
	r.received = 0
	r.receivedPrior = 0
	r.expectedPrior = 0
	r.haveTransit = false
	r.duplicates, r.reordered = 0, 0
	r.seen = [dupWindow / 64]uint64{}
}

// ext is the extended highest sequence number: A.3's extended_max.
func (r *Receiver) ext() uint64 { return r.cycles + uint64(r.maxSeq) }

func (r *Receiver) mark(e uint64) { r.seen[(e%dupWindow)/64] |= 1 << (e % 64) }

func (r *Receiver) marked(e uint64) bool { return r.seen[(e%dupWindow)/64]&(1<<(e%64)) != 0 }

// advance forgets the bits of the sequence numbers the window slides over
// as the highest moves from old to now.
func (r *Receiver) advance(old, now uint64) {
	if now-old >= dupWindow {
		r.seen = [dupWindow / 64]uint64{}
		return
	}
	for e := old + 1; e <= now; e++ {
		r.seen[(e%dupWindow)/64] &^= 1 << (e % 64)
	}
}

// Update processes one data packet with sequence number seq and RTP
// timestamp ts that arrived at now, and says what it was.
func (r *Receiver) Update(now spec.Time, seq uint16, ts uint32) Verdict {
	if !r.started {
		r.started = true
		if r.minSeq == 0 {
			// A.1 with MIN_SEQUENTIAL 0: the source is valid at once, so
			// the first packet is init_seq'd and counted, as the end of
			// probation does (A.1's creation code would otherwise see
			// seq 0 after max_seq 65535 as a wrap).
			r.initSeq(seq)
			return r.count(now, seq, ts, r.ext())
		}
		r.initSeq(seq)
		r.maxSeq = seq - 1
		r.probation = r.minSeq
	}
	udelta := seq - r.maxSeq
	switch {
	case r.probation > 0:
		if seq == r.maxSeq+1 {
			r.probation--
			r.maxSeq = seq
			if r.probation == 0 {
				r.initSeq(seq)
				return r.count(now, seq, ts, r.ext())
			}
		} else {
			r.probation = r.minSeq - 1
			r.maxSeq = seq
		}
		return Probation
	case udelta < maxDropout:
		old := r.ext()
		if seq < r.maxSeq {
			r.cycles += seqMod
		}
		r.maxSeq = seq
		if e := r.ext(); e > old {
			r.advance(old, e)
			return r.count(now, seq, ts, e)
		}
		return r.count(now, seq, ts, old) // udelta 0: the highest again
	case udelta <= seqMod-maxMisorder:
		if uint32(seq) == r.badSeq {
			// Two sequential packets: the sender restarted without
			// telling us; resynchronise as if this were the first.
			r.resyncs++
			r.initSeq(seq)
			return r.count(now, seq, ts, r.ext())
		}
		r.badSeq = uint32(seq+1) & (seqMod - 1)
		return Jump
	default:
		// Duplicate or reordered: at most maxMisorder behind the highest.
		e := r.cycles + uint64(seq)
		if seq > r.maxSeq {
			e -= seqMod // from before the last wrap
		}
		return r.count(now, seq, ts, e)
	}
}

// count is A.1's s->received++ for a packet with extended sequence number
// e, plus jitter, duplicate and RFC 4737 reordering bookkeeping.
func (r *Receiver) count(now spec.Time, seq uint16, ts uint32, e uint64) Verdict {
	r.received++
	r.jitterUpdate(now, ts)
	// behind is computed modulo 2^64, so a packet from before base_seq
	// in the first cycle (e "negative") is still just behind.
	behind := r.ext() - e
	if behind < dupWindow && r.marked(e) {
		r.duplicates++
		return Duplicate
	}
	r.mark(e)
	if behind != 0 {
		// RFC 4737 §3.3: below NextExp (the highest so far + 1) on its
		// first arrival.
		r.reordered++
		return Reordered
	}
	return Accepted
}

// arrival is now in RTP timestamp units (A.8's "arrival"), modulo 2^32.
func (r *Receiver) arrival(now spec.Time) uint32 {
	ns := uint64(now)
	sec, frac := ns/uint64(time.Second), ns%uint64(time.Second)
	return uint32(sec*uint64(r.clock) + frac*uint64(r.clock)/uint64(time.Second))
}

// jitterUpdate is A.8, in its integer form. The first packet only sets
// the reference transit time.
func (r *Receiver) jitterUpdate(now spec.Time, ts uint32) {
	transit := int32(r.arrival(now) - ts)
	if !r.haveTransit {
		r.transit, r.haveTransit = transit, true
		return
	}
	d := int64(transit - r.transit) // int32 arithmetic, wrapping as A.8's int does
	r.transit = transit
	if d < 0 {
		d = -d
	}
	r.jitter += uint64(d) - (r.jitter+8)>>4
}

// SourceStats is a receiver's statistics at one moment.
type SourceStats struct {
	SSRC uint32 `json:"ssrc"`
	// Valid is false while the source is on probation or before the
	// first packet; the other fields are then zero.
	Valid bool `json:"valid"`
	// BaseSeq is the first sequence number counted; ExtMax the extended
	// highest sequence number received (cycles<<16 + highest).
	BaseSeq uint16 `json:"baseSeq"`
	ExtMax  uint64 `json:"extMax"`
	Cycles  uint64 `json:"cycles"`
	// Expected, Received and Lost are A.3's: Received counts duplicates,
	// so Lost = Expected - Received can be negative.
	Expected int64  `json:"expected"`
	Received uint64 `json:"received"`
	Lost     int64  `json:"lost"`
	// FractionLost is the loss fraction of the last report interval, in
	// 1/256ths (A.3).
	FractionLost uint8  `json:"fractionLost"`
	Duplicates   uint64 `json:"duplicates"`
	Reordered    uint64 `json:"reordered"`
	// Jitter is A.8's interarrival jitter in timestamp units; JitterUs in
	// microseconds.
	Jitter   uint32 `json:"jitter"`
	JitterUs uint64 `json:"jitterUs"`
	Resyncs  uint64 `json:"resyncs,omitempty"`
}

// Stats returns the statistics now, without closing a report interval.
func (r *Receiver) Stats() SourceStats {
	if !r.started || r.probation > 0 {
		return SourceStats{}
	}
	ext := r.ext()
	expected := int64(ext - uint64(r.baseSeq) + 1)
	j := r.jitter >> 4
	if j > math.MaxUint32 {
		j = math.MaxUint32
	}
	return SourceStats{
		Valid:        true,
		BaseSeq:      uint16(r.baseSeq),
		ExtMax:       ext,
		Cycles:       r.cycles >> 16,
		Expected:     expected,
		Received:     r.received,
		Lost:         expected - int64(r.received),
		FractionLost: r.fraction,
		Duplicates:   r.duplicates,
		Reordered:    r.reordered,
		Jitter:       uint32(j),
		JitterUs:     j * 1_000_000 / uint64(r.clock),
		Resyncs:      r.resyncs,
	}
}

// Report closes a report interval (A.3) and returns the RR block for
// source ssrc, or nil if the source is not valid yet.
func (r *Receiver) Report(ssrc uint32) *rtcp.ReceptionReport {
	if !r.started || r.probation > 0 {
		return nil
	}
	expected := r.ext() - uint64(r.baseSeq) + 1
	expInt := expected - r.expectedPrior
	r.expectedPrior = expected
	recInt := r.received - r.receivedPrior
	r.receivedPrior = r.received
	r.fraction = 0
	if expInt != 0 && expInt > recInt {
		r.fraction = uint8(((expInt - recInt) << 8) / expInt)
	}
	s := r.Stats()
	return &rtcp.ReceptionReport{
		SSRC:               ssrc,
		FractionLost:       r.fraction,
		TotalLost:          clampLost(s.Lost),
		LastSequenceNumber: uint32(s.ExtMax),
		Jitter:             s.Jitter,
	}
}

// clampLost encodes cumulative loss as RR's 24-bit signed field, clamped
// as RFC 3550 §6.4.1 says.
func clampLost(l int64) uint32 {
	l = min(max(l, -0x800000), 0x7fffff)
	return uint32(l) & 0xffffff
}
