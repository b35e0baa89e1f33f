package spec

import (
	"fmt"
	"log/slog"
	"net/netip"
)

// Machine is one protocol endpoint as a pure state machine. A runner (the
// simulator, the socket runner, the conformance replayer) owns the machine
// and calls Step once per input, from one goroutine. Step decides; it
// appends what should happen to out and returns the extended slice; the
// runner then does it. Step must be deterministic: the same inputs at the
// same times give the same outputs.
type Machine interface {
	Step(now Time, in Input, out []Output) []Output
}

// Sock names one of a machine's sockets (a UDP socket or a TCP listener).
// The machine picks the number when it binds.
type Sock uint32

// Stream names one TCP connection. Machines pick the ids of streams they
// dial, below AcceptedStream; runners number accepted streams
// AcceptedStream|1, AcceptedStream|2, ... in the order they are accepted.
type Stream uint64

// AcceptedStream is the bit runners set on the ids of accepted streams.
const AcceptedStream Stream = 1 << 63

// Timer names one of a machine's timers. Setting a timer that is already
// set moves it.
type Timer uint64

// Net is the transport of a socket.
type Net uint8

// Transports.
const (
	UDP Net = iota + 1
	TCP
)

func (n Net) String() string {
	switch n {
	case UDP:
		return "udp"
	case TCP:
		return "tcp"
	}
	return fmt.Sprintf("net(%d)", uint8(n))
}

// InKind says what an Input is.
type InKind uint8

// Input kinds. The fields of Input that each kind uses are listed.
const (
	_ InKind = iota
	// InStart is the first input a machine gets, and the first after a
	// simulated restart: bind sockets, set timers, dial.
	InStart
	// InStop asks the machine to finish (Ctrl-C, end of a scenario). It
	// should say goodbye to its peers and emit Exit; runners give it a
	// grace period.
	InStop
	// InBound answers a Bind: Sock, Addr (the address actually bound,
	// with the port filled in), Err if binding failed.
	InBound
	// InDatagram is a received datagram: Sock, Addr (source), Data, and
	// Local on a socket bound to an unspecified address. There is no
	// input for ICMP errors: a datagram to a closed port is lost as one
	// the network dropped (the runner's UDP sockets are unconnected, and
	// Linux tells those of no ICMP error unless IP_RECVERR is set, which
	// reports each one as the error of the socket's next call, a send to
	// another peer as likely as a receive; the simulator drops it as
	// "no-port"), so machines find a dead peer by its silence.
	InDatagram
	// InAccepted is a new connection on a listener: Sock (the listener),
	// Stream (a new id with AcceptedStream set), Addr (the remote end).
	InAccepted
	// InConnected says a Dial succeeded: Stream, Addr (the remote end).
	InConnected
	// InStreamData is bytes received on a stream, in order: Stream, Data.
	// Chunk boundaries carry no meaning.
	InStreamData
	// InStreamWritable says every byte written to Stream so far has been
	// taken by the transport, so a sender pacing itself may write more.
	InStreamWritable
	// InStreamClosed ends a stream: with Err empty the peer finished
	// sending (EOF) and the machine may still write and must Close; with
	// Err set the stream was reset, refused or timed out and is gone.
	InStreamClosed
	// InTimer is a timer firing: Timer.
	InTimer
	// InCommand is an application request: Cmd.
	InCommand
)

var inNames = [...]string{"", "start", "stop", "bound", "datagram", "accepted", "connected", "data", "writable", "closed", "timer", "command"}

func (k InKind) String() string {
	if int(k) < len(inNames) && k != 0 {
		return inNames[k]
	}
	return fmt.Sprintf("in(%d)", uint8(k))
}

// ParseInKind is the inverse of InKind.String.
func ParseInKind(s string) (InKind, bool) {
	for i, n := range inNames {
		if i > 0 && n == s {
			return InKind(i), true
		}
	}
	return 0, false
}

