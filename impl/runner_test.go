package impl_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/echo"
)

// startServer runs an echo server on loopback and returns its address.
func startServer(t *testing.T, opt impl.Options) (netip.AddrPort, netip.AddrPort) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	addrs := map[string]netip.AddrPort{}
	ready := make(chan struct{}, 2)
	opt.OnEvent = func(_ spec.Time, ev spec.Event) {
		if ev.Name == "listening" {
			mu.Lock()
			var netw, a string
			for i, c := range ev.Text {
				if c == ' ' {
					netw, a = ev.Text[:i], ev.Text[i+1:]
				}
			}
			addrs[netw] = netip.MustParseAddrPort(a)
			mu.Unlock()
			ready <- struct{}{}
		}
	}
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	r := impl.New(echo.NewServer(echo.ServerConfig{UDP: lo, TCP: lo}), opt)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("server: %v", err)
		}
	})
	<-ready
	<-ready
	mu.Lock()
	defer mu.Unlock()
	return addrs["udp"], addrs["tcp"]
}

// runClient sends msgs with an echo client and returns its reply events.
func runClient(t *testing.T, cfg echo.ClientConfig, opt impl.Options, msgs ...[]byte) ([][]byte, error) {
	t.Helper()
	var replies [][]byte
	opt.OnEvent = func(_ spec.Time, ev spec.Event) {
		if ev.Name == "reply" {
			replies = append(replies, ev.Data)
		}
	}
	r := impl.New(echo.NewClient(cfg), opt)
	for _, m := range msgs {
		r.Command(spec.Command{Name: "send", Data: m})
	}
	r.Command(spec.Command{Name: "close"})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := r.Run(ctx)
	return replies, err
}

func TestEchoOnLoopback(t *testing.T) {
	udp, tcp := startServer(t, impl.Options{})
	big := bytes.Repeat([]byte("0123456789"), 50000) // 500 KB: many reads and writes
	tests := []struct {
		name string
		cfg  echo.ClientConfig
		opt  impl.Options
		msgs [][]byte
	}{
		{"udp", echo.ClientConfig{Server: udp}, impl.Options{}, [][]byte{[]byte("233\n"), {}, bytes.Repeat([]byte{0xff}, 60000)}},
		{"udp lossy", echo.ClientConfig{Server: udp, Timeout: 50 * time.Millisecond, Retries: 20}, impl.Options{Faults: impl.FaultConfig{Seed: 3, Loss: 0.3, Dup: 0.3, Jitter: 5 * time.Millisecond}}, [][]byte{[]byte("a"), []byte("b"), []byte("c"), []byte("d")}},
		{"tcp", echo.ClientConfig{Server: tcp, TCP: true}, impl.Options{}, [][]byte{[]byte("hello"), big}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			replies, err := runClient(t, tc.cfg, tc.opt, tc.msgs...)
			if err != nil {
				t.Fatalf("client: %v", err)
			}
			for _, m := range tc.msgs {
				found := false
				for _, r := range replies {
					if bytes.Equal(r, m) {
						found = true
					}
				}
				if !found {
					t.Errorf("no echo of a %d-byte message among %d replies", len(m), len(replies))
				}
			}
			for _, r := range replies {
				ok := false
				for _, m := range tc.msgs {
					ok = ok || bytes.Equal(r, m)
				}
				if !ok {
					t.Errorf("reply of %d bytes matches nothing sent", len(r))
				}
			}
		})
	}
}

