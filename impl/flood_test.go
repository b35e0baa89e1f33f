package impl_test

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
)

// recorder binds a UDP socket, records the sizes of the datagrams it is
// handed and, if slow, works a while on each (as a machine hashing might).
type recorder struct {
	addr    chan netip.AddrPort
	slow    time.Duration
	seen    atomic.Int64
	mu      sync.Mutex
	largest int
}

func newRecorder(slow time.Duration) *recorder {
	return &recorder{addr: make(chan netip.AddrPort, 1), slow: slow}
}

func (m *recorder) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		m.addr <- in.Addr
	case spec.InDatagram:
		m.seen.Add(1)
		m.mu.Lock()
		m.largest = max(m.largest, len(in.Data))
		m.mu.Unlock()
		time.Sleep(m.slow)
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// flood sends size-byte datagrams to to from n sockets until stop closes.
func flood(t *testing.T, to netip.AddrPort, n, size int, stop <-chan struct{}) *sync.WaitGroup {
	t.Helper()
	var wg sync.WaitGroup
	for range n {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(to))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			b := make([]byte, size)
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = c.Write(b)
				}
			}
		}()
	}
	return &wg
}

// A slow machine under a flood used to leave Run stuck for good on cancel:
// shutdown waited for readers blocked handing the full queue more input.
func TestCancelUnderFlood(t *testing.T) {
	m := newRecorder(200 * time.Microsecond)
	r := impl.New(m, impl.Options{ReadBuffer: 4 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	stop := make(chan struct{})
	wg := flood(t, <-m.addr, 4, 32, stop)
	defer func() { close(stop); wg.Wait() }()
	// Let the machine fall well behind: the queue holds 4096 items, and
	// the flood outpaces the machine a hundredfold.
	time.Sleep(time.Second)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second): // a hang detector, not a timing target
		t.Fatal("Run did not return after cancel while flooded")
	}
}

// A flood of large datagrams at a slow machine costs at most
// MaxQueuedInput bytes of queue; the rest is dropped and counted.
func TestFloodQueueIsBounded(t *testing.T) {
	m := newRecorder(time.Millisecond)
	const budget = 1 << 20
	r := impl.New(m, impl.Options{ReadBuffer: 4 << 20, MaxQueuedInput: budget})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	to := <-m.addr
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := make(chan struct{})
	wg := flood(t, to, 4, 60000, stop)
	var peak uint64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := r.Stats()
	t.Logf("machine took %d datagrams, runner dropped %d; heap in use %d MiB before, peak %d MiB",
		m.seen.Load(), st.Dropped, before.HeapInuse>>20, peak>>20)
	if st.Dropped == 0 {
		t.Error("a flood at a machine 1000x slower than it dropped nothing")
	}
	// Unbounded, the same flood queued hundreds of MiB a second.
	if grown := int64(peak) - int64(before.HeapInuse); grown > 64<<20 {
		t.Errorf("heap grew by %d MiB under a flood with a %d MiB input budget", grown>>20, budget>>20)
	}
}

// The batched reader reads into buffers one byte larger than MaxDatagram,
// and used to hand the machine a datagram of exactly that size.
func TestOversizeDroppedOnBothReadPaths(t *testing.T) {
	m := newRecorder(0)
	r := impl.New(m, impl.Options{MaxDatagram: 100})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(<-m.addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	send := func(n int) {
		if _, err := c.Write(make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Millisecond) // keep order and stay under the socket buffer
	}
	send(101) // first reads: one datagram per system call
	for range 100 {
		send(10) // the socket turns busy and reads in batches
	}
	send(101)
	send(65000)
	send(100)
	for deadline := time.Now().Add(5 * time.Second); m.seen.Load() < 101 && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if got := m.seen.Load(); got != 101 {
		t.Errorf("machine got %d datagrams, want the 101 of at most 100 bytes", got)
	}
	if m.largest != 100 {
		t.Errorf("largest datagram handed over: %d bytes, want 100", m.largest)
	}
	if st := r.Stats(); st.Oversize != 3 {
		t.Errorf("oversize count %d, want 3", st.Oversize)
	}
}
