package tftp

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/netspec/netspec/spec"
)

// phase is where a transfer stands.
type phase uint8

const (
	phaseBinding phase = iota // waiting for the transfer's socket
	phaseRequest              // client: request sent, no answer yet
	phaseOACK                 // server, read request: OACK sent, waiting for ACK 0
	phaseData                 // blocks flow
	phaseDally                // receiver: final block acknowledged, re-acknowledging duplicates
)

// xferStats are what transfers count, summed over a machine's transfers.
type xferStats struct {
	dataSent, dataResent, acksSent, acksIn, staleAcks, dupData, gaps, timeouts, malformed, unknownTID uint64
}

// xfer is one transfer's state: the lock-step (windowsize 1) or windowed
// (RFC 7440) exchange of DATA and ACK, in either direction. Block
// numbers are kept as 64-bit counts; only their low 16 bits go on the
// wire, so a transfer longer than 65535 blocks wraps to block 0.
type xfer struct {
	sock    spec.Sock
	timer   spec.Timer
	peer    netip.AddrPort
	name    string
	sending bool // this end sends DATA
	ph      phase
	blksize int
	window  int
	timeout time.Duration
	retries int // retransmissions allowed without progress
	// firstRetries, if >= 0, replaces retries until the peer has
	// answered: a forged request aims only that many resends at a
	// victim.
	firstRetries int
	verified     bool
	reanswered   bool   // a quiet transfer answered a repeated request since its last timeout
	tries        int    // timeouts since the last progress
	first        []byte // the packet an unanswered phase resends (request, OACK)
	started      spec.Time
	st           *xferStats

	// Sending.
	src   io.ReaderAt
	size  int64
	acked uint64 // blocks acknowledged
	sent  uint64 // highest block sent in the current window
	last  uint64 // the final block: size/blksize + 1
	seen  uint64 // highest block ever sent, to tell resends apart

	// Receiving.
	got      uint64 // blocks received in order
	bytes    int64
	sinceAck int    // in-order blocks since the last ACK we sent
	lastAck  uint64 // the block our last ACK acknowledged
	gapAcked bool   // an ACK for a gap went out since the last progress
	dupAcked bool   // an ACK for a duplicate went out since then
	// early holds blocks that overtook a missing one, by block number
	// modulo its length (at most the window, and at most maxEarlyBytes).
	early      [][]byte
	earlyBlock []uint64
}

// Reordering: a block that arrives before the one expected is kept
// (within the window and maxEarlyBytes), and delivered once the gap
// fills. Only evidence of loss draws the ACK that restarts the sender's
// window: dupThresh blocks past the gap (TCP's three duplicate ACKs),
// the window's last block, or the file's.
const (
	dupThresh     = 3
	maxEarlyBytes = 4 << 20
)

// errFileChanged is a read-side failure: the file is shorter than it was
// when the transfer started.
var errFileChanged = errors.New("file changed during the transfer")

// errOversized is a DATA block longer than the negotiated block size.
var errOversized = errors.New("block longer than the block size")

// askedAgain answers a quiet transfer's client that repeats its request
// with the transfer's first answer, at most once between two timeouts
// (the first window, without options, also re-arms the timer).
func (x *xfer) askedAgain(now spec.Time, out []spec.Output) ([]spec.Output, error) {
	switch {
	case x.reanswered:
		return out, nil
	case x.ph == phaseRequest || x.ph == phaseOACK:
		x.reanswered = true
		return append(out, spec.Send(x.sock, x.peer, x.first)), nil
	case x.sending && x.acked == 0:
		// Without options the answer is the first window (DATA 1).
		x.reanswered = true
		return x.sendWindow(now, out)
	case !x.sending && x.got == 0:
		// A write's answer: its OACK, or ACK 0.
		x.reanswered = true
		return x.ack(out), nil
	}
	return out, nil
}

// quiet reports whether the transfer, bound, has resent what an
// unverified peer may draw (firstRetries times) and now only waits for
// its answer.
func (x *xfer) quiet() bool {
	return !x.verified && x.firstRetries >= 0 && x.ph != phaseBinding && x.tries >= x.firstRetries
}

// answered marks the peer verified. Its first answer starts the retry
// count afresh: timeouts spent waiting quietly for it must not leave
// the transfer proper with fewer resends, at the longest backoff.
func (x *xfer) answered() {
	if !x.verified {
		x.tries = 0
	}
	x.verified = true
}

// arm sets the retransmission timer: the timeout, doubled for each
// timeout since the last progress up to 8 times it (RFC 1123 4.2.3.2
// asks TFTP for exponential backoff), so a window that takes longer
// than the timeout to cross a slow link, or a round trip longer than
// it, is waited for rather than resent into the queue again and again.
func (x *xfer) arm(now spec.Time, out []spec.Output) []spec.Output {
	return append(out, spec.SetTimer(x.timer, now.Add(x.timeout<<min(x.tries, 3))))
}

