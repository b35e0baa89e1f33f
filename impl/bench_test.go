package impl_test

import (
	"context"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
)

// blaster sends bursts of datagrams to dst whenever its timer fires: the
// send path of a machine that fans out (stream servers, file senders).
type blaster struct {
	dst   netip.AddrPort
	burst int
	every time.Duration
	buf   []byte
}

func (b *blaster) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound, spec.InTimer:
		for i := 0; i < b.burst; i++ {
			out = append(out, spec.Send(1, b.dst, b.buf))
		}
		out = append(out, spec.SetTimer(1, now.Add(b.every)))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// sink counts datagrams: the receive path.
type sink struct {
	n     *atomic.Int64
	bound chan netip.AddrPort
}

func (s *sink) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		s.bound <- in.Addr
	case spec.InDatagram:
		s.n.Add(1)
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

const benchSize = 1400

// BenchmarkSendPath measures datagrams per second a machine can emit
// through the runner, against a bare WriteTo loop in the same run.
func BenchmarkSendPath(b *testing.B) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(8 << 20)
	var got atomic.Int64
	go func() {
		buf := make([]byte, 65536)
		for {
			if _, _, err := rx.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
			got.Add(1)
		}
	}()
	dst := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	payload := make([]byte, benchSize)
	b.Run("bare", func(b *testing.B) {
		tx, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		defer tx.Close()
		start := time.Now()
		for i := 0; i < b.N; i++ {
			_, _ = tx.WriteToUDPAddrPort(payload, dst)
		}
		b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "pkt/s")
	})
	b.Run("runner", func(b *testing.B) {
		m := &blaster{dst: dst, burst: 1000, every: time.Microsecond, buf: payload}
		r := impl.New(m, impl.Options{})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		sent0 := got.Load()
		start := time.Now()
		go func() { _ = r.Run(ctx); close(done) }()
		// The blaster never stops by itself; measure until b.N arrived.
		for got.Load()-sent0 < int64(b.N) && time.Since(start) < 30*time.Second {
			time.Sleep(time.Millisecond)
		}
		el := time.Since(start)
		cancel()
		<-done
		b.ReportMetric(float64(got.Load()-sent0)/el.Seconds(), "pkt/s")
	})
}

// BenchmarkRecvPath measures datagrams per second delivered to a machine
// while a bare loop blasts them at it.
func BenchmarkRecvPath(b *testing.B) {
	var n atomic.Int64
	s := &sink{n: &n, bound: make(chan netip.AddrPort, 1)}
	r := impl.New(s, impl.Options{ReadBuffer: 8 << 20})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx); close(done) }()
	dst := <-s.bound
	tx, _ := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer tx.Close()
	payload := make([]byte, benchSize)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		_, _ = tx.WriteToUDPAddrPort(payload, dst)
	}
	sendEl := time.Since(start)
	deadline := time.Now().Add(2 * time.Second)
	for n.Load() < int64(b.N) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	cancel()
	<-done
	b.ReportMetric(float64(n.Load())/el.Seconds(), "delivered/s")
	b.ReportMetric(float64(b.N)/sendEl.Seconds(), "offered/s")
	b.ReportMetric(100*(1-float64(n.Load())/float64(b.N)), "loss%")
}
