package rudp_test

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

var (
	loopSize   = flag.Int64("loopback.size", 256<<20, "bytes per transfer in BenchmarkLoopbackLoss")
	loopMaxWnd = flag.Int("loopback.maxwindow", 0, "MaxWindow in BenchmarkLoopbackLoss")
	loopCC     = flag.String("loopback.cc", "", "congestion controller in BenchmarkLoopbackLoss")
	loopTrace  = flag.Bool("loopback.trace", false, "log the sender's window every 50ms in BenchmarkLoopbackLoss")
)

// streamSource sends size bytes of a constant buffer over one session
// and, inside its own steps (so no lock is needed), samples its
// session's statistics every few milliseconds.
type streamSource struct {
	server  netip.AddrPort
	size    int64
	buf     []byte
	ep      *rudp.Endpoint
	id      rudp.ConnID
	off     int64
	closed  bool
	start   spec.Time
	next    spec.Time
	samples []sample
}

type sample struct {
	at time.Duration
	st rudp.Stats
}

func (c *streamSource) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		c.start = now
		return append(out, spec.Bind(sock, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 0)))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit(in.Err))
		}
		c.id = c.ep.Dial(now, c.server)
	case spec.InStop:
		c.ep.Shutdown("stopping")
		out = c.ep.Flush(now, out)
		return append(out, spec.Exit("stopped"))
	}
	out, _ = c.ep.Handle(now, in, out)
	for ev, ok := c.ep.Next(); ok; ev, ok = c.ep.Next() {
		if ev.Kind == rudp.Closed {
			c.closed = true
			out = c.ep.Flush(now, out)
			return append(out, spec.Exit(ev.Err))
		}
	}
	if c.id != 0 && !c.closed {
		if now >= c.next && len(c.samples) < 1<<16 {
			if st, ok := c.ep.Stats(c.id); ok {
				c.samples = append(c.samples, sample{now.Sub(c.start), st})
			}
			c.next = now.Add(2 * time.Millisecond)
		}
		for c.off < c.size && c.ep.Buffered(c.id) < 4<<20 {
			n := min(int64(len(c.buf)), c.size-c.off)
			_ = c.ep.Write(c.id, c.buf[:n])
			c.off += n
		}
		if c.off == c.size {
			c.ep.Close(c.id)
		}
	}
	return c.ep.Flush(now, out)
}

func (c *streamSource) Counters() []spec.Counter { return c.ep.Counters() }

// countSink accepts sessions and counts the bytes they deliver.
type countSink struct {
	*sink
	got int64
}

func (s *countSink) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(sock, spec.UDP, s.addr))
	case spec.InBound:
		return append(out, spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
	case spec.InStop:
		s.ep.Shutdown("stopping")
		out = s.ep.Flush(now, out)
		return append(out, spec.Exit(""))
	}
	out, _ = s.ep.Handle(now, in, out)
	for ev, ok := s.ep.Next(); ok; ev, ok = s.ep.Next() {
		switch ev.Kind {
		case rudp.Data:
			s.got += int64(len(ev.Data))
		case rudp.PeerClosed:
			s.ep.Close(ev.Conn)
		}
	}
	return s.ep.Flush(now, out)
}

// loopResult is one loopback transfer: its goodput and how the sender
// recovered from loss.
type loopResult struct {
	goodput float64 // bytes/s
	ctr     map[string]uint64
	faults  impl.FaultStats
	samples []sample
}