func TestBindConflictReachesMachine(t *testing.T) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	taken := c.LocalAddr().(*net.UDPAddr).AddrPort()
	var bindErr string
	r := impl.New(echo.NewServer(echo.ServerConfig{UDP: taken}), impl.Options{OnStep: func(_ spec.Time, in spec.Input, _ []spec.Output) {
		if in.Kind == spec.InBound && in.Err != "" {
			bindErr = in.Err
		}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = r.Run(ctx)
	var ee *impl.ExitError
	if !errors.As(err, &ee) || !bytes.Contains([]byte(ee.Msg), []byte("address already in use")) {
		t.Fatalf("Run = %v, want an exit error about the address in use", err)
	}
	// The simulator's words exactly, with no system call's "bind:" in
	// front: machines put the address in their own messages.
	if bindErr != "address already in use" {
		t.Errorf("InBound.Err = %q, want the simulator's %q", bindErr, "address already in use")
	}
}

func TestStopIsGraceful(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	r := impl.New(echo.NewServer(echo.ServerConfig{UDP: netip.MustParseAddrPort("127.0.0.1:0")}), impl.Options{})
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("runner did not stop")
	}
}

// A busy socket with fault injection switches to batched reads like any
// other (it used to dereference a nil batcher), and the injector still
// decides every datagram's fate on batched sends.
func TestBusyFaultySocket(t *testing.T) {
	var n atomic.Int64
	s := &sink{n: &n, bound: make(chan netip.AddrPort, 1)}
	r := impl.New(s, impl.Options{Faults: impl.FaultConfig{Seed: 1, Loss: 0.5}, ReadBuffer: 8 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	dst := <-s.bound
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	for i := 0; i < 1000; i++ {
		if _, err := tx.WriteToUDPAddrPort([]byte("x"), dst); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // stay within the socket buffer under -race
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 1000 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n.Load() < 900 {
		t.Fatalf("delivered %d of 1000 datagrams (the injector only touches sends)", n.Load())
	}
}

// Sends batched in one step pass through the injector one by one.
func TestInjectorOnBatchedSends(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	m := &blaster{dst: rx.LocalAddr().(*net.UDPAddr).AddrPort(), burst: 2000, every: time.Hour, buf: []byte("payload")}
	r := impl.New(m, impl.Options{Faults: impl.FaultConfig{Seed: 7, Loss: 0.25}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	got := 0
	buf := make([]byte, 100)
	for {
		_ = rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
			break
		}
		got++
	}
	cancel()
	<-done
	st := r.FaultStats()
	if st.Sent != 2000 || int(st.Sent-st.Dropped) != got || st.Dropped < 400 || st.Dropped > 600 {
		t.Fatalf("injector saw %d sends and dropped %d; %d arrived", st.Sent, st.Dropped, got)
	}
}

// sizes sends datagrams of the given sizes in one step, each filled with
// its index.
type sizes struct {
	dst netip.AddrPort
	n   []int
}

func (m *sizes) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		for i, n := range m.n {
			out = append(out, spec.Send(1, m.dst, bytes.Repeat([]byte{byte(i)}, n)))
		}
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// With GSO, runs of equal-size datagrams (the last may be shorter) leave
// as segmented messages and arrive as the separate, intact datagrams they
// were, in order.
func TestGSOKeepsDatagrams(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	var want []int
	for i := 0; i < 70; i++ { // more than one message's 64 segments
		want = append(want, 1200)
	}
	want = append(want, 500, 1200, 1200, 7, 9000)
	r := impl.New(&sizes{dst: rx.LocalAddr().(*net.UDPAddr).AddrPort(), n: want}, impl.Options{GSO: true})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	buf := make([]byte, 65536)
	for i, n := range want {
		_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, _, err := rx.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("datagram %d of %d: %v", i, len(want), err)
		}
		if k != n || !bytes.Equal(buf[:k], bytes.Repeat([]byte{byte(i)}, n)) {
			t.Fatalf("datagram %d: %d bytes %v..., want %d bytes of %d", i, k, buf[:min(k, 4)], n, i)
		}
	}
	cancel()
	<-done
}

// A TCP client that writes faster than it reads (here: not at all for a
// while) is paused by the echo server, and TCP's flow control holds its
// writes back, instead of the echo piling up in the runner until the
// server resets it: all 32 MiB come back, in order.
func TestPauseSlowsAClientThatDoesNotRead(t *testing.T) {
	var pauses, resumes, aborts atomic.Int64
	_, tcp := startServer(t, impl.Options{OnStep: func(_ spec.Time, _ spec.Input, out []spec.Output) {
		for _, o := range out {
			switch o.Kind {
			case spec.OutPause:
				pauses.Add(1)
			case spec.OutResume:
				resumes.Add(1)
			case spec.OutAbort:
				aborts.Add(1)
			}
		}
	}})
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(tcp))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	want := make([]byte, 32<<20)
	for i := range want {
		want[i] = byte(i ^ i>>11)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(want)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	time.Sleep(300 * time.Millisecond) // every buffer on the way fills
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading the echo: %v (after %d bytes)", err, len(got))
	}
	if err := <-werr; err != nil {
		t.Fatalf("writing: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes came back as %d (equal prefix: %v)", len(want), len(got), bytes.HasPrefix(want, got))
	}
	if pauses.Load() == 0 || resumes.Load() == 0 || aborts.Load() != 0 {
		t.Fatalf("the server paused %d times, resumed %d, reset %d: want pauses and no reset", pauses.Load(), resumes.Load(), aborts.Load())
	}
}

// listenOnLoopback answers a test machine's start and bind: it listens
// on TCP on loopback and says where, as a "listening" event. It reports
// whether in was one of those.
func listenOnLoopback(in spec.Input, out []spec.Output) ([]spec.Output, bool) {
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("127.0.0.1:0"))), true
	case spec.InBound:
		return append(out, spec.Emit(spec.Event{Name: "listening", Text: "tcp " + in.Addr.String()})), true
	}
	return out, false
}

