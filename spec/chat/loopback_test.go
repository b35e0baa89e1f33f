package chat_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// loopback is a chat server on real loopback sockets (through impl) with
// members that are bare UDP sockets: what nc users, or netspec clients
// seen from the wire, are to the server.
type loopback struct {
	addr      netip.AddrPort
	members   []*net.UDPConn
	seq       bool
	delivered atomic.Int64 // datagrams the members received
	processed atomic.Int64 // datagrams the server's machine stepped through
	joins     atomic.Int64
	valid     atomic.Int64 // members that sent their token back
	stop      func()
	wg        sync.WaitGroup
}

func startLoopback(tb testing.TB, n int, seq bool) *loopback {
	tb.Helper()
	l := &loopback{seq: seq}
	cfg := chat.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Interval: time.Hour, MaxMembers: n + 10, Rate: -1, JoinRate: -1}
	bound := make(chan netip.AddrPort, 1)
	srv := impl.New(chat.NewServer(cfg), impl.Options{
		ReadBuffer: 4 << 20, WriteBuffer: 4 << 20,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				bound <- netip.MustParseAddrPort(strings.TrimPrefix(ev.Text, "udp "))
			case "join":
				l.joins.Add(1)
			case "validated":
				l.valid.Add(1)
			}
		},
		OnStep: func(_ spec.Time, in spec.Input, _ []spec.Output) {
			if in.Kind == spec.InDatagram {
				l.processed.Add(1)
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	l.addr = <-bound
	for i := 0; i < n; i++ {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		_ = c.SetReadBuffer(1 << 20)
		l.members = append(l.members, c)
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			buf := make([]byte, 4096)
			for {
				n, err := c.Read(buf)
				if err != nil {
					if errors.Is(err, net.ErrClosed) {
						return
					}
					continue
				}
				l.delivered.Add(1)
				// The welcome: send its token back, as clients do.
				if tok := chat.TokenAsked(buf[:n]); tok != nil {
					l.send(tb, i, 0, "/ok "+string(tok))
				}
			}
		}()
	}
	l.stop = func() {
		cancel()
		<-done
		for _, c := range l.members {
			c.Close()
		}
		l.wg.Wait()
	}
	// Join, a few at a time (each join is announced to every member).
	for i := range l.members {
		l.send(tb, i, 1, fmt.Sprintf("/nick m%d", i))
		if i%50 == 49 {
			l.await(tb, func() bool { return l.joins.Load() == int64(i+1) }, 10*time.Second, "joins")
		}
	}
	l.await(tb, func() bool { return l.joins.Load() == int64(n) }, 10*time.Second, "joins")
	l.await(tb, func() bool { return l.valid.Load() == int64(n) }, 10*time.Second, "tokens")
	time.Sleep(200 * time.Millisecond) // let the join notices drain
	return l
}

// send sends a line from member i, numbered seq if the members are
// sequenced (seq 0: a heartbeat's header).
func (l *loopback) send(tb testing.TB, i int, seq uint32, line string) {
	d := []byte(line)
	if l.seq {
		d = append(chat.AppendHeader(nil, chat.Header{Session: uint64(i + 1), Seq: seq}), d...)
	}
	if _, err := l.members[i].WriteToUDPAddrPort(d, l.addr); err != nil {
		tb.Fatal(err)
	}
}

func (l *loopback) await(tb testing.TB, cond func() bool, limit time.Duration, what string) bool {
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Logf("timed out waiting for %s", what)
			return false
		}
		time.Sleep(200 * time.Microsecond)
	}
	return true
}

const members = 1000

// profile profiles the timed part of a benchmark into
// $NETSPEC_CHAT_PROFILE/<name>.prof when that is set: the setup (a
// thousand joins, each announced to every member) would drown it.
func profile(b *testing.B) func() {
	dir := os.Getenv("NETSPEC_CHAT_PROFILE")
	if dir == "" {
		return func() {}
	}
	f, err := os.Create(filepath.Join(dir, strings.NewReplacer("/", "_").Replace(b.Name())+".prof"))
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		b.Fatal(err)
	}
	return func() { pprof.StopCPUProfile(); f.Close() }
}

// Broadcast throughput on loopback with 1,000 members: one member talks,
// with at most 4 lines in flight; every line reaches every member.
// Metrics: lines broadcast per second, datagrams delivered per second,
// and the fraction lost (the kernel drops what a full socket cannot
// take).
func BenchmarkLoopbackBroadcast(b *testing.B) {
	dialects(b, func(b *testing.B, seq bool) {
		l := startLoopback(b, members, seq)
		defer l.stop()
		const window = 4
		start := l.delivered.Load()
		stop := profile(b)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if i >= window {
				want := start + int64(i-window)*members*99/100
				l.await(b, func() bool { return l.delivered.Load() >= want }, 2*time.Second, "deliveries")
			}
			l.send(b, 0, uint32(i+2), "a line of chat of a typical length, some forty bytes")
		}
		want := start + int64(b.N)*members
		l.await(b, func() bool { return l.delivered.Load() >= want }, time.Second, "the last deliveries")
		b.StopTimer()
		stop()
		got := l.delivered.Load() - start
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(b.N)/s, "lines/s")
		b.ReportMetric(float64(got)/s, "deliveries/s")
		b.ReportMetric(100*(1-float64(got)/float64(want-start)), "lost%")
	})
}

// Heartbeat load with 1,000 members: the members take turns sending
// heartbeats, as fast as the server takes them, with at most 512 in
// flight (a sender that blasts only measures the kernel dropping). The
// metric is what the server's machine was stepped through per second.
func BenchmarkLoopbackHeartbeats(b *testing.B) {
	dialects(b, func(b *testing.B, seq bool) {
		l := startLoopback(b, members, seq)
		defer l.stop()
		beats := make([][]byte, members)
		for i := range beats {
			beats[i] = []byte("^hb^\n")
			if seq {
				beats[i] = append(chat.AppendHeader(nil, chat.Header{Session: uint64(i + 1)}), beats[i]...)
			}
		}
		const window = 512
		start := l.processed.Load()
		stop := profile(b)
		b.ResetTimer()
		for k := 0; k < b.N; k++ {
			if k >= window && k%64 == 0 {
				want := start + int64(k-window)
				l.await(b, func() bool { return l.processed.Load() >= want }, 2*time.Second, "heartbeats")
			}
			i := k % members
			_, _ = l.members[i].WriteToUDPAddrPort(beats[i], l.addr)
		}
		want := start + int64(b.N)
		l.await(b, func() bool { return l.processed.Load() >= want }, time.Second, "the last heartbeats")
		b.StopTimer()
		stop()
		got := l.processed.Load() - start
		s := b.Elapsed().Seconds()
		b.ReportMetric(float64(got)/s, "heartbeats/s")
		b.ReportMetric(100*(1-float64(got)/float64(b.N)), "dropped%")
	})
}
