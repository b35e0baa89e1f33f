package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// ErrSkip says a trace cannot be replayed against impl, and why.
var ErrSkip = errors.New("conformance: not replayable on sockets")

// ImplOptions tunes ReplayImpl.
type ImplOptions struct {
	// Timeout bounds the wait for each input (default 5s).
	Timeout time.Duration
	// OnSkip, if set, is told of every record the replay leaves out of
	// the comparison because real sockets cannot reproduce it (see
	// Skip), before the replay starts.
	OnSkip func(Skip)
}

// Skip is a record of a node that a replay against impl leaves out, with
// the outputs of its step, because real sockets cannot reproduce it. The
// spec replay still checks it.
type Skip struct {
	Node   string
	Index  int // position among the node's records
	Record trace.Record
	Reason string
}

func (s Skip) String() string {
	return fmt.Sprintf("node %s: record %d not replayed on sockets: %s\n    %s", s.Node, s.Index, s.Reason, line(&s.Record))
}

// resetAfterEOF explains the one kind of record skipped today. A socket
// that has read EOF reports a reset only to a write that finds it, so
// whether a runner sees one depends on whether its writer still had bytes
// to write when the reset came; once the node has closed too, the runner
// has released the stream and sees nothing. Simulators before
// 2026-11-22 reset a stream whose peer exited before every byte on it was
// acknowledged, even one both sides had closed (a client that exits as
// soon as it reads the server's FIN took its last ACK with it), where a
// kernel acknowledges and sends its own FIN; traces they wrote hold such
// records, and a crash can still produce one.
const resetAfterEOF = "a reset after the peer's FIN (sockets report it only to a later write, and not at all once the node has closed too)"

// unreplayable finds the records of want that real sockets cannot
// reproduce: it returns their indices in want, and the Skips to report
// (one per skipped input; its step's outputs, which follow it, are
// skipped with it).
func unreplayable(node string, want []trace.Record) (map[int]bool, []Skip) {
	skip := map[int]bool{}
	var skips []Skip
	eof := map[uint64]bool{} // streams whose peer has finished sending
	skipping := false
	for i, r := range want {
		if r.In == "" {
			if skipping {
				skip[i] = true
			}
			if r.Out == "dial" {
				delete(eof, r.Stream) // a stream id used again
			}
			continue
		}
		skipping = false
		if r.In != "closed" {
			continue
		}
		if r.Err == "" {
			eof[r.Stream] = true
			continue
		}
		if eof[r.Stream] {
			skip[i], skipping = true, true
			skips = append(skips, Skip{Node: node, Index: i, Record: r, Reason: resetAfterEOF})
		}
		delete(eof, r.Stream)
	}
	return skip, skips
}

// addrMap maps every IP of a trace to a loopback address of its own.
type addrMap struct {
	fwd    map[netip.Addr]netip.Addr
	rev    map[netip.Addr]netip.Addr
	next   uint32
	prefix uint32 // 127.0.0.0 + prefix<<8 + n: a fresh /24 per replay
	bound  map[spec.Sock][]netip.AddrPort

	// A socket the trace bound on an unspecified address binds one here
	// too (it must see every address it was sent to), but on a port of
	// the system's choosing: the recorded one may be taken on this host,
	// by any address. The ports map both ways; the runner's readers ask
	// concurrently.
	mu          sync.Mutex
	wildPending []uint16          // recorded ports of binds not yet answered
	wildOut     map[uint16]uint16 // recorded port -> real
	wildIn      map[uint16]uint16 // real port -> recorded
}

func newAddrMap() *addrMap {
	return &addrMap{
		fwd: map[netip.Addr]netip.Addr{},
		rev: map[netip.Addr]netip.Addr{},
		// A random /24 keeps concurrent and successive replays apart, so
		// no connection meets another's TIME_WAIT.
		prefix:  uint32(64<<8 + rand.IntN(190<<8)),
		bound:   map[spec.Sock][]netip.AddrPort{},
		wildOut: map[uint16]uint16{},
		wildIn:  map[uint16]uint16{},
	}
}