// runAndDial runs m (which listens with listenOnLoopback) on real
// sockets for at most d, and connects to it; Run's result comes on the
// channel.
func runAndDial(t *testing.T, m spec.Machine, d time.Duration) (*net.TCPConn, <-chan error) {
	t.Helper()
	addr := make(chan netip.AddrPort, 1)
	r := impl.New(m, impl.Options{OnEvent: func(_ spec.Time, ev spec.Event) {
		addr <- netip.MustParseAddrPort(ev.Text[len("tcp "):])
	}})
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(<-addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, errc
}

// pauser accepts one connection, pauses it on its first data (the
// runner's reader has most likely read more by then) and resumes it on
// its timer, recording what it is handed and when.
type pauser struct {
	paused bool
	early  int // bytes handed while paused
	got    []byte
	eof    bool
	after  int // inputs after EOF
}

func (m *pauser) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if m.eof {
		m.after++
	}
	if out, ok := listenOnLoopback(in, out); ok {
		return out
	}
	switch in.Kind {
	case spec.InTimer:
		m.paused = false
		out = append(out, spec.Resume(spec.AcceptedStream|1))
	case spec.InStreamData:
		if m.paused {
			m.early += len(in.Data)
		}
		if len(m.got) == 0 {
			m.paused = true
			out = append(out, spec.Pause(in.Stream), spec.SetTimer(1, now.Add(200*time.Millisecond)))
		}
		m.got = append(m.got, in.Data...)
	case spec.InStreamClosed:
		m.eof = in.Err == ""
		out = append(out, spec.Close(in.Stream), spec.Exit(""))
	}
	return out
}

// A paused stream hands the machine nothing, however much the runner
// had already read, until it resumes; then everything, in order, and the
// EOF last.
func TestPausedStreamIsHeld(t *testing.T) {
	m := &pauser{}
	c, errc := runAndDial(t, m, 10*time.Second)
	want := bytes.Repeat([]byte("paused "), 1<<16)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(want); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if m.early != 0 || !bytes.Equal(m.got, want) || !m.eof || m.after != 0 {
		t.Fatalf("handed %d bytes while paused, %d of %d in all (equal: %v), EOF %v, %d inputs after it", m.early, len(m.got), len(want), bytes.Equal(m.got, want), m.eof, m.after)
	}
}

// stuck accepts a connection and blocks in its first step with data
// until released: a machine far slower than its socket.
type stuck struct{ release chan struct{} }

func (m *stuck) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if out, ok := listenOnLoopback(in, out); ok {
		return out
	}
	switch in.Kind {
	case spec.InStreamData:
		if m.release != nil {
			<-m.release
			m.release = nil
		}
	case spec.InStreamClosed:
		out = append(out, spec.Close(in.Stream), spec.Exit(""))
	}
	return out
}

// A machine that cannot keep up with a stream holds its sender back
// through TCP's flow control once MaxStreamQueued bytes wait for it:
// the runner does not read on into its input queue (4,096 reads of up
// to 64 KiB: a 1 GB C/S download once took 550 MB of memory).
func TestSlowMachineHoldsTheSender(t *testing.T) {
	m := &stuck{release: make(chan struct{})}
	c, errc := runAndDial(t, m, 20*time.Second)
	const total = 128 << 20 // well above the kernel's buffers (tcp_rmem allows 32 MiB)
	_ = c.SetWriteDeadline(time.Now().Add(time.Second))
	n, err := c.Write(make([]byte, total))
	if err == nil || n >= total/2 {
		t.Fatalf("a client wrote %d of %d bytes (%v) to a machine stuck on the first of them; the kernel's buffers and MaxStreamQueued should have stopped it", n, total, err)
	}
	close(m.release)
	_ = c.SetWriteDeadline(time.Time{})
	_ = c.CloseWrite()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	t.Logf("written before the machine went on: %d bytes", n)
}

