package impl

import (
	"context"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// These tests look inside the runner from the machine's Step, which runs
// on the loop goroutine that owns the stream bookkeeping, to see what a
// machine cannot: what the runner read ahead of it, and what its writer
// still had queued.

// listenHere answers InStart and InBound for a test machine that
// listens on TCP on loopback, sending the address to addr.
func listenHere(in spec.Input, out []spec.Output, addr chan<- netip.AddrPort) ([]spec.Output, bool) {
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("127.0.0.1:0"))), true
	case spec.InBound:
		addr <- in.Addr
		return out, true
	case spec.InStop:
		return append(out, spec.Exit("")), true
	}
	return out, false
}

// pausedForGood pauses the first stream on its first data and never
// resumes it. On the command "measure" it reports how many bytes the
// runner has read from the stream that the machine has not been handed:
// those it holds for the machine and those still on their way to the
// loop.
type pausedForGood struct {
	r       *Runner
	addr    chan netip.AddrPort
	ahead   chan int
	handed  int // bytes handed to the machine
	paused  bool
	stream  spec.Stream
	pausedN int // bytes handed after the pause: must stay 0
}

func (m *pausedForGood) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if out, ok := listenHere(in, out, m.addr); ok {
		return out
	}
	switch in.Kind {
	case spec.InStreamData:
		if m.paused {
			m.pausedN += len(in.Data)
		}
		m.handed += len(in.Data)
		if !m.paused {
			m.paused, m.stream = true, in.Stream
			out = append(out, spec.Pause(in.Stream))
		}
	case spec.InCommand:
		n := int(m.r.backlog.Load())
		if st := m.r.streams[m.stream]; st != nil {
			for _, it := range st.held {
				n += len(it.in.Data)
			}
		}
		m.ahead <- n
	}
	return out
}

// A paused stream's reader stops reading: what the runner has read that
// the machine has not taken stays under MaxStreamQueued and two reads
// (one posted as the pause came, one under way), however much the peer
// tries to send, and TCP's flow control holds the peer back. A reader
// that read on would hold everything the peer sent.
func TestPausedStreamStopsReading(t *testing.T) {
	const perStream, oneRead, total = 64 << 10, 64 << 10, 64 << 20
	m := &pausedForGood{addr: make(chan netip.AddrPort, 1), ahead: make(chan int, 1)}
	r := New(m, Options{MaxStreamQueued: perStream})
	m.r = r
	ctx, cancel, errc, c := runAndDial(t, r, m.addr)
	defer cancel()
	// The write stops when the kernel's buffers are full, if the runner
	// stops reading; the deadline ends it.
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	n, werr := c.Write(make([]byte, total))
	r.Command(spec.Command{Name: "measure"})
	var ahead int
	select {
	case ahead = <-m.ahead:
	case <-ctx.Done():
		t.Fatal("the machine was not asked to measure")
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("the client wrote %d of %d bytes (%v); the machine was handed %d, the runner read %d more", n, total, werr, m.handed, ahead)
	if m.handed == 0 {
		t.Fatal("the machine was handed no data: the test did not pause the stream")
	}
	if m.pausedN != 0 {
		t.Errorf("the machine was handed %d bytes after it paused the stream", m.pausedN)
	}
	if limit := perStream + 2*oneRead; ahead > limit {
		t.Fatalf("the runner read %d bytes of a paused stream ahead of the machine, more than MaxStreamQueued and two reads (%d): pausing did not stop its reader", ahead, limit)
	}
}

// burster writes a big burst on the stream it accepts and, on the
// command "more", another behind it and a close; at each
// InStreamWritable it notes what the stream's writer still had queued.
type burster struct {
	r       *Runner
	addr    chan netip.AddrPort
	first   []byte
	second  []byte
	queued  chan struct{}
	stream  spec.Stream
	pending []int // the writer's queued bytes at each InStreamWritable
}

func (m *burster) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if out, ok := listenHere(in, out, m.addr); ok {
		return out
	}
	switch in.Kind {
	case spec.InAccepted:
		m.stream = in.Stream
		out = append(out, spec.Write(in.Stream, m.first))
	case spec.InCommand:
		out = append(out, spec.Write(m.stream, m.second), spec.Close(m.stream))
		close(m.queued)
	case spec.InStreamWritable:
		n := -1 // the stream is gone
		if st := m.r.streams[in.Stream]; st != nil {
			st.mu.Lock()
			n = st.pending
			st.mu.Unlock()
		}
		m.pending = append(m.pending, n)
	case spec.InStreamClosed:
		out = append(out, spec.Exit(""))
	}
	return out
}