// Input is one thing that happened to a machine. Data belongs to the
// machine after Step (runners never reuse it, and give each datagram its
// own allocation, so keeping one pins no other) but is read-only: the
// simulator hands the sender's bytes to every receiver of a duplicate.
type Input struct {
	Kind   InKind
	Sock   Sock
	Stream Stream
	Timer  Timer
	Addr   netip.AddrPort
	// Local is, for a datagram received on a socket bound to an
	// unspecified address, the node's address it was sent to (the
	// kernel's IP_PKTINFO), if the runner knows it. A machine answering
	// the datagram passes it to SendFrom, so that a host with several
	// addresses answers from the one it was asked on: the kernel's
	// routing may pick another, and a client that connected its socket
	// (nc -u) or a stateful firewall drops the answer.
	Local netip.Addr
	Data  []byte
	Err   string
	Cmd   Command
}

// Command is an application request to a machine, such as "send" or
// "get NAME". Its meaning is the protocol's.
type Command struct {
	Name string
	Args []string
	Data []byte
}

// OutKind says what an Output is.
type OutKind uint8

// Output kinds. The fields of Output that each kind uses are listed.
const (
	_ OutKind = iota
	// OutBind opens a socket: Sock, Net (UDP socket or TCP listener),
	// Addr (port 0 picks a free port). The runner answers with InBound.
	OutBind
	// OutUnbind closes a socket: Sock.
	OutUnbind
	// OutSend sends a datagram: Sock, Addr (destination), Data, and
	// Local: the address to send from, on a socket bound to an
	// unspecified address (zero: the runner's routing picks one).
	OutSend
	// OutDial opens a TCP connection: Stream (picked by the machine,
	// below AcceptedStream), Addr. The runner answers with InConnected
	// or InStreamClosed.
	OutDial
	// OutWrite queues bytes on a stream: Stream, Data. Runners accept any
	// amount; a machine paces itself with InStreamWritable.
	OutWrite
	// OutClose ends the machine's sending side of a stream after the
	// queued bytes (TCP FIN): Stream. The stream is released once both
	// sides have closed.
	OutClose
	// OutAbort resets a stream at once (TCP RST): Stream.
	OutAbort
	// OutSetTimer sets or moves a timer: Timer, At.
	OutSetTimer
	// OutCancelTimer cancels a timer if it is set: Timer.
	OutCancelTimer
	// OutEvent tells the application something: Event.
	OutEvent
	// OutLog is a log record: Log.
	OutLog
	// OutExit says the machine has finished its job (Err empty) or given
	// up (Err set). Runners stop it: streams it closed finish sending
	// what was written (for a moment) and end with a FIN; streams it
	// left open, and closed ones whose bytes could not all go out in that
	// moment, are reset: never ended as if complete.
	OutExit
	// OutPause stops reading Stream: the runner hands the machine no
	// more of its data (nor its EOF) until OutResume, and reads no more
	// from the connection, so the peer's sender is slowed by TCP's flow
	// control and nothing piles up in between. A machine that answers
	// data with writes (echo) pauses a peer that does not take its
	// answers, rather than buffer them without bound or reset it. A
	// reset still ends the stream at once (InStreamClosed with Err).
	OutPause
	// OutResume undoes OutPause: what the runner held comes first, in
	// order, then reading goes on.
	OutResume
)

var outNames = [...]string{"", "bind", "unbind", "send", "dial", "write", "close", "abort", "set-timer", "cancel-timer", "event", "log", "exit", "pause", "resume"}

func (k OutKind) String() string {
	if int(k) < len(outNames) && k != 0 {
		return outNames[k]
	}
	return fmt.Sprintf("out(%d)", uint8(k))
}

// ParseOutKind is the inverse of OutKind.String.
func ParseOutKind(s string) (OutKind, bool) {
	for i, n := range outNames {
		if i > 0 && n == s {
			return OutKind(i), true
		}
	}
	return 0, false
}

