package sim

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Config is a simulated network.
type Config struct {
	// Seed drives every random choice the network makes.
	Seed uint64 `json:"seed"`
	// Link is every node's access link unless its NodeSpec says otherwise.
	Link Link `json:"link"`
	// Faults are applied on top of the links.
	Faults Faults `json:"faults"`
	// Prefix is where node addresses come from: the i-th node added gets
	// the i-th host address of Prefix. Default 10.0.0.0/8, so the first
	// node is 10.0.0.1 like mininet's h1.
	Prefix netip.Prefix `json:"prefix"`
	// MSS is the payload size of a stream segment. Default 1460.
	MSS int `json:"mss,omitempty"`
	// Window bounds each stream's unacknowledged bytes. Default 256 KiB.
	Window int `json:"window,omitempty"`
	// RTO is how long a stream waits to resend a lost segment that no
	// later segment's acknowledgment has shown lost (three do, as SACK
	// would, and it is resent at once). Default 200ms.
	RTO time.Duration `json:"rto,omitempty"`
	// DialTimeout is how long a dial to a silent address takes to fail.
	// A SYN that a down host or a partition swallows is sent again 1 s,
	// 3 s, 7 s, ... after the dial (as kernels do) while that is before
	// DialTimeout, so a dial outlives a short outage. Default 3s.
	DialTimeout time.Duration `json:"dialTimeout,omitempty"`
	// UDPOverhead and TCPOverhead are header bytes counted against link
	// rates per packet (IP + transport). Defaults 28 and 40; -1 means none.
	UDPOverhead int `json:"udpOverhead,omitempty"`
	TCPOverhead int `json:"tcpOverhead,omitempty"`

	// Trace, if set, receives the whole run as an NDJSON trace.
	Trace io.Writer `json:"-"`
	// Protocol names the protocol in the trace header.
	Protocol string `json:"-"`
	// Logger receives the machines' log records (nil: discarded).
	Logger *slog.Logger `json:"-"`
	// OnEvent, OnExit and OnNet observe the run: application events,
	// machines finishing, and the fate of every packet (the ground truth
	// property tests compare against).
	OnEvent func(n *Node, now spec.Time, ev spec.Event) `json:"-"`
	OnExit  func(n *Node, now spec.Time, err string)    `json:"-"`
	OnNet   func(ev NetEvent)                           `json:"-"`
	// Stop, closed from any goroutine, interrupts the run: Run and
	// RunUntil return within a few thousand events, and Stopped says so.
	// (The only input from outside the simulation; it ends it, so it
	// cannot change a trace, only cut it short.)
	Stop <-chan struct{} `json:"-"`
}

func (c *Config) fill() {
	if !c.Prefix.IsValid() {
		c.Prefix = netip.MustParsePrefix("10.0.0.0/8")
	}
	if c.MSS <= 0 {
		c.MSS = 1460
	}
	if c.Window <= 0 {
		c.Window = 256 << 10
	}
	if c.RTO <= 0 {
		c.RTO = 200 * time.Millisecond
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 3 * time.Second
	}
	if c.UDPOverhead == 0 {
		c.UDPOverhead = 28
	} else if c.UDPOverhead < 0 {
		c.UDPOverhead = 0
	}
	if c.TCPOverhead == 0 {
		c.TCPOverhead = 40
	} else if c.TCPOverhead < 0 {
		c.TCPOverhead = 0
	}
}

// NodeSettings are a node's own simulator settings, as trace headers
// record them.
type NodeSettings struct {
	Link    *Link         `json:"link,omitempty"`
	Start   time.Duration `json:"start,omitempty"`
	Aliases []netip.Addr  `json:"aliases,omitempty"`
}

func (n *Node) settings() NodeSettings {
	ns := NodeSettings{Start: n.spec.Start, Aliases: n.spec.Aliases}
	if n.spec.Link != nil && *n.spec.Link != n.sim.cfg.Link {
		ns.Link = n.spec.Link
	}
	return ns
}

// NodeSpec describes a node to add.
type NodeSpec struct {
	Name string
	// New builds the node's machine, at start and after every restart.
	New func() spec.Machine
	// Protocol, Role and Config describe the machine in the trace header;
	// the protocol's New(Role, Config) must build the same machine as New.
	Protocol string
	Role     string
	Config   any
	// Addr overrides the node's address.
	Addr netip.Addr
	// Aliases are further addresses of the node, a host with several:
	// datagrams and dials to any of them reach it, a socket bound to
	// the unspecified address learns which (Input.Local), and a machine
	// may send from any of them (Output.Local; without it, from Addr).
	Aliases []netip.Addr
	// Link overrides Config.Link for this node.
	Link *Link
	// Start delays the node's start by this long after time zero.
	Start time.Duration
}

