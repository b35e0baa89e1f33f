package rudp

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/spec"
)

type state uint8

// Session states; doc.go draws the diagram.
const (
	stSynSent state = iota + 1
	stEstablished
	stFinWait1
	stFinWait2
	stClosing
	stTimeWait
	stCloseWait
	stLastAck
	stClosed
)

var stateNames = [...]string{"", "SYN_SENT", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSING", "TIME_WAIT", "CLOSE_WAIT", "LAST_ACK", "CLOSED"}

func (s state) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// Segment states at the sender.
const (
	segInflight uint8 = iota + 1 // sent, counted in the pipe
	segLost                      // declared lost, queued for retransmission
	segSacked                    // the peer holds it
)

// sseg is a segment the sender has created and the peer has not yet
// cumulatively acknowledged.
type sseg struct {
	data   []byte // payload: a slice of the first datagram that carried it
	sentAt spec.Time
	tx     uint64 // index of its latest transmission
	ntx    uint32 // transmissions so far
	state  uint8
	fin    bool
}

// txRec is one transmission, in the order they happened: loss detection
// walks these (RFC 9002's packet and time thresholds).
type txRec struct {
	seq, tx uint64
	at      spec.Time
	first   bool // the segment's first transmission
}

// lostRec remembers a transmission declared lost.
type lostRec struct {
	tx, seq uint64
}

// undoState is what a reduction changed, to put back if it was spurious.
type undoState struct {
	valid          bool
	cwnd, ssthresh float64
	tx             uint64 // the lost transmission that caused it
}

// rseg is a segment received out of order.
type rseg struct {
	data []byte
	fin  bool
	ok   bool
}

// span is a range [s, e) of segments held out of order.
type span struct{ s, e uint64 }

// quickAcks is how many in-order segments at the start of a stream are
// acknowledged every second segment whatever AckEvery says, so slow
// start is not held back by a thin ack clock.
const quickAcks = 64

// lossThreshold is RFC 9002's kPacketThreshold.
const lossThreshold = 3

// synLostRTO is the RTO data starts with when a SYN had to be resent
// (RFC 6298 §5.7).
const synLostRTO = 3 * time.Second

// bwSamples is the length of the bandwidth max-filter.
const bwSamples = 8

// Conn is one session.
type Conn struct {
	ep     *Endpoint
	id     uint32
	peerID uint32
	peer   netip.AddrPort
	local  netip.Addr // our address the peer last sent to (Input.Local)
	client bool
	st     state
	dgram  int // largest datagram both sides accept
	dirty  bool
	armed  spec.Time
	rst    uint8 // RST reason to send before release
	reset  uint8 // the reason this side reset the session with
	closed bool  // the Closed event has been emitted

	// handshake (client)
	synDue   bool
	synAt    spec.Time
	synTries int
	cookie   Cookie

	// sender
	sndUna, sndNxt uint64
	segs           []sseg // ring indexed by seq
	pend           [][]byte
	pendLen        int
	outBytes       int // payload bytes in segs
	closeReq       bool
	finQueued      bool
	finSeq         uint64
	peerWnd        uint64
	inflight       int
	txNext         uint64
	txq            []txRec
	txHead         int
	lostq          []uint64
	lostHead       int
	largestAcked   uint64 // largest acknowledged transmission index + 1
	echoMax        uint64 // largest transmission index echoed + 1
	cwndLimited    bool
	// Reordering (RFC 8985): once a segment is acknowledged after one
	// sent later, loss is judged by time only, with a window of
	// (1+reoMult)/4 of the minimum RTT (at most SRTT); an echo naming a
	// transmission declared lost shows a spurious retransmission, which
	// widens the window by a quarter, up to 16 quarters, and undoes the
	// reduction it caused (RFC 4015).
	reordered bool
	reoMult   int
	lostRing  [64]lostRec
	lostIdx   int
	undo      undoState
	spurious  uint64

	// RFC 6298
	srtt, rttvar, rto, minRTT, latestRTT time.Duration
	hasRTT                               bool
	backoff, retries                     int
	rtoAt                                spec.Time
	// tail-loss probe (RFC 8985 §7): one probe per flight
	tlpAt   spec.Time
	tlpDone bool
	probe   bool

	// congestion control
	cwnd, ssthresh float64
	recoveryTx     uint64
	bwStart        spec.Time
	bwAcked        int
	bw             [bwSamples]float64 // segments per second
	bwIdx          int
	// HyStart++ (RFC 9406) rounds of RTT samples: a round ends when a
	// transmission sent after it began is acknowledged.
	roundEnd          uint64
	lastMin, roundMin time.Duration
	roundN            int
	// recent transmission outcomes, for lossRate
	lrLost, lrGood uint32

	// receiver
	rcvNext    uint64
	rbuf       []rseg
	ranges     []span
	lastRcvSeq uint64
	finRcvd    bool
	rcvFinSeq  uint64
	ackPending int
	ackNow     bool
	delackAt   spec.Time
	inOrder    uint64 // segments received in order, for quick acks
	lastAckAt  spec.Time
	echo       uint16 // stamp of the latest data arrival
	echoFresh  bool   // that arrival has not been echoed yet

	// liveness
	lastRecv spec.Time
	nextPing spec.Time
	pingNow  bool
	twAt     spec.Time

	segsSent, retrans, fastRetrans, rtos, lossEvents, noiseLosses uint64
}

func newConn(e *Endpoint, id uint32, peer netip.AddrPort, client bool) *Conn {
	cfg := &e.cfg
	return &Conn{
		ep:       e,
		id:       id,
		peer:     peer,
		client:   client,
		dgram:    cfg.MaxDatagram,
		peerWnd:  1,
		segs:     make([]sseg, 16),
		rbuf:     make([]rseg, 16),
		rto:      cfg.InitialRTO,
		cwnd:     float64(cfg.InitialWindow),
		ssthresh: float64(cfg.MaxWindow),
	}
}

func (c *Conn) timer() spec.Timer { return c.ep.tbase + spec.Timer(c.id) }

func (c *Conn) seg(seq uint64) *sseg { return &c.segs[seq&uint64(len(c.segs)-1)] }

// growSegs doubles the sender ring, keeping [sndUna, sndNxt) in place.
func (c *Conn) growSegs() {
	n := make([]sseg, 2*len(c.segs))
	for s := c.sndUna; s < c.sndNxt; s++ {
		n[s&uint64(len(n)-1)] = *c.seg(s)
	}
	c.segs = n
}

// rslot returns the receive-ring slot for seq, growing the ring.
func (c *Conn) rslot(seq uint64) *rseg {
	for seq-c.rcvNext >= uint64(len(c.rbuf)) {
		n := make([]rseg, 2*len(c.rbuf))
		for s := c.rcvNext; s < c.rcvNext+uint64(len(c.rbuf)); s++ {
			n[s&uint64(len(n)-1)] = c.rbuf[s&uint64(len(c.rbuf)-1)]
		}
		c.rbuf = n
	}
	return &c.rbuf[seq&uint64(len(c.rbuf)-1)]
}

func (c *Conn) curRTO() time.Duration {
	r := c.rto
	for i := 0; i < c.backoff && r < c.ep.cfg.MaxRTO; i++ {
		r *= 2
	}
	return min(r, c.ep.cfg.MaxRTO)
}

// sampleRTT folds in one RTT measurement (RFC 6298 §2). Callers only pass
// samples of segments sent once (Karn's rule).
func (c *Conn) sampleRTT(r time.Duration) {
	r = max(r, time.Microsecond)
	c.latestRTT = r
	if !c.hasRTT {
		c.hasRTT = true
		c.srtt, c.rttvar, c.minRTT = r, r/2, r
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4
		c.srtt = (7*c.srtt + r) / 8
		c.minRTT = min(c.minRTT, r)
	}
	c.rto = min(max(c.srtt+max(time.Millisecond, 4*c.rttvar), c.ep.cfg.MinRTO), c.ep.cfg.MaxRTO)
	c.backoff = 0
}

// pto is the tail-loss probe timeout: 2 SRTT, plus the peer's ack delay
// when one segment is in flight, never more than the RTO.
func (c *Conn) pto() time.Duration {
	if !c.hasRTT {
		return c.curRTO()
	}
	p := 2 * c.srtt
	if c.inflight <= 1 {
		p += c.ep.cfg.AckDelay
	}
	return min(max(p, time.Millisecond), c.curRTO())
}

// lossDelay is how long after a transmission, once a later one has been
// acknowledged, it is declared lost: RFC 9002's 9/8 of the larger of
// SRTT and the latest sample; once reordering has been seen, RFC 8985's
// latest RTT plus a reordering window of 1+reoMult quarters of the
// minimum RTT, at most SRTT.
func (c *Conn) lossDelay() time.Duration {
	if !c.hasRTT {
		return c.ep.cfg.InitialRTO * 9 / 8
	}
	if c.reordered {
		reo := min(time.Duration(1+c.reoMult)*c.minRTT/4, c.srtt)
		return max(max(c.latestRTT, c.srtt)+reo, time.Millisecond)
	}
	return max(max(c.srtt, c.latestRTT)*9/8, time.Millisecond)
}

func (c *Conn) cwndSegs() int { return max(int(c.cwnd), 1) }

func (c *Conn) maxBW() float64 {
	m := 0.0
	for _, b := range c.bw {
		m = max(m, b)
	}
	return m
}

// meanBW is the mean of the delivery-rate samples taken so far.
func (c *Conn) meanBW() float64 {
	sum, n := 0.0, 0
	for _, b := range c.bw {
		if b > 0 {
			sum += b
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}

// bdp estimates the bandwidth-delay product in segments (Westwood+).
func (c *Conn) bdp() float64 { return c.meanBW() * c.minRTT.Seconds() }

// onCongestion reacts to the loss of transmission tx: at most one
// reduction per window of data (NewReno recovery), to half or, with
// westwood, to the bandwidth-delay product (reduced); westwood leaves
// the window alone for a loss that looks like noise (noiseLoss).
func (c *Conn) onCongestion(tx uint64) {
	if tx < c.recoveryTx {
		return
	}
	if c.noiseLoss() {
		c.noiseLosses++
		c.ep.c.noiseLosses++
		return
	}
	c.undo = undoState{valid: true, cwnd: c.cwnd, ssthresh: c.ssthresh, tx: tx}
	c.recoveryTx = c.txNext
	c.lossEvents++
	c.ep.c.lossEvents++
	c.ssthresh = c.reduced()
	c.cwnd = min(c.cwnd, c.ssthresh)
}

// onSpurious learns that transmission tx, declared lost, arrived after
// all: the network reorders more than the window allowed for.
func (c *Conn) onSpurious(tx uint64) {
	c.spurious++
	c.ep.c.spurious++
	c.reordered = true
	c.reoMult = min(c.reoMult+1, 15)
	if c.undo.valid && c.undo.tx == tx {
		c.cwnd = max(c.cwnd, c.undo.cwnd)
		c.ssthresh = max(c.ssthresh, c.undo.ssthresh)
		c.undo.valid = false
	}
}

// reduced is the slow-start threshold after a loss: half the window
// (newreno), or, if larger, bdpGain times the estimated bandwidth-delay
// product (westwood: Westwood+'s estimate with BBR's probing gain), so a
// flow keeps its pipe full. Never going below half keeps AIMD's
// convergence: a flow that loses a packet while another flow's queue
// stands does not collapse to its share of an empty pipe.
func (c *Conn) reduced() float64 {
	r := max(c.cwnd/2, 2)
	if c.ep.cfg.CC == "westwood" {
		r = max(r, bdpGain*c.bdp())
	}
	return r
}

// bdpGain: how far above the bandwidth-delay product westwood keeps its
// window after a loss. BBR's probing gain of 1.25 needs a bottleneck
// queue of a quarter of the product; a gain of 2 (BBR's window gain,
// safe only with pacing) keeps a shallow queue overflowing: a fifth to
// a third of all transmissions were lost where the queue held less than
// one product.
const bdpGain = 1.25

// noiseLoss reports whether westwood takes a loss for noise rather than
// congestion: the RTT shows no queue that could have overflowed, and few
// recent transmissions were lost. Such a loss is repaired but leaves the
// window alone, in slow start too (BBR's startup also ignores loss below
// its threshold); a queue that builds, or losses above the tolerance,
// bring back the usual response. A gentler decrease would not do: at 1%
// random loss, AIMD holds sqrt(1.5/p) = 12 segments when it halves and
// 31 when it keeps 0.9, where loopback needs a hundred or more in flight
// to batch its system calls.
func (c *Conn) noiseLoss() bool {
	return c.ep.cfg.CC == "westwood" && !c.queued() && c.lossRate() < lossTolerance
}

// lossTolerance is the loss rate below which losses on a path without a
// queue may be noise (BBRv2's threshold, 2%).
const lossTolerance = 0.02

// lossMemory is, in segments, how far back lossRate looks: between one
// and two times this many recent outcomes. Short enough that the losses
// of a slow-start overshoot are soon forgotten (a flow judged by them
// halves while its competitors do not), long enough that 1% random loss
// rarely looks like 2%.
const lossMemory = 256

// noteOutcome counts one transmission's fate for lossRate, halving the
// counts once they span twice lossMemory so that old history fades.
func (c *Conn) noteOutcome(lost bool) {
	if lost {
		c.lrLost++
	} else {
		c.lrGood++
	}
	if c.lrLost+c.lrGood >= 2*lossMemory {
		c.lrLost /= 2
		c.lrGood /= 2
	}
}

// lossRate is the fraction of recent transmissions declared lost, as if
// at least lossMemory had been seen: a young session is not judged by
// its first few.
func (c *Conn) lossRate() float64 {
	return float64(c.lrLost) / float64(max(c.lrLost+c.lrGood, lossMemory))
}

// queued reports whether the RTT shows a queue: the smallest RTT of the
// current or the last round (HyStart++'s rounds) exceeds the path's
// minimum by more than clamp(min/8, 1ms, 16ms). HyStart++ (RFC 9406)
// ends slow start on min/8 within [4ms, 16ms]; 4 ms is too coarse here,
// where a loss with no queue behind it is forgiven: a 16-packet queue at
// 100 Mbit/s (1.9 ms) then hid congestion and let a flow lock another
// out. 1 ms is RFC 9002's timer granularity: on loopback, where the RTT
// grows with the window (the receiver's CPU is the bottleneck), it lets
// the window reach the hundred-odd segments that batching needs.
// Without samples it says yes, so the response is the conservative one.
func (c *Conn) queued() bool {
	r := c.roundMin
	if c.lastMin > 0 && (r == 0 || c.lastMin < r) {
		r = c.lastMin
	}
	if !c.hasRTT || r == 0 {
		return true
	}
	return r-c.minRTT > min(max(c.minRTT/8, time.Millisecond), 16*time.Millisecond)
}

// ccOnAck grows the window by the newly acknowledged segments that were
// sent after the last reduction, and samples the delivery rate.
func (c *Conn) ccOnAck(now spec.Time, newly, grow int) {
	c.bwAcked += newly
	if c.bwStart == 0 {
		c.bwStart = now
	} else if el := now.Sub(c.bwStart); el >= max(c.srtt, 25*time.Millisecond) {
		c.bw[c.bwIdx] = float64(c.bwAcked) / el.Seconds()
		c.bwIdx = (c.bwIdx + 1) % bwSamples
		c.bwStart, c.bwAcked = now, 0
	}
	if grow == 0 || !c.cwndLimited {
		return
	}
	if c.cwnd < c.ssthresh {
		c.cwnd += float64(grow)
	} else {
		c.cwnd += float64(grow) / c.cwnd
	}
	c.cwnd = min(c.cwnd, float64(c.ep.cfg.MaxWindow))
}

// finish ends the session: a Closed event with err, and a RST to the
// peer if reason is set.
func (c *Conn) finish(err string, reason uint8) {
	if c.st == stClosed {
		return
	}
	c.st = stClosed
	c.rst = reason
	if reason != 0 {
		c.reset = reason
	}
	c.report(err)
	c.release()
	c.ep.touch(c)
}

func (c *Conn) report(err string) {
	if !c.closed {
		c.closed = true
		c.ep.emit(Event{Kind: Closed, Conn: ConnID(c.id), Peer: c.peer, Err: err})
	}
}

// release drops the buffers of a session that will send no more data.
func (c *Conn) release() {
	c.segs, c.rbuf, c.pend, c.txq, c.lostq, c.ranges = nil, nil, nil, nil, nil, nil
	c.pendLen, c.outBytes, c.inflight, c.txHead, c.lostHead = 0, 0, 0, 0, 0
	c.sndUna = c.sndNxt
	c.rtoAt, c.delackAt = 0, 0
}

func (c *Conn) enterTimeWait(now spec.Time) {
	c.st = stTimeWait
	c.twAt = now.Add(c.ep.cfg.TimeWait)
	c.report("")
	c.release()
	c.ackNow = true // acknowledge the FIN that got us here
}

func (c *Conn) onRST(reason uint8) {
	switch c.st {
	case stTimeWait, stClosed:
		return // RFC 1337: TIME_WAIT ignores resets
	case stSynSent:
		c.finish("connection refused: "+ReasonText(reason), 0)
	default:
		c.finish("connection reset by peer: "+ReasonText(reason), 0)
	}
}

func (c *Conn) onSynAck(now spec.Time, p *Packet) {
	if c.st != stSynSent {
		return // a duplicate, or the answer to a retransmitted SYN
	}
	cfg := &c.ep.cfg
	c.peerID = p.Src
	c.cookie = Cookie{TS: p.TS, Src: c.id, MSS: uint16(cfg.MaxDatagram), Wnd: uint32(cfg.RecvWindow), MAC: p.MAC}
	c.dgram = min(cfg.MaxDatagram, int(p.MSS))
	c.peerWnd = uint64(p.Wnd)
	if c.synTries == 1 {
		c.sampleRTT(now.Sub(c.synAt))
	} else {
		// A SYN timed out, so no sample (Karn) and the path may be
		// slower than InitialRTO: RFC 6298 §5.7 has data start with an
		// RTO of 3 s, not the 1 s that just proved too short.
		c.rto = min(max(c.rto, synLostRTO), cfg.MaxRTO)
	}
	c.rtoAt, c.retries, c.backoff = 0, 0, 0
	c.lastRecv = now
	c.st = stEstablished
	if c.closeReq {
		c.st = stFinWait1
	}
	c.ep.c.opened++
	c.ep.emit(Event{Kind: Connected, Conn: ConnID(c.id), Peer: c.peer})
}

// onSegment handles a SEG for this session. It returns why, if the
// segment broke the protocol and ended the session.
func (c *Conn) onSegment(now spec.Time, p *Packet) string {
	switch c.st {
	case stSynSent, stClosed:
		return ""
	}
	c.ep.c.segsRcvd++
	c.lastRecv = now
	if p.Flags&FlagPING != 0 {
		c.ackNow = true
	}
	if c.st != stTimeWait {
		c.onAck(now, p)
	}
	if p.Flags&FlagDATA == 0 {
		return ""
	}
	switch c.st {
	case stClosed:
	case stTimeWait:
		c.ackNow = true // a retransmitted FIN: our last ack was lost
		if p.Flags&FlagFIN != 0 {
			// RFC 793 §3.9: acknowledge it and restart the TIME_WAIT
			// timeout, so the peer, still in LAST_ACK, keeps an answer
			// for as long as it retransmits; its own MaxRetries bound
			// how long that is.
			c.twAt = now.Add(c.ep.cfg.TimeWait)
		}
	default:
		return c.onData(now, p)
	}
	return ""
}

// onAck processes the cumulative acknowledgement, the SACK blocks and the
// window of a segment.
func (c *Conn) onAck(now spec.Time, p *Packet) {
	ack := expand(c.sndUna, p.Ack)
	if ack > c.sndNxt {
		c.ep.c.badAcks++
		return
	}
	c.peerWnd = uint64(p.Wnd)
	c.echoSample(now, p)
	newly, grow := 0, 0
	prevLargest := c.largestAcked
	account := func(s *sseg) {
		newly++
		c.noteOutcome(false)
		if s.ntx == 1 && s.tx+1 < prevLargest {
			c.reordered = true // acknowledged after a segment sent later
		}
		if s.tx+1 > c.largestAcked {
			c.largestAcked = s.tx + 1
		}
		if s.tx >= c.recoveryTx {
			grow++
		}
	}
	advanced := ack > c.sndUna
	for c.sndUna < ack {
		s := c.seg(c.sndUna)
		if s.state == segInflight {
			c.inflight--
		}
		if s.state != segSacked {
			account(s)
		}
		c.outBytes -= len(s.data)
		*s = sseg{}
		c.sndUna++
	}
	for i := 0; i < p.NSACK; i++ {
		st := max(expand(c.sndUna, p.SACK[i].Start), c.sndUna)
		en := min(expand(c.sndUna, p.SACK[i].End), c.sndNxt)
		for q := st; q < en; q++ {
			s := c.seg(q)
			if s.state == segSacked {
				continue
			}
			if s.state == segInflight {
				c.inflight--
			}
			s.state = segSacked
			account(s)
		}
	}
	if newly > 0 {
		c.ccOnAck(now, newly, grow)
		c.tlpDone = false
		c.tlpAt = 0
		if c.sndUna < c.sndNxt {
			c.tlpAt = now.Add(c.pto())
		}
	}
	if advanced {
		c.retries = 0
		c.rtoAt = 0
		if c.sndUna < c.sndNxt {
			c.rtoAt = now.Add(c.curRTO())
		}
		if c.finQueued && c.sndUna > c.finSeq {
			switch c.st {
			case stFinWait1:
				c.st = stFinWait2
			case stClosing:
				c.enterTimeWait(now)
				return
			case stLastAck:
				c.finish("", 0)
				return
			}
		}
	}
	c.detectLosses(now)
}

// echoSample takes an RTT sample from an acknowledgement that echoes the
// stamp of the transmission whose arrival triggered it. Only a newer echo
// than any before counts (an ack resent later, or one answering a
// keepalive, echoes nothing new), and, by Karn's rule, only the first
// transmission of a segment.
func (c *Conn) echoSample(now spec.Time, p *Packet) {
	if p.Flags&FlagECHO == 0 || c.txNext == 0 {
		return
	}
	ex := (c.txNext - 1) - uint64(uint16(c.txNext-1)-p.Echo)
	if ex >= c.txNext {
		return
	}
	for i := range c.lostRing {
		if r := &c.lostRing[i]; r.tx == ex && r.seq != 0 {
			r.seq = 0
			c.onSpurious(ex)
			break
		}
	}
	if ex+1 <= c.echoMax {
		return
	}
	c.echoMax = ex + 1
	q := c.txq[c.txHead:]
	i, found := slices.BinarySearchFunc(q, ex, func(r txRec, tx uint64) int { return cmp.Compare(r.tx, tx) })
	if found && q[i].first {
		r := now.Sub(q[i].at)
		c.sampleRTT(r)
		c.hystart(ex, r)
	}
}

// hystart applies RFC 9406's delay increase test to one RTT sample r of
// transmission tx: a round lasts until a transmission sent after it
// began is acknowledged; in slow start, if the smallest RTT of a round of
// at least 8 samples exceeds the previous round's by more than
// clamp(prev/8, 4ms, 16ms), the queue is building and slow start ends.
func (c *Conn) hystart(tx uint64, r time.Duration) {
	if tx >= c.roundEnd {
		c.lastMin, c.roundMin, c.roundN = c.roundMin, r, 0
		c.roundEnd = c.txNext
	}
	c.roundMin = min(c.roundMin, r)
	c.roundN++
	if c.cwnd < c.ssthresh && c.roundN >= 8 && c.lastMin > 0 && c.cwnd >= 16 &&
		c.roundMin >= c.lastMin+min(max(c.lastMin/8, 4*time.Millisecond), 16*time.Millisecond) {
		c.ssthresh = c.cwnd
	}
}

// detectLosses declares lost every transmission that three later ones
// have overtaken, or that is older than the loss delay while a later one
// has been acknowledged; each goes to the retransmission queue.
func (c *Conn) detectLosses(now spec.Time) {
	if c.largestAcked == 0 {
		return
	}
	la := c.largestAcked - 1
	delay := c.lossDelay()
	for c.txHead < len(c.txq) {
		r := c.txq[c.txHead]
		if r.seq >= c.sndUna {
			s := c.seg(r.seq)
			if s.tx == r.tx && s.state == segInflight {
				byCount := !c.reordered && r.tx+lossThreshold <= la
				if !(byCount || (r.tx < la && now.Sub(r.at) >= delay)) {
					break
				}
				s.state = segLost
				c.inflight--
				c.lostq = append(c.lostq, r.seq)
				c.remember(r.tx, r.seq)
				c.noteOutcome(true)
				c.onCongestion(r.tx)
			}
		}
		c.txq[c.txHead] = txRec{}
		c.txHead++
	}
	if c.txHead == len(c.txq) {
		c.txq, c.txHead = c.txq[:0], 0
	} else if c.txHead > 1024 && c.txHead > len(c.txq)/2 {
		n := copy(c.txq, c.txq[c.txHead:])
		c.txq, c.txHead = c.txq[:n], 0
	}
}

func (c *Conn) remember(tx, seq uint64) {
	c.lostRing[c.lostIdx] = lostRec{tx: tx, seq: seq | 1<<63} // never 0: 0 marks a free slot
	c.lostIdx = (c.lostIdx + 1) % len(c.lostRing)
}

// lossAt is when the oldest transmission will pass the time threshold.
func (c *Conn) lossAt() spec.Time {
	if c.largestAcked == 0 || c.txHead == len(c.txq) {
		return 0
	}
	r := c.txq[c.txHead]
	if r.tx+1 >= c.largestAcked {
		return 0
	}
	return r.at.Add(c.lossDelay())
}

// onData handles a data segment. It returns why, if the segment broke
// the protocol and ended the session.
func (c *Conn) onData(now spec.Time, p *Packet) string {
	cfg := &c.ep.cfg
	if c.rbuf == nil {
		return ""
	}
	seq := expand(c.rcvNext, p.Seq)
	fin := p.Flags&FlagFIN != 0
	c.echo, c.echoFresh = p.Stamp, true
	if c.finRcvd && (seq > c.rcvFinSeq || (fin && seq != c.rcvFinSeq)) {
		c.ep.c.outOfWindow++
		return "" // data past the peer's own FIN: ignore it
	}
	if seq < c.rcvNext {
		c.ep.c.dupSegs++
		c.ackNow = true
		return ""
	}
	if seq-c.rcvNext >= uint64(cfg.RecvWindow) {
		c.ep.c.outOfWindow++
		c.ackNow = true
		return ""
	}
	if fin && len(c.ranges) > 0 && c.ranges[len(c.ranges)-1].e > seq+1 {
		// A FIN below segments already held: the peer sent data past
		// its own end. Neither the data nor the FIN can be delivered
		// without handing the application bytes after PeerClosed or
		// dropping bytes SACK promised to keep, so the session ends.
		why := fmt.Sprintf("protocol error: FIN at %d below segments held up to %d", seq, c.ranges[len(c.ranges)-1].e-1)
		c.ep.c.protocolErrs++
		c.finish(why, ReasonProtocol)
		return why
	}
	if seq > c.rcvNext {
		slot := c.rslot(seq)
		if slot.ok {
			c.ep.c.dupSegs++
			c.ackNow = true
			return ""
		}
		*slot = rseg{data: p.Payload, fin: fin, ok: true}
		if fin {
			c.finRcvd, c.rcvFinSeq = true, seq
		}
		extends := len(c.ranges) > 0 && c.ranges[len(c.ranges)-1].e == seq
		c.addRange(seq)
		c.lastRcvSeq = seq
		if !extends || fin {
			// A new gap, or a segment below the highest received (a
			// retransmission, or reordering): acknowledge at once, so
			// the sender learns of the hole or its repair (RFC 9000
			// §13.2.1, RFC 5681 §4.2).
			c.ackNow = true
			return ""
		}
		// It extends the highest range beyond a gap already reported:
		// nothing the sender must hear at once. Acknowledging every such
		// segment would double the packet rate for as long as a hole is
		// open, which at 1% loss and a few hundred segments in flight is
		// always.
		c.scheduleAck(now)
		return ""
	}
	if fin {
		c.finRcvd, c.rcvFinSeq = true, seq
	}
	c.lastRcvSeq = seq
	c.rcvNext++
	c.deliver(now, p.Payload, fin)
	// Delivery stops at the FIN, the last byte the peer will send; the
	// check above keeps anything from being held past it.
	ended := fin
	filled := false
	for !ended && c.rbuf != nil && len(c.ranges) > 0 && c.ranges[0].s == c.rcvNext {
		end := c.ranges[0].e
		c.ranges = c.ranges[1:]
		for !ended && c.rbuf != nil && c.rcvNext < end {
			r := c.rslot(c.rcvNext)
			d, f := r.data, r.fin
			*r = rseg{}
			c.rcvNext++
			c.deliver(now, d, f)
			ended = f
		}
		filled = true
	}
	if c.rbuf == nil {
		return "" // the peer's FIN took us to TIME_WAIT
	}
	if len(c.ranges) == 0 {
		c.ranges = c.ranges[:0:0]
	}
	if filled || len(c.ranges) > 0 || fin {
		c.ackNow = true
		return ""
	}
	c.inOrder++
	c.scheduleAck(now)
	return ""
}

// scheduleAck counts a segment that needs no immediate acknowledgement
// and decides when it is acknowledged.
func (c *Conn) scheduleAck(now spec.Time) {
	cfg := &c.ep.cfg
	c.ackPending++
	switch {
	case c.ackPending >= cfg.AckMax,
		c.ackPending >= cfg.AckEvery && (c.inOrder <= quickAcks || now.Sub(c.lastAckAt) >= cfg.AckGap):
		c.ackNow = true
	case c.ackPending >= cfg.AckEvery:
		// Segments arrive faster than one per AckGap: let up to AckMax
		// share an acknowledgement, sent at the latest AckGap after the
		// last one.
		c.delackAt = c.lastAckAt.Add(cfg.AckGap)
	case c.delackAt == 0:
		c.delackAt = now.Add(cfg.AckDelay)
	}
}

// addRange records seq (above rcvNext) in the sorted out-of-order ranges.
func (c *Conn) addRange(seq uint64) {
	i := 0
	for i < len(c.ranges) && c.ranges[i].e < seq {
		i++
	}
	switch {
	case i < len(c.ranges) && c.ranges[i].e == seq:
		c.ranges[i].e++
		if i+1 < len(c.ranges) && c.ranges[i+1].s == seq+1 {
			c.ranges[i].e = c.ranges[i+1].e
			c.ranges = append(c.ranges[:i+1], c.ranges[i+2:]...)
		}
	case i < len(c.ranges) && c.ranges[i].s == seq+1:
		c.ranges[i].s--
	default:
		c.ranges = append(c.ranges, span{})
		copy(c.ranges[i+1:], c.ranges[i:])
		c.ranges[i] = span{seq, seq + 1}
	}
}

// deliver hands in-order bytes to the application.
func (c *Conn) deliver(now spec.Time, data []byte, fin bool) {
	if len(data) > 0 {
		c.ep.c.bytesRcvd += uint64(len(data))
		c.ep.emit(Event{Kind: Data, Conn: ConnID(c.id), Peer: c.peer, Data: data})
	}
	if !fin {
		return
	}
	c.ep.emit(Event{Kind: PeerClosed, Conn: ConnID(c.id), Peer: c.peer})
	c.ackNow = true
	switch c.st {
	case stEstablished:
		c.st = stCloseWait
	case stFinWait1:
		c.st = stClosing
	case stFinWait2:
		c.enterTimeWait(now)
	}
}

func (c *Conn) onTimer(now spec.Time) {
	cfg := &c.ep.cfg
	switch c.st {
	case stClosed:
		return
	case stTimeWait:
		if now >= c.twAt {
			c.st = stClosed
		}
		return
	case stSynSent:
		if now < c.rtoAt {
			return
		}
		if c.synTries > cfg.MaxRetries {
			c.ep.c.timedOut++
			c.finish(fmt.Sprintf("no answer from %v after %d SYNs", c.peer, c.synTries), 0)
			return
		}
		c.synDue = true
		return
	}
	if c.idleBound() && now.Sub(c.lastRecv) >= cfg.IdleTimeout {
		c.ep.c.timedOut++
		c.finish(fmt.Sprintf("idle timeout: nothing heard from the peer for %v", cfg.IdleTimeout), ReasonTimeout)
		return
	}
	if c.rtoAt != 0 && now >= c.rtoAt {
		c.onRTO(now)
		if c.st == stClosed {
			return
		}
	} else if c.tlpAt != 0 && now >= c.tlpAt && !c.tlpDone {
		// A probe due with nothing outstanding (an ack that advanced
		// over segments already SACKed does not reset it) is moot; it
		// must not stay due, or the timer would fire at once for ever.
		c.tlpAt = 0
		if c.sndUna < c.sndNxt {
			c.probe, c.tlpDone = true, true
			c.ep.c.tailProbes++
		}
	}
	if at := c.lossAt(); at != 0 && now >= at {
		c.detectLosses(now)
	}
	if c.delackAt != 0 && now >= c.delackAt {
		c.ackNow = true
	}
	if c.sndUna == c.sndNxt && now.Sub(c.lastRecv) >= cfg.KeepAlive && now >= c.nextPing {
		c.pingNow = true
		c.nextPing = now.Add(cfg.KeepAlive)
		c.ep.c.keepalives++
	}
}

// idleBound reports whether the idle timeout governs the session: only
// while nothing is unacknowledged. With data (or a FIN) outstanding the
// retransmission timer does, and a peer that stops answering is given up
// after MaxRetries backed-off RTOs with "connection timed out", the
// clear error: TCP's R2 for data (RFC 1122 §4.2.3.5), where keep-alives
// and their timeout are for idle connections only (§4.2.3.6). The idle
// timeout used to apply to every session, and since MaxRetries
// expiries take longer than IdleTimeout with the defaults (62.6 s from a
// 200 ms RTO, 99 s after a lost SYN, against 30 s), a sender facing a
// dead peer always ended with "idle timeout" and the retransmission
// abort never fired.
func (c *Conn) idleBound() bool { return c.sndUna == c.sndNxt || c.rtoAt == 0 }

// onRTO is the retransmission timer expiring (RFC 6298 §5.4-5.6): back
// off, mark everything in flight lost, and restart from a window of one.
func (c *Conn) onRTO(now spec.Time) {
	cfg := &c.ep.cfg
	if c.retries >= cfg.MaxRetries {
		c.ep.c.timedOut++
		c.finish(fmt.Sprintf("connection timed out: %d retransmissions unanswered", c.retries), ReasonTimeout)
		return
	}
	c.retries++
	c.backoff++
	c.rtos++
	c.ep.c.rtos++
	// Everything not known to have arrived goes back to the queue, in
	// sequence order from the oldest: the earliest hole first.
	c.lostq, c.lostHead = c.lostq[:0], 0
	for q := c.sndUna; q < c.sndNxt; q++ {
		s := c.seg(q)
		if s.state == segInflight || s.state == segLost || q == c.sndUna {
			s.state = segLost
			c.lostq = append(c.lostq, q)
		}
	}
	c.inflight = 0
	c.ssthresh = c.reduced()
	c.cwnd = 1
	c.recoveryTx = c.txNext
	c.rtoAt = now.Add(c.curRTO())
	c.tlpAt, c.tlpDone = 0, true
}

// deadline is the earliest time the session's timer must fire.
func (c *Conn) deadline() spec.Time {
	cfg := &c.ep.cfg
	switch c.st {
	case stClosed:
		return 0
	case stTimeWait:
		return c.twAt
	case stSynSent:
		return c.rtoAt
	}
	var d spec.Time
	if c.idleBound() {
		d = c.lastRecv.Add(cfg.IdleTimeout)
	}
	early := func(t spec.Time) {
		if t != 0 && (d == 0 || t < d) {
			d = t
		}
	}
	early(c.rtoAt)
	if !c.tlpDone {
		early(c.tlpAt)
	}
	early(c.lossAt())
	early(c.delackAt)
	if c.sndUna == c.sndNxt {
		early(max(c.lastRecv.Add(cfg.KeepAlive), c.nextPing))
	}
	return d
}

// arm sets the session's timer if it must fire earlier than it is set
// to; a timer that fires early finds nothing due and is re-armed.
func (c *Conn) arm(out []spec.Output) []spec.Output {
	d := c.deadline()
	if d == 0 || (c.armed != 0 && c.armed <= d) {
		return out
	}
	c.armed = d
	return append(out, spec.SetTimer(c.timer(), d))
}

// flush sends what the session may: its SYN, retransmissions, new
// segments within the congestion and flow-control windows, and a pure
// acknowledgement if one is still owed.
func (c *Conn) flush(now spec.Time, out []spec.Output) []spec.Output {
	switch c.st {
	case stClosed:
		if c.rst != 0 {
			out = c.ep.sendRST(out, c.local, c.peer, c.peerID, c.rst)
			c.rst = 0
		}
		return out
	case stSynSent:
		if c.synDue {
			out = c.sendSYN(now, out)
		}
		return out
	case stTimeWait:
		if c.ackNow {
			out = c.sendAck(now, out)
		}
		return out
	}
	for c.lostHead < len(c.lostq) && c.inflight < c.cwndSegs() {
		q := c.lostq[c.lostHead]
		c.lostHead++
		if q < c.sndUna {
			continue
		}
		if s := c.seg(q); s.state == segLost {
			out = c.transmit(now, q, s, c.inflight+1 >= c.cwndSegs(), out)
		}
	}
	if c.lostHead == len(c.lostq) {
		c.lostq, c.lostHead = c.lostq[:0], 0
	}
	if c.probe {
		out = c.sendProbe(now, out)
	}
	for c.canSendNew() {
		if c.inflight >= c.cwndSegs() {
			c.cwndLimited = true
			break
		}
		out = c.sendNew(now, false, out)
	}
	if !c.hasNew() {
		c.cwndLimited = c.inflight >= c.cwndSegs()
	}
	if c.ackNow || c.pingNow {
		out = c.sendAck(now, out)
	}
	return out
}

func (c *Conn) hasNew() bool {
	return !c.finQueued && (c.pendLen > 0 || c.closeReq || (c.client && c.sndNxt == 0))
}

func (c *Conn) canSendNew() bool {
	switch c.st {
	case stEstablished, stCloseWait, stFinWait1, stLastAck, stClosing:
	default:
		return false
	}
	if !c.hasNew() {
		return false
	}
	out := c.sndNxt - c.sndUna
	return out < max(c.peerWnd, 1) && out < uint64(c.ep.cfg.MaxWindow)
}

// header fills a SEG header with the current acknowledgement, window and
// as many SACK blocks as room bytes allow; it reports whether every block
// fitted.
func (c *Conn) header(p *Packet, room int) bool {
	p.Type = TypeSEG
	p.Dst = c.peerID
	p.Ack = uint32(c.rcvNext)
	p.Wnd = uint32(c.ep.cfg.RecvWindow)
	if c.echoFresh {
		p.Flags |= FlagECHO
		p.Echo = c.echo
		c.echoFresh = false
	}
	n := min(len(c.ranges), MaxSACK, room/BlockLen)
	if n == 0 {
		return len(c.ranges) == 0
	}
	// The block holding the latest arrival first (RFC 2018), then the
	// others from the highest down.
	first := len(c.ranges) - 1
	for i, r := range c.ranges {
		if c.lastRcvSeq >= r.s && c.lastRcvSeq < r.e {
			first = i
		}
	}
	put := func(r span) {
		p.SACK[p.NSACK] = Block{uint32(r.s), uint32(r.e)}
		p.NSACK++
	}
	put(c.ranges[first])
	for i := len(c.ranges) - 1; i >= 0 && p.NSACK < n; i-- {
		if i != first {
			put(c.ranges[i])
		}
	}
	return n == len(c.ranges)
}

func (c *Conn) sentAck(now spec.Time, all bool) {
	if all {
		c.ackNow = false
	}
	c.ackPending = 0
	c.delackAt = 0
	c.lastAckAt = now
}

// sendNew creates the next segment from the queued bytes and sends it.
// The last segment of a burst (the window is then full, or nothing more
// is queued, or probe) asks for an acknowledgement at once (PING), so a
// receiver that thins its acknowledgements never makes the sender wait.
func (c *Conn) sendNew(now spec.Time, probe bool, out []spec.Output) []spec.Output {
	seq := c.sndNxt
	if seq-c.sndUna >= uint64(len(c.segs)) {
		c.growSegs()
	}
	var p Packet
	p.Flags = FlagDATA
	room := c.dgram - SegHeaderLen
	if c.client && seq == 0 {
		p.Flags |= FlagCOOKIE
		p.Cookie = c.cookie
		room -= CookieLen
	}
	n := min(c.pendLen, room)
	if c.closeReq && n == c.pendLen {
		p.Flags |= FlagFIN
		c.finQueued, c.finSeq = true, seq
	}
	full := c.inflight+1 >= c.cwndSegs() || seq+1-c.sndUna >= c.peerWnd
	if probe || n == c.pendLen || (full && c.inflight < pingFlight*c.ep.cfg.AckMax) {
		p.Flags |= FlagPING
	}
	p.Seq = uint32(seq)
	all := c.header(&p, room-n)
	buf := make([]byte, p.Len()+n)
	off := p.putSEG(buf)
	for got := off; got < len(buf); {
		k := copy(buf[got:], c.pend[0])
		got += k
		if k == len(c.pend[0]) {
			c.pend[0] = nil
			c.pend = c.pend[1:]
		} else {
			c.pend[0] = c.pend[0][k:]
		}
	}
	if len(c.pend) == 0 {
		c.pend = c.pend[:0:0]
	}
	c.pendLen -= n
	c.outBytes += n
	c.sndNxt++
	s := c.seg(seq)
	*s = sseg{data: buf[off:], fin: p.Flags&FlagFIN != 0}
	c.ep.c.bytesSent += uint64(n)
	c.sentAck(now, all)
	return c.put(now, seq, s, buf, out)
}

// sendProbe sends the tail-loss probe: a new segment if the peer's
// window allows one, else the latest unacknowledged segment again,
// whatever the congestion window says.
func (c *Conn) sendProbe(now spec.Time, out []spec.Output) []spec.Output {
	c.probe = false
	if c.canSendNew() {
		return c.sendNew(now, true, out)
	}
	for q := c.sndNxt; q > c.sndUna; q-- {
		s := c.seg(q - 1)
		if s.state == segSacked {
			continue
		}
		if s.state == segInflight {
			c.inflight--
		}
		return c.transmit(now, q-1, s, true, out)
	}
	return out
}

// transmit resends segment q with a fresh header.
func (c *Conn) transmit(now spec.Time, q uint64, s *sseg, ping bool, out []spec.Output) []spec.Output {
	var p Packet
	p.Flags = FlagDATA
	if ping {
		p.Flags |= FlagPING
	}
	room := c.dgram - SegHeaderLen - len(s.data)
	if c.client && q == 0 {
		p.Flags |= FlagCOOKIE
		p.Cookie = c.cookie
		room -= CookieLen
	}
	if s.fin {
		p.Flags |= FlagFIN
	}
	p.Seq = uint32(q)
	all := c.header(&p, room)
	buf := make([]byte, p.Len()+len(s.data))
	off := p.putSEG(buf)
	copy(buf[off:], s.data)
	c.retrans++
	c.ep.c.retrans++
	if c.retries == 0 {
		c.fastRetrans++
		c.ep.c.fastRetrans++
	}
	c.sentAck(now, all)
	return c.put(now, q, s, buf, out)
}

// put records a transmission of segment q and sends it.
func (c *Conn) put(now spec.Time, q uint64, s *sseg, buf []byte, out []spec.Output) []spec.Output {
	s.state = segInflight
	s.ntx++
	s.tx = c.txNext
	c.txNext++
	s.sentAt = now
	c.inflight++
	c.txq = append(c.txq, txRec{seq: q, tx: s.tx, at: now, first: s.ntx == 1})
	binary.BigEndian.PutUint16(buf[20:], uint16(s.tx))
	if c.rtoAt == 0 {
		c.rtoAt = now.Add(c.curRTO())
	}
	if !c.tlpDone {
		c.tlpAt = now.Add(c.pto())
	}
	c.segsSent++
	c.ep.c.segsSent++
	return append(out, spec.SendFrom(c.ep.sock, c.local, c.peer, buf))
}

func (c *Conn) sendAck(now spec.Time, out []spec.Output) []spec.Output {
	var p Packet
	if c.pingNow {
		p.Flags = FlagPING
	}
	c.header(&p, MaxSACK*BlockLen)
	buf := make([]byte, p.Len())
	p.putSEG(buf)
	c.ackNow, c.pingNow = false, false
	c.sentAck(now, true)
	c.ep.c.acksSent++
	return append(out, spec.SendFrom(c.ep.sock, c.local, c.peer, buf))
}

func (c *Conn) sendSYN(now spec.Time, out []spec.Output) []spec.Output {
	cfg := &c.ep.cfg
	c.synDue = false
	c.synTries++
	c.synAt = now
	c.rtoAt = now.Add(min(cfg.InitialRTO<<min(c.synTries-1, 16), cfg.MaxRTO))
	p := Packet{Type: TypeSYN, Src: c.id, MSS: uint16(cfg.MaxDatagram), Wnd: uint32(cfg.RecvWindow)}
	if c.synTries > 1 {
		out = append(out, spec.Debug("rudp: SYN retransmitted", slog.String("peer", c.peer.String()), slog.Int("try", c.synTries)))
	}
	return append(out, spec.SendFrom(c.ep.sock, c.local, c.peer, p.Append(make([]byte, 0, SynLen))))
}

// pingFlight: a burst that fills the congestion or the peer's window
// asks for an acknowledgement at once only while fewer than pingFlight x
// AckMax segments are in flight. With more, the receiver acknowledges at
// least every AckMax of those ahead of it, each acknowledgement releases
// the next burst, and the flight never drains; a PING per burst would
// turn thinned acknowledgements back into one per burst.
const pingFlight = 2
