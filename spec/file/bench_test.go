package file_test

import (
	"context"
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
)

var (
	loopSize  = flag.Int64("loopback.size", 1<<30, "bytes per transfer in BenchmarkLoopback")
	loopDgram = flag.Int("loopback.datagram", 1400, "datagram size in BenchmarkLoopback")
	loopLoss  = flag.Float64("loopback.loss", 0, "injected loss in BenchmarkLoopbackFile")
)

// BenchmarkLoopback measures, in one run so the ratios compare like with
// like on a shared machine: a bare UDP send loop at the datagram size
// (and what its receiver got), TCP over loopback, and a file-service
// download of the same size (SHA-256 verified on both ends), without and
// with 1% loss injected on both ends (data and acknowledgements). The
// lossless download is also measured through the injector (loss 1e-9),
// which asks it about every datagram: loss/lossless-injector compares the
// same I/O path and isolates the protocol's response to loss. The lossy
// sender's recovery is reported too: retransmissions, RTOs, tail-loss
// probes, spurious retransmissions, window reductions and the losses
// taken for noise. Run it with -benchtime=1x:
//
//	go test ./spec/file -run XXX -bench 'Loopback$' -benchtime 1x
func BenchmarkLoopback(b *testing.B) {
	size, dg := *loopSize, *loopDgram
	for i := 0; i < b.N; i++ {
		udpSent, udpGot := bareUDP(b, size, dg)
		tcp := bareTCP(b, size)
		lossless, _ := fileGoodput(b, size, dg, impl.FaultConfig{})
		viaInjector, _ := fileGoodput(b, size, dg, impl.FaultConfig{Loss: 1e-9, Seed: 7})
		lossy, st := fileGoodput(b, size, dg, impl.FaultConfig{Loss: 0.01, Seed: 7})
		st.report(b, "-1%loss")
		b.ReportMetric(udpSent/1e6, "udp-send-MB/s")
		b.ReportMetric(udpGot/1e6, "udp-recv-MB/s")
		b.ReportMetric(tcp/1e6, "tcp-MB/s")
		b.ReportMetric(lossless/1e6, "file-MB/s")
		b.ReportMetric(viaInjector/1e6, "file-injector-MB/s")
		b.ReportMetric(lossy/1e6, "file-1%loss-MB/s")
		b.ReportMetric(lossless/udpSent, "file/udp-send")
		b.ReportMetric(lossy/lossless, "loss/lossless")
		b.ReportMetric(lossy/viaInjector, "loss/lossless-injector")
	}
}

// bareUDP sends size bytes in dg-byte datagrams as fast as one goroutine
// can and returns the send rate and the rate the receiver got them at.
func bareUDP(b *testing.B, size int64, dg int) (float64, float64) {
	rc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetReadBuffer(4 << 20)
	sc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sc.Close()
	_ = sc.SetWriteBuffer(4 << 20)
	to := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	var got, last atomic.Int64
	done := make(chan struct{})
	t0 := time.Now()
	go func() {
		defer close(done)
		buf := make([]byte, 65536)
		for {
			_ = rc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			got.Add(int64(n))
			last.Store(int64(time.Since(t0)))
		}
	}()
	payload := make([]byte, dg)
	for sent := int64(0); sent < size; sent += int64(dg) {
		if _, err := sc.WriteToUDPAddrPort(payload, to); err != nil {
			b.Fatal(err)
		}
	}
	sendTime := time.Since(t0)
	<-done
	return float64(size) / sendTime.Seconds(), float64(got.Load()) / time.Duration(last.Load()).Seconds()
}

// bareTCP streams size bytes over a loopback TCP connection.
func bareTCP(b *testing.B, size int64) float64 {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	done := make(chan time.Duration, 1)
	t0 := time.Now()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- 0
			return
		}
		defer c.Close()
		_, _ = io.Copy(io.Discard, c)
		done <- time.Since(t0)
	}()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for sent := int64(0); sent < size; sent += int64(len(buf)) {
		if _, err := c.Write(buf[:min(int64(len(buf)), size-sent)]); err != nil {
			b.Fatal(err)
		}
	}
	c.Close()
	return float64(size) / (<-done).Seconds()
}