// Many connections into a slow machine each queue their share of
// MaxStreamsQueued (at least 64 KiB, and one read more), not
// MaxStreamQueued each: 1,024 echo clients that never read once took an
// echo server to 617 MB.
func TestStreamBacklogIsBoundedAcrossStreams(t *testing.T) {
	const conns, perStream, all, oneRead = 24, 1 << 20, 512 << 10, 64 << 10
	m := &slowReader{}
	addr := make(chan netip.AddrPort, 1)
	r := impl.New(m, impl.Options{MaxStreamQueued: perStream, MaxStreamsQueued: all,
		OnEvent: func(_ spec.Time, ev spec.Event) { addr <- netip.MustParseAddrPort(ev.Text[len("tcp "):]) }})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	to := net.TCPAddrFromAddrPort(<-addr)
	var wg sync.WaitGroup
	var cs []*net.TCPConn
	for range conns {
		c, err := net.DialTCP("tcp", nil, to)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cs = append(cs, c)
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Write(make([]byte, 4*perStream))
		}()
	}
	var peak int64
	for deadline := time.Now().Add(1500 * time.Millisecond); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		peak = max(peak, r.Stats().StreamBacklog)
	}
	wg.Wait()
	if got := m.accepted.Load(); got < conns {
		t.Fatalf("the machine accepted %d of %d connections: the test did not load every stream", got, conns)
	}
	share := max(all/conns, oneRead)
	if limit := int64(conns * (share + oneRead)); peak > limit {
		t.Fatalf("%d connections into a slow machine: %d bytes read ahead of it, more than a share of MaxStreamsQueued and one read each (%d)", conns, peak, limit)
	}
	if peak < all {
		t.Fatalf("peak backlog %d bytes: the test did not load the runner up to MaxStreamsQueued (%d)", peak, all)
	}
	for _, c := range cs {
		_ = c.Close()
	}
	cancel()
	<-errc
	if b := r.Stats().StreamBacklog; b != 0 {
		t.Errorf("after Run returned, Stats says %d bytes still wait for the machine: what a stopped runner drops must be un-counted", b)
	}
	t.Logf("peak backlog %d bytes across %d connections", peak, conns)
}

// slowReader accepts connections and takes 20 ms over each piece of data
// it is handed, as a machine hashing or writing to a slow disk might.
type slowReader struct{ accepted atomic.Int64 }

func (m *slowReader) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if out, ok := listenOnLoopback(in, out); ok {
		return out
	}
	switch in.Kind {
	case spec.InAccepted:
		m.accepted.Add(1)
	case spec.InStreamData:
		time.Sleep(20 * time.Millisecond)
	}
	return out
}

// unbinder binds a UDP socket on loopback and unbinds it on a command.
type unbinder struct{ bound chan netip.AddrPort }

func (m *unbinder) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		m.bound <- in.Addr
	case spec.InCommand:
		out = append(out, spec.Unbind(1))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// An unbound socket is closed there and then, not when the runner
// stops: its port is free for the next bind (a TFTP client unbinds each
// transfer's port, and a long-lived one would run out of descriptors).
func TestUnbindClosesTheSocket(t *testing.T) {
	m := &unbinder{bound: make(chan netip.AddrPort, 1)}
	unbound := make(chan struct{}, 1)
	r, _ := startMachine(t, m, impl.Options{OnStep: func(_ spec.Time, in spec.Input, _ []spec.Output) {
		if in.Kind == spec.InCommand {
			unbound <- struct{}{}
		}
	}})
	addr := within(t, m.bound, "the machine did not bind")
	r.Command(spec.Command{Name: "unbind"})
	within(t, unbound, "the machine did not unbind")
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatalf("binding the port the machine unbound: %v", err)
	}
	c.Close()
}

// A datagram the kernel refuses (over IPv4's size limit) is counted in
// Stats, and those sent beside it in the same step still go out, alone
// or in a batch.
func TestRefusedSendsAreCounted(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	for _, n := range [][]int{{70000}, {10, 70000, 10}} {
		r, stop := startMachine(t, &sizes{dst: rx.LocalAddr().(*net.UDPAddr).AddrPort(), n: n}, impl.Options{})
		buf := make([]byte, 64)
		for _, want := range []byte{0, 2}[:len(n)-1] {
			_ = rx.SetReadDeadline(time.Now().Add(5 * time.Second))
			if k, err := rx.Read(buf); err != nil || k != 10 || buf[0] != want {
				t.Fatalf("sizes %v: got %x (%v), want datagram %d", n, buf[:k], err, want)
			}
		}
		stop() // Run handles InBound, and sends, before it sees the stop
		if st := r.Stats(); st.SendErrors != 1 {
			t.Errorf("sizes %v: %d send errors counted, want 1", n, st.SendErrors)
		}
	}
}
