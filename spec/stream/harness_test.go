package stream_test

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/stream"
	"pgregory.net/rapid"
)

var serverAddr = netip.MustParseAddrPort("10.0.0.1:5004")

// delivery is one data packet the network handed to a client.
type delivery struct {
	at   spec.Time
	data stream.Data
}

// rrSent is one receiver report block a client put on the network.
type rrSent struct {
	at    spec.Time
	ext   uint32
	lost  int32
	frac  uint8
	jit   uint32
	tally stream.Tally
	bye   bool
}

// clientTruth is the simulator's ground truth about one client address,
// and what the client itself said.
type clientTruth struct {
	name      string
	addr      netip.Addr
	sent      []uint64 // indices the server sent to it, in order
	delivered []delivery
	reports   []rrSent
	// Interleaved: for each report, how many deliveries preceded it.
	reportAt []int
	packets  []stream.Packet // "packet" events, in order
	stats    *stream.Stats
	exitAt   spec.Time
	exited   bool
	exitErr  string
}

// world is a simulated stream deployment with ground-truth recording.
type world struct {
	s       *sim.Sim
	clients map[string]*clientTruth
	byAddr  map[netip.Addr]*clientTruth
	// bytes the server sent to and received from each address; data
	// packets the server sent to each address.
	toAddr, fromAddr map[netip.Addr]int
	// lastIn is the last datagram the server got from each address, and
	// unasked lists the server's sends that no datagram from their
	// destination drew at that instant, or that were larger than it.
	lastIn      map[netip.AddrPort]reply
	unasked     map[netip.Addr][]string
	dataTo      map[netip.Addr]int
	replies     []reply // every server datagram, with the size of what preceded it
	departures  []departure
	arrivals    []stream.Arrival
	lastConsent map[string]spec.Time // client addr:port -> last REPORT or ECHO the server got
	violations  []string
}

type reply struct {
	to   netip.AddrPort
	size int
	at   spec.Time
}

type departure struct {
	at spec.Time
	d  stream.Departure
}

func newWorld(cfg sim.Config) *world { return newWorldOn(nil, cfg) }

// newWorldOn is newWorld with the simulator built by net (nil: sim.New),
// so that a rapid property's failing run leaves its trace.
func newWorldOn(net *simtest.Net, cfg sim.Config) *world {
	w := emptyWorld()
	cfg.Protocol = "stream"
	w.observe(&cfg)
	if net != nil {
		w.s = net.New(cfg)
	} else {
		w.s = sim.New(cfg)
	}
	return w
}

// emptyWorld is a world with no simulator yet.
func emptyWorld() *world {
	return &world{
		clients:     map[string]*clientTruth{},
		byAddr:      map[netip.Addr]*clientTruth{},
		toAddr:      map[netip.Addr]int{},
		fromAddr:    map[netip.Addr]int{},
		lastIn:      map[netip.AddrPort]reply{},
		unasked:     map[netip.Addr][]string{},
		dataTo:      map[netip.Addr]int{},
		lastConsent: map[string]spec.Time{},
	}
}

// observe points cfg's observers at w.
func (w *world) observe(cfg *sim.Config) {
	cfg.OnNet = w.onNet
	cfg.OnEvent = w.onEvent
	cfg.OnExit = func(n *sim.Node, now spec.Time, err string) {
		if c := w.clients[n.Name]; c != nil {
			c.exited, c.exitAt, c.exitErr = true, now, err
		}
	}
}