// fileGoodput downloads a synthetic file of size bytes from a file
// server to a client, both on impl over loopback, and returns the
// goodput from the client's start to its verified file.
func fileGoodput(b *testing.B, size int64, dg int, faults impl.FaultConfig) (float64, senderStats) {
	opts := func(o impl.Options) impl.Options {
		o.ReadBuffer, o.WriteBuffer, o.MaxDatagram, o.Faults = 4<<20, 4<<20, dg, faults
		o.GSO = true // as netspec file does
		return o
	}
	scfg := file.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Files: []file.SynthFile{{Name: "f", Size: size, Seed: 1}},
		Session: rudp.Config{Seed: 1, MaxDatagram: dg}}
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sm := file.NewServer(scfg, nil)
	srv := impl.New(sm, opts(impl.Options{OnEvent: func(_ spec.Time, ev spec.Event) {
		if ev.Name == "listening" {
			addrc <- ev.Text
		}
	}}))
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-addrc)
	var doneAt atomic.Int64
	t0 := time.Now()
	cl := impl.New(file.NewClient(file.ClientConfig{Server: addr, Session: rudp.Config{Seed: 2, MaxDatagram: dg}}), opts(impl.Options{
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "file-done":
				doneAt.Store(int64(time.Since(t0)))
			case "file-error":
				b.Errorf("download failed: %s", ev.Text)
			}
		},
	}))
	cl.Command(spec.Command{Name: "get", Args: []string{"f"}})
	cl.Command(spec.Command{Name: "exit"})
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer ccancel()
	if err := cl.Run(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		b.Fatal(err)
	}
	cancel()
	<-srvDone
	if doneAt.Load() == 0 {
		b.Fatal("the download did not finish")
	}
	st := senderStats{}
	for _, c := range sm.Counters() { // the server has stopped: no race
		switch c.Name {
		case "rudp_segments_sent":
			st.segs = c.Value
		case "rudp_retransmits":
			st.retrans = c.Value
		case "rudp_rto_expirations":
			st.rtos = c.Value
		case "rudp_tail_probes":
			st.tlps = c.Value
		case "rudp_spurious_retransmits":
			st.spurious = c.Value
		case "rudp_loss_events":
			st.lossEvents = c.Value
		case "rudp_noise_losses":
			st.noise = c.Value
		}
	}
	return float64(size) / time.Duration(doneAt.Load()).Seconds(), st
}

// senderStats are the file server's session counters after a download:
// how it recovered from loss.
type senderStats struct {
	segs, retrans, rtos, tlps, spurious, lossEvents, noise uint64
}

// report adds st to b's metrics, each with the given suffix.
func (st senderStats) report(b *testing.B, suffix string) {
	b.ReportMetric(float64(st.retrans)/float64(max(st.segs, 1))*100, "retrans-%"+suffix)
	b.ReportMetric(float64(st.rtos), "RTOs"+suffix)
	b.ReportMetric(float64(st.tlps), "TLPs"+suffix)
	b.ReportMetric(float64(st.spurious), "spurious"+suffix)
	b.ReportMetric(float64(st.lossEvents), "reductions"+suffix)
	b.ReportMetric(float64(st.noise), "noise-losses"+suffix)
}

// simGoodputSeeds are the simulations TestSimGoodputTarget holds to the
// issue's target.
const simGoodputSeeds = 5

// TestSimGoodputTarget: in the simulator (virtual time, so the figure is
// exact and the same on every machine), a 10 MB download over 10 Mbit/s
// links with 5 ms delay and 1% loss reaches at least 0.85 of the link
// rate, headers, handshake and slow start included, for every seed.
func TestSimGoodputTarget(t *testing.T) {
	for seed := uint64(1); seed <= simGoodputSeeds; seed++ {
		ratio, err := simGoodput(seed)
		if err != nil {
			t.Fatalf("seed %d: %v", seed, err)
		}
		t.Logf("seed %d: %.3f of the link", seed, ratio)
		if ratio < 0.85 {
			t.Errorf("seed %d: goodput %.3f of the link rate, target 0.85", seed, ratio)
		}
	}
}

// BenchmarkSimGoodput is the simulated target: one 10 MB download over
// 10 Mbit/s links with 5 ms delay and 1% loss. of-link is goodput over
// the link rate (headers, handshake and slow start included).
func BenchmarkSimGoodput(b *testing.B) {
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		ratio, err := simGoodput(uint64(i) + 1)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(ratio, "of-link")
		b.ReportMetric(time.Since(t0).Seconds(), "wall-s")
	}
}

// simGoodput runs BenchmarkSimGoodput's download with seed and returns
// its goodput over the link rate.
func simGoodput(seed uint64) (float64, error) {
	const size, rate = 10 << 20, 10e6
	files := []file.SynthFile{{Name: "f", Size: size, Seed: 3}}
	srvAddr := netip.MustParseAddrPort("10.0.0.1:6000")
	var done spec.Time
	s := sim.New(sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: rate, Delay: 5 * time.Millisecond}), Faults: sim.Faults{Loss: 0.01},
		OnEvent: func(_ *sim.Node, now spec.Time, ev spec.Event) {
			if ev.Name == "file-done" {
				done = now
			}
		}})
	scfg := file.ServerConfig{Addr: srvAddr, Files: files, Session: rudp.Config{Seed: 1}}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: srvAddr.Addr(), New: func() spec.Machine { return file.NewServer(scfg, nil) }})
	ccfg := file.ClientConfig{Server: srvAddr, Session: rudp.Config{Seed: 2}}
	s.MustAddNode(sim.NodeSpec{Name: "client", New: func() spec.Machine { return file.NewClient(ccfg) }})
	s.Command(0, "client", spec.Command{Name: "get", Args: []string{"f"}})
	s.Command(0, "client", spec.Command{Name: "exit"})
	s.Run(time.Minute)
	if done == 0 {
		return 0, errors.New("download did not finish")
	}
	good := float64(size) * 8 / done.Sub(spec.SimEpoch).Seconds()
	return good / rate, nil
}

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(m.Run())
}

