package impl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
	"golang.org/x/net/ipv4"
)

// AddrMap lets a harness run a machine whose addresses were recorded
// elsewhere: it says which real address to bind for a requested one, and
// translates addresses between the machine's view and the socket's.
type AddrMap interface {
	Bind(s spec.Sock, n spec.Net, requested netip.AddrPort) netip.AddrPort
	Out(machine netip.AddrPort) netip.AddrPort
	In(real netip.AddrPort) netip.AddrPort
}

// Options configures a Runner. The zero value runs on the real clock,
// discards logs and events, and records nothing.
type Options struct {
	Clock  Clock
	Logger *slog.Logger
	// OnEvent receives the machine's application events, from the
	// runner's goroutine: it must not block for long.
	OnEvent func(now spec.Time, ev spec.Event)
	// OnStep sees every step: the input and the outputs it produced.
	OnStep func(now spec.Time, in spec.Input, out []spec.Output)
	// Trace records the run; TraceHeader describes it (Source and Epoch
	// are filled in). TraceNode names the node in records.
	Trace       io.Writer
	TraceHeader trace.Header
	TraceNode   string
	// Faults, if active, wraps every UDP socket in a FaultyConn.
	Faults FaultConfig
	// Addrs maps addresses (nil: identity).
	Addrs AddrMap
	// DialTimeout bounds dials (default 5s); StopGrace is how long a
	// stopping machine gets to exit (default 2s).
	DialTimeout time.Duration
	StopGrace   time.Duration
	// ReadBuffer and WriteBuffer size UDP socket buffers (0: kernel
	// default).
	ReadBuffer, WriteBuffer int
	// MaxDatagram is the largest datagram read (default 65535); a larger
	// one is dropped and counted, never truncated.
	MaxDatagram int
	// MaxQueuedInput bounds the bytes of received datagrams waiting for
	// the machine (default 32 MiB). Past it datagrams are dropped and
	// counted, as a full socket buffer would drop them, so a flood costs
	// bounded memory however slow the machine. Inputs a Hold runner
	// keeps for a replay are not counted: the trace bounds them.
	MaxQueuedInput int
	// MaxStreamQueued bounds the bytes a stream's reader has read that
	// the machine has not been handed (default 1 MiB): past it the
	// reader stops reading, and TCP's flow control holds the sender, so
	// a machine slower than its socket (hashing, writing to disk) keeps
	// a bounded backlog per stream rather than filling the input queue
	// (4,096 reads of up to 64 KiB: a 1 GB C/S download took 550 MB).
	MaxStreamQueued int
	// MaxStreamsQueued shares out the same bytes among the open streams
	// (default 32 MiB): each may queue MaxStreamsQueued/streams, between
	// 64 KiB and MaxStreamQueued (and one read more). So a server's
	// backlog does not grow by a MiB a connection (1,024 echo clients
	// that never read took an echo server to 617 MB), and no stream
	// waits for another's: a paused stream keeps what it read, and
	// counting that against the others would stop them all.
	MaxStreamsQueued int
	// ReadBatch is how many datagrams a busy socket reads per system
	// call (default 16; 1 disables batching). Datagrams a step sends on
	// one socket always go out in one sendmmsg.
	ReadBatch int
	// GSO sends runs of equal-size datagrams to one peer as one message
	// the kernel segments (UDP GSO): much cheaper for bulk senders, but a
	// capture on the sending host then shows the unsegmented message, so
	// it is off unless asked for.
	GSO bool
	// TraceEpoch is the time record time 0 stands for (default: when Run
	// starts).
	TraceEpoch spec.Time
	// Hold makes the runner keep every input until the harness releases
	// it with Release, so a replay can feed real I/O to the machine in
	// the order a trace says.
	Hold bool
}