// startSending prepares the sending side for a file of size bytes. The
// block count is fixed by the first window, once blksize is negotiated.
func (x *xfer) startSending(src io.ReaderAt, size int64) {
	x.sending = true
	x.src, x.size = src, size
}

// sendWindow sends blocks acked+1 up to the window's end (go-back-N, RFC
// 7440 §4: every window starts after the last acknowledged block) and
// arms the retransmission timer.
func (x *xfer) sendWindow(now spec.Time, out []spec.Output) ([]spec.Output, error) {
	x.ph = phaseData
	if x.last == 0 {
		x.last = uint64(x.size/int64(x.blksize)) + 1
	}
	end := min(x.acked+uint64(x.window), x.last)
	for b := x.acked + 1; b <= end; b++ {
		off := int64(b-1) * int64(x.blksize)
		n := int(min(int64(x.blksize), x.size-off))
		pkt := make([]byte, headerLen+n)
		AppendData(pkt[:0], uint16(b))
		if n > 0 {
			if k, err := x.src.ReadAt(pkt[headerLen:], off); k < n {
				if err == nil || err == io.EOF {
					err = errFileChanged
				}
				return out, err
			}
		}
		if b <= x.seen {
			x.st.dataResent++
		}
		x.seen = max(x.seen, b)
		x.st.dataSent++
		out = append(out, spec.Send(x.sock, x.peer, pkt))
	}
	x.sent = end
	return x.arm(now, out), nil
}

// onAck handles an ACK from the peer while sending. Only an ACK that
// acknowledges a block sent and not yet acknowledged moves the window;
// any other (a duplicate, a stale one from an earlier window) is counted
// and ignored: answering duplicates is the Sorcerer's Apprentice bug
// (RFC 1123 §4.2.3.1). It reports whether the final block is now
// acknowledged.
func (x *xfer) onAck(now spec.Time, block uint16, out []spec.Output) ([]spec.Output, bool, error) {
	x.st.acksIn++
	d := uint64(block - uint16(x.acked))
	if d == 0 || x.acked+d > x.sent {
		x.st.staleAcks++
		return out, false, nil
	}
	x.acked += d
	x.tries = 0
	x.verified = true
	if x.acked == x.last {
		return out, true, nil
	}
	out, err := x.sendWindow(now, out)
	return out, false, err
}

// dataResult says what a DATA packet did to a receiving transfer.
type dataResult uint8

const (
	dataIgnored dataResult = iota // a duplicate or a block past a gap
	dataAccepted
	dataFinal // the last block: the caller acknowledges it (or refuses it)
)

// onData handles a DATA packet while receiving. In-order blocks, and
// the early ones they let through, go to sink in order; the caller sends
// the ACK for a final block itself (after committing what it received).
// Duplicates are re-acknowledged (RFC 1350: the ACK may have been
// lost); a block past a gap is kept, and past the loss threshold draws
// one ACK for the last block received in order (RFC 7440 §4); a block
// longer than the negotiated size is an illegal operation.
func (x *xfer) onData(now spec.Time, block uint16, data []byte, sink func([]byte) error, out []spec.Output) ([]spec.Output, dataResult, error) {
	if x.ph == phaseDally {
		if block == uint16(x.got) {
			x.st.dupData++
			out = x.ack(out)
		}
		return out, dataIgnored, nil
	}
	if len(data) > x.blksize {
		return out, dataIgnored, fmt.Errorf("%w: block %d has %d bytes, the block size is %d", errOversized, block, len(data), x.blksize)
	}
	// Any DATA on the transfer's own port is the peer answering (a
	// forger off the path does not know the port): out of order or not,
	// it has the OACK, and the transfer is allowed its full Retries.
	// Verified only by in-order blocks, a write whose first two blocks
	// were lost gave up after FirstRetries (one) resend of the OACK.
	x.answered()
	d := block - uint16(x.got+1)
	switch {
	case d >= 0x8000: // behind: a duplicate
		// Only a block our last ACK covered says that ACK may be lost
		// (the sender timed out and resent); once is enough until
		// progress or our own timeout. Re-acknowledging a block the
		// sender has not seen acknowledged would restart its window
		// for every duplicate the network makes.
		x.st.dupData++
		if !x.dupAcked && uint16(x.lastAck)-block < 0x8000 {
			x.dupAcked = true
			out = x.ack(out)
		}
		return out, dataIgnored, nil
	case d != 0: // ahead: a block was lost or overtaken
		x.st.gaps++
		abs := x.got + 1 + uint64(d)
		if x.early == nil {
			x.early = make([][]byte, max(1, min(x.window, maxEarlyBytes/x.blksize)))
			x.earlyBlock = make([]uint64, len(x.early))
		}
		if int(d) < len(x.early) {
			i := abs % uint64(len(x.early))
			x.early[i], x.earlyBlock[i] = data, abs
		}
		if !x.gapAcked && (d >= dupThresh || abs >= x.lastAck+uint64(x.window) || len(data) < x.blksize) {
			x.gapAcked = true
			out = x.ack(out)
		}
		return out, dataIgnored, nil
	}
	for {
		if err := sink(data); err != nil {
			return out, dataIgnored, err
		}
		x.ph = phaseData
		x.verified = true
		x.got++
		x.bytes += int64(len(data))
		x.tries = 0
		x.gapAcked, x.dupAcked = false, false
		x.sinceAck++
		if len(data) < x.blksize {
			x.early, x.earlyBlock = nil, nil
			return out, dataFinal, nil
		}
		next, ok := x.takeEarly(x.got + 1)
		if !ok {
			break
		}
		data = next
	}
	if x.sinceAck >= x.window {
		out = x.ack(out)
	}
	return x.arm(now, out), dataAccepted, nil
}