func (w *world) onNet(ev sim.NetEvent) {
	if ev.Proto != spec.UDP {
		return
	}
	switch ev.Kind {
	case sim.NetSend:
		// What the server sends from its host's first address is its
		// too (a forgotten SendFrom): clients drop it, but it counts
		// against amplification and stray sends all the same.
		if ev.From == serverAddr || ev.From == netip.AddrPortFrom(serverFirst, serverAddr.Port()) {
			if in, ok := w.lastIn[ev.To]; !ok || in.at != ev.T || len(ev.Data) > in.size {
				w.unasked[ev.To.Addr()] = append(w.unasked[ev.To.Addr()], fmt.Sprintf("%d bytes at %v (the last datagram from there: %d bytes at %v)", len(ev.Data), ev.T.Sub(spec.SimEpoch), in.size, in.at.Sub(spec.SimEpoch)))
			}
			w.toAddr[ev.To.Addr()] += len(ev.Data)
			w.replies = append(w.replies, reply{to: ev.To, size: len(ev.Data), at: ev.T})
			if !stream.IsControl(ev.Data) {
				w.dataTo[ev.To.Addr()]++
				if c := w.byAddr[ev.To.Addr()]; c != nil {
					d, err := stream.DecodeData(ev.Data)
					if err != nil {
						w.violations = append(w.violations, "server sent a malformed data packet: "+err.Error())
					}
					c.sent = append(c.sent, d.Index)
				}
			}
		}
		if ev.To == serverAddr {
			w.fromAddr[ev.From.Addr()] += len(ev.Data)
			if c := w.byAddr[ev.From.Addr()]; c != nil && stream.IsControl(ev.Data) {
				ctl, err := stream.DecodeControl(ev.Data)
				if err != nil {
					w.violations = append(w.violations, "client sent a malformed control packet: "+err.Error())
					return
				}
				if ctl.App == nil || ctl.App.Subtype != stream.AppReport {
					return
				}
				t, _ := stream.DecodeTally(ctl.App.Data)
				r := rrSent{at: ev.T, tally: t, bye: ctl.Bye}
				if len(ctl.Reports) == 0 {
					return
				}
				rb := ctl.Reports[0]
				r.ext, r.lost, r.frac, r.jit = rb.LastSequenceNumber, stream.Lost24(rb.TotalLost), rb.FractionLost, rb.Jitter
				c.reports = append(c.reports, r)
				c.reportAt = append(c.reportAt, len(c.delivered))
			}
		}
	case sim.NetDeliver:
		if ev.To == serverAddr {
			w.lastIn[ev.From] = reply{to: ev.From, size: len(ev.Data), at: ev.T}
		}
		if ev.From == serverAddr && !stream.IsControl(ev.Data) {
			if c := w.byAddr[ev.To.Addr()]; c != nil {
				d, _ := stream.DecodeData(ev.Data)
				c.delivered = append(c.delivered, delivery{at: ev.T, data: d})
			}
		}
		if ev.To == serverAddr && stream.IsControl(ev.Data) {
			if ctl, err := stream.DecodeControl(ev.Data); err == nil && ctl.App != nil && (ctl.App.Subtype == stream.AppReport || ctl.App.Subtype == stream.AppEcho) {
				w.lastConsent[ev.From.String()] = ev.T
			}
		}
	}
}

func (w *world) onEvent(n *sim.Node, now spec.Time, ev spec.Event) {
	if n.Name == "server" {
		switch ev.Name {
		case "unsubscribed":
			w.departures = append(w.departures, departure{at: now, d: ev.Value.(stream.Departure)})
		case "subscribed":
			w.arrivals = append(w.arrivals, ev.Value.(stream.Arrival))
		}
		return
	}
	c := w.clients[n.Name]
	if c == nil {
		return
	}
	switch ev.Name {
	case "packet":
		c.packets = append(c.packets, ev.Value.(stream.Packet))
	case "stats":
		st := ev.Value.(stream.Stats)
		c.stats = &st
	}
}

// addServer adds the server on a host whose first address is
// serverFirst and whose second is serverAddr's, where clients send. It
// listens on the unspecified address, so a server that answers without
// naming the address it was asked on (Output.Local) answers from
// serverFirst, and its clients drop that.
func (w *world) addServer(cfg stream.ServerConfig, link *sim.Link) {
	if cfg.Addr == serverAddr {
		cfg.Addr = netip.AddrPortFrom(netip.IPv4Unspecified(), serverAddr.Port())
	}
	w.s.MustAddNode(sim.NodeSpec{Name: "server", Addr: serverFirst, Aliases: []netip.Addr{serverAddr.Addr()}, Protocol: "stream", Role: "server", Config: cfg, Link: link,
		New: func() spec.Machine { return stream.NewServer(cfg) }})
}