// Runner binds one spec.Machine to real sockets and timers. One goroutine
// (the one in Run) owns the machine; socket readers, stream writers and
// timers only send it inputs.
type Runner struct {
	m     spec.Machine
	opt   Options
	clock Clock
	log   *slog.Logger
	items chan item
	local []item // inputs produced by the loop itself, handled first

	socks   map[spec.Sock]*sock
	streams map[spec.Stream]*stream
	timers  map[spec.Timer]timerState
	token   uint64
	accepts uint64
	out     []spec.Output
	tw      *trace.Writer
	epoch   spec.Time

	exited  bool
	exitErr string
	wg      sync.WaitGroup
	quit    chan struct{} // closed when shutdown starts: readers stop posting
	done    chan struct{}

	held     []item
	finished map[spec.Stream]*stream // Hold mode: ended streams a trace may still name
	release  chan *releaseReq
	req      *releaseReq

	faultMu sync.Mutex
	faulty  []*FaultyConn

	queued     atomic.Int64 // bytes of datagrams posted and not yet handled
	backlog    atomic.Int64 // bytes of stream data posted and not yet taken
	readers    atomic.Int64 // stream readers running
	dropped    atomic.Uint64
	sendErrors atomic.Uint64

	sendQ    []pendingSend
	faultQ   []pendingSend
	inBatch  bool // handling a received batch: flush sends once, at its end
	wmsgs    []ipv4.Message
	gsoCache map[int][]byte
	srcCache map[netip.Addr][]byte
	oversize atomic.Uint64
}

type timerState struct {
	token uint64
	stop  Stopper
}

type itemKind uint8

const (
	itInput itemKind = iota
	itTimer
	itAccepted
	itConnected
	itData
	itClosed
	itWritable
	itDatagram
	itFin // the writer sent FIN: bookkeeping only
)

type item struct {
	kind  itemKind
	in    spec.Input
	batch []spec.Input // itDatagram from a batched read
	cost  int64        // bytes counted in Runner.queued
	token uint64
	st    *stream
	sk    *sock
	cause error // InBound: why the bind failed
}

type sock struct {
	id     spec.Sock
	net    spec.Net
	udp    UDPConn
	raw    *net.UDPConn
	batch  batchIO
	faulty *FaultyConn // the fault injector on this socket's sends, if any
	noGSO  bool        // the socket refused segmentation offload once
	ln     *net.TCPListener
	addr   netip.AddrPort
	// wild: the machine bound an unspecified address, so its datagrams
	// carry Local: from the kernel (pktinfo) when the real socket is
	// unspecified too, else the address a harness bound instead (fixed).
	wild    bool
	pktinfo bool
	fixed   netip.Addr
}

// New returns a runner for m. Call Run to start it.
func New(m spec.Machine, opt Options) *Runner {
	if opt.Clock == nil {
		opt.Clock = NewRealClock()
	}
	if opt.DialTimeout <= 0 {
		opt.DialTimeout = 5 * time.Second
	}
	if opt.StopGrace <= 0 {
		opt.StopGrace = 2 * time.Second
	}
	if opt.MaxDatagram <= 0 || opt.MaxDatagram > maxDatagram {
		opt.MaxDatagram = maxDatagram
	}
	if opt.ReadBatch <= 0 {
		opt.ReadBatch = 16
	}
	if opt.MaxQueuedInput <= 0 {
		opt.MaxQueuedInput = 32 << 20
	}
	if opt.MaxStreamQueued <= 0 {
		opt.MaxStreamQueued = 1 << 20
	}
	if opt.MaxStreamsQueued <= 0 {
		opt.MaxStreamsQueued = 32 << 20
	}
	log := opt.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{
		m:        m,
		opt:      opt,
		clock:    opt.Clock,
		log:      log,
		items:    make(chan item, 4096),
		socks:    map[spec.Sock]*sock{},
		streams:  map[spec.Stream]*stream{},
		timers:   map[spec.Timer]timerState{},
		quit:     make(chan struct{}),
		done:     make(chan struct{}),
		release:  make(chan *releaseReq),
		finished: map[spec.Stream]*stream{},
	}
}

// Command hands the machine an application command. It is safe to call
// from any goroutine; it blocks only if the runner is far behind.
func (r *Runner) Command(cmd spec.Command) {
	r.post(item{kind: itInput, in: spec.Input{Kind: spec.InCommand, Cmd: cmd}})
}

// Done is closed when Run returns.
func (r *Runner) Done() <-chan struct{} { return r.done }

// post hands the loop an item, and reports whether it did. Once shutdown
// has begun nobody takes items any more, so it gives up rather than block
// the reader shutdown waits for.
func (r *Runner) post(it item) bool {
	select {
	case r.items <- it:
		return true
	case <-r.quit:
	case <-r.done:
	}
	r.discard(it)
	return false
}

