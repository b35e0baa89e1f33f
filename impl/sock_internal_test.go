package impl

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// rebinder binds UDP socket 1 on loopback. On the command "rebind" it
// stops at its StepGate, then unbinds socket 1 and binds it again. It
// keeps the datagrams it is handed.
type rebinder struct {
	StepGate
	bound chan netip.AddrPort
	got   []spec.Input
}

func (m *rebinder) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		m.bound <- in.Addr
	case spec.InCommand:
		if !m.Pass(in) {
			break
		}
		out = append(out, spec.Unbind(1), spec.Bind(1, spec.UDP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InDatagram:
		m.got = append(m.got, in)
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// A datagram the old socket read, still queued when the machine unbound
// it and bound the same socket id again, is not handed to the machine as
// if the new socket had received it.
func TestDatagramOfAnUnboundSocketIsDropped(t *testing.T) {
	m := &rebinder{StepGate: NewStepGate(), bound: make(chan netip.AddrPort, 2)}
	r := New(m, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	wait := func(ch <-chan struct{}, why string) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal(why)
		}
	}
	old := <-m.bound
	r.Command(spec.Command{Name: "rebind"})
	wait(m.InCmd, "the machine did not take the command")
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(old))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("old")); err != nil {
		t.Fatal(err)
	}
	// The old socket's reader has queued the datagram behind the step.
	for len(r.items) == 0 && ctx.Err() == nil {
		time.Sleep(time.Millisecond)
	}
	close(m.GoOn)
	select {
	case <-m.bound:
	case <-ctx.Done():
		t.Fatal("the machine did not bind again")
	}
	r.Command(spec.Command{Name: "ping"}) // behind the datagram
	wait(m.Pong, "the machine did not answer a ping")
	cancel()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // a hang detector
		t.Fatal("Run did not return: the unbound socket left open?")
	}
	if len(m.got) != 0 {
		t.Fatalf("the machine was handed %q, read by socket 1 before it was unbound, as the new socket 1's", m.got[0].Data)
	}
}
