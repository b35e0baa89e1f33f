package impl_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec"
)

// reflector answers every datagram with copies of it, from the address
// it was sent to (or, with plain, from whatever the kernel picks), and
// remembers each datagram's Local.
type reflector struct {
	bind   netip.AddrPort
	copies int
	plain  bool
	bound  chan netip.AddrPort
	mu     sync.Mutex
	locals []netip.Addr
}

func (m *reflector) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, m.bind))
	case spec.InBound:
		m.bound <- in.Addr
	case spec.InDatagram:
		m.mu.Lock()
		m.locals = append(m.locals, in.Local)
		m.mu.Unlock()
		for range max(m.copies, 1) {
			if m.plain {
				out = append(out, spec.Send(1, in.Addr, in.Data))
			} else {
				out = append(out, spec.SendFrom(1, in.Local, in.Addr, in.Data))
			}
		}
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// A machine bound to an unspecified address learns where each datagram
// was sent and answers from there, so a client that connected its socket
// to a second loopback address (as nc -u does) gets its answers: on one
// socket read at a time and batched, with segmentation offload, and
// through the fault injector's held copies.
func TestAnswersFromTheAddressAskedOn(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	tests := []struct {
		name   string
		bind   string
		dst    string
		copies int
		opt    impl.Options
	}{
		{"ipv4 wildcard", "0.0.0.0:0", "127.0.0.2", 1, impl.Options{}},
		{"dual-stack, ipv4 client", "[::]:0", "127.0.0.3", 1, impl.Options{}},
		{"dual-stack, ipv6 client", "[::]:0", "::1", 1, impl.Options{}},
		{"segmentation offload", "0.0.0.0:0", "127.0.0.4", 5, impl.Options{GSO: true}},
		{"held by the injector", "0.0.0.0:0", "127.0.0.5", 1, impl.Options{Faults: impl.FaultConfig{Seed: 1, Delay: time.Millisecond}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &reflector{bind: netip.MustParseAddrPort(tc.bind), copies: tc.copies, bound: make(chan netip.AddrPort, 1)}
			stop := runMachine(t, m, tc.opt)
			port := (<-m.bound).Port()
			dst := netip.AddrPortFrom(netip.MustParseAddr(tc.dst), port)
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
			if err != nil {
				t.Skipf("no route to %v here: %v", dst, err)
			}
			defer c.Close()
			// More than the runner reads one at a time, so batched reads
			// (not in -race builds) are covered too.
			const n = 100
			buf := make([]byte, 64)
			got := 0
			for i := range n {
				msg := fmt.Sprintf("m%d", i)
				if _, err := c.Write([]byte(msg)); err != nil {
					t.Fatal(err)
				}
				for range max(tc.copies, 1) {
					_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
					k, err := c.Read(buf)
					if err != nil {
						t.Fatalf("datagram %d: no answer from %v: %v", i, dst, err)
					}
					if string(buf[:k]) != msg {
						t.Fatalf("datagram %d: answer %q, want %q", i, buf[:k], msg)
					}
					got++
				}
			}
			stop()
			m.mu.Lock()
			defer m.mu.Unlock()
			want := netip.MustParseAddr(tc.dst)
			for i, l := range m.locals {
				if l != want {
					t.Fatalf("datagram %d: Local %v, want %v", i, l, want)
				}
			}
			if len(m.locals) != n || got != n*max(tc.copies, 1) {
				t.Fatalf("%d datagrams seen, %d answers read", len(m.locals), got)
			}
		})
	}
}

// Without the source address, the kernel answers from its route's choice
// (127.0.0.1) and a connected client never sees it: the failure the
// above prevents, and the reason it proves something.
func TestPlainSendFromWildcardMissesConnectedClient(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	m := &reflector{bind: netip.MustParseAddrPort("0.0.0.0:0"), plain: true, bound: make(chan netip.AddrPort, 1)}
	stop := runMachine(t, m, impl.Options{})
	defer stop()
	dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.2"), (<-m.bound).Port())
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(dst))
	if err != nil {
		t.Skip(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if _, err := c.Read(make([]byte, 8)); err == nil {
		t.Fatal("the kernel answered from the address asked on unasked: TestAnswersFromTheAddressAskedOn proves nothing here")
	}
}

// runMachine runs m until the returned stop is called.
func runMachine(t *testing.T, m spec.Machine, opt impl.Options) (stop func()) {
	t.Helper()
	_, stop = startMachine(t, m, opt)
	return stop
}

// startMachine is runMachine for a test that also talks to the runner.
func startMachine(t *testing.T, m spec.Machine, opt impl.Options) (r *impl.Runner, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r = impl.New(m, opt)
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("runner: %v", err)
				}
			case <-time.After(30 * time.Second): // a hang detector
				t.Error("the runner did not stop: a socket or stream left open?")
			}
		})
	}
	t.Cleanup(stop)
	return r, stop
}

// forger answers every datagram twice, in one step, from a source the
// host does not have.
type forger struct{ bound chan netip.AddrPort }

func (m *forger) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("0.0.0.0:0")))
	case spec.InBound:
		m.bound <- in.Addr
	case spec.InDatagram:
		bogus := netip.MustParseAddr("192.0.2.77")
		out = append(out, spec.SendFrom(1, bogus, in.Addr, in.Data), spec.SendFrom(1, bogus, in.Addr, in.Data))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// A source the kernel refuses (the host lost the address) costs the
// answer its source, not the answer, on the batched path too (a run of
// sends whose first message fails once crashed the runner).
func TestRefusedSourceStillAnswers(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	for _, gso := range []bool{false, true} {
		m := &forger{bound: make(chan netip.AddrPort, 1)}
		stop := runMachine(t, m, impl.Options{GSO: gso})
		dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), (<-m.bound).Port())
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteToUDPAddrPort([]byte("x"), dst); err != nil {
			t.Fatal(err)
		}
		for i := range 2 {
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := c.ReadFromUDPAddrPort(make([]byte, 8)); err != nil {
				t.Fatalf("gso %v: answer %d lost: %v", gso, i, err)
			}
		}
		c.Close()
		stop()
	}
}