// discard un-counts an item the machine will never be handed (the runner
// is stopping), so that Stats still adds up after Run returns.
func (r *Runner) discard(it item) {
	if it.cost != 0 {
		r.queued.Add(-it.cost)
	}
	if it.kind == itData {
		r.backlog.Add(-int64(len(it.in.Data)))
	}
}

// admit counts n bytes of a received datagram against MaxQueuedInput and
// reports whether it may be posted.
func (r *Runner) admit(n int) bool {
	if r.queued.Add(int64(n)) > int64(r.opt.MaxQueuedInput) {
		r.queued.Add(-int64(n))
		r.dropped.Add(1)
		return false
	}
	return true
}

// Stats counts what the runner dropped or failed to send.
type Stats struct {
	// Oversize counts datagrams larger than MaxDatagram, dropped.
	Oversize uint64
	// Dropped counts datagrams dropped because MaxQueuedInput bytes were
	// already waiting for the machine.
	Dropped uint64
	// SendErrors counts datagrams the kernel refused to send.
	SendErrors uint64
	// StreamBacklog is the bytes the stream readers have read that the
	// loop has not taken yet, now (see MaxStreamsQueued).
	StreamBacklog int64
}

// streamShare is how many bytes one stream's reader may have posted
// that the loop has not taken (see Options.MaxStreamsQueued).
func (r *Runner) streamShare() int {
	n := max(r.readers.Load(), 1)
	return int(min(max(int64(r.opt.MaxStreamsQueued)/n, minStreamShare), int64(r.opt.MaxStreamQueued)))
}

// minStreamShare is the least a stream's reader may queue: one full read.
const minStreamShare = 64 << 10

// Stats returns the runner's drop counters and backlog. It is safe to call from any
// goroutine.
func (r *Runner) Stats() Stats {
	return Stats{Oversize: r.oversize.Load(), Dropped: r.dropped.Load(), SendErrors: r.sendErrors.Load(), StreamBacklog: r.backlog.Load()}
}

// ExitError is what Run returns when the machine exits with an error.
type ExitError struct{ Msg string }

func (e *ExitError) Error() string { return e.Msg }

// ErrStopTimeout is returned when a stopped machine did not exit within
// the grace period.
var ErrStopTimeout = errors.New("impl: machine did not exit after stop")

// Run starts the machine and runs it until it exits, or until ctx is done
// and it has had StopGrace to say goodbye. It returns an *ExitError if the
// machine gave up, nil if it finished.
func (r *Runner) Run(ctx context.Context) (err error) {
	defer close(r.done)
	defer r.shutdown()
	r.epoch = r.clock.Now()
	if r.opt.TraceEpoch != 0 {
		r.epoch = r.opt.TraceEpoch
	}
	if r.opt.Trace != nil {
		h := r.opt.TraceHeader
		h.Source, h.Epoch = "impl", int64(r.epoch)
		tw, err := trace.NewWriter(r.opt.Trace, h)
		if err != nil {
			return err
		}
		r.tw = tw
		defer func() {
			if ferr := tw.Flush(); err == nil {
				err = ferr
			}
		}()
	}
	r.local = append(r.local, item{kind: itInput, in: spec.Input{Kind: spec.InStart}})
	stopping := false
	var grace <-chan time.Time
	ctxDone := ctx.Done()
	for !r.exited {
		if len(r.local) > 0 {
			it := r.local[0]
			r.local = r.local[1:]
			r.handle(it)
			continue
		}
		var reqDone <-chan struct{}
		if r.req != nil {
			reqDone = r.req.ctx.Done()
		}
		select {
		case it := <-r.items:
			if it.kind == itData {
				it.st.addPosted(-len(it.in.Data)) // the reader may read on
				r.backlog.Add(-int64(len(it.in.Data)))
			}
			r.handle(it)
		case req := <-r.release:
			r.req = req
			r.tryRelease()
		case <-reqDone:
			r.req.reply <- releaseResult{err: fmt.Errorf("impl: %w waiting for %s; holding%s", r.req.ctx.Err(), r.req.want.Kind, describeHeld(r.held))}
			r.req = nil
		case <-ctxDone:
			ctxDone = nil
			if !stopping {
				stopping = true
				grace = time.After(r.opt.StopGrace)
				r.handle(item{kind: itInput, in: spec.Input{Kind: spec.InStop}})
			}
		case <-grace:
			return ErrStopTimeout
		}
	}
	if r.exitErr != "" {
		return &ExitError{Msg: r.exitErr}
	}
	return nil
}