// BenchmarkLoopbackFile is the file-service leg of BenchmarkLoopback
// alone, for profiling: SetBytes makes ns/op read as MB/s;
// -loopback.loss injects loss on both ends.
func BenchmarkLoopbackFile(b *testing.B) {
	b.SetBytes(*loopSize)
	for i := 0; i < b.N; i++ {
		_, st := fileGoodput(b, *loopSize, *loopDgram, impl.FaultConfig{Loss: *loopLoss, Seed: 7})
		st.report(b, "")
	}
}

// BenchmarkMachines steps a file server and a client directly against
// each other in memory (no sockets, goroutines or channels): the cost of
// the protocol itself per byte, SHA-256 on both ends included. Compare
// with BenchmarkLoopback to see what the runner and the kernel add.
func BenchmarkMachines(b *testing.B) {
	const size = 64 << 20
	b.SetBytes(size)
	for i := 0; i < b.N; i++ {
		if err := pipe(size, 1400); err != nil {
			b.Fatal(err)
		}
	}
}

// pipe runs a download between a server and a client machine connected
// by an in-memory, lossless link with a 20µs delay.
func pipe(size int64, dg int) error {
	srvAddr := netip.MustParseAddrPort("10.0.0.1:6000")
	cliAddr := netip.MustParseAddrPort("10.0.0.2:50000")
	srv := file.NewServer(file.ServerConfig{Addr: srvAddr, Files: []file.SynthFile{{Name: "f", Size: size, Seed: 1}}, Session: rudp.Config{Seed: 1, MaxDatagram: dg}}, nil)
	cl := file.NewClient(file.ClientConfig{Server: srvAddr, Session: rudp.Config{Seed: 2, MaxDatagram: dg}})
	type node struct {
		m      spec.Machine
		self   netip.AddrPort
		timers map[spec.Timer]spec.Time
		inbox  []spec.Input
	}
	nodes := []*node{{m: srv, self: srvAddr, timers: map[spec.Timer]spec.Time{}}, {m: cl, self: cliAddr, timers: map[spec.Timer]spec.Time{}}}
	now := spec.SimEpoch
	done := false
	var out []spec.Output
	step := func(n, peer *node, in spec.Input) {
		out = n.m.Step(now, in, out[:0])
		for _, o := range out {
			switch o.Kind {
			case spec.OutBind:
				n.inbox = append(n.inbox, spec.Input{Kind: spec.InBound, Sock: o.Sock, Addr: n.self})
			case spec.OutSend:
				peer.inbox = append(peer.inbox, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: n.self, Data: o.Data})
			case spec.OutSetTimer:
				n.timers[o.Timer] = o.At
			case spec.OutCancelTimer:
				delete(n.timers, o.Timer)
			case spec.OutEvent:
				if o.Event.Name == "file-done" {
					done = true
				}
			}
		}
	}
	step(nodes[0], nodes[1], spec.Input{Kind: spec.InStart})
	step(nodes[1], nodes[0], spec.Input{Kind: spec.InStart})
	step(nodes[1], nodes[0], spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"f"}}})
	for iter := 0; !done; iter++ {
		if iter > 1<<26 {
			return errors.New("no progress")
		}
		moved := false
		for k, n := range nodes {
			peer := nodes[1-k]
			for len(n.inbox) > 0 {
				in := n.inbox[0]
				n.inbox = n.inbox[1:]
				now = now.Add(20 * time.Nanosecond)
				step(n, peer, in)
				moved = true
			}
		}
		if moved {
			continue
		}
		// Nothing in flight: fire the earliest timer.
		var tn *node
		var tid spec.Timer
		var at spec.Time
		for _, n := range nodes {
			for id, t := range n.timers {
				if tn == nil || t < at || (t == at && id < tid) {
					tn, tid, at = n, id, t
				}
			}
		}
		if tn == nil {
			return errors.New("stalled with no timer")
		}
		delete(tn.timers, tid)
		now = max(now, at)
		step(tn, nodes[0], spec.Input{Kind: spec.InTimer, Timer: tid})
	}
	return nil
}
