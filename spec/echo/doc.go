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
//	client -> server   payload bytes 0..n-1   (0 <= n <= 65507)
//	server -> client   the same n bytes, unmodified
//
// There is no header, no framing and no error reply.
//
// TCP (RFC 862 §"TCP Based Echo Service"): after a connection is
// established, every byte the client sends is sent back in order until the
// client half-closes (FIN); the server then finishes sending what is
// queued and closes its side.
//
// # Server states
//
// Per UDP datagram there is no state. Per TCP connection:
//
//	OPEN     --data-->     OPEN (echo it)
//	OPEN     --peer FIN--> CLOSED (close our side after the queued bytes)
//	OPEN     --reset-->    gone
//
// # Defences
//
// Echo reflects, so a forged source address aims the reply at a victim.
// It never amplifies (one datagram in, at most one of the same size out),
// and the server drops datagrams from source port 0 and from the
// well-known ports below 1024, which are other services' (echo, chargen,
// DNS, NTP): two reflectors must not be able to bounce a datagram between
// each other for ever. A TCP client that sends without reading is cut off
// once MaxUnread echoed bytes wait unsent, so the server's memory per
// connection is bounded; MaxStreams bounds the connections.
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