// handle takes one item from the outside world to the machine, or to the
// hold queue.
func (r *Runner) handle(it item) {
	if it.cost != 0 {
		r.queued.Add(-it.cost)
	}
	switch it.kind {
	case itFin:
		if r.streams[it.in.Stream] == it.st {
			r.maybeFinish(it.st)
		}
		return
	case itAccepted:
		if !r.opt.Hold {
			r.accepts++
			it.st.id = spec.AcceptedStream | spec.Stream(r.accepts)
			it.in.Stream = it.st.id
		}
	case itTimer:
		if ts, ok := r.timers[it.in.Timer]; !ok || ts.token != it.token {
			return
		}
	case itData, itClosed, itConnected:
		if r.streams[it.in.Stream] != it.st {
			return
		}
		if !r.opt.Hold && it.kind != itConnected {
			st := it.st
			switch {
			case it.in.Err != "":
				st.held = nil // a reset ends the stream at once
			case st.isPaused() || len(st.held) > 0:
				st.held = append(st.held, it)
				return
			}
		}
	case itWritable:
		if r.streams[it.in.Stream] != it.st {
			return
		}
		if r.opt.Hold {
			r.tryRelease() // a drained stream may satisfy a waiting release
			return
		}
	case itDatagram:
		if r.socks[it.sk.id] != it.sk {
			return
		}
		if it.batch != nil {
			r.inBatch = true
			for _, in := range it.batch {
				r.handle(item{kind: itDatagram, sk: it.sk, in: in})
			}
			r.inBatch = false
			r.flushSends()
			return
		}
	}
	if r.opt.Hold {
		r.held = append(r.held, it)
		r.tryRelease()
		return
	}
	r.deliver(it)
}

// deliver does the bookkeeping an input implies and steps the machine.
func (r *Runner) deliver(it item) {
	switch it.kind {
	case itTimer:
		delete(r.timers, it.in.Timer)
	case itAccepted:
		r.streams[it.in.Stream] = it.st
	case itClosed:
		st := it.st
		if it.in.Err != "" {
			delete(r.streams, st.id)
			st.kill(false)
		} else {
			st.rdone = true
		}
	}
	r.step(it.in)
	switch it.kind {
	case itAccepted, itConnected:
		if r.streams[it.in.Stream] == it.st {
			it.st.startReader(r)
		}
	case itClosed:
		if it.in.Err == "" {
			r.maybeFinish(it.st)
		}
	}
}

func (r *Runner) step(in spec.Input) {
	now := r.clock.Now()
	if r.tw != nil {
		_ = r.tw.Write(trace.FromInput(r.epoch, now, r.traceNode(), in))
	}
	r.out = r.m.Step(now, in, r.out[:0])
	for i := range r.out {
		if r.exited {
			break
		}
		r.apply(now, &r.out[i])
	}
	if !r.inBatch || r.exited {
		r.flushSends()
	}
	if r.opt.OnStep != nil {
		r.opt.OnStep(now, in, r.out)
	}
	clear(r.out)
}

func (r *Runner) traceNode() string {
	if r.opt.TraceNode != "" {
		return r.opt.TraceNode
	}
	return "node"
}

func (r *Runner) mapOut(a netip.AddrPort) netip.AddrPort {
	if r.opt.Addrs == nil {
		return a
	}
	return r.opt.Addrs.Out(a)
}

func (r *Runner) mapIn(a netip.AddrPort) netip.AddrPort {
	if r.opt.Addrs == nil {
		return a
	}
	return r.opt.Addrs.In(a)
}