func (m *addrMap) add(a netip.Addr) {
	a = a.Unmap()
	if !a.IsValid() || a.IsUnspecified() {
		return
	}
	if _, ok := m.fwd[a]; ok {
		return
	}
	m.next++
	v := 127<<24 + m.prefix<<8 + m.next
	l := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	m.fwd[a], m.rev[l] = l, a
}

func (m *addrMap) Out(a netip.AddrPort) netip.AddrPort {
	if a.Addr().IsUnspecified() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if r, ok := m.wildOut[a.Port()]; ok {
			return netip.AddrPortFrom(a.Addr(), r)
		}
		return a
	}
	if l, ok := m.fwd[a.Addr().Unmap()]; ok {
		return netip.AddrPortFrom(l, a.Port())
	}
	return a
}

func (m *addrMap) In(a netip.AddrPort) netip.AddrPort {
	if a.Addr().IsUnspecified() {
		// The runner maps a bind's answer right after the bind: the
		// first unknown port is the oldest pending bind's.
		m.mu.Lock()
		defer m.mu.Unlock()
		if r, ok := m.wildIn[a.Port()]; ok {
			return netip.AddrPortFrom(a.Addr(), r)
		}
		if len(m.wildPending) > 0 {
			rec := m.wildPending[0]
			m.wildPending = m.wildPending[1:]
			m.wildIn[a.Port()], m.wildOut[rec] = rec, a.Port()
			return netip.AddrPortFrom(a.Addr(), rec)
		}
		return a
	}
	if o, ok := m.rev[a.Addr().Unmap()]; ok {
		return netip.AddrPortFrom(o, a.Port())
	}
	return a
}

func (m *addrMap) Bind(s spec.Sock, _ spec.Net, req netip.AddrPort) netip.AddrPort {
	if q := m.bound[s]; len(q) > 0 {
		m.bound[s] = q[1:]
		if rec := q[0]; rec.Addr().IsUnspecified() && rec.Port() != 0 {
			m.mu.Lock()
			m.wildPending = append(m.wildPending, rec.Port())
			m.mu.Unlock()
			return netip.AddrPortFrom(rec.Addr(), 0)
		}
		return m.Out(q[0])
	}
	return m.Out(req)
}

// dialable turns a bound address into one a peer can send to.
func dialable(a netip.AddrPort) netip.AddrPort {
	if a.Addr().IsUnspecified() {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), a.Port())
	}
	return a
}

// peerConn is the harness's end of one of the node's streams.
type peerConn struct {
	c    *net.TCPConn
	mu   sync.Mutex
	got  []byte
	eof  bool
	rerr error
	done chan struct{}
}

func newPeerConn(c *net.TCPConn) *peerConn {
	p := &peerConn{c: c, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			p.mu.Lock()
			p.got = append(p.got, buf[:n]...)
			if err != nil {
				p.eof = errors.Is(err, io.EOF)
				p.rerr = err
			}
			p.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	return p
}

// waitFor waits until n bytes have arrived, the stream has ended, or
// timeout has passed, and returns how many bytes have arrived.
func (p *peerConn) waitFor(n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := p.received()
		p.mu.Lock()
		ended := p.rerr != nil
		p.mu.Unlock()
		if got >= n || ended || !time.Now().Before(deadline) {
			return got
		}
		time.Sleep(time.Millisecond)
	}
}

// received is how many bytes have arrived.
func (p *peerConn) received() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.got)
}

// writtenBefore is how many bytes recs say their node wrote on st.
func writtenBefore(recs []trace.Record, st spec.Stream) int {
	n := 0
	for _, r := range recs {
		if r.Out == "write" && spec.Stream(r.Stream) == st {
			p, _ := r.Payload()
			n += len(p)
		}
	}
	return n
}

type udpPeer struct {
	c    *net.UDPConn
	mu   sync.Mutex
	got  [][]byte
	from []netip.Addr  // each datagram's source
	more chan struct{} // a datagram arrived
}

