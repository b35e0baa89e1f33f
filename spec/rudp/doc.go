// Package rudp is a reliable, congestion-controlled session layer over
// UDP, as a pure library that a spec.Machine embeds: the transport of
// seed 002's file service. Where the seed resends every unacknowledged
// chunk every 100 ms over three fixed ports, rudp multiplexes many
// sessions over one UDP socket by session id, each a reliable ordered
// byte stream in both directions (like TCP), opened by a 3-way handshake
// whose server side keeps no state until the client proves it can
// receive, and closed by a 4-way teardown with a TIME_WAIT.
//
// # Wire format
//
// Every datagram starts with an 8-byte common header; integers are
// big-endian:
//
//	0      version   u8   1
//	1      type      u8   1 SYN, 2 SYN-ACK, 3 SEG, 4 RST
//	2      flags     u8   SEG only, else 0
//	3      aux       u8   SEG: number of SACK blocks; RST: reason; else 0
//	4-7    dst       u32  the receiver's session id (0 in a SYN)
//
// SYN (client -> server), exactly 64 bytes, so that nothing the server
// answers is larger than what it was sent:
//
//	8-11   src       u32  the client's session id, not 0: random, mixed
//	                      with the time of the dial, since it is the
//	                      session's only nonce (a client restarted with
//	                      the same seed must not draw the same one)
//	12-13  mss       u16  largest datagram the client accepts, >= 128
//	14-15  0         u16
//	16-19  wnd       u32  client's receive window, in segments
//	20-63  padding        zeros, ignored
//
// SYN-ACK (server -> client), 40 bytes:
//
//	8-11   src       u32  the server's session id
//	12-13  mss       u16  largest datagram the server accepts
//	14-15  0         u16
//	16-19  wnd       u32  server's receive window, in segments
//	20-23  ts        u32  server clock in milliseconds, modulo 2^32 (cookie timestamp)
//	24-39  mac       16 bytes  first 16 bytes after the id of the cookie HMAC
//
// The server keeps nothing for a SYN. It computes
// H = HMAC-SHA256(secret, client IP as 16 bytes | client port u16 |
// client id u32 | ts u32 | client mss u16 | client wnd u32); its session
// id is H[0:4] (1 if zero) and the mac is H[4:20]. When segment 0's
// first transmission (stamp 0) brings the cookie back, its age is one
// round trip measured before the session queued any data: the server's
// first RTT sample (1 ms if the age is 0: the clock is too coarse to say
// more than that). If it has no room
// (MaxSessions, MaxPerAddr) it answers with an 8-byte RST "busy", and
// logs a warning at most once a second counting the refusals.
//
// SEG (both directions, once the handshake is done), 24 bytes plus
// 8 per SACK block, 32 for a cookie echo, and the payload:
//
//	2      flags     u8   0x01 DATA   the segment occupies sequence number seq
//	                      0x02 FIN    seq is the sender's last sequence number
//	                      0x04 COOKIE a cookie echo follows the SACK blocks
//	                      0x08 PING   acknowledge at once (keepalive, end of a burst)
//	                      0x10 ECHO   echo is meaningful
//	3      nsack     u8   0..8
//	8-11   seq       u32  sequence number (segments, not bytes; from 0,
//	                      modulo 2^32) of this segment if DATA
//	12-15  ack       u32  cumulative: the next sequence number the sender
//	                      expects from the receiver
//	16-19  wnd       u32  segments beyond ack the sender will buffer
//	20-21  stamp     u16  the sender's transmission counter, modulo 2^16:
//	                      every transmission, retransmissions too, has its own
//	22-23  echo      u16  with ECHO, the stamp of the data segment whose arrival
//	                      this segment acknowledges; 0 otherwise
//	24-..  SACK      nsack x (start u32, end u32): the sender holds segments
//	                      [start, end) above ack; the block holding the latest
//	                      arrival comes first (RFC 2018)
//	..     cookie    with COOKIE, 32 bytes: ts u32 | client id u32 | client
//	                      mss u16 | 0 u16 | client wnd u32 | mac 16 bytes
//	..     payload   the stream bytes of segment seq (DATA only)
//
// A segment without DATA is a pure acknowledgement. SACK is binding: a
// receiver never discards what it has reported.
//
// The FIN's seq is the last the sender will use, so the application
// never sees data after PeerClosed: a receiver drops a segment above a
// FIN it holds, and delivery stops at the FIN. A FIN that arrives below
// segments the receiver already holds (it can neither deliver them after
// the end of the stream nor, SACK being binding, drop them) ends the
// session: Closed with a protocol error, and a RST "protocol error".
//
// RST, 8 bytes: aux is the reason (1 unknown session, 2 busy, 3 stale
// cookie, 4 aborted, 5 shutting down, 6 protocol error, 7 timed out). A
// RST is never answered.
//
// Decode drops, as malformed: unknown flag bits; a non-zero echo without
// ECHO; COOKIE, FIN or payload without DATA; a SACK block that is empty
// or spans more than 2^30; lengths that disagree with the flags. An
// endpoint also drops a datagram larger than its own MaxDatagram, and a
// SYN or SYN-ACK announcing an mss below 128, without answering. A pure
// acknowledgement carries stamp 0, and wnd is always the receiver's
// constant RecvWindow.
//
// # Handshake
//
//	client                                      server
//	SYN(src=C, mss, wnd, padded to 64)  ---->   no state; cookie H
//	                                    <----   SYN-ACK(dst=C, src=S, ts, mac)
//	ESTABLISHED
//	SEG(dst=S, seq 0, COOKIE, data...)  ---->   verify H, age <= CookieLifetime;
//	                                            allocate; ESTABLISHED
//	                                    <----   SEG(ack 1, ...)
//
// The client's segment 0 always carries the cookie (and may carry data,
// or none); it is retransmitted like any segment until acknowledged, so
// a lost third message is recovered like lost data. Segments overtaking
// segment 0 find no session and are dropped silently, to be resent. A
// spoofed SYN therefore costs the server one HMAC and one 40-byte answer
// (or 8-byte RST) to a 64-byte datagram; a cookie echo older than
// CookieLifetime is answered with an 8-byte RST (reason cookie: the age
// is checked before the MAC, which it spares the server, so a forged old
// one draws the RST too, 8 bytes for at least 56); a fresh one with a bad
// MAC is dropped; a replayed one finds the closed session's tombstone (kept for
// CookieLifetime) and is dropped too. A segment for an unknown session
// whose ack is not 0 (its sender has heard from us) is answered with a
// RST, so a client learns at once that a server restarted; so is one for
// a session in its tombstone that this side reset (an abort, a timeout:
// the RST may have been lost), with the same reason, while late segments
// of a session closed gracefully are dropped.
//
// Every answer, and every datagram of a session, leaves from the address
// the peer last sent to (Input.Local, on an endpoint bound to an
// unspecified address), so a multi-homed server answers from the address
// it was dialed on.
//
// # Data transfer
//
// Selective repeat. The sender keeps every segment until it is
// cumulatively acknowledged and retransmits only those it believes lost:
// a transmission is lost when one sent three or more after it has been
// acknowledged (cumulatively or by SACK), or when it is older than 9/8 of
// max(smoothed RTT, latest RTT) while a later one has been (RFC 9002 §6.1, "fast
// retransmit on SACK evidence"). Retransmissions are transmissions like
// any other, so a lost retransmission is detected the same way. Once the
// network has been seen to reorder (a segment acknowledged after one sent
// later), the count of three no longer applies and loss is judged by time
// only, after max(latest RTT, SRTT) plus a reordering window of a quarter of the
// minimum RTT (RFC 8985), widened by a quarter for every spurious
// retransmission, up to four minimum RTTs and never beyond SRTT. A retransmission is known to be spurious
// when an acknowledgement echoes the stamp of the transmission it
// replaced; the window reduction that loss caused is then undone (RFC
// 4015).
//
// RTT: an acknowledgement whose echo names a transmission newer than any
// echoed before gives a sample, if that transmission was the segment's
// first (Karn's rule); the echo makes acknowledgements that were resent
// late (after a lost one, or in answer to a keepalive) give no sample.
// The RTO follows RFC 6298: SRTT, RTTVAR, RTO = SRTT + max(1ms, 4
// RTTVAR) within [MinRTO, MaxRTO], doubled on every expiry and kept
// doubled until a new sample (Karn). Before the first sample it is
// InitialRTO, and 3 s if a SYN had to be resent (RFC 6298 §5.7). An
// expiry marks everything unacknowledged lost and restarts from a window
// of one. Before the RTO, a tail-loss probe (RFC 8985 §7) at 2 SRTT (plus
// AckDelay when only one segment is in flight, and never after the RTO)
// sends a new segment if the windows allow one and otherwise resends the
// newest unacknowledged one, once per flight, so a lost tail is found
// without waiting for the RTO. The expiry that follows MaxRetries
// unanswered retransmissions without progress aborts the session with
// "connection timed out: N retransmissions unanswered" (and a RST), the
// (MaxRetries+1)th in a row. With the defaults that is
// 62.6 s after the first unanswered transmission from a 200 ms RTO
// (0.2+0.4+...+6.4, then 10 s steps), 99 s from the 3 s of a lost SYN.
//
// Which timeout ends a session whose peer has gone silent depends on
// what it has outstanding, as in TCP (RFC 1122 §4.2.3.5-6): with data or
// a FIN unacknowledged, only the retransmission limit above (TCP's R2);
// with nothing unacknowledged, keepalives and IdleTimeout. IdleTimeout
// (30 s) is shorter than the retransmission limit: applied to both, it
// would always come first and a sender facing a dead peer would never
// see the retransmission error.
//
// Congestion control: NewReno-style AIMD in segments with slow start
// from InitialWindow, one reduction per window of data (a loss of a
// segment sent before the last reduction does not reduce again), and
// congestion avoidance of one segment per RTT. Slow start ends early when
// the RTT of a round grows (HyStart++, RFC 9406), so it does not flood
// deep queues. "newreno" halves on loss. The default, "westwood", tells
// random loss from congestion, because random loss at a rate p holds an
// AIMD window near sqrt(1.5/p) whatever the path: 12 segments at 1%,
// which on loopback (a pipe of a segment or two, whose RTT grows with the
// window because the receiver's CPU is the bottleneck) costs 40% of the
// goodput. A loss is taken for noise when the RTT shows no queue that
// could have overflowed (the smallest RTT of the current or last round is
// within clamp(minRTT/8, 1 ms, 16 ms) of the path's minimum: HyStart++'s
// threshold with RFC 9002's 1 ms granularity as the floor, where
// HyStart++ has 4 ms, which hid a 16-packet queue at 100 Mbit/s) and
// fewer than 2% of the last 256 to 512 transmissions were lost (BBRv2's
// loss threshold). Such a loss is repaired but changes no window, in slow
// start either (BBR's startup also ignores such loss). Any other loss
// sets the window to the larger of half of it and 1.25 times the
// measured bandwidth-delay product (the mean delivery rate over the last
// 8 intervals of at least an RTT and 25 ms, times the smallest RTT:
// Westwood+; 1.25 is BBR's probing gain), so a flow behind a standing queue halves and flows
// converge as AIMD flows do, while one on a path without a standing queue
// keeps its pipe full. The window is bounded, without loss, by the queue
// it builds (1 ms of it, or minRTT/8) or, with loss, by the tolerance, so
// a shallow bottleneck that hides its queue loses about 2%. An earlier
// floor of twice the product kept such a queue overflowing (a fifth to a
// third of all segments lost below a 32-packet queue at 100 Mbit/s): a
// gain of 2 needs pacing or a queue of a whole product. An RTO sets
// ssthresh as a congestive loss does and the window to one. The price of
// the tolerance: flows sharing a bottleneck whose queue holds less than
// 1 ms (some 85 full packets at 1 Gbit/s) cannot see it, each backs off only when
// its own loss rate reaches 2%, and they share unfairly (Jain's index
// 0.5-0.7 for two flows, where newreno gets 0.99:
// BenchmarkSharedShallowQueue). A floor of 0.5 ms fixes that case and
// costs loopback at 1% loss a fifth of its goodput; "newreno" is the
// choice for such a network.
//
// Flow control: each side announces the segments beyond its cumulative
// ack it will buffer (RecvWindow); the receiver drops anything beyond
// and the sender never sends beyond it. In-order bytes are handed to the
// application at once, so the window bounds the receiver's out-of-order
// memory.
//
// Acknowledgements: every AckEvery (2) in-order segments; but when the
// last acknowledgement left less than AckGap (100 µs) ago, up to AckMax
// (16) segments share one, sent at the latest AckGap after the previous,
// so a fast path (loopback) is not flooded with acks and a slow one (10
// Mbit/s: a segment every 1.2 ms) sees no change. The first 64 segments
// of a stream are acknowledged every 2 regardless. At once for what the
// sender must hear without delay (RFC 9000 §13.2.1): a segment that opens
// a new gap, one below the highest received (a repair, or reordering),
// a duplicate, a FIN or a PING. A segment that extends the highest
// out-of-order range, beyond a gap already reported, is acknowledged as
// an in-order one is: acknowledging each would, at 1% loss and a hundred
// segments in flight, acknowledge every segment, since a hole is nearly
// always open. Otherwise after at most AckDelay. The sender sets PING on
// the last segment of a burst when nothing more is queued, when it is a
// probe, or when the burst fills the congestion or the peer's window
// while fewer than 2 AckMax segments are in flight, so thinned
// acknowledgements never leave it waiting; with more in flight, the
// receiver acknowledges at least every AckMax of them and each ack
// releases the next burst, so a PING per burst would only undo the
// thinning. Data segments carry the current ack too.
//
// # States
//
//	state        event                          next state
//	(client)     Dial: send SYN                 SYN_SENT
//	SYN_SENT     SYN-ACK                        ESTABLISHED (segment 0 carries the cookie)
//	SYN_SENT     RTO: resend SYN, back off      SYN_SENT; after MaxRetries: CLOSED, error
//	(server)     valid cookie in segment 0      ESTABLISHED
//	ESTABLISHED  Close: FIN after queued data   FIN_WAIT_1
//	ESTABLISHED  peer FIN delivered             CLOSE_WAIT
//	FIN_WAIT_1   our FIN acknowledged           FIN_WAIT_2
//	FIN_WAIT_1   peer FIN delivered             CLOSING
//	FIN_WAIT_2   peer FIN delivered             TIME_WAIT
//	CLOSING      our FIN acknowledged           TIME_WAIT
//	CLOSE_WAIT   Close: FIN after queued data   LAST_ACK
//	LAST_ACK     our FIN acknowledged           CLOSED
//	TIME_WAIT    TimeWait elapsed               CLOSED
//	any          RST from the peer              CLOSED, error (TIME_WAIT ignores it)
//	any          MaxRetries+1 RTOs in a row     CLOSED, error, RST sent
//	any          IdleTimeout of silence with    CLOSED, error, RST sent
//	             nothing unacknowledged
//	any          a FIN below segments held      CLOSED, error, RST sent
//	any          Abort / Shutdown               CLOSED, RST sent
//
// The application sees Closed on reaching TIME_WAIT or CLOSED; a session
// in TIME_WAIT only lingers to re-acknowledge a retransmitted FIN.
// The FIN is the flag of the last segment (it occupies a sequence
// number). TIME_WAIT re-acknowledges a retransmitted FIN, waiting
// TimeWait again from it (RFC 793 §3.9), and ignores RSTs (RFC 1337).
// From any state: a RST from the peer, an RTO after MaxRetries
// expiries, or IdleTimeout without hearing from the peer while nothing
// is unacknowledged -> CLOSED with an error. A session that has nothing
// in flight and hears nothing for KeepAlive sends a PING, which the peer
// acknowledges, so an idle but live session survives and a dead one is
// found. Every state thus ends in bounded time once the network is
// silent or healed.
//
// # Use
//
// The embedding machine owns one UDP socket and a range of timer ids
// ([base, base+TimerSpan): one per session). In Step it gives the
// endpoint the inputs it owns (Handle), then reads events (Next): a
// session Accepted or Connected, stream Data, PeerClosed, Closed. It
// writes (Write, paced by Buffered), closes (Close) or resets (Abort)
// sessions, and ends every step with Flush, which sends what the windows
// allow and arms timers. All randomness (session ids, the cookie secret)
// comes from Config.Seed.
package rudp