func (r *Runner) apply(now spec.Time, o *spec.Output) {
	if r.tw != nil {
		_ = r.tw.Write(trace.FromOutput(r.epoch, now, r.traceNode(), *o))
	}
	switch o.Kind {
	case spec.OutBind:
		r.bind(o)
	case spec.OutUnbind:
		r.flushSends()
		if s := r.socks[o.Sock]; s != nil {
			delete(r.socks, o.Sock)
			s.close()
		}
	case spec.OutSend:
		s := r.socks[o.Sock]
		if s == nil || s.udp == nil {
			r.log.Warn("send on unbound socket", "sock", o.Sock)
			return
		}
		p := pendingSend{s: s, to: r.mapOut(o.Addr), data: o.Data}
		if o.Local.IsValid() && s.pktinfo {
			p.from = sourceFor(r.mapOut(netip.AddrPortFrom(o.Local, s.addr.Port())).Addr(), p.to.Addr())
		}
		r.sendQ = append(r.sendQ, p)
	case spec.OutDial:
		r.dial(o.Stream, o.Addr)
	case spec.OutWrite:
		if st := r.streams[o.Stream]; st != nil {
			st.write(o.Data)
		} else {
			r.log.Debug("write on unknown stream", "stream", o.Stream)
		}
	case spec.OutClose:
		if st := r.streams[o.Stream]; st != nil {
			st.closeWrite()
		}
	case spec.OutAbort:
		if st := r.streams[o.Stream]; st != nil {
			delete(r.streams, o.Stream)
			st.kill(true)
		}
	case spec.OutPause:
		if st := r.streams[o.Stream]; st != nil {
			st.setPaused(true)
		}
	case spec.OutResume:
		if st := r.streams[o.Stream]; st != nil && st.isPaused() {
			st.setPaused(false)
			// What was held goes first, as items of its own (the
			// machine is mid-step); handle holds it again if the
			// machine pauses once more on the way.
			r.local = append(st.held, r.local...)
			st.held = nil
		}
	case spec.OutSetTimer:
		if ts, ok := r.timers[o.Timer]; ok {
			ts.stop.Stop()
		}
		r.token++
		tok, id := r.token, o.Timer
		stop := r.clock.AfterFunc(o.At.Sub(now), func() {
			r.post(item{kind: itTimer, in: spec.Input{Kind: spec.InTimer, Timer: id}, token: tok})
		})
		r.timers[id] = timerState{token: tok, stop: stop}
	case spec.OutCancelTimer:
		if ts, ok := r.timers[o.Timer]; ok {
			ts.stop.Stop()
			delete(r.timers, o.Timer)
		}
	case spec.OutEvent:
		if r.opt.OnEvent != nil {
			r.opt.OnEvent(now, o.Event)
		}
	case spec.OutLog:
		r.log.LogAttrs(context.Background(), o.Log.Level, o.Log.Msg, o.Log.Attrs...)
	case spec.OutExit:
		r.exited, r.exitErr = true, o.Err
	}
}

func (r *Runner) bind(o *spec.Output) {
	reply := spec.Input{Kind: spec.InBound, Sock: o.Sock}
	var cause error
	defer func() { r.local = append(r.local, item{kind: itInput, in: reply, cause: cause}) }()
	if _, dup := r.socks[o.Sock]; dup {
		reply.Err = "socket already bound"
		return
	}
	addr := o.Addr
	if r.opt.Addrs != nil {
		addr = r.opt.Addrs.Bind(o.Sock, o.Net, addr)
	}
	s := &sock{id: o.Sock, net: o.Net}
	switch o.Net {
	case spec.UDP:
		c, err := net.ListenUDP(udpNet(addr), net.UDPAddrFromAddrPort(addr))
		if err != nil {
			reply.Err, cause = sysErr(err), err
			return
		}
		if r.opt.ReadBuffer > 0 {
			_ = c.SetReadBuffer(r.opt.ReadBuffer)
		}
		if r.opt.WriteBuffer > 0 {
			_ = c.SetWriteBuffer(r.opt.WriteBuffer)
		}
		s.addr = c.LocalAddr().(*net.UDPAddr).AddrPort()
		if a := o.Addr.Addr(); !a.IsValid() || a.IsUnspecified() {
			s.wild = true
			if s.addr.Addr().IsUnspecified() {
				s.pktinfo = enablePktinfo(c, udpNet(addr) == "udp4")
			} else {
				s.fixed = r.mapIn(unmapV4(s.addr)).Addr()
			}
		}
		s.udp, s.raw = c, c
		s.batch = newBatchIO(c, s.addr)
		if r.opt.Faults.Active() {
			f := NewFaultyConn(c, r.opt.Faults)
			r.faultMu.Lock()
			r.faulty = append(r.faulty, f)
			r.faultMu.Unlock()
			s.udp, s.faulty = f, f
		}
		r.wg.Add(1)
		go r.readUDP(s)
	case spec.TCP:
		ln, err := net.ListenTCP(tcpNet(addr), net.TCPAddrFromAddrPort(addr))
		if err != nil {
			reply.Err, cause = sysErr(err), err
			return
		}
		s.addr = ln.Addr().(*net.TCPAddr).AddrPort()
		s.ln = ln
		r.wg.Add(1)
		go r.accept(s)
	default:
		reply.Err = "unknown transport"
		return
	}
	r.socks[o.Sock] = s
	reply.Addr = r.mapIn(unmapV4(s.addr))
}