// harnessReadBuffer is the receive buffer asked for on the harness's UDP
// sockets (the kernel caps it at net.core.rmem_max).
const harnessReadBuffer = 4 << 20

// waitFor waits until the socket has received n datagrams in all, and
// reports how many it has.
func (p *udpPeer) waitFor(n int, timeout time.Duration) int {
	var deadline <-chan time.Time
	for {
		p.mu.Lock()
		have := len(p.got)
		p.mu.Unlock()
		if have >= n {
			return have
		}
		if deadline == nil {
			t := time.NewTimer(timeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-p.more:
		case <-deadline:
			return have
		}
	}
}

// harness plays every peer of the node under replay.
type harness struct {
	amap    *addrMap
	udp     map[netip.AddrPort]*udpPeer
	lns     map[netip.AddrPort]*net.TCPListener
	accepts map[netip.AddrPort]chan *net.TCPConn
	dials   map[netip.AddrPort][]spec.Stream // dial targets' stream ids, in order
	conns   map[spec.Stream]*peerConn
	ownAddr map[spec.Sock]netip.AddrPort
	mu      sync.Mutex
}

func (h *harness) close() {
	for _, p := range h.udp {
		_ = p.c.Close()
	}
	for _, l := range h.lns {
		_ = l.Close()
	}
	for _, c := range h.conns {
		if c != nil {
			_ = c.c.Close()
		}
	}
}

// ReplayImpl replays node against an impl.Runner on loopback sockets. It
// returns an error wrapping ErrSkip for traces it cannot replay (a node
// that restarts). Records real sockets cannot reproduce (see Skip) are
// left out of the comparison and reported to opt.OnSkip.
//
// The node and the harness bind the ports the trace recorded (on loopback
// addresses of their own), and another process's socket on the wildcard
// address may hold one of them for a while: a replay that fails only for
// that is tried again, up to portAttempts times, before the error (which
// wraps syscall.EADDRINUSE) is returned.
func ReplayImpl(ctx context.Context, t *Trace, node string, lookup Lookup, opt ImplOptions) error {
	if opt.Timeout <= 0 {
		opt.Timeout = 5 * time.Second
	}
	for attempt := 1; ; attempt++ {
		err := replayImpl(ctx, t, node, lookup, opt)
		if !errors.Is(err, syscall.EADDRINUSE) || attempt == portAttempts {
			return err
		}
		opt.OnSkip = nil // reported once, by the first attempt
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(attempt) * portRetryPause):
		}
	}
}

// portAttempts and portRetryPause bound the retries of a replay whose
// recorded port is taken: ephemeral sockets of tests running beside it
// come and go in well under a second.
const (
	portAttempts   = 4
	portRetryPause = 200 * time.Millisecond
)