// Sim is a deterministic discrete-event simulation of machines on a
// network. It is not safe for concurrent use.
type Sim struct {
	cfg    Config
	now    spec.Time
	q      queue
	rng    spec.Rand
	nodes  []*Node
	byName map[string]*Node
	byAddr map[netip.Addr]*Node
	byIPv4 map[uint32]*Node // byAddr's IPv4 hosts, for routing: hashing a netip.Addr is slow
	// dense indexes the IPv4 hosts from denseBase on by address offset:
	// nodes are numbered from one prefix, so routing is a slice index,
	// not a hash (a map lookup per packet was a tenth of a big run).
	dense     []*Node
	denseBase uint32
	nextIP    netip.Addr
	pktID     uint64
	connID    uint64
	events    uint64

	// instant counts events at the current time; past maxPerInstant the
	// run stops as livelocked (a machine that re-arms a timer for now
	// would otherwise never let time advance).
	instant     int
	livelock    bool
	interrupted bool

	pool  []*packet
	parts []partState
	// live counts packets on the network: datagrams and segments
	// allocated and not yet delivered or dropped, and handshake packets
	// (SYN, SYN-ACK, RST) sent and not yet delivered or dropped. It is
	// the ground truth that a tally of network events must agree with.
	live    int
	tw      *trace.Writer
	started bool
	// violations records machines breaking the contract (writing to an
	// unknown stream, binding twice, ...), for tests to assert on.
	violations []string
}

// New returns a simulation of cfg's network, with no nodes yet.
func New(cfg Config) *Sim {
	cfg.fill()
	s := &Sim{
		cfg:    cfg,
		now:    spec.SimEpoch,
		rng:    spec.NewRand(cfg.Seed),
		byName: map[string]*Node{},
		byAddr: map[netip.Addr]*Node{},
		byIPv4: map[uint32]*Node{},
		nextIP: cfg.Prefix.Masked().Addr().Next(),
	}
	for i, p := range cfg.Faults.Partitions {
		s.schedule(event{at: spec.SimEpoch.Add(p.Start), kind: evPartOn, a: uint64(i)})
		if p.End != 0 {
			// A partition that ends no later than it starts still
			// happens (it resets the streams across it), then heals.
			s.schedule(event{at: spec.SimEpoch.Add(max(p.End, p.Start)), kind: evPartOff, a: uint64(i)})
		}
	}
	s.parts = make([]partState, len(cfg.Faults.Partitions))
	return s
}

// Now is the current virtual time.
func (s *Sim) Now() spec.Time { return s.now }

// Elapsed is the virtual time since the start.
func (s *Sim) Elapsed() time.Duration { return s.now.Sub(spec.SimEpoch) }

// Events is how many events the simulation has processed.
func (s *Sim) Events() uint64 { return s.events }

// InFlight is how many packets are on the network now: sent (or
// duplicated) and neither delivered nor dropped yet. A run that stops
// while packets travel leaves some: every NetSend and NetDup is matched
// by exactly one NetDeliver or dropping event, or counted here.
func (s *Sim) InFlight() int { return s.live }

// Violations lists contract violations seen so far.
func (s *Sim) Violations() []string { return s.violations }

// Config returns the configuration with defaults filled in.
func (s *Sim) Config() Config { return s.cfg }

func (s *Sim) violate(n *Node, format string, args ...any) {
	msg := fmt.Sprintf("%s: %s", n.Name, fmt.Sprintf(format, args...))
	if len(s.violations) < 100 {
		s.violations = append(s.violations, msg)
	}
	if s.cfg.Logger != nil {
		s.cfg.Logger.Warn("contract violation", "node", n.Name, "detail", msg)
	}
}

func (s *Sim) schedule(e event) {
	if e.at < s.now {
		e.at = s.now
	}
	s.q.push(e)
}

