// Package stream is seed 000's UDP stream server and clients as a pure
// state machine, on RTP and RTCP (RFC 3550) so that standard tools
// (Wireshark, tshark) can analyse it, with the receiver statistics of RFC
// 3550 appendix A computed exactly, stateless address validation before
// any streaming, and consent expiry.
//
// The seed: a server sends a numbered sequence to every connected client
// at a configurable delay, packet index 0, 1, 2, ... carrying data
// 2·(index+1); each client prints every packet ("Received: Index - i,
// Data - d"), keeps a running sum of the data, and at the end prints the
// packets received, lost and out of order. The stream is live: the index
// advances with time from the server's start whether or not anyone
// listens, and a client that joins late gets the packets from then on,
// as the seed's later clients did (its log has clients joining at index
// 6 and 11; its first, there from the start, got index 0, as a client
// does here only if it joins within the first delay). A client counts
// from its first packet (RFC 3550's expected, A.3): the packets sent
// before it joined are not lost to it. The seed's client counted them
// lost (joined at 11, streamed to 17: 7 received, 11 lost); this one
// reports 7 received, 0 lost.
//
// # Transport
//
// Everything travels as UDP datagrams to and from one server port; RTP
// and RTCP share it (RFC 5761): a datagram whose second byte is 192-223
// is RTCP, anything else RTP. All integers are big-endian. The server
// sends to a subscriber from the address the subscriber's join was sent
// to (Input.Local, when it listens on an unspecified address).
//
// # Data packets (server -> subscriber): RTP, 28 bytes
//
//	byte  0     0x80: V=2, P=0, X=0, CC=0
//	byte  1     0x60: M=0, PT=96 (dynamic; clock 90 kHz, as an SDP would
//	            say with a=rtpmap:96 NSTR/90000)
//	bytes 2-3   sequence number: random first value (RFC 3550 §5.1),
//	            +1 per index, mod 2^16
//	bytes 4-7   timestamp: random first value + the packet's scheduled
//	            send time since the stream began, in 1/90000 s
//	bytes 8-11  SSRC: random, per server incarnation
//	bytes 12-19 index (uint64)
//	bytes 20-27 data (uint64) = 2·(index+1)
//
// Every subscriber gets the same bytes: the packet is marshalled once
// per index (with pion/rtp) and sent to each subscriber in join order.
// A receiver accepts any valid RTPv2 header (CSRCs, extension, padding)
// but only payload type 96 and a 16-byte payload whose data is
// 2·(index+1); anything else is dropped and counted.
//
// # Control packets: RTCP compounds
//
// Every control datagram, in both directions, is an RFC 3550 §6.1
// compound (marshalled with pion/rtcp): an RR from the sender's SSRC,
// then an SDES with its CNAME, then an APP packet named "NSTR" (and, to
// leave, a BYE). Receivers apply the header checks of A.2 (version 2,
// first packet SR or RR and without padding, padding only on the last,
// lengths adding up to the datagram; so a one-packet compound carries
// none) and accept at most 1200 bytes.
//
//	RR      byte 0 0x80|RC, byte 1 201, bytes 2-3 length in words - 1,
//	        bytes 4-7 sender SSRC, then RC 24-byte report blocks:
//	          SSRC of source (4), fraction lost (1, /256),
//	          cumulative lost (3, signed, saturating),
//	          extended highest sequence number (4), jitter (4),
//	          LSR (4, zero), DLSR (4, zero)
//	SDES    byte 0 0x81, byte 1 202, length, then one chunk: SSRC (4),
//	        CNAME item (type 1, length, text), null-padded to a word
//	APP     byte 0 0x80|subtype, byte 1 204, length, SSRC (4),
//	        name "NSTR" (4), data (a multiple of 4 bytes)
//	BYE     byte 0 0x81, byte 1 203, length, SSRC (4), reason length (1),
//	        reason text, null-padded to a word
//
// The APP subtypes and their data:
//
//	0 HELLO      client -> server  20 zero bytes, then zeros padding the
//	                               datagram to at least 128 bytes
//	1 CHALLENGE  server -> client  cookie (20): issue time in Unix
//	                               seconds (4) + HMAC-SHA256 (first 16)
//	2 ECHO       client -> server  the cookie (20), then zeros padding
//	                               the datagram to at least 128 bytes
//	3 WELCOME    server -> client  token (8), packet interval ns (8),
//	                               report interval ns (8), expiry in
//	                               report intervals (4), reserved (4)
//	4 REPORT     client -> server  token (8), packets (8), duplicates (8),
//	                               reordered (8), sum of data mod 2^64 (8),
//	                               all counted from the server's SSRC only
//	                               (a restarted server's packets alone)
//	5 REFUSE     server -> client  reason (4): 1 = subscriber limit
//
// A server's CNAME is "stream-" and its SSRC in hex, so a CHALLENGE is
// 68 bytes (RR 8 + SDES 28 + APP 32); a WELCOME 80; a client's REPORT
// 120 with the default CNAME (RR with one block 32 + SDES 36 + APP 52),
// plus the BYE when it leaves. The server's BYE (reason "server
// stopped", or "stream complete" after Count packets) ends the stream for
// everyone.
//
// A compound whose APP carries another SSRC than its opening RR is
// dropped. A WELCOME with a zero packet or report interval or expiry,
// or an interval over 24 h, is rejected, and a client takes a WELCOME or
// REFUSE only after it has had a CHALLENGE. A server asks for reports
// at least MinReportInterval (10 ms) apart and for an expiry of at most
// MaxExpireAfter (1000) intervals; a client takes a WELCOME's shorter
// report interval, or longer expiry, as those bounds, so no WELCOME can
// make it report without pause.
//
// # Address validation
//
// A join from an address the server has not validated gets one small
// stateless CHALLENGE and nothing else, like DTLS's HelloVerifyRequest
// (RFC 6347 §4.2.1) or QUIC's Retry (RFC 9000 §8.1.2): the cookie is an
// HMAC, under the server's secret, over the client's address, port and
// SSRC and the issue time. Streaming starts only when an ECHO carrying a
// cookie that checks out arrives from that address with that SSRC, no
// more than CookieLifetime (default 10 s, plus under a second of
// rounding) after it was issued. A bad or stale cookie is answered like a
// HELLO. The server answers an unvalidated address only if the answer is
// no larger than the datagram that drew it (clients pad HELLO and ECHO to
// 128 bytes; a challenge is 68), so before validation it never sends an
// address more bytes than it received from it, and a join forged in a
// victim's name never makes it stream to the victim. An off-path attacker
// cannot learn the cookie; an on-path one, who sees the victim's
// traffic, can (as with DTLS and QUIC).
//
// The WELCOME carries a token, an HMAC over the subscriber's address,
// SSRC and subscription time. REPORTs and BYEs must carry it and come
// from the subscriber's address and SSRC, so a forged report cannot keep
// a departed subscriber's stream flowing (consent, as in RFC 7675) and a
// forged BYE cannot end a live one.
//
// # Limits
//
// Challenges (answers to HELLOs, and to ECHOs whose cookie fails) take a
// token from a bucket of JoinRate per second (burst JoinRate), and joins
// whose cookie checks out from another of the same size: forged HELLOs
// that empty the first never keep out a receiver that proved its address.
// MaxSubscribers bounds the subscribers, and a validated join beyond it
// gets a REFUSE. Hitting any limit logs one warning line a second saying
// how many were dropped since the last. Every dropped datagram is counted
// (Counters) and logged at debug level.
//
// # Server states
//
//	BINDING   --bound-->              STREAMING (tick timer at start)
//	BINDING   --bind error-->         exit with the error
//	STREAMING --tick-->               send every index now due (at most
//	                                  MaxBurst, default 16; past that the schedule
//	                                  slips by the backlog) to every
//	                                  subscriber; set the next tick
//	STREAMING --HELLO, bad ECHO-->    CHALLENGE if no larger than the join
//	STREAMING --good ECHO-->          subscribe (or refresh, if the same
//	                                  SSRC is subscribed there; replace, if
//	                                  another is) and WELCOME; REFUSE if full
//	STREAMING --REPORT with token-->  record the statistics, refresh
//	                                  consent; with a BYE, unsubscribe
//	STREAMING --expiry timer-->       drop every subscriber silent for
//	                                  ExpireAfter report intervals,
//	                                  exactly when that time is reached;
//	                                  any other input at or after that
//	                                  time does so first, so a subscriber
//	                                  is sent nothing from then on
//	STREAMING --stop, or the tick      BYE to every subscriber, exit (at
//	            that sends index         the tick: after that packet, in
//	            Count-1-->               the same step)
//	STREAMING --"report" command-->   "subscribers" event: one row per
//	                                  subscriber with what it last reported
//
// Index i is due at start + i·Delay. The SSRC, first sequence number and
// first timestamp come from spec.NewRand(Seed ^ start time ^ 0x57a11), so a
// restarted server is a new RTP source.
//
// # Client states
//
//	BINDING   --bound-->               JOINING: send HELLO
//	BINDING   --port taken-->          bind the next port (if a port was
//	                                   given), up to PortTries
//	JOINING   --CHALLENGE-->           learn the server's SSRC, send ECHO
//	JOINING   --join timer-->          resend (HELLO or ECHO); the wait
//	                                   doubles from JoinTimeout to 8 times
//	                                   it; after JoinTries, exit with an error
//	JOINING   --WELCOME-->             STREAMING: report timer, silence timer
//	JOINING   --data, no WELCOME-->    deliver it, and ECHO again at once
//	                                   (at most every JoinTimeout): the
//	                                   WELCOME and its token were lost
//	JOINING   --REFUSE-->              exit with the reason
//	STREAMING --data-->                statistics; deliver new packets once
//	STREAMING --report timer-->        RR + SDES + REPORT, every report
//	                                   interval × [0.5, 1.5) (RFC 3550 §6.3.1)
//	STREAMING --silence timer-->       JOINING again (no data for max(4
//	                                   packet intervals, the expiry)),
//	                                   still reporting: the silence may be
//	                                   loss, and the server may still have
//	                                   it (a server that dropped it
//	                                   ignores the reports)
//	any       --count, duration, stop-> last RR + REPORT + BYE if welcomed;
//	                                   "stats" event; exit
//	any       --server BYE-->          "stats" event; exit
//
// A client only echoes a CHALLENGE while it is joining, so a challenge
// drawn by someone else's forged HELLO goes no further. Data is accepted
// only from the server's address and from the SSRC it announced in its
// CHALLENGE or WELCOME; a new SSRC (a restarted server) starts a new set
// of statistics.
//
// # Receiver statistics
//
// Receiver implements RFC 3550 A.1 (sequence validation, MAX_DROPOUT
// 3000, MAX_MISORDER 100, resynchronisation after two sequential packets
// far from the expected, probation of MIN_SEQUENTIAL packets, 0 by
// default because the RTCP handshake already validated the source, as
// A.1 allows), A.3 (expected, cumulative lost = expected - received,
// which duplicates can make negative, and fraction lost per report
// interval) and A.8 (interarrival jitter, integer form, in timestamp
// units; the first packet sets the reference transit time). It adds
// duplicates (of packets up to MAX_MISORDER below the highest sequence
// number; one further behind takes A.1's bad-sequence branch and is not
// counted at all, duplicate or not) and RFC 4737 §3.3 reordered packets: new packets below the next expected
// sequence number. The seed's counts are kept beside them: distinct
// packets delivered and the sum of their data.
package stream