func replayImpl(ctx context.Context, t *Trace, node string, lookup Lookup, opt ImplOptions) error {
	want := t.NodeRecords(node)
	starts := 0
	for _, r := range want {
		if r.In == "start" {
			starts++
		}
	}
	if starts != 1 || want[0].In != "start" {
		return fmt.Errorf("%w: node %s starts %d times", ErrSkip, node, starts)
	}
	m, err := t.machine(node, lookup)
	if err != nil {
		return err
	}
	epoch := spec.Time(t.Header.Epoch)

	// What the runner must reproduce: want without the skipped records;
	// kept maps its indices back to want's.
	skip, skips := unreplayable(node, want)
	if opt.OnSkip != nil {
		for _, s := range skips {
			opt.OnSkip(s)
		}
	}
	kept := make([]int, 0, len(want)-len(skip))
	wantImpl := make([]trace.Record, 0, len(want)-len(skip))
	for i, r := range want {
		if !skip[i] {
			kept = append(kept, i)
			wantImpl = append(wantImpl, r)
		}
	}

	h := &harness{
		amap:    newAddrMap(),
		udp:     map[netip.AddrPort]*udpPeer{},
		lns:     map[netip.AddrPort]*net.TCPListener{},
		accepts: map[netip.AddrPort]chan *net.TCPConn{},
		dials:   map[netip.AddrPort][]spec.Stream{},
		conns:   map[spec.Stream]*peerConn{},
		ownAddr: map[spec.Sock]netip.AddrPort{},
	}
	defer h.close()
	if err := h.setup(want); err != nil {
		return err
	}

	clock := impl.NewManualClock(epoch)
	var mu sync.Mutex
	var got []trace.Record
	sentTo := map[netip.AddrPort]int{} // datagrams the runner sent, by the machine's destination
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := impl.New(m, impl.Options{
		Clock:      clock,
		Hold:       true,
		Addrs:      h.amap,
		TraceEpoch: epoch,
		StopGrace:  50 * time.Millisecond,
		OnStep: func(now spec.Time, in spec.Input, out []spec.Output) {
			mu.Lock()
			defer mu.Unlock()
			got = append(got, trace.FromInput(epoch, now, node, in))
			for _, o := range out {
				got = append(got, trace.FromOutput(epoch, now, node, o))
				if o.Kind == spec.OutSend {
					sentTo[o.Addr]++
				}
				if o.Kind == spec.OutExit {
					break
				}
			}
		},
	})
	runErr := make(chan error, 1)
	go func() { runErr <- r.Run(rctx) }()

	snapshot := func() []trace.Record {
		mu.Lock()
		defer mu.Unlock()
		return append([]trace.Record(nil), got...)
	}
	// diff compares the runner's record with wantImpl and reports the
	// first difference by its index among the node's records.
	diff := func(g []trace.Record) *Divergence {
		err := compare(node, "impl", wantImpl, g)
		var d *Divergence
		if !errors.As(err, &d) {
			return nil
		}
		if d.Index < len(kept) {
			d.Index = kept[d.Index]
		} else if len(kept) > 0 {
			d.Index = kept[len(kept)-1] + 1
		}
		if n := skippedBefore(skips, d.Index); n > 0 {
			note := fmt.Sprintf("%d record(s) before it not replayed on sockets (the first, record %d: %s)", n, skips[0].Index, skips[0].Reason)
			if d.Note != "" {
				note = d.Note + "; " + note
			}
			d.Note = note
		}
		return d
	}
	fail := func(i int, note string) error {
		if d := diff(snapshot()); d != nil && d.Got != nil {
			return d
		}
		return divergence(node, "impl", want, min(i, len(want)-1), &want[min(i, len(want)-1)], nil, note)
	}

	// Datagrams go to the harness in bursts as fast as the runner steps;
	// a step's datagrams must be in the harness's sockets before the next
	// step, or a long replay overflows their receive buffers on loopback.
	arrived := map[netip.AddrPort]int{} // datagrams known to be in the harness's sockets
	type wait struct {
		a netip.AddrPort
		n int
	}
	var waits []wait
	awaitSends := func(i int) error {
		waits = waits[:0]
		mu.Lock()
		for a, n := range sentTo {
			if n > arrived[a] && h.udp[a] != nil {
				waits = append(waits, wait{a, n})
			}
		}
		mu.Unlock()
		for _, w := range waits {
			if have := h.udp[w.a].waitFor(w.n, opt.Timeout); have < w.n {
				return fail(i, fmt.Sprintf("the harness received %d of the %d datagrams the node sent to %v", have, w.n, w.a))
			}
			arrived[w.a] = w.n
		}
		return nil
	}

	// awaitStreams waits until the harness has read every byte the node
	// wrote on its streams before record i: a node stopped while its
	// runner still had bytes queued (a loaded machine) was cut short, and
	// the comparison counted fewer bytes than it wrote.
	awaitStreams := func(i int) error {
		cut := map[spec.Stream]bool{} // reset or aborted: their bytes need not all arrive
		for _, r := range want[:i] {
			if r.Out == "abort" || r.In == "closed" && r.Err != "" {
				cut[spec.Stream(r.Stream)] = true
			}
		}
		ids := make([]spec.Stream, 0, len(h.conns))
		for st := range h.conns {
			if !cut[st] {
				ids = append(ids, st)
			}
		}
		slices.Sort(ids)
		for _, st := range ids {
			if n := writtenBefore(want[:i], st); h.conns[st].waitFor(n, opt.Timeout) < n {
				return fail(i, fmt.Sprintf("the harness received %d of the %d bytes the node wrote on stream %d", h.conns[st].received(), n, st))
			}
		}
		return nil
	}

	for i, rec := range want {
		if rec.In == "" {
			continue
		}
		if skip[i] {
			continue
		}
		in, err := rec.Input()
		if err != nil {
			return err
		}
		if in.Kind == spec.InStop {
			if err := awaitStreams(i); err != nil {
				return err
			}
		}
		clock.Advance(epoch + spec.Time(rec.T))
		if in.Kind == spec.InStreamClosed && in.Err != "" {
			// The recorded peer reset the stream after what it read of
			// it: a reset discards what the harness has not read yet,
			// so read what the node wrote before it first.
			if c := h.conns[in.Stream]; c != nil {
				if n := writtenBefore(want[:i], in.Stream); c.waitFor(n, opt.Timeout) < n {
					return fail(i, fmt.Sprintf("the harness received %d of the %d bytes the node wrote on stream %d before its peer reset it", c.received(), n, in.Stream))
				}
			}
		}
		if err := h.act(r, cancel, in); errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("conformance: node %s, record %d: %w", node, i, err)
		} else if err != nil {
			return fail(i, err.Error())
		}
		rel, relCancel := context.WithTimeout(ctx, opt.Timeout)
		err = r.Release(rel, in)
		relCancel()
		if errors.Is(err, impl.ErrBindFailed) {
			return fmt.Errorf("conformance: node %s, record %d: %w", node, i, err)
		}
		if err != nil {
			return fail(i, err.Error())
		}
		if err := awaitSends(i); err != nil {
			return err
		}
		if in.Kind == spec.InBound && in.Err == "" {
			h.ownAddr[in.Sock] = h.amap.Out(in.Addr)
		}
	}
	if err := awaitStreams(len(want)); err != nil {
		return err
	}
	cancel()
	select {
	case <-runErr:
	case <-time.After(5 * time.Second):
		return fmt.Errorf("conformance: node %s: runner did not stop", node)
	}
	if d := diff(snapshot()); d != nil {
		return d
	}
	return h.verify(node, wantImpl)
}

