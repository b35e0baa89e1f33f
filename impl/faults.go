package impl

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"time"
)

// FaultConfig is the misbehaviour a FaultyConn adds to the datagrams it
// sends. This kernel has no netem; this is how real-socket runs get loss.
type FaultConfig struct {
	Seed uint64
	// Loss and Dup are per-datagram probabilities.
	Loss, Dup float64
	// Delay holds every datagram back; Jitter adds a uniform random extra
	// delay in [0, Jitter), which reorders datagrams.
	Delay, Jitter time.Duration
}

// Active reports whether c changes anything.
func (c FaultConfig) Active() bool {
	return c.Loss > 0 || c.Dup > 0 || c.Delay > 0 || c.Jitter > 0
}

// FaultStats counts what a FaultyConn did: the ground truth for tests.
type FaultStats struct {
	Sent, Dropped, Duplicated, Delayed uint64
}

// UDPConn is the part of *net.UDPConn a runner uses.
type UDPConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	LocalAddr() net.Addr
	Close() error
}

// FaultyConn wraps a UDP socket and drops, duplicates, delays and reorders
// the datagrams written to it, from a seeded generator.
type FaultyConn struct {
	UDPConn
	cfg   FaultConfig
	mu    sync.Mutex
	rng   *rand.Rand
	stats FaultStats
}

// NewFaultyConn wraps c.
func NewFaultyConn(c UDPConn, cfg FaultConfig) *FaultyConn {
	return &FaultyConn{UDPConn: c, cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x5eed))}
}

// Stats returns what the conn has done so far.
func (f *FaultyConn) Stats() FaultStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// plan decides one datagram's fate: how many copies go out now, and the
// delays of the copies held back (none if it is dropped).
func (f *FaultyConn) plan() (now int, later []time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stats.Sent++
	if f.cfg.Loss > 0 && f.rng.Float64() < f.cfg.Loss {
		f.stats.Dropped++
		return 0, nil
	}
	copies := 1
	if f.cfg.Dup > 0 && f.rng.Float64() < f.cfg.Dup {
		copies = 2
		f.stats.Duplicated++
	}
	for i := 0; i < copies; i++ {
		d := f.cfg.Delay
		if f.cfg.Jitter > 0 {
			d += time.Duration(f.rng.Int64N(int64(f.cfg.Jitter)))
		}
		if d <= 0 {
			now++
		} else {
			f.stats.Delayed++
			later = append(later, d)
		}
	}
	return now, later
}

// hold sends a copy of b to addr after d, with the control message oob
// (a source address) if the socket takes one.
func (f *FaultyConn) hold(b []byte, addr netip.AddrPort, oob []byte, d time.Duration) {
	p := append([]byte(nil), b...)
	time.AfterFunc(d, func() {
		if m, ok := f.UDPConn.(msgWriter); ok && len(oob) > 0 {
			_, _, _ = m.WriteMsgUDPAddrPort(p, oob, addr)
			return
		}
		_, _ = f.UDPConn.WriteToUDPAddrPort(p, addr)
	})
}

// msgWriter is a socket that sends with control messages.
type msgWriter interface {
	WriteMsgUDPAddrPort(b, oob []byte, addr netip.AddrPort) (n, oobn int, err error)
}

// WriteToUDPAddrPort sends b subject to the faults. A dropped datagram
// still reports success, as the network would.
func (f *FaultyConn) WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	now, later := f.plan()
	for i := 0; i < now; i++ {
		if _, err := f.UDPConn.WriteToUDPAddrPort(b, addr); err != nil {
			return 0, err
		}
	}
	for _, d := range later {
		f.hold(b, addr, nil, d)
	}
	return len(b), nil
}