// takeEarly returns block abs if it arrived early.
func (x *xfer) takeEarly(abs uint64) ([]byte, bool) {
	if len(x.early) == 0 {
		return nil, false
	}
	i := abs % uint64(len(x.early))
	if x.earlyBlock[i] != abs || x.early[i] == nil {
		return nil, false
	}
	b := x.early[i]
	x.early[i] = nil
	return b, true
}

// ack acknowledges the blocks received in order; before the first block
// that is the OACK, if the transfer answered a request with one.
func (x *xfer) ack(out []spec.Output) []spec.Output {
	x.sinceAck = 0
	x.lastAck = x.got
	x.st.acksSent++
	if x.got == 0 && x.first != nil {
		return append(out, spec.Send(x.sock, x.peer, x.first))
	}
	return append(out, spec.Send(x.sock, x.peer, AppendAck(make([]byte, 0, 4), uint16(x.got))))
}

// dally acknowledges the final block and waits, re-acknowledging
// duplicates of it, in case the ACK is lost (RFC 1350 §6).
func (x *xfer) dally(now spec.Time, d time.Duration, out []spec.Output) []spec.Output {
	x.ph = phaseDally
	out = x.ack(out)
	return append(out, spec.SetTimer(x.timer, now.Add(d)))
}

// expire handles the retransmission timer: it resends what the phase
// waits on, or reports that the transfer has timed out.
//
// A peer that has not answered yet (perhaps a forger's victim) draws at
// most firstRetries resends, but the transfer waits for it as long as
// for any peer, Retries timeouts with backoff: its answer may have been
// lost too, and a transfer given up after one resend (3 s) met the
// client's second ACK 0 (at 3 s after the OACK) closed, so a lost OACK
// and a lost ACK 0 failed a download.
func (x *xfer) expire(now spec.Time, out []spec.Output) ([]spec.Output, error) {
	if x.tries >= x.retries {
		if !x.verified && x.firstRetries >= 0 {
			return out, fmt.Errorf("timed out: no answer to %d sends", 1+min(x.retries, x.firstRetries))
		}
		return out, fmt.Errorf("timed out after %d retransmissions", x.tries)
	}
	quiet := x.quiet()
	x.tries++
	x.st.timeouts++
	x.reanswered = false
	if quiet {
		return x.arm(now, out), nil
	}
	switch {
	case x.ph == phaseRequest || x.ph == phaseOACK:
		out = append(out, spec.Send(x.sock, x.peer, x.first))
		return x.arm(now, out), nil
	case x.sending:
		return x.sendWindow(now, out)
	}
	x.dupAcked = false
	out = x.ack(out)
	return x.arm(now, out), nil
}

// errorTo returns an ERROR datagram from sock.
// fitError is an ERROR packet of at most limit bytes (limit <= 0: any
// size), for a source that is not validated, so that forged datagrams
// never draw more bytes than they carry: with msg if it fits, else with
// the code's name ("access violation": clients print the text, and an
// empty one tells a user nothing; code 0's "not defined" says nothing
// and goes bare), else with no text; nil if not even that fits. fits
// reports whether msg went in whole.
func fitError(code ErrCode, msg string, limit int) (b []byte, fits bool) {
	b = AppendError(nil, code, msg)
	if limit <= 0 || len(b) <= limit {
		return b, true
	}
	if b = AppendError(b[:0], code, code.String()); len(b) > limit || code == ErrUndefined {
		// For code 0, which names nothing, the message's first words
		// that fit ("octet" of "octet mode only", for a netascii
		// request of a short name: tftp-hpa printed "Error code 0:"
		// and nothing); a numbered code speaks for itself.
		b = AppendError(b[:0], code, "")
		if room := limit - len(b); room > 0 && code == ErrUndefined {
			m := msg[:min(room, len(msg))]
			if len(m) < len(msg) && msg[len(m)] != ' ' {
				m = m[:max(strings.LastIndexByte(m, ' '), 0)] // whole words only
			}
			b = AppendError(b[:0], code, strings.TrimRight(m, " :,"))
		}
	}
	if len(b) > limit {
		return nil, false
	}
	return b, false
}

func errorTo(sock spec.Sock, to netip.AddrPort, code ErrCode, msg string) spec.Output {
	return spec.Send(sock, to, AppendError(nil, code, msg))
}
