// Package sim runs spec machines over a deterministic, discrete-event
// simulation of a network: the machine decides, the simulator does what
// a kernel and a network would, on a virtual clock.
//
// Events are ordered by (virtual time, sequence number) and every random
// choice (loss, duplication, jitter, the faults drawn from a seed) comes
// from Config.Seed, so one seed and one configuration give one trace,
// byte for byte.
//
// Topology: each node has an access link to a core switch of unlimited
// capacity (Link); a packet is serialised on the sender's uplink, waits
// in and is serialised on the receiver's downlink (finite FIFOs, tail
// drop), with each direction's delay, jitter (which reorders), loss and
// duplication. Faults add partitions that begin and heal and crashes
// that stop a node, losing its state, and restart it with a fresh
// machine; FaultsFromSeed and DrawFaults draw them (from a seed, or from
// rapid so that failures shrink), always over by the horizon.
//
// Streams model TCP closely enough for the protocols here: a dial sends
// a SYN (again after 1 s, 3 s, ... if a down host or a partition
// swallowed it, until DialTimeout); writes become segments of at most
// MSS bytes with TCPOverhead header bytes each, sent while fewer than
// Window bytes are unacknowledged; a lost segment is resent once three
// later ones are acknowledged, else after RTO. A partition or a crash
// resets the streams across it. Simplifications, each a little
// optimistic: no slow start or congestion window (a stream sends its
// Window at once), SYNs are not lost at random (with DialTimeout's two
// tries, random SYN loss would fail dials that a kernel, retrying for two
// minutes, completes: the C/S client's single dial then fails under
// heavy loss), and small writes are not coalesced into segments already
// queued.
//
// A machine that breaks the contract (writes to a stream it does not
// own, sends a datagram larger than UDP's 65,507 bytes, or never lets
// time advance: a million events at one instant) is recorded in
// Violations; the datagram is refused, and a livelock ends the run.
//
// Observers (Config.OnNet, OnEvent, OnExit) see the ground truth that
// property tests compare machines against; Config.Trace records the run
// as an NDJSON trace that conformance replays and `netspec trace`
// shows.
package sim