// serverFirst is the server host's first address.
var serverFirst = netip.MustParseAddr("10.0.0.200")

func (w *world) addClient(name string, cfg stream.ClientConfig, start time.Duration, link *sim.Link) *clientTruth {
	n := w.s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "stream", Role: "client", Config: cfg, Start: start, Link: link,
		New: func() spec.Machine { return stream.NewClient(cfg) }})
	return w.follow(n)
}

// follow records the ground truth of client n.
func (w *world) follow(n *sim.Node) *clientTruth {
	c := &clientTruth{name: n.Name, addr: n.Addr}
	w.clients[n.Name] = c
	w.byAddr[n.Addr] = c
	return c
}

func (w *world) names() []string {
	names := make([]string, 0, len(w.clients))
	for n := range w.clients {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// oracle recomputes RFC 3550 statistics from the ground truth with the
// packets' true 64-bit indices instead of 16-bit sequence arithmetic. It
// is valid while no packet is more than 100 behind the highest and no
// gap reaches 3000 (A.1's MAX_MISORDER and MAX_DROPOUT), which the
// properties' fault bounds guarantee.
type oracle struct {
	started      bool
	baseIdx      uint64
	baseSeq      uint16
	maxIdx       uint64
	received     uint64
	seen         map[uint64]bool
	dups, reord  uint64
	sum          uint64
	transit      int64
	jitter       uint64
	jitterF      float64
	expPrior     uint64
	recPrior     uint64
	frac         uint8
	distinct     uint64
	lastDelivery spec.Time
}

func newOracle() *oracle { return &oracle{seen: map[uint64]bool{}} }

func arrivalUnits(now spec.Time) uint32 {
	ns := uint64(now)
	return uint32(ns/1e9*stream.ClockRate + ns%1e9*stream.ClockRate/1e9)
}

func (o *oracle) add(d delivery) {
	transit := int64(int32(arrivalUnits(d.at) - d.data.Timestamp))
	if !o.started {
		o.started = true
		o.baseIdx, o.baseSeq, o.maxIdx = d.data.Index, d.data.Seq, d.data.Index
		o.transit = transit
	} else {
		dd := transit - o.transit
		// int32 wraparound of the transit difference, as A.8's int.
		dd = int64(int32(dd))
		o.transit = transit
		if dd < 0 {
			dd = -dd
		}
		o.jitter += uint64(dd) - (o.jitter+8)>>4
		o.jitterF += (float64(dd) - o.jitterF) / 16
	}
	o.received++
	switch {
	case o.seen[d.data.Index]:
		o.dups++
	case d.data.Index < o.maxIdx:
		o.reord++
		fallthrough
	default:
		o.seen[d.data.Index] = true
		o.distinct++
		o.sum += d.data.Value
	}
	o.maxIdx = max(o.maxIdx, d.data.Index)
	o.lastDelivery = d.at
}

func (o *oracle) ext() uint64 { return uint64(o.baseSeq) + o.maxIdx - o.baseIdx }

func (o *oracle) expected() uint64 { return o.maxIdx - o.baseIdx + 1 }

func (o *oracle) report() {
	exp := o.expected()
	ei, ri := exp-o.expPrior, o.received-o.recPrior
	o.expPrior, o.recPrior = exp, o.received
	o.frac = 0
	if ei > ri {
		o.frac = uint8((ei - ri) << 8 / ei)
	}
}

func clamp24(l int64) int32 { return int32(min(max(l, -0x800000), 0x7fffff)) }

// check compares a client's statistics and reports with the oracle and
// returns the first difference.
func (c *clientTruth) check() error {
	o := newOracle()
	ri := 0
	for i := 0; i <= len(c.delivered); i++ {
		for ri < len(c.reports) && c.reportAt[ri] == i {
			r := c.reports[ri]
			o.report()
			want := rrSent{ext: uint32(o.ext()), lost: clamp24(int64(o.expected()) - int64(o.received)), frac: o.frac, jit: uint32(o.jitter >> 4)}
			if r.ext != want.ext || r.lost != want.lost || r.frac != want.frac || r.jit != want.jit {
				return fmt.Errorf("%s: report %d after %d deliveries: ext=%d lost=%d frac=%d jitter=%d, ground truth ext=%d lost=%d frac=%d jitter=%d",
					c.name, ri, i, r.ext, r.lost, r.frac, r.jit, want.ext, want.lost, want.frac, want.jit)
			}
			if r.tally.Packets != o.distinct || r.tally.Sum != o.sum || r.tally.Duplicates != o.dups || r.tally.Reordered != o.reord {
				return fmt.Errorf("%s: report %d tally %+v, ground truth packets=%d sum=%d dups=%d reordered=%d", c.name, ri, r.tally, o.distinct, o.sum, o.dups, o.reord)
			}
			ri++
		}
		if i < len(c.delivered) {
			o.add(c.delivered[i])
		}
	}
	if c.stats == nil {
		return fmt.Errorf("%s emitted no final statistics", c.name)
	}
	st := *c.stats
	if st.Packets != o.distinct || st.Sum != o.sum || st.Duplicates != o.dups || st.Reordered != o.reord {
		return fmt.Errorf("%s: packets=%d sum=%d dups=%d reordered=%d; ground truth %d, %d, %d, %d",
			c.name, st.Packets, st.Sum, st.Duplicates, st.Reordered, o.distinct, o.sum, o.dups, o.reord)
	}
	if uint64(len(c.packets)) != o.distinct {
		return fmt.Errorf("%s printed %d packets, %d distinct were delivered", c.name, len(c.packets), o.distinct)
	}
	if !o.started {
		if len(st.Sources) > 0 && st.Sources[len(st.Sources)-1].Valid {
			return fmt.Errorf("%s has statistics but nothing was delivered", c.name)
		}
		return nil
	}
	if len(st.Sources) != 1 {
		return fmt.Errorf("%s has %d sources, want 1", c.name, len(st.Sources))
	}
	s := st.Sources[0]
	want := stream.SourceStats{
		SSRC: c.delivered[0].data.SSRC, Valid: true, BaseSeq: o.baseSeq, ExtMax: o.ext(), Cycles: o.ext() >> 16,
		Expected: int64(o.expected()), Received: o.received, Lost: int64(o.expected()) - int64(o.received),
		FractionLost: o.frac, Duplicates: o.dups, Reordered: o.reord,
		Jitter: uint32(o.jitter >> 4), JitterUs: o.jitter >> 4 * 1e6 / stream.ClockRate,
	}
	if s != want {
		return fmt.Errorf("%s statistics differ from the ground truth:\n got  %+v\n want %+v", c.name, s, want)
	}
	// The integer A.8 jitter tracks the real-valued definition within
	// rounding.
	if d := float64(s.Jitter) - o.jitterF; d > 1.5 || d < -1.5 {
		return fmt.Errorf("%s: jitter %d, the RFC 3550 §6.4.1 estimator gives %.2f", c.name, s.Jitter, o.jitterF)
	}
	return nil
}

// drawLinkFaults draws a fault profile with sim.DrawFaults (so it
// shrinks) and moves its random part onto the server's uplink: the data
// path is lossy, the clients' reports always arrive.
func drawLinkFaults(t *rapid.T, base sim.Dir) (sim.Link, sim.Faults) {
	f := sim.DrawFaults(t, sim.FaultBounds{MaxLoss: 0.4, MaxDup: 0.3, MaxJitter: 20 * time.Millisecond})
	up := base
	up.Loss, up.Dup, up.Jitter = f.Loss, f.Dup, f.Jitter
	return sim.Link{Up: up, Down: base}, f
}
