package impl_test

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/nettest"
)

// Two clients interleave bursts at a reflector whose socket, busy, reads
// in batches and sends a batch's answers together: each datagram keeps
// its own sender, so each client gets back its own datagrams, all of
// them and in the order it sent them.
func TestBatchedReadsKeepEachSenderAndOrder(t *testing.T) {
	reflectInterleaved(t, "127.0.0.1:0", "127.0.0.1", "127.0.0.1")
}

// On a wildcard socket each datagram of a batch also keeps the address
// it was sent to, and is answered from there: clients connected to two
// loopback addresses both get their answers.
func TestBatchedReadsKeepEachLocalAddress(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	reflectInterleaved(t, "0.0.0.0:0", "127.0.0.2", "127.0.0.3")
}

// reflectInterleaved runs a reflector bound to bind and has a client for
// each of dsts, connected to that address at the reflector's port, send
// it bursts, interleaved; each must read back its own datagrams, in order.
func reflectInterleaved(t *testing.T, bind string, dsts ...string) {
	t.Helper()
	const rounds, burst = 50, 8 // 800 datagrams for two: well past the one-at-a-time start
	m := &reflector{bind: netip.MustParseAddrPort(bind), bound: make(chan netip.AddrPort, 1)}
	runMachine(t, m, impl.Options{ReadBuffer: 4 << 20, WriteBuffer: 4 << 20})
	port := (<-m.bound).Port()
	var cs []*net.UDPConn
	for _, dst := range dsts {
		c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(dst), port)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadBuffer(4 << 20)
		cs = append(cs, c)
	}
	errs := make([]error, len(cs))
	var wg sync.WaitGroup
	for id, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 64)
			for want := range uint32(rounds * burst) {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				n, err := c.Read(buf)
				if err != nil {
					errs[id] = fmt.Errorf("answer %d: %w", want, err)
					return
				}
				if n != 5 || int(buf[0]) != id || binary.BigEndian.Uint32(buf[1:5]) != want {
					errs[id] = fmt.Errorf("answer %d is %x, want client %d's datagram %d", want, buf[:n], id, want)
					return
				}
			}
		}()
	}
	for round := range rounds {
		for id, c := range cs {
			for k := range burst {
				b := []byte{byte(id), 0, 0, 0, 0}
				binary.BigEndian.PutUint32(b[1:], uint32(round*burst+k))
				if _, err := c.Write(b); err != nil {
					t.Fatal(err)
				}
			}
		}
		time.Sleep(time.Millisecond) // stay within the socket buffers under -race
	}
	wg.Wait()
	for id, err := range errs {
		if err != nil {
			t.Errorf("client %d: %v", id, err)
		}
	}
}
