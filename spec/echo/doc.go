// Package echo is the Echo protocol of RFC 862, over UDP and TCP, as a
// pure state machine: seed 003/004's first exercise, and the protocol that
// proves the machine contract end to end.
//
// # Wire format
//
// UDP (RFC 862 §"UDP Based Echo Service"): a server listening on its port
// (7 by the RFC, any here) answers each datagram with one datagram to the
// sender's address and port carrying the same bytes:
//
//	client -> server   payload bytes 0..n-1   (0 <= n <= 65507 over IPv4,
//	                                          65527 over IPv6)
//	server -> client   the same n bytes, unmodified
//
// There is no header, no framing and no error reply. The answer leaves
// from the address the datagram was sent to (Input.Local, when the
// server listens on an unspecified address), so a client that connected
// its socket to one of a host's addresses (nc -u) accepts it.
//
// TCP (RFC 862 §"TCP Based Echo Service"): after a connection is
// established, every byte the client sends is sent back in order until the
// client half-closes (FIN); the server then finishes sending what is
// queued and closes its side.
//
// # Server states
//
// Per UDP datagram there is no state (but for the per-source limits,
// below). Per TCP connection:
//
//	OPEN     --data-->     OPEN (echo it; past PauseAt bytes not yet
//	                       taken by the transport, stop reading)
//	OPEN     --writable--> OPEN (all taken: read again)
//	OPEN     --peer FIN--> gone, if the transport has taken every echoed
//	                       byte; else DRAINING (either way we close our
//	                       side after the queued bytes)
//	DRAINING --writable--> gone (the transport has the last of the echo)
//	OPEN, DRAINING --reset--> gone
//	OPEN, DRAINING --Idle without data either way--> reset, gone
//	                       (Idle 60s by default, swept every Idle/4, so
//	                       the reset comes 60-75 s after the last byte)
//
// A DRAINING connection still counts against MaxStreams: a client that
// half-closes without reading cannot make the server hold more than
// MaxStreams × (PauseAt + one read) bytes of echo. (A runner adds what
// it read ahead of the machine: impl shares 32 MiB among the open
// streams, at least 64 KiB and one read each; measured, 512 clients that
// send and never read hold an echo server at 190 MB, where they took it
// to 550 MB at 1 MiB each.)
//
// # Defences
//
// Echo reflects, so a forged source address aims the reply at a victim.
// It never amplifies (one datagram in, at most one of the same size out).
// A forged datagram whose source is another reflector starts a loop
// between the two, so the server drops datagrams from source port 0, from
// the well-known ports below 1024, which are other services' (echo,
// chargen, DNS, NTP; AllowLowPorts answers them, for a private network
// whose clients bind low ports), and from its own port (another echo
// server, most likely: two servers on 9999 would otherwise bounce one
// datagram for ever). Two reflectors on other ports can still be set bouncing: a loop
// is one payload coming back from one source every round trip, so a
// payload answered MaxRepeats times in a row (16), each within RepeatGap
// (500 ms) of the one before, is dropped until its source pauses, and
// the loop ends after 16 bounces. Each source's last distinct payloads
// are followed, as many as can loop at once under its rate limit within
// RepeatGap (SourceRate × RepeatGap, at least RecentPayloads, 64), so a
// forger who sets several loops going at once sees each end the same
// way, or dropped by the rate limit. (A client resending a lost
// datagram, or a person typing a line again, waits longer between
// copies; a loop whose round trip is longer than RepeatGap cannot be
// told from such a client, and carries one datagram per round trip per
// payload, within the rate limit below.) Each source address is also answered at most
// SourceRate times a second on average, in bursts of SourceBurst
// (default 100 and 100), which bounds what any one source can draw.
// The limit remembers Sources addresses (default 256) in a fixed table,
// forgetting the one with the most credit left when a new one comes.
// Every drop is counted and logged at debug level. A TCP client that
// sends faster than it reads its echo is paused (spec.OutPause): once
// PauseAt (64 KiB) echoed bytes wait for the transport, the server reads
// nothing more from it until they have gone, so TCP's flow control
// slows the client instead of the server's memory growing (`head -c 300M
// /dev/urandom | nc HOST PORT | wc -c` is echoed whole); one that never
// reads is reset after Idle, and MaxUnread (1 MiB) resets one whose
// runner delivered data despite the pause. MaxStreams (1024) bounds the
// connections, and MaxPerAddr (64) those from one IP address.
//
// # Client
//
// The client sends each "send" command's bytes, as a datagram (resent on
// Timeout, up to Retries times) or as a TCP connection that writes the
// bytes, half-closes and reads the echo to EOF. Every datagram received
// from the server is reported as a "reply" event, whether it matches a
// message in flight or not, so tests can check what came back; a "close"
// command makes the client exit once nothing is in flight.
package echo
