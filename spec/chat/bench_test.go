package chat_test

import (
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// memberAddr is the i-th member's address.
func memberAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}), uint16(1024+i%60000))
}

// populate makes n members join a fresh server (sequenced ones if seq)
// and returns it, the time reached, and the datagram each member sends
// as a heartbeat.
func populate(tb testing.TB, n int, seq bool) (*chat.Server, spec.Time, [][]byte) {
	s := chat.NewServer(chat.ServerConfig{Addr: srvAddr, Interval: time.Hour, MaxMembers: n + 1, Rate: -1, JoinRate: -1})
	now := spec.SimEpoch
	var out []spec.Output
	out = s.Step(now, spec.Input{Kind: spec.InStart}, out[:0])
	out = s.Step(now, spec.Input{Kind: spec.InBound, Sock: 1, Addr: srvAddr}, out[:0])
	beats := make([][]byte, n)
	for i := 0; i < n; i++ {
		now = now.Add(time.Microsecond)
		join := []byte(fmt.Sprintf("/nick m%d", i))
		beats[i] = []byte("^hb^\n")
		if seq {
			join = append(chat.AppendHeader(nil, chat.Header{Session: uint64(i + 1), Seq: 1}), join...)
			beats[i] = append(chat.AppendHeader(nil, chat.Header{Session: uint64(i + 1)}), "^hb^\n"...)
		}
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: memberAddr(i), Data: join}, out[:0])
		// Send the welcome's token back, as clients do.
		for _, o := range out {
			if tok := chat.TokenAsked(o.Data); tok != nil && o.Kind == spec.OutSend && o.Addr == memberAddr(i) {
				ok := append([]byte("/ok "), tok...)
				if seq {
					ok = append(chat.AppendHeader(nil, chat.Header{Session: uint64(i + 1)}), ok...)
				}
				out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: memberAddr(i), Data: ok}, out[:0])
				break
			}
		}
	}
	if st := s.Stats(); st.Validated != uint64(n) {
		tb.Fatalf("%d members validated, want %d", st.Validated, n)
	}
	if s.Len() != n {
		tb.Fatalf("%d members joined, want %d", s.Len(), n)
	}
	return s, now, beats
}

func dialects(b *testing.B, f func(b *testing.B, seq bool)) {
	b.Run("plain", func(b *testing.B) { f(b, false) })
	b.Run("sequenced", func(b *testing.B) { f(b, true) })
}

// The machine's cost of a heartbeat with 1,000 members: a map lookup and
// a list move, no output.
func BenchmarkServerHeartbeat(b *testing.B) {
	dialects(b, func(b *testing.B, seq bool) {
		s, now, beats := populate(b, 1000, seq)
		var out []spec.Output
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			now = now.Add(time.Microsecond)
			out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: memberAddr(i % 1000), Data: beats[i%1000]}, out[:0])
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
	})
}

// The machine's cost of broadcasting one line to 1,000 members: the
// outputs a runner must then send.
func BenchmarkServerBroadcast(b *testing.B) {
	dialects(b, func(b *testing.B, seq bool) {
		s, now, _ := populate(b, 1000, seq)
		var out []spec.Output
		msg := []byte("a line of chat of a typical length, some forty bytes")
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			now = now.Add(time.Microsecond)
			d := msg
			if seq {
				d = append(chat.AppendHeader(nil, chat.Header{Session: 1, Seq: uint32(i + 2)}), msg...)
			}
			out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: memberAddr(0), Data: d}, out[:0])
			if len(out) < 1000 {
				b.Fatalf("broadcast made %d outputs", len(out))
			}
		}
		b.ReportMetric(1000*float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	})
}

// Memory the server keeps per member (5,000 members, after a GC).
// Populating is quadratic: each join is announced to every member.
func BenchmarkMemoryPerMember(b *testing.B) {
	dialects(b, func(b *testing.B, seq bool) {
		const n = 5000
		var per float64
		for i := 0; i < b.N; i++ {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			s, _, _ := populate(b, n, seq)
			runtime.GC()
			runtime.ReadMemStats(&after)
			per = float64(after.HeapAlloc-before.HeapAlloc) / n
			runtime.KeepAlive(s)
		}
		b.ReportMetric(per, "B/member")
	})
}