// loopTransfer sends size bytes from a source to a sink, both on impl
// over 127.0.0.1, with faults injected on both sockets.
func loopTransfer(tb testing.TB, size int64, faults impl.FaultConfig) loopResult {
	opts := impl.Options{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20, MaxDatagram: 1400, Faults: faults, GSO: true}
	sk := &countSink{sink: newSink(netip.MustParseAddrPort("127.0.0.1:0"), rudp.Config{Seed: 1, MaxDatagram: 1400})}
	addrc := make(chan string, 1)
	so := opts
	so.OnEvent = func(_ spec.Time, ev spec.Event) {
		if ev.Name == "listening" && ev.Text != "" {
			addrc <- ev.Text
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := impl.New(sk, so)
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	var addr netip.AddrPort
	select {
	case a := <-addrc:
		addr = netip.MustParseAddrPort(a)
	case err := <-srvDone:
		tb.Fatalf("sink: %v", err)
	case <-time.After(10 * time.Second):
		tb.Fatal("the sink did not bind")
	}
	src := &streamSource{server: addr, size: size, buf: make([]byte, 64<<10), ep: rudp.NewEndpoint(rudp.Config{Seed: 2, MaxDatagram: 1400, MaxWindow: *loopMaxWnd, CC: *loopCC}, sock, timerBase, false)}
	cl := impl.New(src, opts)
	cctx, ccancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer ccancel()
	t0 := time.Now()
	err := cl.Run(cctx)
	el := time.Since(t0)
	cancel()
	<-srvDone
	if err != nil {
		tb.Fatalf("source: %v", err)
	}
	if sk.got != size {
		tb.Fatalf("sink got %d of %d bytes", sk.got, size)
	}
	res := loopResult{goodput: float64(size) / el.Seconds(), ctr: map[string]uint64{}, faults: cl.FaultStats(), samples: src.samples}
	for _, c := range src.Counters() {
		res.ctr[c.Name] = c.Value
	}
	for _, c := range sk.Counters() {
		res.ctr["sink_"+c.Name] = c.Value
	}
	return res
}

// summary describes the sender's window over a transfer: the median
// and 10th percentile of cwnd and in-flight segments, and SRTT and
// minimum RTT at the end.
func (r loopResult) summary() string {
	if len(r.samples) == 0 {
		return "no samples"
	}
	var cw, fl []float64
	for _, s := range r.samples {
		cw = append(cw, s.st.Cwnd)
		fl = append(fl, float64(s.st.Inflight))
	}
	slices.Sort(cw)
	slices.Sort(fl)
	last := r.samples[len(r.samples)-1].st
	return fmt.Sprintf("cwnd p10 %.0f p50 %.0f p90 %.0f; inflight p50 %.0f; srtt %v minRTT %v; sent %d retrans %d rto %d tlp %d spurious %d reductions %d noise %d; sink acks %d; injector dropped %d of %d",
		cw[len(cw)/10], cw[len(cw)/2], cw[len(cw)*9/10], fl[len(fl)/2], last.SRTT, last.MinRTT,
		r.ctr["rudp_segments_sent"], r.ctr["rudp_retransmits"], r.ctr["rudp_rto_expirations"], r.ctr["rudp_tail_probes"],
		r.ctr["rudp_spurious_retransmits"], r.ctr["rudp_loss_events"], r.ctr["rudp_noise_losses"], r.ctr["sink_rudp_acks_sent"], r.faults.Dropped, r.faults.Sent)
}

// trace is one line per 25 samples (50 ms) of the sender's window.
func (r loopResult) trace() string {
	var b strings.Builder
	for i, s := range r.samples {
		if i%25 == 0 {
			fmt.Fprintf(&b, "%8v cwnd %7.1f ssthresh %7.1f inflight %5d srtt %8v min %8v bw %6.1fMB/s\n",
				s.at.Round(time.Millisecond), s.st.Cwnd, s.st.Ssthresh, s.st.Inflight, s.st.SRTT, s.st.MinRTT, s.st.BandwidthBytes/1e6)
		}
	}
	return b.String()
}

// BenchmarkLoopbackLoss is the session layer alone on loopback sockets
// (impl with GSO, fault injector on both ends, 1400-byte datagrams), without
// and with 1% random loss, in one run: loss/lossless is the issue's
// second speed target without the file service's hashing. Run it with
//
//	go test ./spec/rudp -run XXX -bench LoopbackLoss -benchtime 1x [-loopback.trace -v]
func BenchmarkLoopbackLoss(b *testing.B) {
	for i := 0; i < b.N; i++ {
		clean := loopTransfer(b, *loopSize, impl.FaultConfig{Loss: 1e-9, Seed: 7})
		lossy := loopTransfer(b, *loopSize, impl.FaultConfig{Loss: 0.01, Seed: 7})
		b.Logf("lossless: %.1f MB/s; %s", clean.goodput/1e6, clean.summary())
		b.Logf("1%% loss:  %.1f MB/s; %s", lossy.goodput/1e6, lossy.summary())
		if *loopTrace {
			b.Logf("lossless:\n%s", clean.trace())
			b.Logf("1%% loss:\n%s", lossy.trace())
		}
		b.ReportMetric(clean.goodput/1e6, "lossless-MB/s")
		b.ReportMetric(lossy.goodput/1e6, "1%loss-MB/s")
		b.ReportMetric(lossy.goodput/clean.goodput, "loss/lossless")
		for _, m := range []struct{ ctr, unit string }{
			{"rudp_rto_expirations", "RTOs-1%loss"}, {"rudp_tail_probes", "TLPs-1%loss"},
			{"rudp_spurious_retransmits", "spurious-1%loss"}, {"rudp_loss_events", "reductions-1%loss"},
			{"rudp_noise_losses", "noise-losses-1%loss"},
		} {
			b.ReportMetric(float64(lossy.ctr[m.ctr]), m.unit)
		}
	}
}
