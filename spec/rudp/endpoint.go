package rudp

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/spec"
)

// ConnID names a session at one endpoint (its local session id).
type ConnID uint32

// EventKind says what an Event is.
type EventKind uint8

// Session events, in the order a session produces them.
const (
	// Accepted: a listening endpoint has a new session (Conn, Peer).
	Accepted EventKind = iota + 1
	// Connected: a dialed session completed its handshake.
	Connected
	// Data: bytes of the peer's stream, in order. Data is read-only and
	// stays valid.
	Data
	// PeerClosed: the peer finished sending (its FIN arrived in order).
	PeerClosed
	// Closed: the session is over for the application: Err is empty
	// after a graceful close, else says why it failed.
	Closed
)

var eventNames = [...]string{"", "accepted", "connected", "data", "peer-closed", "closed"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is something that happened to a session.
type Event struct {
	Kind EventKind
	Conn ConnID
	Peer netip.AddrPort
	Data []byte
	Err  string
}

// Errors of the application interface.
var (
	ErrNoSession = errors.New("rudp: no such session")
	ErrClosing   = errors.New("rudp: session is closing")
)

// MinDatagram is the smallest datagram size a peer may announce.
const MinDatagram = 128

// Endpoint is the session layer as a pure library: it multiplexes
// sessions by session id over one UDP socket of the machine that embeds
// it. The machine hands it the datagrams of that socket and the timers it
// owns (Handle), reads its events (Next), drives it (Dial, Write, Close,
// Abort) and, at the end of every step, lets it send (Flush).
type Endpoint struct {
	cfg     Config
	sock    spec.Sock
	tbase   spec.Timer
	listen  bool
	rng     spec.Rand
	mac     hash.Hash
	sum     [sha256.Size]byte
	conns   map[uint32]*Conn
	perAddr map[netip.Addr]int
	// local is the Local of the datagram being handled: answers, and a
	// session's datagrams, leave from the address the peer sent to.
	local   netip.Addr
	tomb    map[uint32]tombstone
	tombq   []tombEntry
	dirty   []*Conn
	events  []Event
	evHead  int
	pkt     Packet
	c       counters
	busyLog spec.Throttle // the warning that session limits refuse opens
}

type tombEntry struct {
	id  uint32
	end spec.Time
}

type counters struct {
	datagrams, malformed, oversized, strangers, unknown               uint64
	syns, synsRefused, cookiesSent, cookiesBad, cookiesStale, replays uint64
	opened, closed, aborted, timedOut, resetsSent, resetsRcvd         uint64
	segsSent, segsRcvd, acksSent, bytesSent, bytesRcvd                uint64
	retrans, fastRetrans, rtos, lossEvents, dupSegs, outOfWindow      uint64
	badAcks, keepalives, tailProbes, spurious, noiseLosses            uint64
	protocolErrs                                                      uint64
}

// TimerSpan is how many timer ids an endpoint uses from its base: one
// per possible session id.
const TimerSpan = 1 << 32

// NewEndpoint returns an endpoint that sends on sock and uses timers
// [timerBase, timerBase+TimerSpan). A listening endpoint accepts
// sessions; every endpoint may dial.
func NewEndpoint(cfg Config, sock spec.Sock, timerBase spec.Timer, listen bool) *Endpoint {
	cfg = cfg.withDefaults()
	e := &Endpoint{
		cfg:     cfg,
		sock:    sock,
		tbase:   timerBase,
		listen:  listen,
		rng:     spec.NewRand(cfg.Seed),
		conns:   map[uint32]*Conn{},
		perAddr: map[netip.Addr]int{},
		tomb:    map[uint32]tombstone{},
	}
	if listen {
		var secret [32]byte
		e.rng.Bytes(secret[:])
		e.mac = hmac.New(sha256.New, secret[:])
	}
	return e
}

// Config returns the configuration with defaults filled in.
func (e *Endpoint) Config() Config { return e.cfg }

// Sessions is the number of sessions the endpoint holds, including those
// lingering in TIME_WAIT.
func (e *Endpoint) Sessions() int { return len(e.conns) }

// Owns reports whether timer t belongs to the endpoint.
func (e *Endpoint) Owns(t spec.Timer) bool { return t >= e.tbase && uint64(t-e.tbase) < TimerSpan }

// Handle gives the endpoint an input if it is one of its own (a datagram
// on its socket or one of its timers) and reports whether it was.
func (e *Endpoint) Handle(now spec.Time, in spec.Input, out []spec.Output) ([]spec.Output, bool) {
	switch {
	case in.Kind == spec.InDatagram && in.Sock == e.sock:
		e.local = in.Local
		out = e.datagram(now, in.Addr, in.Data, out)
		e.local = netip.Addr{}
		return out, true
	case in.Kind == spec.InTimer && e.Owns(in.Timer):
		if c := e.conns[uint32(in.Timer-e.tbase)]; c != nil {
			c.armed = 0
			c.onTimer(now)
			e.touch(c)
		}
		return out, true
	}
	return out, false
}

// Next returns the next pending event.
func (e *Endpoint) Next() (Event, bool) {
	if e.evHead == len(e.events) {
		e.events, e.evHead = e.events[:0], 0
		return Event{}, false
	}
	ev := e.events[e.evHead]
	e.events[e.evHead] = Event{}
	e.evHead++
	return ev, true
}

func (e *Endpoint) emit(ev Event) { e.events = append(e.events, ev) }

func (e *Endpoint) touch(c *Conn) {
	if !c.dirty {
		c.dirty = true
		e.dirty = append(e.dirty, c)
	}
}

// Flush sends what the touched sessions may send, arms their timers and
// releases finished sessions. Call it at the end of every step.
func (e *Endpoint) Flush(now spec.Time, out []spec.Output) []spec.Output {
	for i := 0; i < len(e.dirty); i++ {
		c := e.dirty[i]
		c.dirty = false
		out = c.flush(now, out)
		if c.st == stClosed {
			out = e.remove(now, c, out)
		} else {
			out = c.arm(out)
		}
	}
	clear(e.dirty)
	e.dirty = e.dirty[:0]
	for len(e.tombq) > 0 && e.tombq[0].end <= now {
		if e.tomb[e.tombq[0].id].end == e.tombq[0].end {
			delete(e.tomb, e.tombq[0].id)
		}
		e.tombq = e.tombq[1:]
	}
	return out
}

// tombstone is a closed session's id, kept for CookieLifetime; reset is
// the reason this side reset the session with (0: it closed gracefully).
type tombstone struct {
	end   spec.Time
	reset uint8
}

func (e *Endpoint) remove(now spec.Time, c *Conn, out []spec.Output) []spec.Output {
	if e.conns[c.id] != c {
		return out
	}
	delete(e.conns, c.id)
	if !c.client {
		a := c.peer.Addr()
		if e.perAddr[a]--; e.perAddr[a] <= 0 {
			delete(e.perAddr, a)
		}
		// A replayed cookie must not bring the session back.
		end := now.Add(e.cfg.CookieLifetime)
		e.tomb[c.id] = tombstone{end: end, reset: c.reset}
		e.tombq = append(e.tombq, tombEntry{c.id, end})
	}
	e.c.closed++
	return append(out, spec.CancelTimer(c.timer()))
}

// Dial opens a session to peer. Bytes written before the handshake
// completes are sent after it.
//
// The session's id is its only nonce (segments are numbered from 0), so
// it mixes the time of the dial into the seeded random draw: a machine
// restarted from the same config (the simulator's crash and restart, or
// a process given a fixed --seed) draws another id, and an answer to the
// dial of its previous life cannot be taken for an answer to this one
// (it was, and the request went out as a copy of a segment the server
// already had: the session hung).
func (e *Endpoint) Dial(now spec.Time, peer netip.AddrPort) ConnID {
	var id uint32
	for id == 0 || e.conns[id] != nil {
		id = e.rng.Uint32() ^ uint32(spec.Mix(uint64(now), 0))
	}
	c := newConn(e, id, peer, true)
	c.st = stSynSent
	c.synDue = true
	e.conns[id] = c
	e.touch(c)
	return ConnID(id)
}

// Write queues p on session id's stream. The endpoint keeps p until the
// peer acknowledges it: the caller must not modify it. Callers pace
// themselves with Buffered.
func (e *Endpoint) Write(id ConnID, p []byte) error {
	c := e.conns[uint32(id)]
	if c == nil || c.st == stClosed {
		return ErrNoSession
	}
	if c.closeReq || c.st == stTimeWait {
		return ErrClosing
	}
	if len(p) == 0 {
		return nil
	}
	c.pend = append(c.pend, p)
	c.pendLen += len(p)
	e.touch(c)
	return nil
}

// Buffered is how many bytes written to session id the peer has not yet
// acknowledged.
func (e *Endpoint) Buffered(id ConnID) int {
	if c := e.conns[uint32(id)]; c != nil {
		return c.pendLen + c.outBytes
	}
	return 0
}

// Close ends session id's stream after the queued bytes (a FIN); the
// session closes once the peer has closed too.
func (e *Endpoint) Close(id ConnID) {
	c := e.conns[uint32(id)]
	if c == nil || c.closeReq {
		return
	}
	c.closeReq = true
	switch c.st {
	case stEstablished:
		c.st = stFinWait1
	case stCloseWait:
		c.st = stLastAck
	}
	e.touch(c)
}

// Abort resets session id at once: a RST goes to the peer and a Closed
// event with reason follows.
func (e *Endpoint) Abort(id ConnID, reason string) {
	if c := e.conns[uint32(id)]; c != nil && c.st != stClosed {
		e.c.aborted++
		c.finish(reason, ReasonAbort)
	}
}

// Shutdown resets every session, as a server does when it stops.
func (e *Endpoint) Shutdown(reason string) {
	ids := make([]uint32, 0, len(e.conns))
	for id := range e.conns {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		if c := e.conns[id]; c.st != stClosed && c.st != stTimeWait {
			c.finish(reason, ReasonShutdown)
		} else {
			c.st = stClosed
			e.touch(c)
		}
	}
}

// Peer returns session id's peer address.
func (e *Endpoint) Peer(id ConnID) netip.AddrPort {
	if c := e.conns[uint32(id)]; c != nil {
		return c.peer
	}
	return netip.AddrPort{}
}

// Stats describes one session.
type Stats struct {
	State          string        `json:"state"`
	SRTT           time.Duration `json:"srtt"`
	MinRTT         time.Duration `json:"minRTT"`
	RTO            time.Duration `json:"rto"`
	Cwnd           float64       `json:"cwnd"`
	Ssthresh       float64       `json:"ssthresh"`
	Inflight       int           `json:"inflight"`
	SegsSent       uint64        `json:"segsSent"`
	Retrans        uint64        `json:"retrans"`
	FastRetrans    uint64        `json:"fastRetrans"`
	RTOs           uint64        `json:"rtos"`
	LossEvents     uint64        `json:"lossEvents"`
	BandwidthBytes float64       `json:"bandwidth"` // estimated bytes/s
}

// Stats returns session id's statistics.
func (e *Endpoint) Stats(id ConnID) (Stats, bool) {
	c := e.conns[uint32(id)]
	if c == nil {
		return Stats{}, false
	}
	return Stats{
		State: c.st.String(), SRTT: c.srtt, MinRTT: c.minRTT, RTO: c.curRTO(),
		Cwnd: c.cwnd, Ssthresh: c.ssthresh, Inflight: c.inflight,
		SegsSent: c.segsSent, Retrans: c.retrans, FastRetrans: c.fastRetrans, RTOs: c.rtos,
		LossEvents: c.lossEvents, BandwidthBytes: c.maxBW() * float64(c.dgram-SegHeaderLen),
	}, true
}

// Counters implements spec.Inspector.
func (e *Endpoint) Counters() []spec.Counter {
	c := &e.c
	return []spec.Counter{
		{Name: "rudp_datagrams", Value: c.datagrams},
		{Name: "rudp_malformed", Value: c.malformed},
		{Name: "rudp_oversized", Value: c.oversized},
		{Name: "rudp_wrong_peer", Value: c.strangers},
		{Name: "rudp_unknown_session", Value: c.unknown},
		{Name: "rudp_syns", Value: c.syns},
		{Name: "rudp_syns_refused", Value: c.synsRefused},
		{Name: "rudp_cookies_sent", Value: c.cookiesSent},
		{Name: "rudp_cookies_bad", Value: c.cookiesBad},
		{Name: "rudp_cookies_stale", Value: c.cookiesStale},
		{Name: "rudp_cookie_replays", Value: c.replays},
		{Name: "rudp_sessions_opened", Value: c.opened},
		{Name: "rudp_sessions_closed", Value: c.closed},
		{Name: "rudp_sessions_aborted", Value: c.aborted},
		{Name: "rudp_sessions_timed_out", Value: c.timedOut},
		{Name: "rudp_resets_sent", Value: c.resetsSent},
		{Name: "rudp_resets_received", Value: c.resetsRcvd},
		{Name: "rudp_segments_sent", Value: c.segsSent},
		{Name: "rudp_segments_received", Value: c.segsRcvd},
		{Name: "rudp_acks_sent", Value: c.acksSent},
		{Name: "rudp_payload_bytes_sent", Value: c.bytesSent},
		{Name: "rudp_payload_bytes_received", Value: c.bytesRcvd},
		{Name: "rudp_retransmits", Value: c.retrans},
		{Name: "rudp_fast_retransmits", Value: c.fastRetrans},
		{Name: "rudp_rto_expirations", Value: c.rtos},
		{Name: "rudp_loss_events", Value: c.lossEvents},
		{Name: "rudp_duplicate_segments", Value: c.dupSegs},
		{Name: "rudp_out_of_window", Value: c.outOfWindow},
		{Name: "rudp_bad_acks", Value: c.badAcks},
		{Name: "rudp_keepalives", Value: c.keepalives},
		{Name: "rudp_tail_probes", Value: c.tailProbes},
		{Name: "rudp_spurious_retransmits", Value: c.spurious},
		{Name: "rudp_noise_losses", Value: c.noiseLosses},
		{Name: "rudp_protocol_errors", Value: c.protocolErrs},
	}
}

func (e *Endpoint) drop(out []spec.Output, ctr *uint64, why string, from netip.AddrPort) []spec.Output {
	*ctr++
	return append(out, spec.Debug("rudp: dropped datagram: "+why, slog.String("from", from.String())))
}

// datagram demultiplexes one received datagram.
func (e *Endpoint) datagram(now spec.Time, from netip.AddrPort, b []byte, out []spec.Output) []spec.Output {
	e.c.datagrams++
	if len(b) > e.cfg.MaxDatagram {
		return e.drop(out, &e.c.oversized, "larger than the announced maximum", from)
	}
	if from.Port() == 0 {
		return e.drop(out, &e.c.malformed, "source port 0", from)
	}
	p := &e.pkt
	if err := Decode(b, p); err != nil {
		return e.drop(out, &e.c.malformed, err.Error(), from)
	}
	switch p.Type {
	case TypeSYN:
		return e.syn(now, from, p, out)
	case TypeSYNACK:
		c := e.conns[p.Dst]
		if c == nil || !c.client || c.peer != from {
			return e.drop(out, &e.c.strangers, "SYN-ACK for no session of ours", from)
		}
		if p.MSS < MinDatagram {
			return e.drop(out, &e.c.malformed, "SYN-ACK announces a tiny datagram size", from)
		}
		c.local = e.local
		c.onSynAck(now, p)
		e.touch(c)
	case TypeSEG:
		c := e.conns[p.Dst]
		if c == nil {
			return e.unknownSeg(now, from, p, b, out)
		}
		if c.peer != from {
			return e.drop(out, &e.c.strangers, "segment from an address that is not the session's peer", from)
		}
		c.local = e.local
		if why := c.onSegment(now, p); why != "" {
			out = append(out, spec.Debug("rudp: session reset: "+why, slog.String("peer", from.String())))
		}
		e.touch(c)
	case TypeRST:
		c := e.conns[p.Dst]
		if c == nil || c.peer != from {
			// A peer that restarted no longer knows our id: its RST
			// names the id we sent to, its own old one.
			c = e.byPeer(from, p.Dst)
		}
		if c == nil {
			return e.drop(out, &e.c.strangers, "RST for no session", from)
		}
		e.c.resetsRcvd++
		c.onRST(p.Reason)
		e.touch(c)
	}
	return out
}

// syn answers a SYN statelessly: a SYN-ACK whose cookie authenticates the
// client's address, id and parameters, or a RST if there is no room.
// Either answer is smaller than the SYN.
func (e *Endpoint) syn(now spec.Time, from netip.AddrPort, p *Packet, out []spec.Output) []spec.Output {
	if !e.listen {
		return e.drop(out, &e.c.strangers, "SYN to an endpoint that does not listen", from)
	}
	e.c.syns++
	if p.MSS < MinDatagram {
		return e.drop(out, &e.c.malformed, "SYN announces a tiny datagram size", from)
	}
	if len(e.conns) >= e.cfg.MaxSessions || e.perAddr[from.Addr()] >= e.cfg.MaxPerAddr {
		return e.refuseBusy(now, from, p.Src, out)
	}
	ts := cookieClock(now)
	id, mac := e.cookie(from, p.Src, ts, p.MSS, p.Wnd)
	e.c.cookiesSent++
	r := Packet{Type: TypeSYNACK, Dst: p.Src, Src: id, MSS: uint16(e.cfg.MaxDatagram), Wnd: uint32(e.cfg.RecvWindow), TS: ts, MAC: mac}
	return append(out, spec.SendFrom(e.sock, e.local, from, r.Append(make([]byte, 0, SynAckLen))))
}

// refuseBusy answers an open that a session limit refuses with a RST
// (busy), and logs a warning at most once a second that says which limit
// and how many opens were refused since the last.
func (e *Endpoint) refuseBusy(now spec.Time, from netip.AddrPort, src uint32, out []spec.Output) []spec.Output {
	e.c.synsRefused++
	if refused, ok := e.busyLog.Hit(now, time.Second); ok {
		limit, n := "sessions", e.cfg.MaxSessions
		if len(e.conns) < e.cfg.MaxSessions {
			limit, n = "sessions per address", e.cfg.MaxPerAddr
		}
		out = append(out, spec.Warn("rudp: session limit reached, refusing opens", slog.String("limit", limit), slog.Int("max", n),
			slog.String("from", from.String()), slog.Uint64("refused", refused)))
	}
	return e.sendRST(out, e.local, from, src, ReasonBusy)
}

// cookieClock is the cookie timestamp: milliseconds, modulo 2^32 (it
// wraps every 49 days; CookieLifetime is far shorter).
func cookieClock(now spec.Time) uint32 { return uint32(int64(now) / int64(time.Millisecond)) }

// cookie computes the server's session id and the MAC for a handshake:
// HMAC-SHA256(secret, addr16 | port | src | ts | mss | wnd); the id is its
// first 4 bytes, the MAC the next 16.
func (e *Endpoint) cookie(from netip.AddrPort, src, ts uint32, mss uint16, wnd uint32) (uint32, [MACLen]byte) {
	var b [32]byte
	a := from.Addr().Unmap().As16()
	copy(b[:16], a[:])
	binary.BigEndian.PutUint16(b[16:], from.Port())
	binary.BigEndian.PutUint32(b[18:], src)
	binary.BigEndian.PutUint32(b[22:], ts)
	binary.BigEndian.PutUint16(b[26:], mss)
	binary.BigEndian.PutUint32(b[28:], wnd)
	e.mac.Reset()
	e.mac.Write(b[:])
	sum := e.mac.Sum(e.sum[:0])
	id := binary.BigEndian.Uint32(sum)
	if id == 0 {
		id = 1
	}
	var mac [MACLen]byte
	copy(mac[:], sum[4:])
	return id, mac
}

// unknownSeg handles a segment for no live session: the client's first
// segment carrying the cookie opens one; anything else is dropped, and
// answered with a RST if the sender had heard from us (it acknowledges
// data), so a peer that restarted, or dropped the session and lost its
// RST, tells its clients at once.
func (e *Endpoint) unknownSeg(now spec.Time, from netip.AddrPort, p *Packet, b []byte, out []spec.Output) []spec.Output {
	if ts, dead := e.tomb[p.Dst]; dead {
		if p.Flags&FlagCOOKIE != 0 {
			// A replayed (or retransmitted) cookie must not reopen it.
			e.c.replays++
		}
		if p.Flags&FlagCOOKIE != 0 || ts.reset == 0 {
			// After a graceful close, late segments of the peer's (its
			// TIME_WAIT is the one that answers them) are only late.
			return e.drop(out, &e.c.unknown, "segment for a session that has closed", from)
		}
		// We reset it, and the RST may have been lost: say so again (the
		// id was ours a moment ago, so the sender had heard from us).
		e.c.unknown++
		return e.sendRST(out, e.local, from, p.Dst, ts.reset)
	}
	if p.Flags&FlagCOOKIE == 0 || !e.listen {
		e.c.unknown++
		if p.Ack != 0 {
			return e.sendRST(out, e.local, from, p.Dst, ReasonUnknown)
		}
		return out
	}
	ck := &p.Cookie
	age := time.Duration(cookieClock(now)-ck.TS) * time.Millisecond
	if age > e.cfg.CookieLifetime {
		e.c.cookiesStale++
		return e.sendRST(out, e.local, from, ck.Src, ReasonCookie)
	}
	id, mac := e.cookie(from, ck.Src, ck.TS, ck.MSS, ck.Wnd)
	if id != p.Dst || !hmac.Equal(mac[:], ck.MAC[:]) || ck.MSS < MinDatagram {
		return e.drop(out, &e.c.cookiesBad, "bad cookie", from)
	}
	if len(e.conns) >= e.cfg.MaxSessions || e.perAddr[from.Addr()] >= e.cfg.MaxPerAddr {
		return e.refuseBusy(now, from, ck.Src, out)
	}
	c := newConn(e, id, from, false)
	c.local = e.local
	c.peerID = ck.Src
	c.dgram = min(e.cfg.MaxDatagram, int(ck.MSS))
	c.peerWnd = uint64(ck.Wnd)
	c.st = stEstablished
	c.lastRecv = now
	if p.Stamp == 0 {
		// The first transmission of segment 0 left the client as soon as
		// the SYN-ACK arrived: the cookie's age is one round trip, taken
		// before this session queued anything. An age of 0 says the
		// round trip took less than the clock's millisecond: 1ms is an
		// upper bound, and far better than no sample, which leaves a
		// server that sends little (its FIN) waiting InitialRTO for a
		// lost segment on a path of microseconds.
		c.sampleRTT(max(age, time.Millisecond))
	}
	e.conns[id] = c
	e.perAddr[from.Addr()]++
	e.c.opened++
	e.emit(Event{Kind: Accepted, Conn: ConnID(id), Peer: from})
	out = append(out, spec.Info("rudp: session opened", slog.String("peer", from.String()), slog.String("session", fmt.Sprintf("%08x", id))))
	c.onSegment(now, p)
	e.touch(c)
	return out
}

// byPeer finds the session with peer whose own id there is peerID. At
// most one matches, so the map's order does not matter.
func (e *Endpoint) byPeer(peer netip.AddrPort, peerID uint32) *Conn {
	for _, c := range e.conns {
		if c.peer == peer && c.peerID == peerID && peerID != 0 {
			return c
		}
	}
	return nil
}

// sendRST resets dst's session at to, from local (Output.Local): the
// address the peer sent to, which a session keeps (Conn.local) for the
// RST it sends when it ends later.
func (e *Endpoint) sendRST(out []spec.Output, local netip.Addr, to netip.AddrPort, dst uint32, reason uint8) []spec.Output {
	e.c.resetsSent++
	r := Packet{Type: TypeRST, Dst: dst, Reason: reason}
	return append(out, spec.SendFrom(e.sock, local, to, r.Append(make([]byte, 0, RstLen))))
}