// FaultStats sums what the fault injectors of the runner's sockets did.
func (r *Runner) FaultStats() FaultStats {
	r.faultMu.Lock()
	defer r.faultMu.Unlock()
	var t FaultStats
	for _, f := range r.faulty {
		s := f.Stats()
		t.Sent += s.Sent
		t.Dropped += s.Dropped
		t.Duplicated += s.Duplicated
		t.Delayed += s.Delayed
	}
	return t
}

func udpNet(a netip.AddrPort) string {
	if a.Addr().Is4() {
		return "udp4"
	}
	if a.Addr().Is6() && !a.Addr().IsUnspecified() {
		return "udp6"
	}
	return "udp"
}

func tcpNet(a netip.AddrPort) string {
	if a.Addr().Is4() {
		return "tcp4"
	}
	if a.Addr().Is6() && !a.Addr().IsUnspecified() {
		return "tcp6"
	}
	return "tcp"
}

// sysErr strips Go's "listen udp 1.2.3.4:5:" and the system call's
// "bind:" prefixes so machines see the same error text the simulator
// gives ("address already in use", "connection refused"), and name the
// address themselves.
func sysErr(err error) string {
	var sc *os.SyscallError
	if errors.As(err, &sc) && sc.Err != nil {
		return sc.Err.Error()
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err.Error()
	}
	return err.Error()
}

func unmapV4(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

func (s *sock) close() {
	if s.udp != nil {
		_ = s.udp.Close()
	}
	if s.ln != nil {
		_ = s.ln.Close()
	}
}

// maxDatagram is the largest UDP payload.
const maxDatagram = 65535

// readFailed handles a UDP read error and reports whether the reader must
// stop: the socket was closed or the runner is done. Other errors leave
// the socket alive. (ICMP errors reach an unconnected socket only with
// IP_RECVERR, which the runner does not set: see spec.InDatagram.)
func (r *Runner) readFailed(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return true
	}
	r.log.Debug("udp read", "err", err)
	select {
	case <-r.quit:
		return true
	default:
		return false
	}
}

func (r *Runner) readUDP(s *sock) {
	defer r.wg.Done()
	size := r.opt.MaxDatagram
	// One more byte than the limit tells an oversized datagram apart.
	buf := make([]byte, min(size+1, maxDatagram))
	var oob []byte
	if s.pktinfo {
		oob = make([]byte, oobSize)
	}
	for count := 0; ; count++ {
		if count == busyAfter && r.opt.ReadBatch > 1 && s.batch != nil && !raceEnabled {
			r.readBatched(s, len(buf), size)
			return
		}
		var (
			n, oobn int
			from    netip.AddrPort
			err     error
		)
		if s.pktinfo {
			n, oobn, _, from, err = s.raw.ReadMsgUDPAddrPort(buf, oob)
		} else {
			n, from, err = s.raw.ReadFromUDPAddrPort(buf)
		}
		if err == nil && n > size {
			r.oversize.Add(1)
			r.log.Debug("dropped oversized datagram", "from", from, "limit", size)
			continue
		}
		if err != nil {
			if r.readFailed(err) {
				return
			}
			continue
		}
		if !r.admit(n) {
			r.log.Debug("dropped datagram: input queue full", "from", from, "queued", r.opt.MaxQueuedInput)
			continue
		}
		data := make([]byte, n)
		copy(data, buf[:n])
		r.post(item{kind: itDatagram, sk: s, cost: int64(n), in: spec.Input{Kind: spec.InDatagram, Sock: s.id, Addr: r.mapIn(unmapV4(from)), Local: r.localAddr(s, oob[:oobn]), Data: data}})
	}
}

// sourceFor is from as a source for a datagram to to, or zero (the
// kernel's choice) if it cannot be one: of the other family (which the
// kernel ignores or refuses), or not a unicast address.
func sourceFor(from, to netip.Addr) netip.Addr {
	from = from.Unmap()
	if from.Is4() != to.Unmap().Is4() {
		return netip.Addr{}
	}
	return unicast(from)
}

