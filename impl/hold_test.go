package impl_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
)

// bindAny binds one socket on an unspecified address when it starts and
// exits when it stops: in Hold mode the tests choose its inputs.
type bindAny struct{ net spec.Net }

func (m bindAny) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, m.net, netip.MustParseAddrPort("0.0.0.0:0")))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// loopbackMap binds 127.0.0.1 for whatever a machine asks, and tells the
// first address the runner maps in (its socket's) on bound. Addresses
// are not translated.
type loopbackMap struct {
	once  sync.Once
	bound chan netip.AddrPort
}

func (a *loopbackMap) Bind(_ spec.Sock, _ spec.Net, req netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), req.Port())
}

func (a *loopbackMap) Out(m netip.AddrPort) netip.AddrPort { return m }

func (a *loopbackMap) In(real netip.AddrPort) netip.AddrPort {
	a.once.Do(func() { a.bound <- real })
	return real
}

// startHeld runs a bindAny on net in Hold mode, releases its start, and
// returns the runner and where its socket is. The runner is stopped when
// the test ends, with its InStop released.
func startHeld(t *testing.T, net spec.Net) (*impl.Runner, netip.AddrPort) {
	t.Helper()
	amap := &loopbackMap{bound: make(chan netip.AddrPort, 1)}
	r, _ := startMachine(t, bindAny{net}, impl.Options{Hold: true, Addrs: amap})
	// Cleanups run last first: this one, registered after the stop,
	// waits for its InStop while the stop waits for Run.
	t.Cleanup(func() { go func() { _ = release(r, spec.Input{Kind: spec.InStop}, 10*time.Second) }() })
	if err := release(r, spec.Input{Kind: spec.InStart}, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	addr := within(t, amap.bound, "the machine did not bind")
	if addr.Addr() != netip.MustParseAddr("127.0.0.1") {
		t.Fatalf("the machine's socket is at %v: the AddrMap said to bind 127.0.0.1", addr)
	}
	return r, addr
}

// release releases want, waiting at most d for it.
func release(r *impl.Runner, want spec.Input, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return r.Release(ctx, want)
}

// Release hands the machine only a datagram equivalent to the one asked
// for: one from another sender, with other bytes, or sent to another
// address is not it, and is kept for the input that is.
func TestHoldReleasesOnlyAnEquivalentDatagram(t *testing.T) {
	r, addr := startHeld(t, spec.UDP)
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	from := c.LocalAddr().(*net.UDPAddr).AddrPort()
	for _, b := range []string{"x", "y"} {
		if _, err := c.Write([]byte(b)); err != nil {
			t.Fatal(err)
		}
	}
	dgram := func(from netip.AddrPort, local, data string) spec.Input {
		return spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Local: netip.MustParseAddr(local), Data: []byte(data)}
	}
	// Once "y" is released, "x", read before it, is held.
	if err := release(r, dgram(from, "127.0.0.1", "y"), 5*time.Second); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]spec.Input{
		"another sender":        dgram(netip.AddrPortFrom(from.Addr(), from.Port()^1), "127.0.0.1", "x"),
		"other bytes":           dgram(from, "127.0.0.1", "z"),
		"another local address": dgram(from, "127.0.0.2", "x"),
	} {
		if err := release(r, want, 200*time.Millisecond); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: Release = %v, want it to wait in vain", name, err)
		}
	}
	if err := release(r, dgram(from, "127.0.0.1", "x"), 5*time.Second); err != nil {
		t.Fatalf("the datagram held: %v", err)
	}
}

// Stream bytes the trace does not have fail a release at once, however
// TCP cut them, and stay held.
func TestHoldRefusesOtherStreamBytes(t *testing.T) {
	r, addr := startHeld(t, spec.TCP)
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	const id = spec.AcceptedStream | 1
	accepted := spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: id, Addr: c.LocalAddr().(*net.TCPAddr).AddrPort()}
	if err := release(r, accepted, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	data := func(b string) spec.Input { return spec.Input{Kind: spec.InStreamData, Stream: id, Data: []byte(b)} }
	// All but the last byte agree: only the whole tells them apart.
	if err := release(r, data("hellx"), 5*time.Second); err == nil || errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("releasing bytes the stream did not carry: %v, want a mismatch", err)
	}
	if err := release(r, data("hello"), 5*time.Second); err != nil {
		t.Fatalf("the bytes held: %v", err)
	}
}