// AddNode adds a node. Its machine starts at NodeSpec.Start.
func (s *Sim) AddNode(ns NodeSpec) (*Node, error) {
	if ns.Name == "" || ns.New == nil {
		return nil, fmt.Errorf("sim: node needs a name and a machine")
	}
	if _, dup := s.byName[ns.Name]; dup {
		return nil, fmt.Errorf("sim: duplicate node %q", ns.Name)
	}
	addr := ns.Addr
	if !addr.IsValid() {
		for {
			addr = s.nextIP
			s.nextIP = s.nextIP.Next()
			if !s.cfg.Prefix.Contains(addr) {
				return nil, fmt.Errorf("sim: prefix %v is full", s.cfg.Prefix)
			}
			if _, used := s.byAddr[addr]; !used && !lastOctetReserved(addr) {
				break
			}
		}
	}
	for i, a := range append([]netip.Addr{addr}, ns.Aliases...) {
		if _, used := s.byAddr[a]; used || (i > 0 && a == addr) || slices.Contains(ns.Aliases[:max(i-1, 0)], a) {
			return nil, fmt.Errorf("sim: address %v is taken", a)
		}
	}
	link := s.cfg.Link
	if ns.Link != nil {
		link = *ns.Link
	}
	n := &Node{
		sim:  s,
		idx:  int32(len(s.nodes)),
		Name: ns.Name,
		Addr: addr,
		spec: ns,
		link: link,
	}
	n.reset()
	s.nodes = append(s.nodes, n)
	s.byName[n.Name] = n
	for _, a := range append([]netip.Addr{addr}, ns.Aliases...) {
		s.byAddr[a] = n
		if a.Is4() {
			s.byIPv4[ipv4(a)] = n
			s.addDense(ipv4(a), n)
		}
	}
	s.schedule(event{at: spec.SimEpoch.Add(ns.Start), kind: evStart, node: n.idx})
	return n, nil
}

// MustAddNode is AddNode for scenarios whose node specs are constants.
func (s *Sim) MustAddNode(ns NodeSpec) *Node {
	n, err := s.AddNode(ns)
	if err != nil {
		panic(err)
	}
	return n
}

// Node returns the node called name, or nil.
func (s *Sim) Node(name string) *Node { return s.byName[name] }

// Nodes returns the nodes in the order they were added.
func (s *Sim) Nodes() []*Node { return s.nodes }

// At runs f at virtual time t (relative to the start).
func (s *Sim) At(t time.Duration, f func()) {
	s.schedule(event{at: spec.SimEpoch.Add(t), kind: evFunc, x: f})
}

// Command delivers an application command to node at t.
func (s *Sim) Command(t time.Duration, node string, cmd spec.Command) {
	n := s.mustNode(node)
	in := spec.Input{Kind: spec.InCommand, Cmd: cmd}
	s.schedule(event{at: spec.SimEpoch.Add(t), kind: evInput, node: n.idx, gen: ^uint32(0), x: &in})
}

// Stop asks node's machine to finish at t.
func (s *Sim) Stop(t time.Duration, node string) {
	n := s.mustNode(node)
	in := spec.Input{Kind: spec.InStop}
	s.schedule(event{at: spec.SimEpoch.Add(t), kind: evInput, node: n.idx, gen: ^uint32(0), x: &in})
}

// Crash stops node at t, losing all its state; its peers' streams reset.
func (s *Sim) Crash(t time.Duration, node string) {
	s.schedule(event{at: spec.SimEpoch.Add(t), kind: evCrash, node: s.mustNode(node).idx})
}

// Restart starts a crashed or finished node afresh at t.
func (s *Sim) Restart(t time.Duration, node string) {
	s.schedule(event{at: spec.SimEpoch.Add(t), kind: evRestart, node: s.mustNode(node).idx})
}

// host returns the node with address a, or nil.
func (s *Sim) host(a netip.Addr) *Node {
	if a.Is4() {
		v := ipv4(a)
		if i := v - s.denseBase; i < uint32(len(s.dense)) {
			return s.dense[i]
		}
		return s.byIPv4[v]
	}
	return s.byAddr[a]
}

// maxDense bounds the dense routing table (entries).
const maxDense = 1 << 20

// addDense puts n in the dense table if its address is near the others.
func (s *Sim) addDense(v uint32, n *Node) {
	if len(s.dense) == 0 {
		s.denseBase = v &^ 0xff
	}
	i := v - s.denseBase
	if v < s.denseBase || i >= maxDense {
		return // far from the first host: the map serves it
	}
	if int(i) >= len(s.dense) {
		s.dense = append(s.dense, make([]*Node, int(i)+1-len(s.dense))...)
	}
	s.dense[i] = n
}

// lastOctetReserved reports an IPv4 address ending in .0 or .255, which
// the allocator skips so that no node looks like a network or broadcast
// address in a capture. IPv6 has no broadcast; every address is usable.
func lastOctetReserved(a netip.Addr) bool {
	if !a.Is4() {
		return false
	}
	b := a.As4()
	return b[3] == 0 || b[3] == 255
}

// ipv4 is an IPv4 address as a map key.
func ipv4(a netip.Addr) uint32 {
	b := a.As4()
	return binary.BigEndian.Uint32(b[:])
}

func (s *Sim) mustNode(name string) *Node {
	n := s.byName[name]
	if n == nil {
		panic(fmt.Sprintf("sim: no node %q", name))
	}
	return n
}