// skippedBefore counts the skipped inputs before index i.
func skippedBefore(skips []Skip, i int) int {
	n := 0
	for _, s := range skips {
		if s.Index < i {
			n++
		}
	}
	return n
}

// setup opens the harness's sockets: one per peer address the node talks
// to, and a listener per address it dials.
func (h *harness) setup(want []trace.Record) error {
	own := map[netip.AddrPort]bool{}
	for _, r := range want {
		if a, err := netip.ParseAddrPort(r.Addr); err == nil {
			h.amap.add(a.Addr())
		}
		if a, err := netip.ParseAddr(r.Local); err == nil {
			h.amap.add(a)
		}
		if r.In == "bound" && r.Err == "" {
			a, _ := netip.ParseAddrPort(r.Addr)
			h.amap.bound[spec.Sock(r.Sock)] = append(h.amap.bound[spec.Sock(r.Sock)], a)
			own[a] = true
		}
	}
	for _, r := range want {
		a, err := netip.ParseAddrPort(r.Addr)
		if err != nil || own[a] || a.Port() == 0 || a.Addr().IsUnspecified() {
			continue
		}
		switch {
		case r.In == "datagram" || r.Out == "send":
			if h.udp[a] != nil {
				continue
			}
			c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(h.amap.Out(a)))
			if err != nil {
				return fmt.Errorf("conformance: harness socket for %v: %w", a, err)
			}
			_ = c.SetReadBuffer(harnessReadBuffer)
			p := &udpPeer{c: c, more: make(chan struct{}, 1)}
			h.udp[a] = p
			go func() {
				buf := make([]byte, 65536)
				for {
					n, from, err := c.ReadFromUDPAddrPort(buf)
					if err != nil {
						return
					}
					p.mu.Lock()
					p.got = append(p.got, append([]byte(nil), buf[:n]...))
					p.from = append(p.from, from.Addr().Unmap())
					p.mu.Unlock()
					select {
					case p.more <- struct{}{}:
					default:
					}
				}
			}()
		case r.Out == "dial":
			h.dials[a] = append(h.dials[a], spec.Stream(r.Stream))
			if h.lns[a] != nil {
				continue
			}
			ln, err := net.ListenTCP("tcp4", net.TCPAddrFromAddrPort(h.amap.Out(a)))
			if err != nil {
				return fmt.Errorf("conformance: harness listener for %v: %w", a, err)
			}
			h.lns[a] = ln
			ch := make(chan *net.TCPConn, 64)
			h.accepts[a] = ch
			go func() {
				for {
					c, err := ln.AcceptTCP()
					if err != nil {
						return
					}
					ch <- c
				}
			}()
		}
	}
	// A dial that the trace says failed must fail here too: no listener.
	failed := map[spec.Stream]bool{}
	connected := map[spec.Stream]bool{}
	for _, r := range want {
		if r.In == "connected" {
			connected[spec.Stream(r.Stream)] = true
		}
		if r.In == "closed" && r.Err != "" {
			failed[spec.Stream(r.Stream)] = true
		}
	}
	for a, ids := range h.dials {
		ok := false
		for _, id := range ids {
			ok = ok || connected[id]
		}
		if !ok {
			_ = h.lns[a].Close()
			delete(h.lns, a)
		}
	}
	return nil
}

