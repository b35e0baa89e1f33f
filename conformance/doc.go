// Package conformance replays recorded traces against the pure machines
// and against the socket runner, and reports the first place where either
// does something the trace did not.
//
// A trace (package spec/trace) holds, per node, every input the node's
// machine was given and every output it produced. Replaying node N:
//
//   - against the spec: a fresh machine built from the header's role and
//     config is stepped with N's inputs at their recorded times; its
//     inputs and outputs, recorded the same way, must equal N's records;
//   - against impl: the same machine runs in an impl.Runner on loopback,
//     on a manual clock, in Hold mode. A harness plays every peer of N
//     with real sockets (it sends N's recorded datagrams from the
//     recorded source addresses, dials N's listeners, accepts N's dials,
//     writes and closes stream bytes) and releases the real inputs to the
//     machine in the trace's order. The runner's own record of the run
//     must equal N's records, and what reached the harness's sockets must
//     equal what N sent. The harness waits for each step's datagrams to
//     reach its sockets before the next input, so a long, fast replay
//     never overflows a receive buffer on loopback.
//
// A few records cannot be reproduced with sockets: a reset that reaches a
// stream after the node has read its peer's FIN (a socket reports it only
// to a later write, and the simulator delivers one when a peer exits just
// after reading the node's FIN). The impl replay leaves such a record and
// its step's outputs out of the comparison and reports it as a Skip
// (`netspec replay` prints them); the spec replay still checks it.
//
// Addresses are normalised by mapping every IP in the trace to a private
// loopback address (127.R.x.y, ports kept), so traces from the simulator's
// 10.0.0.0/8 network and from earlier socket runs replay on any machine.
// Comparison is with go-cmp; a Divergence names the node, the record
// index, the records before it, and the difference.
package conformance
