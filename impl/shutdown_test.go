package impl_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

// A server stopped in the middle of a download resets the connection
// instead of closing it: the C/S protocol has no framing, so a FIN would
// tell nc or any client that the file ended where it was cut. (Streams
// the machine closed itself still get their bytes out and a FIN.)
func TestStopResetsStreamsTheMachineLeftOpen(t *testing.T) {
	const size = 32 << 20
	data := make([]byte, size)
	c, stop := connectTo(t, cs.NewServer(cs.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0")}, data))
	buf := make([]byte, 64<<10)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatal(err)
	}
	stop() // the client has not read the rest: the server stops mid-file
	got := int64(len(buf))
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	got += n
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("the client read %d of %d bytes and then a clean EOF: a cut download looks complete", got, size)
	}
	if got >= size {
		t.Fatalf("the client read the whole file (%d bytes): the test did not stop the server mid-file", got)
	}
}

// bulk writes size bytes to every connection it accepts and closes it.
type bulk struct{ size int }

func (b bulk) Step(_ spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.TCP, netip.MustParseAddrPort("127.0.0.1:0")))
	case spec.InBound:
		out = append(out, spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
	case spec.InAccepted:
		out = append(out, spec.Write(in.Stream, make([]byte, b.size)), spec.Close(in.Stream))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// A stream the machine closed, whose bytes could not all go out before
// the runner stopped (its peer does not read), is reset too: the FIN
// would end it where it was cut, as if complete.
func TestStopResetsClosedStreamsItCouldNotFlush(t *testing.T) {
	const size = 256 << 20
	c, stop := connectTo(t, bulk{size})
	time.Sleep(100 * time.Millisecond) // the write is queued, the peer reads nothing
	stop()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := io.Copy(io.Discard, c)
	if err == nil || errors.Is(err, io.EOF) {
		t.Fatalf("the peer read %d of %d bytes and then a clean EOF", n, size)
	}
}

// connectTo runs m on loopback until stop, which stops the runner and
// checks it ended cleanly, and returns a connection to the address m
// says it listens on (a "listening" event).
func connectTo(t *testing.T, m spec.Machine) (c net.Conn, stop func()) {
	t.Helper()
	ready := make(chan netip.AddrPort, 1)
	r := impl.New(m, impl.Options{OnEvent: func(_ spec.Time, ev spec.Event) {
		if ev.Name == "listening" {
			ready <- netip.MustParseAddrPort(ev.Text)
		}
	}})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- r.Run(ctx) }()
	stop = func() {
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("runner: %v", err)
		}
	}
	var addr netip.AddrPort
	select {
	case addr = <-ready:
	case <-time.After(5 * time.Second):
		stop()
		t.Fatal("the machine did not listen")
	}
	c, err := net.DialTimeout("tcp", addr.String(), 5*time.Second)
	if err != nil {
		stop()
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, stop
}
