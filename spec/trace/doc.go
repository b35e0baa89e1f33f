// Package trace is the recorded form of a run: what every node's machine
// was given and what it answered, and in simulator runs what the network
// did with each packet. The simulator and the socket runner write it;
// conformance replays it against the machines, `netspec trace show`
// draws it, and `--pcap` turns it into a capture.
//
// # Format
//
// A trace is NDJSON: UTF-8 text, one JSON object per line, each line
// ending in LF and at most MaxLine (16 MiB) long, so a hostile file
// cannot make a reader allocate without limit. The first line is the
// Header; every later line is a Record; blank lines are skipped. Readers
// are strict: an unknown field, a second JSON value on a line, a record
// with other than exactly one of "in", "out" and "net", a payload that is
// not base64, or a format outside MinFormat..Format is an error, naming
// the line.
//
// The header:
//
//	{"format":2,"protocol":"chat","source":"impl","epoch":1795426999886644113,
//	 "seed":7,"nodes":[{"name":"server","role":"server","addr":"10.0.0.1",
//	 "config":{...},"sim":{...}}],"sim":{...}}
//
//	format    this package writes Format (2) and reads MinFormat (1) on;
//	          format 2 added "jitter"
//	protocol  the registered protocol name (spec.Protocol) of every node
//	          that does not name its own
//	source    "sim" or "impl"
//	seed      the simulator's seed (absent in socket runs)
//	epoch     the spec.Time (ns) that record time 0 stands for
//	nodes     per node: name, protocol if not the header's, role, its IP
//	          in the simulator, its machine's JSON config (enough to
//	          rebuild it) and its own simulator settings if any
//	sim       the simulator's configuration, faults included, in sim runs
//
// A record is one of three kinds. "t" is nanoseconds since the epoch and
// "node" the node's name in all of them; fields that are zero or empty
// are left out.
//
//	input   "in": start, stop, bound, datagram, accepted, connected,
//	        data, writable, closed, timer, command
//	output  "out": bind, unbind, send, dial, write, close, abort,
//	        set-timer, cancel-timer, event, log, exit
//	network "net" (sim only): send, deliver, loss, queue-drop, dup, cut,
//	        no-route, host-down, no-port, crash, partition, heal
//
// The other fields mirror spec.Input and spec.Output: "proto" (udp,
// tcp), "sock", "stream", "timer" and "at" (a deadline, ns since the
// epoch) are the runner's handles; "addr", "from" and "local" are
// addresses as netip prints them; "err" is a closing or binding error, or
// a network record's note; "name", "args" and "value" are a command's or
// an event's name, arguments and JSON value; "level", "msg" and "attrs"
// a log record's. A payload is "text" when it is valid UTF-8 without
// control characters other than TAB, CR and LF (nor DEL), else standard base64 in
// "b64", so a text protocol's trace reads as its wire does. Network
// records add "id" (the packet's number, which links a send to its
// deliver, loss or dup), "len" (its size in bytes), "delay" (queueing and
// jitter it met, ns) and "jitter" (the random part of the delay, ns).
package trace