// InStreamWritable comes only when everything written has gone to the
// kernel: a second burst written while the first was still being sent
// is not taken when the first is, so no InStreamWritable comes between
// them, and the one that comes finds nothing queued.
func TestWritableOnlyWhenAllWritten(t *testing.T) {
	m := &burster{
		addr: make(chan netip.AddrPort, 1),
		// Far more than the kernel's buffers on both sides (tcp_wmem
		// and tcp_rmem allow 4 and 32 MiB), so the first burst is still
		// being written while the client does not read.
		first:  make([]byte, 64<<20),
		second: make([]byte, 32<<20),
		queued: make(chan struct{}),
	}
	r := New(m, Options{})
	m.r = r
	ctx, cancel, errc, c := runAndDial(t, r, m.addr)
	defer cancel()
	_ = c.SetReadBuffer(64 << 10)
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	// A first byte shows the writer has taken the first burst.
	buf := make([]byte, 1)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	r.Command(spec.Command{Name: "more"})
	select {
	case <-m.queued:
	case <-ctx.Done():
		t.Fatal("the machine did not write its second burst")
	}
	got, err := io.Copy(io.Discard, c)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(len(m.first) + len(m.second) - 1); got != want {
		t.Fatalf("the client read %d bytes after the first, want %d", got, want)
	}
	_ = c.CloseWrite()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(m.pending) != 1 || m.pending[0] != 0 {
		t.Fatalf("InStreamWritable came %d times, with the writer's queue holding %v bytes: want once, with nothing queued", len(m.pending), m.pending)
	}
}

// runAndDial runs r for at most 30 s and dials the TCP address its
// machine reports on addr; the connection is closed when the test ends.
func runAndDial(t *testing.T, r *Runner, addr <-chan netip.AddrPort) (context.Context, context.CancelFunc, <-chan error, *net.TCPConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(<-addr))
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return ctx, cancel, errc, c
}

// aborter writes size bytes on the stream it accepts and closes it. On
// a command it aborts the stream if its writer has sent the FIN, and
// says on fin whether it had.
type aborter struct {
	r      *Runner
	addr   chan netip.AddrPort
	size   int
	stream spec.Stream
	fin    chan bool
}

func (m *aborter) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if out, ok := listenHere(in, out, m.addr); ok {
		return out
	}
	switch in.Kind {
	case spec.InAccepted:
		m.stream = in.Stream
		out = append(out, spec.Write(in.Stream, make([]byte, m.size)), spec.Close(in.Stream))
	case spec.InCommand:
		st := m.r.streams[m.stream]
		sent := st != nil && st.wdone()
		if sent {
			out = append(out, spec.Abort(m.stream))
		}
		m.fin <- sent
	}
	return out
}

// An abort resets the stream even after the machine closed it and its
// FIN went out behind the bytes written: the peer, which has not read
// them all, gets a reset, not the rest and an EOF.
func TestAbortAfterCloseResets(t *testing.T) {
	m := &aborter{addr: make(chan netip.AddrPort, 1), size: 1 << 20, fin: make(chan bool, 1)}
	r := New(m, Options{})
	m.r = r
	ctx, cancel, errc, c := runAndDial(t, r, m.addr)
	defer cancel()
	_ = c.SetReadBuffer(64 << 10) // the rest waits in the runner's socket
	for sent := false; !sent; {
		r.Command(spec.Command{Name: "abort"})
		select {
		case sent = <-m.fin:
		case <-ctx.Done():
			t.Fatal("the writer did not send the FIN")
		}
		time.Sleep(time.Millisecond)
	}
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		t.Fatalf("the peer read %d of %d bytes and a clean EOF from a stream the machine aborted", n, m.size)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
}
