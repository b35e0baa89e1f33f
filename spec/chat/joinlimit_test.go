package chat_test

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// A flood of strangers (forged sources, say) joins at most JoinBurst at
// once and JoinRate per second after that; the rest get no reply at all,
// so the limit cannot itself be used to reflect.
func TestJoinsAreRateLimited(t *testing.T) {
	addr := netip.MustParseAddrPort("10.0.0.1:9999")
	s := chat.NewServer(chat.ServerConfig{Addr: addr, JoinRate: 10, JoinBurst: 5})
	now := spec.SimEpoch
	out := s.Step(now, spec.Input{Kind: spec.InStart}, nil)
	sendsTo := func(out []spec.Output, to netip.AddrPort) int {
		n := 0
		for _, o := range out {
			if o.Kind == spec.OutSend && o.Addr == to {
				n++
			}
		}
		return n
	}
	joined := 0
	for i := 0; i < 100; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte(fmt.Sprintf("hello %d\n", i))}, out[:0])
		if sendsTo(out, from) > 0 {
			joined++
		}
	}
	if joined != 5 {
		t.Fatalf("%d of 100 simultaneous strangers were answered, want the burst of 5", joined)
	}
	// After a quiet second the burst is available again; strangers that
	// arrive at the sustained rate (one per 100 ms) all get in.
	now = now.Add(time.Second)
	joined = 0
	for i := 100; i < 130; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("hi\n")}, out[:0])
		if sendsTo(out, from) > 0 {
			joined++
		}
	}
	if joined != 5 {
		t.Fatalf("%d strangers joined after a quiet second, want the burst of 5", joined)
	}
	for i := 130; i < 150; i++ {
		now = now.Add(100 * time.Millisecond)
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 4000)
		out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: []byte("hi\n")}, out[:0])
		if sendsTo(out, from) == 0 {
			t.Fatalf("stranger %d, arriving at the sustained rate, was refused", i)
		}
	}
	var limited uint64
	for _, c := range s.Counters() {
		if c.Name == "joins_limited" {
			limited = c.Value
		}
	}
	if limited == 0 {
		t.Fatal("refused joins are not counted")
	}
}