// act does, with real sockets, what made the node get input in.
func (h *harness) act(r *impl.Runner, stop context.CancelFunc, in spec.Input) error {
	switch in.Kind {
	case spec.InDatagram:
		p := h.udp[in.Addr]
		dst, ok := h.ownAddr[in.Sock]
		if p == nil || !ok {
			return fmt.Errorf("harness has no socket for datagram %v -> sock %d", in.Addr, in.Sock)
		}
		to := dialable(dst)
		if in.Local.IsValid() && dst.Addr().IsUnspecified() {
			// The node listens everywhere and saw where the datagram
			// was sent: send it there, so the runner reports the same.
			to = netip.AddrPortFrom(h.amap.Out(netip.AddrPortFrom(in.Local, 0)).Addr(), dst.Port())
		}
		if _, err := p.c.WriteToUDPAddrPort(in.Data, to); err != nil {
			return fmt.Errorf("harness send: %w", err)
		}
	case spec.InAccepted:
		dst, ok := h.ownAddr[in.Sock]
		if !ok {
			return fmt.Errorf("harness does not know listener %d", in.Sock)
		}
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(h.amap.Out(in.Addr)), Timeout: 5 * time.Second}
		c, err := d.Dial("tcp4", dialable(dst).String())
		if err != nil {
			return fmt.Errorf("harness dial: %w", err)
		}
		h.conns[in.Stream] = newPeerConn(c.(*net.TCPConn))
	case spec.InConnected:
		// The runner (in Hold mode) dials one connection at a time, so
		// the listener's connections belong to the streams in the order
		// the node dialed them.
		for a, ids := range h.dials {
			if !slices.Contains(ids, in.Stream) {
				continue
			}
			for h.conns[in.Stream] == nil && len(h.dials[a]) > 0 {
				select {
				case c := <-h.accepts[a]:
					h.conns[h.dials[a][0]] = newPeerConn(c)
					h.dials[a] = h.dials[a][1:]
				case <-time.After(5 * time.Second):
					return fmt.Errorf("harness listener %v saw no connection", a)
				}
			}
			return nil
		}
	case spec.InStreamData:
		c := h.conns[in.Stream]
		if c == nil {
			return fmt.Errorf("harness has no connection for stream %d", in.Stream)
		}
		if _, err := c.c.Write(in.Data); err != nil {
			return fmt.Errorf("harness write: %w", err)
		}
	case spec.InStreamClosed:
		c := h.conns[in.Stream]
		if c == nil {
			return nil // a dial that failed
		}
		if in.Err == "" {
			_ = c.c.CloseWrite()
		} else {
			_ = c.c.SetLinger(0)
			_ = c.c.Close()
		}
	case spec.InCommand:
		r.Command(in.Cmd)
	case spec.InStop:
		stop()
	}
	return nil
}