// Run processes events until the queue is empty or the next event is
// after limit (relative to the start); the clock then reads limit either
// way (an idle network simply waited), so Run(d) simulates exactly d
// unless Config.Stop or the livelock guard cut it short.
func (s *Sim) Run(limit time.Duration) {
	s.RunUntil(nil, limit)
}

// RunUntil is Run that also stops as soon as done returns true (checked
// after every event). It reports whether done returned true.
func (s *Sim) RunUntil(done func() bool, limit time.Duration) bool {
	s.begin()
	end := spec.SimEpoch.Add(limit)
	for s.q.len() > 0 && !s.livelock && !s.interrupted {
		if s.events&(1<<12-1) == 0 && s.cfg.Stop != nil {
			select {
			case <-s.cfg.Stop:
				s.interrupted = true
				return false
			default:
			}
		}
		if s.q.peek() > end {
			s.now = end
			return false
		}
		s.step()
		if done != nil && done() {
			return true
		}
	}
	if s.now < end && done == nil && !s.livelock && !s.interrupted {
		s.now = end
	}
	return false
}

// Stopped reports whether Config.Stop cut the run short.
func (s *Sim) Stopped() bool { return s.interrupted }

// Idle reports whether nothing is left to happen.
func (s *Sim) Idle() bool { return s.q.len() == 0 }

// Close flushes the trace.
func (s *Sim) Close() error {
	s.begin()
	if s.tw != nil {
		return s.tw.Flush()
	}
	return nil
}

func (s *Sim) begin() {
	if s.started {
		return
	}
	s.started = true
	s.scheduleCrashes()
	if s.cfg.Trace == nil {
		return
	}
	h := trace.Header{Protocol: s.cfg.Protocol, Source: "sim", Seed: s.cfg.Seed, Epoch: int64(spec.SimEpoch)}
	if b, err := json.Marshal(s.cfg); err == nil {
		h.Sim = b
	}
	for _, n := range s.nodes {
		ni := trace.NodeInfo{Name: n.Name, Protocol: n.spec.Protocol, Role: n.spec.Role, Addr: n.Addr.String()}
		if ni.Protocol == h.Protocol {
			ni.Protocol = ""
		}
		if h.Protocol == "" {
			h.Protocol = n.spec.Protocol
			ni.Protocol = ""
		}
		cfg, err := json.Marshal(n.spec.Config)
		if err != nil {
			cfg = []byte("null")
		}
		ni.Config = cfg
		if ns := n.settings(); ns.Link != nil || ns.Start != 0 || len(ns.Aliases) > 0 {
			ni.Sim, _ = json.Marshal(ns)
		}
		h.Nodes = append(h.Nodes, ni)
	}
	tw, err := trace.NewWriter(s.cfg.Trace, h)
	if err == nil {
		s.tw = tw
	}
}

func (s *Sim) record(r trace.Record) {
	if s.tw != nil {
		_ = s.tw.Write(r)
	}
}

// maxPerInstant is how many events may happen at one virtual instant:
// far more than any run needs (a thousand-node swarm starts with a few
// thousand), far fewer than a livelock reaches in a second.
const maxPerInstant = 1_000_000

func (s *Sim) step() {
	e := s.q.pop()
	if e.at == s.now {
		if s.instant++; s.instant > maxPerInstant {
			s.livelock = true
			s.violations = append(s.violations, fmt.Sprintf("sim: livelock: more than %d events at %v; time cannot advance", maxPerInstant, time.Duration(s.now-spec.SimEpoch)))
			return
		}
	} else {
		s.instant = 0
	}
	s.now = e.at
	s.events++
	switch e.kind {
	case evStart:
		s.nodes[e.node].start()
	case evInput:
		n := s.nodes[e.node]
		if e.gen != ^uint32(0) && e.gen != n.gen {
			return
		}
		n.deliver(*e.x.(*spec.Input))
	case evTimer:
		s.nodes[e.node].fire(e)
	case evArrive:
		s.arrive(e.pkt)
	case evDeliver:
		s.deliverPkt(e.pkt)
	case evAck:
		s.ack(e)
	case evResend:
		s.resend(e)
	case evSyn:
		s.syn(e)
	case evStreamRst:
		s.streamReset(e)
	case evFunc:
		e.x.(func())()
	case evCrash:
		s.nodes[e.node].crash()
	case evRestart:
		n := s.nodes[e.node]
		if n.up {
			n.crash()
		}
		n.start()
	case evPartOn:
		s.partitionOn(int(e.a))
	case evPartOff:
		s.parts[e.a].active = false
		s.recordNet(NetEvent{Kind: NetHeal, Note: fmt.Sprintf("partition %d heals", e.a)})
	}
}
