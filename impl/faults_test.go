package impl_test

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
)

// The injector does on real sockets what its statistics say: the
// receiver gets every datagram sent, less those dropped, plus one more
// copy of each duplicated one, and jitter reorders them.
func TestFaultyConnDropsDuplicatesAndReorders(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	f := impl.NewFaultyConn(tx, impl.FaultConfig{Seed: 7, Loss: 0.1, Dup: 0.2, Jitter: 5 * time.Millisecond})
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	// Read while sending: a burst left waiting would overflow the
	// socket buffer, and the kernel's drops would count as the
	// injector's.
	seen := map[uint64]int{}
	got, reordered := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		var highest uint64
		buf := make([]byte, 64)
		for {
			// Every held copy is out within the 5 ms of jitter; a quiet
			// half second means all have arrived.
			_ = rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := rx.Read(buf)
			if err != nil {
				return
			}
			i := binary.BigEndian.Uint64(buf[:k])
			if got > 0 && i < highest && seen[i] == 0 {
				reordered++
			}
			highest = max(highest, i)
			seen[i]++
			got++
		}
	}()
	const n = 500
	for i := range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		if _, err := f.WriteToUDPAddrPort(b[:], to); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // a paced sender, as the protocols are
		}
	}
	<-done
	st := f.Stats()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("sent %d: dropped %d, duplicated %d, delayed %d; received %d, %d copies, %d reordered", st.Sent, st.Dropped, st.Duplicated, st.Delayed, got, dups, reordered)
	if st.Sent != n || st.Dropped == 0 || st.Duplicated == 0 {
		t.Fatalf("stats %+v: want %d sent with some dropped and some duplicated", st, n)
	}
	if want := int(st.Sent - st.Dropped + st.Duplicated); got != want {
		t.Errorf("received %d datagrams, want sent - dropped + duplicated = %d", got, want)
	}
	if dups != int(st.Duplicated) || len(seen) != int(st.Sent-st.Dropped) {
		t.Errorf("%d distinct datagrams with %d extra copies, want %d and %d", len(seen), dups, st.Sent-st.Dropped, st.Duplicated)
	}
	if reordered == 0 {
		t.Error("5 ms of jitter reordered nothing")
	}
}

// oneShot binds a UDP socket on loopback and sends one datagram to dst
// from it, recording when (on the runner's clock) the step that sent it
// ran.
type oneShot struct {
	dst  netip.AddrPort
	sent chan spec.Time
}

func (m *oneShot) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		m.sent <- now
		out = append(out, spec.Send(1, m.dst, []byte("late")))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// With a Delay and no jitter, a runner's datagram reaches its receiver
// no sooner than Delay after the step that sent it (a lower bound only:
// a loaded host may add to it), and the injector counts it as delayed.
func TestFaultDelayHoldsDatagramsBack(t *testing.T) {
	const delay = 150 * time.Millisecond
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	clock := impl.NewRealClock() // the runner's and the receiver's
	m := &oneShot{dst: rx.LocalAddr().(*net.UDPAddr).AddrPort(), sent: make(chan spec.Time, 1)}
	r := impl.New(m, impl.Options{Clock: clock, Faults: impl.FaultConfig{Seed: 1, Delay: delay}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("runner: %v", err)
		}
	}()
	buf := make([]byte, 64)
	_ = rx.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := rx.ReadFromUDPAddrPort(buf)
	arrived := clock.Now()
	if err != nil {
		t.Fatalf("no datagram: %v", err)
	}
	sent := <-m.sent
	if string(buf[:n]) != "late" {
		t.Fatalf("received %q", buf[:n])
	}
	if took := arrived.Sub(sent); took < delay {
		t.Errorf("the datagram arrived %v after it was sent, sooner than the injector's Delay of %v", took, delay)
	}
	if st := r.FaultStats(); st.Sent != 1 || st.Delayed != 1 || st.Dropped != 0 || st.Duplicated != 0 {
		t.Errorf("injector stats %+v, want one datagram sent and delayed", st)
	}
}

// keeper is a UDPConn that keeps the bytes written to it, in order.
type keeper struct {
	impl.UDPConn
	sent []byte
}

func (k *keeper) WriteToUDPAddrPort(b []byte, _ netip.AddrPort) (int, error) {
	k.sent = append(k.sent, b...)
	return len(b), nil
}

// The seed alone decides the injector's faults: the same seed drops and
// duplicates the same datagrams, so a lossy run can be run again, and
// another seed others.
func TestFaultSeedDecides(t *testing.T) {
	fate := func(seed uint64) string {
		k := &keeper{}
		f := impl.NewFaultyConn(k, impl.FaultConfig{Seed: seed, Loss: 0.3, Dup: 0.3})
		for i := range 100 {
			_, _ = f.WriteToUDPAddrPort([]byte{byte(i)}, netip.MustParseAddrPort("127.0.0.1:9"))
		}
		return string(k.sent)
	}
	if a, b := fate(1), fate(1); a != b {
		t.Errorf("seed 1 let through %x, then %x", a, b)
	}
	if a, b := fate(1), fate(2); a == b {
		t.Errorf("seeds 1 and 2 both let through %x", a)
	}
}