// localAddr is a datagram's Local: nothing unless the machine bound an
// unspecified address.
func (r *Runner) localAddr(s *sock, oob []byte) netip.Addr {
	switch {
	case !s.wild:
		return netip.Addr{}
	case s.pktinfo:
		if a := parsePktinfo(oob); a.IsValid() {
			return r.mapIn(netip.AddrPortFrom(a, s.addr.Port())).Addr()
		}
		return netip.Addr{}
	default:
		return s.fixed
	}
}

func (r *Runner) accept(s *sock) {
	defer r.wg.Done()
	for {
		c, err := s.ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.log.Debug("accept", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		st := newStream(c)
		remote := r.mapIn(unmapV4(c.RemoteAddr().(*net.TCPAddr).AddrPort()))
		// The id is assigned in the loop, so ids follow the order the
		// machine sees accepts in.
		if !r.post(item{kind: itAccepted, st: st, sk: s, in: spec.Input{Kind: spec.InAccepted, Sock: s.id, Addr: remote}}) {
			st.kill(true) // accepted as the runner stopped
		}
	}
}

func (r *Runner) dial(id spec.Stream, to netip.AddrPort) {
	if _, dup := r.streams[id]; dup || id&spec.AcceptedStream != 0 {
		r.log.Warn("dial with a stream id in use", "stream", id)
		return
	}
	st := newStream(nil)
	st.id = id
	r.streams[id] = st
	addr := r.mapOut(to)
	timeout := r.opt.DialTimeout
	connect := func(post func(item)) {
		d := net.Dialer{Timeout: timeout}
		c, err := d.Dial(tcpNet(addr), addr.String())
		if err != nil {
			post(item{kind: itClosed, st: st, in: spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: sysErr(err)}})
			return
		}
		st.attach(c.(*net.TCPConn), r)
		post(item{kind: itConnected, st: st, in: spec.Input{Kind: spec.InConnected, Stream: id, Addr: to}})
	}
	if r.opt.Hold {
		// A replay harness tells connections apart by the order they
		// arrive in, so dials happen one at a time, in order.
		connect(func(it item) { r.local = append(r.local, it) })
		return
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		connect(func(it item) {
			if !r.post(it) && it.st != nil {
				it.st.kill(true) // connected as the runner stopped
			}
		})
	}()
}

// maybeFinish releases a stream both of whose directions have ended.
func (r *Runner) maybeFinish(st *stream) {
	if st.rdone && st.wdone() && r.streams[st.id] == st {
		delete(r.streams, st.id)
		st.kill(false)
		if r.opt.Hold {
			r.finished[st.id] = st
		}
	}
}

func (r *Runner) shutdown() {
	close(r.quit)
	if st := r.Stats(); st.Oversize+st.Dropped+st.SendErrors > 0 {
		r.log.Debug("runner drops", "oversize", st.Oversize, "queue-full", st.Dropped, "send-errors", st.SendErrors)
	}
	for _, ts := range r.timers {
		ts.stop.Stop()
	}
	for _, s := range r.socks {
		s.close()
	}
	// Streams the machine closed get their queued bytes out, briefly,
	// then a FIN. Streams it left open are reset, as the simulator resets
	// a node's connections when it exits: a FIN would tell the peer the
	// stream ended where it was cut (a C/S download stopped mid-file
	// would look complete).
	deadline := time.Now().Add(2 * time.Second)
	var flush []*stream
	for _, st := range r.streams {
		if st.isClosing() {
			flush = append(flush, st)
		} else {
			st.kill(true)
		}
	}
	for _, st := range flush {
		// One whose bytes did not all go out in time is cut: reset it,
		// or the FIN would end it as if complete.
		st.kill(!st.waitFlushed(deadline))
	}
	r.wg.Wait()
	// Connections accepted or dialed that the machine never heard of
	// are still in the queue: reset them rather than leave them open.
	// The rest is dropped, and un-counted.
	for {
		select {
		case it := <-r.items:
			r.discard(it)
			if it.st != nil && (it.kind == itAccepted || it.kind == itConnected) {
				it.st.kill(true)
			}
		default:
			return
		}
	}
}

func (r *Runner) String() string { return fmt.Sprintf("runner(%T)", r.m) }