// Output is one thing a machine wants done. A machine must not modify
// Data after emitting it.
type Output struct {
	Kind   OutKind
	Net    Net
	Sock   Sock
	Stream Stream
	Timer  Timer
	Addr   netip.AddrPort
	Local  netip.Addr
	At     Time
	Data   []byte
	Err    string
	Event  Event
	Log    Log
}

// Event is something the application may observe: a delivered message, a
// statistic, a finished file. Value, if set, must marshal to JSON (traces
// and conformance compare it in that form).
type Event struct {
	Name  string
	Text  string
	Data  []byte
	Value any
}

// Log is a structured log record; runners hand it to log/slog.
type Log struct {
	Level slog.Level
	Msg   string
	Attrs []slog.Attr
}

// Bind returns an OutBind.
func Bind(s Sock, n Net, addr netip.AddrPort) Output {
	return Output{Kind: OutBind, Sock: s, Net: n, Addr: addr}
}

// Unbind returns an OutUnbind.
func Unbind(s Sock) Output { return Output{Kind: OutUnbind, Sock: s} }

// Send returns an OutSend.
func Send(s Sock, to netip.AddrPort, data []byte) Output {
	return Output{Kind: OutSend, Sock: s, Addr: to, Data: data}
}

// SendFrom returns an OutSend from local, the Local of the datagram it
// answers (zero: as Send).
func SendFrom(s Sock, local netip.Addr, to netip.AddrPort, data []byte) Output {
	return Output{Kind: OutSend, Sock: s, Addr: to, Local: local, Data: data}
}

// Dial returns an OutDial.
func Dial(st Stream, to netip.AddrPort) Output {
	return Output{Kind: OutDial, Stream: st, Addr: to}
}

// Write returns an OutWrite.
func Write(st Stream, data []byte) Output {
	return Output{Kind: OutWrite, Stream: st, Data: data}
}

// Close returns an OutClose.
func Close(st Stream) Output { return Output{Kind: OutClose, Stream: st} }

// Abort returns an OutAbort.
func Abort(st Stream) Output { return Output{Kind: OutAbort, Stream: st} }

// Pause returns an OutPause.
func Pause(st Stream) Output { return Output{Kind: OutPause, Stream: st} }

// Resume returns an OutResume.
func Resume(st Stream) Output { return Output{Kind: OutResume, Stream: st} }

// SetTimer returns an OutSetTimer.
func SetTimer(t Timer, at Time) Output { return Output{Kind: OutSetTimer, Timer: t, At: at} }

// CancelTimer returns an OutCancelTimer.
func CancelTimer(t Timer) Output { return Output{Kind: OutCancelTimer, Timer: t} }

// Emit returns an OutEvent.
func Emit(ev Event) Output { return Output{Kind: OutEvent, Event: ev} }

// Exit returns an OutExit; err is empty on success.
func Exit(err string) Output { return Output{Kind: OutExit, Err: err} }

// LogAt returns an OutLog.
func LogAt(level slog.Level, msg string, attrs ...slog.Attr) Output {
	return Output{Kind: OutLog, Log: Log{Level: level, Msg: msg, Attrs: attrs}}
}

// Debug returns a debug-level OutLog; machines log every dropped input at
// this level.
func Debug(msg string, attrs ...slog.Attr) Output { return LogAt(slog.LevelDebug, msg, attrs...) }

// Info returns an info-level OutLog.
func Info(msg string, attrs ...slog.Attr) Output { return LogAt(slog.LevelInfo, msg, attrs...) }

// Warn returns a warning-level OutLog.
func Warn(msg string, attrs ...slog.Attr) Output { return LogAt(slog.LevelWarn, msg, attrs...) }

// Counter is one named count a machine keeps, such as dropped malformed
// datagrams or retransmissions.
type Counter struct {
	Name  string
	Value uint64
}

// Inspector is implemented by machines that expose counters. Runners and
// tools read it between steps, from the goroutine that steps the machine.
type Inspector interface {
	Counters() []Counter
}