// verify checks that what the node sent reached the harness.
func (h *harness) verify(node string, want []trace.Record) error {
	sends := map[netip.AddrPort][][]byte{}
	srcs := map[netip.AddrPort][]netip.Addr{}
	writes := map[spec.Stream][]byte{}
	closed := map[spec.Stream]bool{}
	aborted := map[spec.Stream]bool{}
	for _, r := range want {
		switch r.Out {
		case "send":
			a, _ := netip.ParseAddrPort(r.Addr)
			p, _ := r.Payload()
			sends[a] = append(sends[a], p)
			var src netip.Addr
			if l, err := netip.ParseAddr(r.Local); err == nil {
				src = h.amap.Out(netip.AddrPortFrom(l, 0)).Addr().Unmap()
			}
			srcs[a] = append(srcs[a], src)
		case "write":
			p, _ := r.Payload()
			writes[spec.Stream(r.Stream)] = append(writes[spec.Stream(r.Stream)], p...)
		case "close":
			closed[spec.Stream(r.Stream)] = true
		case "abort":
			aborted[spec.Stream(r.Stream)] = true
		}
	}
	deadline := time.Now().Add(3 * time.Second)
	addrs := make([]netip.AddrPort, 0, len(sends))
	for a := range sends {
		addrs = append(addrs, a)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].String() < addrs[j].String() })
	for _, a := range addrs {
		p := h.udp[a]
		if p == nil {
			continue
		}
		exp := sends[a]
		for {
			p.mu.Lock()
			n := len(p.got)
			p.mu.Unlock()
			if n >= len(exp) || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		p.mu.Lock()
		got, from := p.got, p.from
		p.mu.Unlock()
		if len(got) != len(exp) {
			return fmt.Errorf("conformance: node %s sent %d datagrams to %v, the harness received %d", node, len(exp), a, len(got))
		}
		for i := range exp {
			if !bytes.Equal(exp[i], got[i]) {
				return fmt.Errorf("conformance: node %s: datagram %d to %v arrived as %q, want %q", node, i, a, clip(got[i]), clip(exp[i]))
			}
			if want := srcs[a][i]; want.IsValid() && from[i] != want {
				return fmt.Errorf("conformance: node %s: datagram %d to %v came from %v, want %v (its recorded local address)", node, i, a, from[i], want)
			}
		}
	}
	for id, exp := range writes {
		c := h.conns[id]
		if c == nil || aborted[id] {
			continue
		}
		for {
			c.mu.Lock()
			n, eof := len(c.got), c.eof || c.rerr != nil
			c.mu.Unlock()
			if (n >= len(exp) && (!closed[id] || eof)) || time.Now().After(deadline) {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		c.mu.Lock()
		got, eof := c.got, c.eof
		c.mu.Unlock()
		if !bytes.HasPrefix(got, exp) || len(got) != len(exp) {
			return fmt.Errorf("conformance: node %s: stream %d carried %d bytes, want %d", node, id, len(got), len(exp))
		}
		if closed[id] && !eof {
			return fmt.Errorf("conformance: node %s closed stream %d but the harness saw no FIN", node, id)
		}
	}
	return nil
}

func clip(b []byte) []byte {
	if len(b) > 48 {
		return b[:48]
	}
	return b
}
