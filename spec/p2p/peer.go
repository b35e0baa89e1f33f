package p2p

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/spec"
)

// DefaultServerPort and DefaultPeerPort are the seed's ports.
const (
	DefaultServerPort = 52000
	DefaultPeerPort   = 51000
)

// PeerConfig configures a peer (the seed's P2P client).
type PeerConfig struct {
	// Server is the P2P server's address.
	Server netip.AddrPort `json:"server"`
	// Listen is where the peer serves other peers (port 0: any).
	Listen netip.AddrPort `json:"listen"`
	// Seed drives the peer's random choices.
	Seed uint64 `json:"seed,omitempty"`
	// Legacy makes the peer speak only the seed's protocol: no XHEL, so
	// no extension, one request at a time.
	Legacy bool `json:"legacy,omitempty"`
	// MaxOut is how many neighbours the peer connects to on its own
	// (default 8); it also connects back to every neighbour that
	// connects to it, as the seed does, up to MaxIn neighbours in all
	// (default 32). Peers that join together all list the first few to
	// join, so MaxIn must leave room above the 8+8 a peer has on
	// average: a full peer refuses the connections of later ones, and a
	// later peer refused by most of its list is left with a neighbour or
	// two and finishes last (at 20, one such peer in a swarm of a
	// thousand took 1.1 s longer than the next slowest).
	MaxOut int `json:"maxOut,omitempty"`
	MaxIn  int `json:"maxIn,omitempty"`
	// MaxInPerAddr bounds the neighbours connected from one address
	// (default MaxIn/2: peers on one host, as on loopback, share one),
	// and HelloTimeout resets one that has not said CHEL this long
	// (default 10s, as the server's), so that silent sockets cannot hold
	// every place.
	MaxInPerAddr int           `json:"maxInPerAddr,omitempty"`
	HelloTimeout time.Duration `json:"helloTimeout,omitempty"`
	// PeerDepth is how many chunk requests are pipelined to one peer
	// (default 4); ServerDepth how many DANY requests wait at the server
	// (default 2; twice that with a single neighbour, eight times while
	// the server is the only source: every DANY waiting there is a chunk
	// that will queue at this peer's downlink, ahead of the requests and
	// announcements neighbours send it);
	// MaxOutstanding bounds chunk requests to peers in all (default 16).
	PeerDepth      int `json:"peerDepth,omitempty"`
	ServerDepth    int `json:"serverDepth,omitempty"`
	MaxOutstanding int `json:"maxOutstanding,omitempty"`
	// HaveDelay batches HAVE announcements: they wait HaveDelay per
	// neighbour announced to (twice that with at most 3*PushTo+3
	// neighbours), between 10ms and 250ms (default 10ms), so
	// the segments they cost stay at about 1/HaveDelay per second
	// however many neighbours there are (announcements that can ride on
	// other traffic to a neighbour go with it). ReportEvery batches the
	// HAVE reports the server uses to know who holds what (default 1s).
	HaveDelay   time.Duration `json:"haveDelay,omitempty"`
	ReportEvery time.Duration `json:"reportEvery,omitempty"`
	// Poll is how often a neighbour without the extensions is asked for
	// its chunk list (default 500ms), as the seed's client does.
	Poll time.Duration `json:"poll,omitempty"`
	// Linger is how long the peer keeps serving after it has verified the
	// file: 0 exits at once, a negative value serves until stopped.
	Linger time.Duration `json:"linger,omitempty"`
	// Retry is the first reconnection delay, doubled per failure up to
	// 8s (default 250ms).
	Retry time.Duration `json:"retry,omitempty"`
	// ServerWait is how long a peer the server has never welcomed keeps
	// trying to reach it before it exits with an error (0: for ever).
	// Once welcomed, a peer outlives the server's absence while its
	// neighbours bring chunks, and reconnects; one that has lost the
	// server and got no chunk from anyone for ServerWait gives up too.
	ServerWait time.Duration `json:"serverWait,omitempty"`
	// ReqTimeout drops a neighbour that answers nothing for this long
	// while it owes answers (default 10s).
	ReqTimeout time.Duration `json:"reqTimeout,omitempty"`
	// XhelTimeout is how long after the welcome (SHEL, PHEL) the peer
	// waits for the answer to the XHEL it pipelined behind CHEL before
	// it takes the other side for a seed-style node that swallowed it
	// (default 1s; an extension node answers both at once).
	XhelTimeout time.Duration `json:"xhelTimeout,omitempty"`
	// IdleFlush: see ServerConfig.
	IdleFlush time.Duration `json:"idleFlush,omitempty"`
	// UploadRate, Backlog, Window and AckTimeout pace the chunks this
	// peer serves, as ServerConfig's do (defaults: no rate, 2 chunks, 8,
	// 500ms). A peer that paces by rate says so in XHEL, and is sent no
	// acknowledgments.
	UploadRate float64       `json:"uploadRate,omitempty"`
	Backlog    int           `json:"backlog,omitempty"`
	Window     int           `json:"window,omitempty"`
	AckTimeout time.Duration `json:"ackTimeout,omitempty"`
	// PushTo is how many neighbours each chunk from the server is pushed
	// to, unasked (PUSH), ahead of the answers to requests: PushTo picked
	// at random, or all of them if there are at most 3*PushTo, or, with
	// at most 3*PushTo+3, as many as leave at most 3*PushTo+3 pushes
	// waiting (default 2; negative: none). PushStale is how long a push may wait for the
	// uplink before it is announced with HAVE instead (default 60ms).
	PushTo    int           `json:"pushTo,omitempty"`
	PushStale time.Duration `json:"pushStale,omitempty"`
	// BusyAt is how many requests may wait for this peer's uplink before
	// an extension peer asking for more is told BUSY (default 8);
	// BusyWait is how long a peer told BUSY leaves that neighbour alone
	// (default 100ms). MaxPending bounds the answers queued on one
	// connection (default 256, as the server's): a neighbour that asks
	// for more without reading them is sent UNKNOWN_COMMAND and closed.
	BusyAt     int           `json:"busyAt,omitempty"`
	BusyWait   time.Duration `json:"busyWait,omitempty"`
	MaxPending int           `json:"maxPending,omitempty"`
	// MaxUnread bounds the bytes of answers that are not paced (PHEL,
	// XHEL, CLRSP, ERROR) written to one neighbour since the runner last
	// said it had taken everything written (InStreamWritable); a
	// neighbour that asks without reading is reset (default 256 KiB, or
	// four lists of every chunk if that is more; see ServerConfig).
	MaxUnread int `json:"maxUnread,omitempty"`
	// MaxChunks bounds the chunk count a server may announce (default
	// DefaultMaxChunks).
	MaxChunks int `json:"maxChunks,omitempty"`
	// Progress emits a "progress" event per chunk.
	Progress bool `json:"progress,omitempty"`
	// NoTree declines a place in the server's distribution trees;
	// TreeStall is how long a tree may bring nothing before the peer
	// pulls that tree's chunks like any other (default 1s).
	NoTree    bool          `json:"noTree,omitempty"`
	TreeStall time.Duration `json:"treeStall,omitempty"`
	// NoCut makes a relay in the trees pass a chunk on only once it has
	// all of it and has checked it (store and forward), not as it
	// arrives (see "Cut-through").
	NoCut bool `json:"noCut,omitempty"`
}

func (c *PeerConfig) fill() {
	if !c.Listen.IsValid() {
		c.Listen = netip.AddrPortFrom(netip.IPv4Unspecified(), DefaultPeerPort)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxOut, 8)
	def(&c.MaxIn, 32)
	def(&c.MaxInPerAddr, max(c.MaxIn/2, 1))
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	def(&c.PeerDepth, 4)
	def(&c.ServerDepth, 2)
	def(&c.MaxOutstanding, 16)
	def(&c.MaxChunks, DefaultMaxChunks)
	def(&c.Window, 8)
	def(&c.BusyAt, 8)
	def(&c.MaxPending, 256)
	if c.PushTo == 0 {
		c.PushTo = 2
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	dur(&c.HaveDelay, 10*time.Millisecond)
	dur(&c.ReportEvery, time.Second)
	dur(&c.Poll, 500*time.Millisecond)
	dur(&c.Retry, 250*time.Millisecond)
	dur(&c.ReqTimeout, 10*time.Second)
	dur(&c.XhelTimeout, time.Second)
	dur(&c.IdleFlush, 200*time.Millisecond)
	dur(&c.AckTimeout, 500*time.Millisecond)
	dur(&c.BusyWait, 100*time.Millisecond)
	dur(&c.PushStale, 60*time.Millisecond)
	dur(&c.TreeStall, time.Second)
}

// Peer is a P2P peer machine: it downloads the file from the server and
// from other peers, and serves the chunks it has.
type Peer struct {
	cfg   PeerConfig
	store Store
	dig   Digester // the store, if it can digest chunks without hashing
	rng   spec.Rand
	start spec.Time
	port  uint16
	laddr netip.AddrPort

	// the file
	joined   bool
	size     int64
	chunk    int
	n        int
	have     bitset
	nhave    int
	req      []uint8     // outstanding requests per chunk
	reqd     bitset      // chunks with a request outstanding
	reqAt    []spec.Time // when chunk i was first requested
	pend     bitset      // stored before the hash list came: not yet vouched for
	npend    int
	pendSum  [][32]byte
	pendFrom []*neighbor
	dups     int     // chunks requested twice (endgame)
	nreq     int     // chunks neither held nor pending with a request outstanding
	partial  bitset  // chunks whose transfer broke off: strict priority
	avail    []int32 // neighbours known to hold each chunk
	root     []byte  // from the server's XHEL
	hashes   [][32]byte
	hashing  *oconn // where the hash list is being fetched
	hashAt   spec.Time

	// connections
	nextID spec.Stream
	srv    *oconn
	srvExt int8 // the server's extension support: 0 unknown, 1, -1
	srvTry int
	srvAt  spec.Time
	srvDry spec.Time // the server said EXHAUSTED: no DANY until then
	outs   []*oconn
	byOut  map[spec.Stream]*oconn
	ins    []*iconn
	byIn   map[spec.Stream]*iconn
	nbs    map[netip.AddrPort]*neighbor
	dead   map[spec.Stream]bool // reset before they were accepted
	// lastAccepted is the highest accepted stream id seen.
	lastAccepted spec.Stream
	known        []*neighbor // every neighbour ever heard of, in order
	cands        []*oconn
	pushTo       []*iconn
	needFill     bool // something fill depends on changed
	dirty        []*wconn
	report       []int // HAVE reports waiting for the server
	haveArm      bool
	repArm       bool

	// serving
	ring   []*iconn // connections with requests waiting for the uplink
	upq    int      // requests waiting for the uplink
	pace   pacer
	acks   ackLog
	ackAt  spec.Time
	paceAt spec.Time
	idleAt spec.Time // when the uplink ran out of work (rate mode)

	// the distribution trees (see "Trees"); tr.n == 0: no place in them
	tr      tree
	tparent []netip.AddrPort // per tree: the parent (invalid: the server, or not known yet)
	tlast   []spec.Time      // per tree: when its last chunk came, or when it was (re)joined
	ttop    []int            // per tree: the highest chunk it brought
	tbits   []bitset         // per tree: its chunks
	tjoin   spec.Time        // when the place came

	// progress is when the last chunk came (or the welcome): a peer
	// that has lost the server and gets nothing from anyone gives up
	// ServerWait after it.
	progress   spec.Time
	srvWhy     string // the server's last protocol violation, for the give-up message
	lostWarned bool   // the loss of the server was told since its last chunk
	complete   bool
	checkSent  bool
	verified   bool
	fails      int
	done       bool
	cnt        peerCounters
}

type peerCounters struct {
	fromServer, fromPeers, dup, dupServer, corrupt, banned, served, refused, overflow, unknown uint64
	violations, reconnects, hashLists, checkFailed, timeouts, busy, idle, cut, voided          uint64
	swallowed, flooded, unread, stalled, silent                                                uint64
}

type neighbor struct {
	addr    netip.AddrPort
	out     *oconn
	in      *iconn
	banned  bool
	legacy  bool // it did not cope with pipelined hellos: talk to it one message at a time
	fails   int
	retryAt spec.Time
}

// wconn is the write side shared by both kinds of connection.
type wconn struct {
	st    spec.Stream
	wbuf  []byte
	dirty bool
	gone  bool
	idle  bool
	p     *Parser
	// A body being passed through (cut.go) goes out in cutbuf, ahead of
	// wbuf; while it is incomplete (hold) wbuf waits.
	cutbuf []byte
	hold   bool
}

// oconn is a connection this peer dialed: to the server or to a
// neighbour it downloads from.
type oconn struct {
	wconn
	nb       *neighbor // nil for the server
	server   bool
	up       bool      // connected
	ready    bool      // hello answered
	readyAt  spec.Time // when the hello was answered (XhelTimeout counts from then)
	ext      int8
	inflight []oreq // answered in order (DANY aside)
	danys    int
	dreqs    int // DREQs in flight
	has      bitset
	hasN     int // chunks in has
	hasHash  bool
	last     spec.Time // last byte received, or when it started owing
	pollAt   spec.Time
	busy     spec.Time     // told BUSY: leave it alone until then
	lat      time.Duration // moving average of request-to-DATA time
	paced    bool          // it paces by rate: no acknowledgments
	tsub     uint32        // the trees this connection was subscribed to (TSUB)
	cut      cut           // the body it is bringing, passed on as it comes
	suspect  int           // a body that failed its check, VOID may follow: chunk+1, -1 the list, 0 none
	voids    int           // bodies it voided
}

type oreq struct {
	op    Op
	chunk int
	at    spec.Time
}

// iconn is a connection a neighbour dialed to download from this peer.
type iconn struct {
	wconn
	remote   netip.AddrPort
	nb       *neighbor
	hello    bool
	since    spec.Time // accepted at (for HelloTimeout)
	ext      bool
	pendHave []int
	pendHash bool
	closing  bool
	pending  []ireq // answers in order; DREQ and HREQ wait for the uplink
	push     bool   // it takes chunks unasked (its XHEL said "push")
	pushq    []push // chunks to push to it, ahead of its requests
	tree     bool   // it is this peer's child in its home tree (TSUB)
	tlist    bool   // and it gets the hash list from this peer
	tid      int    // its id in the trees
	tsubID   int    // a TSUB that came before this peer's place (0: none)
	tsubTree int
	gotList  bool // the hash list was passed through to it
	cutLast  int  // chunk+1 last passed through to it
	inRing   bool
	unread   int // bytes of unpaced answers written since the last InStreamWritable
	owed
}

type push struct {
	chunk int
	at    spec.Time
	tree  bool // down the tree: never stale
}

type ireq struct {
	op    Op
	chunk int
	err   string
}

const (
	sockPeer  spec.Sock  = 1
	tMaintain spec.Timer = 1<<62 | 1
	tHave     spec.Timer = 1<<62 | 2
	tReport   spec.Timer = 1<<62 | 3
	tLinger   spec.Timer = 1<<62 | 4
	tAckUp    spec.Timer = 1<<62 | 5
	tPaceUp   spec.Timer = 1<<62 | 6
	maintain             = 100 * time.Millisecond
)

// NewPeer returns a peer that keeps its chunks in store.
func NewPeer(cfg PeerConfig, store Store) *Peer {
	cfg.fill()
	dig, _ := store.(Digester)
	return &Peer{
		cfg:   cfg,
		store: store,
		dig:   dig,
		rng:   spec.NewRand(cfg.Seed),
		byOut: map[spec.Stream]*oconn{},
		byIn:  map[spec.Stream]*iconn{},
		nbs:   map[netip.AddrPort]*neighbor{},
		dead:  map[spec.Stream]bool{},
		pace:  newPacer(cfg.UploadRate, cfg.Backlog, cfg.Window),
	}
}

// Counters implements spec.Inspector.
func (p *Peer) Counters() []spec.Counter {
	c := &p.cnt
	return []spec.Counter{
		{Name: "chunks_from_server", Value: c.fromServer}, {Name: "chunks_from_peers", Value: c.fromPeers},
		{Name: "duplicate_chunks", Value: c.dup}, {Name: "duplicates_from_server", Value: c.dupServer}, {Name: "corrupt_chunks", Value: c.corrupt}, {Name: "peers_banned", Value: c.banned},
		{Name: "chunks_served", Value: c.served}, {Name: "refused_undownloaded", Value: c.refused},
		{Name: "refused_overflow", Value: c.overflow}, {Name: "error_unknown_command", Value: c.unknown},
		{Name: "protocol_violations", Value: c.violations}, {Name: "reconnects", Value: c.reconnects},
		{Name: "hash_lists_served", Value: c.hashLists}, {Name: "check_failed", Value: c.checkFailed},
		{Name: "request_timeouts", Value: c.timeouts}, {Name: "told_busy", Value: c.busy},
		{Name: "upload_idle_ms", Value: c.idle},
		{Name: "bodies_cut_through", Value: c.cut}, {Name: "bodies_voided", Value: c.voided},
		{Name: "xhel_unanswered", Value: c.swallowed}, {Name: "request_floods", Value: c.flooded},
		{Name: "unread_cutoffs", Value: c.unread}, {Name: "stalled_skips", Value: c.stalled}, {Name: "silent_reset", Value: c.silent},
	}
}

// Has reports whether the peer holds chunk i (for tests).
func (p *Peer) Has(i int) bool { return p.joined && i >= 0 && i < p.n && p.have.has(i) }

// Joined is the value of the "joined" event.
type Joined struct {
	FileSize  int64 `json:"fileSize"`
	ChunkSize int   `json:"chunkSize"`
	Peers     int   `json:"peers"`
}

// Progress is the value of "progress" events.
type Progress struct {
	Have  int `json:"have"`
	Total int `json:"total"`
}

// Verified is the value of the "verified" event: the server confirmed
// the peer's MD5.
type Verified struct {
	Elapsed    time.Duration `json:"elapsed"`
	MD5        string        `json:"md5"`
	FromServer uint64        `json:"fromServer"`
	FromPeers  uint64        `json:"fromPeers"`
	Duplicates uint64        `json:"duplicates"`
	Corrupt    uint64        `json:"corrupt"`
}

// Corrupt is the value of a "corrupt" event.
type Corrupt struct {
	From  string `json:"from"`
	Chunk int    `json:"chunk"`
}

// Step implements spec.Machine.
func (p *Peer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if p.done {
		return out
	}
	// Requests from neighbours and the upload timers do not change what
	// this peer can ask for; everything else may.
	switch {
	case in.Kind == spec.InStreamData && in.Stream&spec.AcceptedStream != 0:
	case in.Kind == spec.InStreamWritable:
	case in.Kind == spec.InTimer && (in.Timer == tPaceUp || in.Timer == tAckUp || in.Timer == tHave || in.Timer == tReport):
	default:
		p.needFill = true
	}
	switch in.Kind {
	case spec.InStart:
		p.start = now
		out = append(out, spec.Bind(sockPeer, spec.TCP, p.cfg.Listen), spec.SetTimer(tMaintain, now.Add(maintain)))
	case spec.InBound:
		if in.Err != "" {
			p.done = true
			return append(out, spec.Exit("p2p: listen on "+p.cfg.Listen.String()+": "+in.Err))
		}
		p.port, p.laddr = in.Addr.Port(), in.Addr
		out = append(out, spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
		out = p.dialServer(now, out)
	case spec.InConnected:
		if c := p.byOut[in.Stream]; c != nil {
			out = p.connected(now, c, out)
		}
	case spec.InAccepted:
		out = p.accepted(now, in, out)
	case spec.InStreamData:
		if c := p.byOut[in.Stream]; c != nil {
			c.p.Feed(in.Data)
			c.last = now
			out = p.readOut(now, c, out)
		} else if c := p.byIn[in.Stream]; c != nil && !c.closing {
			c.p.Feed(in.Data)
			out = p.readIn(now, c, out)
		}
	case spec.InStreamClosed:
		if c := p.byOut[in.Stream]; c != nil {
			out = p.lostOut(now, c, in.Err, out)
		} else if c := p.byIn[in.Stream]; c != nil {
			out = p.lostIn(now, c, in.Err, out)
		} else if in.Err != "" && in.Stream&spec.AcceptedStream != 0 && in.Stream > p.lastAccepted && len(p.dead) < 1024 {
			// (an id at or below the last accepted is a connection this
			// peer is done with, not one reset before its accept)
			p.dead[in.Stream] = true
		}
	case spec.InStreamWritable:
		// Everything written to c has been taken: its neighbour reads.
		if c := p.byIn[in.Stream]; c != nil {
			c.unread = 0
			if !c.ext && p.pace.windowed() {
				// As on the server: a seed-style neighbour that
				// pipelined its requests has no next request to
				// acknowledge with; its answers taken stand in.
				p.pace.acked(c.clear())
				p.unstall(c)
			}
		}
	case spec.InTimer:
		out = p.timer(now, in.Timer, out)
	case spec.InStop:
		p.done = true
		return append(out, spec.Exit(""))
	}
	if p.done {
		return out
	}
	if p.needFill {
		p.needFill = false
		out = p.fill(now, out)
	}
	out = p.upload(now, out)
	return p.flush(now, out)
}

func (p *Peer) timer(now spec.Time, t spec.Timer, out []spec.Output) []spec.Output {
	switch t {
	case tMaintain:
		out = p.maintain(now, out)
		return append(out, spec.SetTimer(tMaintain, now.Add(maintain)))
	case tHave:
		p.haveArm = false
		for _, c := range p.ins {
			p.putHaves(c)
		}
	case tReport:
		p.repArm = false
		if p.srv != nil && p.srv.ready && p.srvExt > 0 && len(p.report) > 0 {
			p.grow(&p.srv.wconn, 0)
		}
	case tLinger:
		p.done = true
		return append(out, spec.Exit(""))
	case tAckUp:
		p.ackAt = 0
		p.pace.acked(p.acks.expire(now, p.cfg.AckTimeout))
	case tPaceUp:
		p.paceAt = 0
	default:
		// An unterminated line is taken as complete only from a node
		// that may be seed-style: an extension node ends every line, so
		// its partial line is a TCP segment boundary waiting for the
		// rest (after a loss, for as long as a retransmission takes),
		// and flushing it would parse half a header ("PUSH 60" for
		// "PUSH 6000 1000") and corrupt what follows.
		st := spec.Stream(t)
		if c := p.byOut[st]; c != nil {
			c.idle = false
			ext := c.ready && ((c.server && p.srvExt > 0) || (c.nb != nil && !c.nb.legacy))
			if c.p.Partial() && !ext {
				c.p.Flush()
				out = p.readOut(now, c, out)
			}
		} else if c := p.byIn[st]; c != nil {
			c.idle = false
			if c.p.Partial() && !c.closing && !c.ext {
				c.p.Flush()
				out = p.readIn(now, c, out)
			}
		}
	}
	return out
}

// --- connections we dial -------------------------------------------------

func (p *Peer) newOut(nb *neighbor, server bool) *oconn {
	p.nextID++
	c := &oconn{wconn: wconn{st: p.nextID, p: NewParser(Responses, p.limits())}, nb: nb, server: server}
	p.byOut[c.st] = c
	p.outs = append(p.outs, c)
	return c
}

// limits bound what a neighbour can make this peer buffer: before SHEL,
// what MaxChunks allows; after, one chunk and one hash list.
func (p *Peer) limits() Limits {
	if !p.joined {
		return Limits{JSON: 12*p.cfg.MaxChunks + 1<<16, Data: 64 << 20, Hashes: p.cfg.MaxChunks}
	}
	return Limits{JSON: 12*p.n + 1<<16, Data: p.chunk, Hashes: p.n}
}

func (p *Peer) dialServer(now spec.Time, out []spec.Output) []spec.Output {
	c := p.newOut(nil, true)
	p.srv = c
	c.last = now
	return append(out, spec.Dial(c.st, p.cfg.Server))
}

func (p *Peer) dialPeer(now spec.Time, nb *neighbor, out []spec.Output) []spec.Output {
	c := p.newOut(nb, false)
	nb.out = c
	c.last = now
	return append(out, spec.Dial(c.st, nb.addr))
}

// connected says hello: CHEL, and (unless legacy) XHEL pipelined after
// it, and to a neighbour a CLREQ too.
func (p *Peer) connected(now spec.Time, c *oconn, out []spec.Output) []spec.Output {
	c.up, c.last = true, now
	b := p.grow(&c.wconn, 64)
	b = AppendCHEL(b, p.port)
	c.inflight = append(c.inflight, oreq{op: CHEL})
	legacy := p.cfg.Legacy || (c.nb != nil && c.nb.legacy) || (c.server && p.srvExt < 0)
	if !legacy {
		b = appendXHEL(b, nil, false, !c.server, c.server && !p.cfg.NoTree)
		c.inflight = append(c.inflight, oreq{op: XHEL})
		if !c.server {
			b = AppendOp(b, CLREQ)
			c.inflight = append(c.inflight, oreq{op: CLREQ})
		}
	} else {
		c.ext = -1
		if c.server {
			p.srvExt = -1
		}
	}
	c.wbuf = b
	if !legacy && !c.server {
		// A parent in the trees speaks the extension (the server placed
		// it there), so the subscription goes with the hello rather than
		// a round trip later: the first chunks reach every level sooner.
		p.subscribe(now, c)
	}
	return out
}

func (p *Peer) readOut(now spec.Time, c *oconn, out []spec.Output) []spec.Output {
	for !c.gone {
		m, err := c.p.Next()
		if err == ErrMore {
			if hdr, body, ok := c.p.Body(); ok && hdr.Op != DATA {
				out, _ = p.passOn(now, c, hdr, body, false, out)
			}
			break
		}
		if err != nil {
			return p.violation(now, c, err.Error(), out)
		}
		// vetted: m is a chunk passed through as it came, and checked
		// against its digest when it was whole. It vouches for this
		// message alone, so it goes with it rather than staying behind
		// in the peer for the next copy of the chunk, from anyone.
		vetted := false
		if m.Op == PUSH || m.Op == HASH {
			out, vetted = p.passOn(now, c, m, m.Data, true, out)
		}
		if c.suspect != 0 {
			var ok bool
			if ok, out = p.voided(now, c, m, out); ok {
				continue
			}
			if c.gone {
				if vetted {
					// c is banned for the corrupt body it vouched for,
					// but this one matched its digest and went on to the
					// children as good: keep it, so that this peer holds
					// what it served.
					out = p.data(now, c, -1, m, true, out)
				}
				continue
			}
		}
		out = p.response(now, c, m, vetted, out)
	}
	if c.gone {
		return out
	}
	if c.server && p.joined && p.srvExt != 0 {
		out = p.dialMore(now, out)
	}
	return p.armIdle(now, &c.wconn, out)
}

func (p *Peer) armIdle(now spec.Time, w *wconn, out []spec.Output) []spec.Output {
	if w.p.Partial() && !w.idle {
		w.idle = true
		return append(out, spec.SetTimer(spec.Timer(w.st), now.Add(p.cfg.IdleFlush)))
	}
	if !w.p.Partial() && w.idle {
		w.idle = false
		return append(out, spec.CancelTimer(spec.Timer(w.st)))
	}
	return out
}

// violation drops a connection whose peer broke the protocol; a
// neighbour (not the server) is banned.
func (p *Peer) violation(now spec.Time, c *oconn, why string, out []spec.Output) []spec.Output {
	p.cnt.violations++
	if c.server {
		// The server is the one node a peer cannot do without: say
		// what is wrong with it, once, and keep it for the give-up
		// message.
		if p.srvWhy == "" {
			out = append(out, spec.Warn("p2p: the server broke the protocol; reconnecting", slog.String("why", why)))
		}
		p.srvWhy = why
	}
	out = append(out, spec.Debug("p2p: protocol violation", slog.String("peer", p.name(c)), slog.String("why", why)))
	if c.nb != nil {
		return p.ban(now, c.nb, why, out)
	}
	return p.closeOut(now, c, endAbort, out)
}

func (p *Peer) name(c *oconn) string {
	if c.server {
		return "server"
	}
	return c.nb.addr.String()
}

// response handles one message read on a connection this peer dialed;
// vetted says m is a chunk already checked against its digest (passOn).
func (p *Peer) response(now spec.Time, c *oconn, m Msg, vetted bool, out []spec.Output) []spec.Output {
	if m.Op == HAVE {
		p.learn(c, m)
		return out
	}
	if m.Op == VOID {
		p.void(c, m)
		return out
	}
	if m.Op == HASH && c.ext > 0 && (c.tsub != 0 || c.server) && !c.awaits(HREQ) {
		return p.hashList(now, c, m, out) // pushed down the trees
	}
	if m.Op == TREE || m.Op == PARENT {
		if !c.server {
			return p.violation(now, c, m.Op.String()+" from a peer", out)
		}
		return p.treeMsg(now, m, out)
	}
	if m.Op == PUSH {
		if c.server && c.ext > 0 && p.roots() > 0 {
			return p.data(now, c, -1, m, vetted, out) // a root, fed by the server
		}
		if c.server || c.ext <= 0 {
			return p.violation(now, c, "PUSH without XHEL push", out)
		}
		return p.pushed(now, c, m, vetted, out)
	}
	if c.server && c.ext > 0 {
		// The server's answers to an extension peer come in the order it
		// can give them, so they are matched by kind: a DATA answers the
		// DREQ for its chunk, or a DANY; EXHAUSTED answers a DANY.
		switch {
		case m.Op == DATA:
			if p.chunk <= 0 || m.Offset%int64(p.chunk) != 0 || !c.front(DREQ, int(m.Offset/int64(p.chunk))) {
				if c.danys > 0 {
					c.danys--
				}
				return p.data(now, c, -1, m, false, out)
			}
		case m.Op == ERROR && m.Err == ErrExhausted:
			if c.danys > 0 {
				c.danys--
			}
			p.srvDry = now.Add(time.Second)
			return out
		case m.Op == CHECK || m.Op == ERROR && m.Err == ErrChecksumNotFit:
			c.front(CHECK, -1)
		case m.Op == HASH || m.Op == ERROR && m.Err == ErrBusy:
			c.front(HREQ, -1)
		}
	}
	if len(c.inflight) == 0 {
		return p.violation(now, c, "unsolicited "+m.Op.String(), out)
	}
	r := c.inflight[0]
	c.inflight = c.inflight[1:]
	bad := func() []spec.Output {
		return p.violation(now, c, fmt.Sprintf("%s in answer to %s", m.Op, r.op), out)
	}
	switch r.op {
	case CHEL:
		c.readyAt = now
		switch {
		case c.server && m.Op == SHEL:
			return p.shel(now, c, m, out)
		case !c.server && m.Op == PHEL:
			c.ready = true
		case m.Op == ERROR && !p.cfg.Legacy && c.ext == 0:
			// It may have choked on the pipelined XHEL: retry one
			// message at a time.
			if c.nb != nil {
				c.nb.legacy = true
			} else {
				p.srvExt = -1
			}
			return p.closeOut(now, c, endAbort, out)
		default:
			return bad()
		}
	case XHEL:
		switch m.Op {
		case XHEL:
			c.ext = 1
			c.paced = m.Paced
			p.subscribe(now, c)
			if c.server {
				p.srvExt = 1
				if len(m.Root) == 32 {
					if p.root != nil && string(p.root) != string(m.Root) {
						p.done = true
						return append(out, spec.Exit("p2p: the server's file changed"))
					}
					p.root = m.Root
				}
			}
		case ERROR:
			c.ext = -1
			if c.server {
				p.srvExt = -1
			}
		default:
			return bad()
		}
	case CLREQ:
		if m.Op != CLRSP {
			return bad()
		}
		m.HaveHash = false
		p.learn(c, m)
		c.pollAt = now.Add(p.cfg.Poll)
	case DREQ:
		switch {
		case m.Op == DATA:
			if d := now.Sub(r.at); c.lat == 0 {
				c.lat = d
			} else {
				c.lat += (d - c.lat) / 4
			}
			return p.data(now, c, r.chunk, m, false, out)
		case m.Op == ERROR && m.Err == ErrBusy:
			c.dreqs--
			p.unrequest(r.chunk)
			c.busy = now.Add(p.cfg.BusyWait)
		case m.Op == ERROR:
			c.dreqs--
			p.unrequest(r.chunk)
			if c.has != nil && r.chunk < p.n && c.has.has(r.chunk) {
				c.has.unset(r.chunk)
				c.hasN--
				p.avail[r.chunk]--
			}
			if m.Err == ErrOffsetOverflow {
				// We asked for a chunk in range: a peer with another
				// file. Stop asking it anything.
				return p.violation(now, c, "OFFSET_OVERFLOW for a chunk in range", out)
			}
		default:
			return bad()
		}
	case HREQ:
		if p.hashing == c {
			p.hashing = nil
		}
		switch m.Op {
		case HASH:
			return p.hashList(now, c, m, out)
		case ERROR:
			c.hasHash = false
			p.hashAt = now.Add(250 * time.Millisecond)
		default:
			return bad()
		}
	case CHECK:
		switch {
		case m.Op == CHECK:
			return p.checked(now, m, out)
		case m.Op == ERROR && m.Err == ErrChecksumNotFit:
			return p.checkFailed(now, out)
		default:
			return bad()
		}
	default:
		return bad()
	}
	return out
}

// shel is the server's welcome: the file's geometry and some peers.
func (p *Peer) shel(now spec.Time, c *oconn, m Msg, out []spec.Output) []spec.Output {
	c.ready = true
	// srvTry is reset by a chunk from the server, not by its welcome: a
	// server that welcomes and then breaks the protocol is retried with
	// a growing backoff, not every Retry for ever.
	n := numChunks(m.FileSize, m.ChunkSize)
	if m.ChunkSize > 64<<20 || n > p.cfg.MaxChunks {
		p.done = true
		return append(out, spec.Exit(fmt.Sprintf("p2p: server announced %d bytes in %d-byte chunks: too many chunks", m.FileSize, m.ChunkSize)))
	}
	if p.joined {
		if m.FileSize != p.size || int(m.ChunkSize) != p.chunk {
			p.done = true
			return append(out, spec.Exit("p2p: the server's file changed"))
		}
	} else {
		if err := p.store.Open(m.FileSize, int(m.ChunkSize)); err != nil {
			p.done = true
			return append(out, spec.Exit("p2p: "+err.Error()))
		}
		p.joined = true
		p.progress = now // a welcome again later is no progress
		p.size, p.chunk, p.n = m.FileSize, int(m.ChunkSize), n
		p.have, p.partial = newBitset(n), newBitset(n)
		p.req, p.avail = make([]uint8, n), make([]int32, n)
		p.reqd = newBitset(n)
		p.reqAt = make([]spec.Time, n)
		p.pend = newBitset(n)
		if p.cfg.Backlog <= 0 {
			p.pace.backlog = float64(2 * p.chunk)
		}
		for _, o := range p.outs {
			o.p.SetLimits(p.limits())
		}
		out = append(out,
			spec.Info("p2p: joined", slog.Int64("bytes", m.FileSize), slog.Int64("chunk", m.ChunkSize), slog.Int("peers", len(m.Peers))),
			spec.Emit(spec.Event{Name: "joined", Value: Joined{FileSize: m.FileSize, ChunkSize: int(m.ChunkSize), Peers: len(m.Peers)}}))
		if n == 0 {
			out = p.completed(now, out)
		}
	}
	for _, a := range m.Peers {
		p.hear(a)
	}
	if p.srvExt == 0 && !p.cfg.NoTree {
		return out // dialed once TREE has come or not (readOut)
	}
	return p.dialMore(now, out)
}

// hear records a neighbour's address.
func (p *Peer) hear(a netip.AddrPort) *neighbor {
	if nb := p.nbs[a]; nb != nil {
		return nb
	}
	nb := &neighbor{addr: a}
	p.nbs[a] = nb
	p.known = append(p.known, nb)
	return nb
}

// self reports whether a is this peer's own listening address.
func (p *Peer) self(a netip.AddrPort) bool {
	if a.Port() != p.port {
		return false
	}
	l := p.laddr.Addr()
	return a.Addr() == l || (l.IsUnspecified() && a.Addr().IsLoopback())
}

func (p *Peer) peersOut() int {
	n := len(p.outs)
	if p.srv != nil {
		n--
	}
	return n
}

// dialMore connects to known neighbours up to MaxOut.
func (p *Peer) dialMore(now spec.Time, out []spec.Output) []spec.Output {
	if !p.joined {
		return out
	}
	limit := p.cfg.MaxOut
	if p.tr.n > 0 {
		// The trees carry the file; a few neighbours are for when they
		// fail.
		limit = min(limit, treeNeighbours)
	}
	for _, nb := range p.known {
		if p.peersOut() >= limit {
			break
		}
		if nb.out != nil || nb.banned || nb.retryAt > now || p.self(nb.addr) {
			continue
		}
		out = p.dialPeer(now, nb, out)
	}
	return out
}

// learn records what a neighbour (or the server) says it has.
func (p *Peer) learn(c *oconn, m Msg) {
	if m.HaveHash && !c.hasHash {
		c.hasHash = true
		p.hashAt = 0 // a source for the hash list: ask it now
	}
	if !p.joined || c.server {
		return
	}
	if c.has == nil {
		c.has = newBitset(p.n)
	}
	for _, i := range m.Chunks {
		if i >= 0 && i < p.n && !c.has.has(i) {
			c.has.set(i)
			c.hasN++
			p.avail[i]++
		}
	}
}

// data handles a DATA message; want is the chunk requested (-1: the
// server's choice); vetted says its body has been checked against its
// digest already.
func (p *Peer) data(now spec.Time, c *oconn, want int, m Msg, vetted bool, out []spec.Output) []spec.Output {
	if want >= 0 {
		c.dreqs--
		p.unrequest(want)
	}
	i, ok := p.chunkAt(m.Offset)
	if !ok {
		return p.violation(now, c, fmt.Sprintf("DATA at offset %d", m.Offset), out)
	}
	if (want >= 0 && i != want) || int64(m.Size) != p.chunkLen(i) {
		return p.violation(now, c, fmt.Sprintf("DATA %d %d in answer to DREQ %d", m.Offset, m.Size, want), out)
	}
	switch {
	case c.server && c.ext > 0 && c.paced && p.tr.n > 0:
		// A server that paces by rate needs no acknowledgment, and one
		// that feeds the trees picks no chunks by who holds what: the
		// chunk is reported with the others. A root's uplink carries its
		// tree at exactly the server's rate, so a segment of its own per
		// chunk would queue ahead of every chunk after it, at every hop
		// below (N = 100: the root's hop grew from 12 to 57 ms over the
		// run). Pulling, the prompt HAVE keeps the server's choices for
		// DANY fresh (N = 500: 1.244x the bound, against 1.260x without).
		out = p.toReport(now, i, out)
	case c.server && c.ext > 0:
		// The acknowledgment the server paces itself by.
		p.report = append(p.report, i)
		p.grow(&c.wconn, 0)
	case !c.server && c.ext > 0 && !c.paced:
		c.wbuf = AppendHAVE(p.grow(&c.wconn, 16), false, []int{i})
	}
	if p.have.has(i) || p.pend.has(i) {
		p.cnt.dup++
		if c.server {
			p.cnt.dupServer++
		}
		return out
	}
	switch {
	case p.hashes != nil:
		if !vetted && p.digest(i, m.Data) != p.hashes[i] {
			if p.blameLater(c) {
				return p.suspect(c, i, out)
			}
			return p.corrupt(now, c, i, out)
		}
	case !c.server && p.srvExt >= 0:
		// The hash list has not come yet: keep the chunk, with its
		// digest, but neither announce nor serve it until the list
		// vouches for it.
		if err := p.store.Put(i, m.Data); err != nil {
			if p.blameLater(c) {
				return p.suspect(c, i, out)
			}
			return p.corrupt(now, c, i, out)
		}
		if p.pendSum == nil {
			p.pendSum, p.pendFrom = make([][32]byte, p.n), make([]*neighbor, p.n)
		}
		p.pendSum[i], p.pendFrom[i] = p.digest(i, m.Data), c.nb
		p.pend.set(i)
		p.npend++
		p.partial.unset(i)
		if p.req[i] > 0 {
			p.nreq--
		}
		return out
	}
	if err := p.store.Put(i, m.Data); err != nil {
		return p.corrupt(now, c, i, out)
	}
	return p.adopt(now, c.server, c.ext > 0, c.nb, i, out)
}

// adopt makes chunk i, stored and verified, one this peer has: counted,
// announced, reported.
func (p *Peer) adopt(now spec.Time, server, ext bool, from *neighbor, i int, out []spec.Output) []spec.Output {
	p.have.set(i)
	p.nhave++
	p.progress = now
	if server {
		p.srvTry, p.lostWarned = 0, false
	}
	if c := p.srv; c != nil && c.ext > 0 && !server && p.req[i] > 0 {
		p.withdraw(c, i) // got it elsewhere first
	}
	if p.pend.has(i) {
		p.pend.unset(i)
		p.npend--
	} else {
		p.partial.unset(i)
		if p.req[i] > 0 {
			p.nreq--
		}
	}
	if server {
		p.cnt.fromServer++
		if s := p.treeOf(i); s >= 0 && p.tr.parent(s) == 0 {
			p.tlast[s] = now
			p.ttop[s] = max(p.ttop[s], i)
		}
	} else {
		p.cnt.fromPeers++
	}
	if (!server || !ext) && p.srvExt >= 0 {
		out = p.toReport(now, i, out)
	}
	push := p.pushTo[:0]
	switch {
	case p.tr.n > 0:
		push = p.forward(now, i, push)
	case server:
		push = p.pushes(now, i, push)
	}
	for _, ic := range p.ins {
		// Announce to the neighbours that may want it: not the sender
		// (the acknowledgment told it), nor one that has announced the
		// chunk itself, nor one it is pushed to.
		// Nor a child in the trees: it is pushed every chunk of this
		// peer's tree and gets the others from its other parents, and the
		// announcement would take a segment of its own behind each body
		// on an uplink that runs at exactly the server's rate.
		if ic.ext && !ic.tree && (from == nil || ic != from.in) && !ic.holds(i) && !slices.Contains(push, ic) {
			ic.pendHave = append(ic.pendHave, i)
		}
	}
	clear(push)
	p.pushTo = push[:0]
	if !p.haveArm && len(p.ins) > 0 {
		p.haveArm = true
		out = append(out, spec.SetTimer(tHave, now.Add(p.haveDelay())))
	}
	if p.cfg.Progress {
		out = append(out, spec.Emit(spec.Event{Name: "progress", Value: Progress{Have: p.nhave, Total: p.n}}))
	}
	if p.nhave == p.n {
		out = p.completed(now, out)
	}
	return out
}

func (p *Peer) chunkLen(i int) int64 {
	lo := int64(i) * int64(p.chunk)
	return min(int64(p.chunk), p.size-lo)
}

// corrupt rejects a chunk that fails its hash: it is fetched elsewhere
// and the sender is banned.
func (p *Peer) corrupt(now spec.Time, c *oconn, i int, out []spec.Output) []spec.Output {
	p.cnt.corrupt++
	out = append(out, spec.Warn("p2p: corrupt chunk rejected", slog.String("from", p.name(c)), slog.Int("chunk", i)),
		spec.Emit(spec.Event{Name: "corrupt", Value: Corrupt{From: p.name(c), Chunk: i}}))
	if c.nb != nil {
		return p.ban(now, c.nb, "served a corrupt chunk", out)
	}
	return out
}

// ban drops a neighbour for good.
func (p *Peer) ban(now spec.Time, nb *neighbor, why string, out []spec.Output) []spec.Output {
	if !nb.banned {
		nb.banned = true
		p.cnt.banned++
		out = append(out, spec.Warn("p2p: banning peer", slog.String("peer", nb.addr.String()), slog.String("why", why)),
			spec.Emit(spec.Event{Name: "banned", Text: nb.addr.String()}))
	}
	if nb.out != nil {
		out = p.closeOut(now, nb.out, endAbort, out)
	}
	if nb.in != nil {
		out = p.closeIn(nb.in, true, out)
	}
	return out
}

func (p *Peer) hashList(now spec.Time, c *oconn, m Msg, out []spec.Output) []spec.Output {
	switch {
	case c.server && c.ext > 0:
		p.report = append(p.report, -1)
		p.grow(&c.wconn, 0)
	case !c.server && c.ext > 0:
		c.wbuf = AppendHAVE(p.grow(&c.wconn, 16), true, nil)
	}
	if p.hashes != nil || p.root == nil {
		return out
	}
	if m.Size != p.n {
		return p.violation(now, c, fmt.Sprintf("HASH of %d chunks, the file has %d", m.Size, p.n), out)
	}
	hs := digests(m.Data)
	if r := rootOf(hs); string(r[:]) != string(p.root) {
		if p.blameLater(c) {
			return p.suspect(c, -1, out)
		}
		return p.violation(now, c, "HASH list does not match the server's root", out)
	}
	p.hashes = hs
	// The chunks that came before the list: keep those it vouches for.
	for i := 0; i < p.n && p.npend > 0; i++ {
		if !p.pend.has(i) {
			continue
		}
		if p.pendSum[i] == hs[i] {
			out = p.adopt(now, false, true, p.pendFrom[i], i, out)
			continue
		}
		p.unpend(i)
		p.cnt.corrupt++
		from := "a neighbour"
		if nb := p.pendFrom[i]; nb != nil {
			from = nb.addr.String()
			out = p.ban(now, nb, "served a corrupt chunk", out)
		}
		out = append(out, spec.Warn("p2p: corrupt chunk rejected", slog.String("from", from), slog.Int("chunk", i)),
			spec.Emit(spec.Event{Name: "corrupt", Value: Corrupt{From: from, Chunk: i}}))
	}
	p.pendFrom = nil
	for _, ic := range p.ins {
		if ic.tlist && !ic.gotList {
			ic.pushq = append([]push{{chunk: -1, at: now, tree: true}}, ic.pushq...)
			p.schedIn(ic)
		}
		if ic.ext {
			// Announced at once: neighbours that lack the list cannot
			// pass on what they fetch until they have it.
			ic.pendHash = true
			p.grow(&ic.wconn, 0)
		}
	}
	return out
}

func (p *Peer) completed(now spec.Time, out []spec.Output) []spec.Output {
	p.complete = true
	sum, err := p.store.Sum()
	if err != nil {
		p.done = true
		return append(out, spec.Exit("p2p: "+err.Error()))
	}
	out = append(out, spec.Info("p2p: download complete", slog.String("md5", hex.EncodeToString(sum[:])), slog.Duration("t", now.Sub(p.start))),
		spec.Emit(spec.Event{Name: "complete", Text: hex.EncodeToString(sum[:])}))
	return p.sendCheck(out)
}

func (p *Peer) sendCheck(out []spec.Output) []spec.Output {
	c := p.srv
	if !p.complete || p.checkSent || c == nil || !c.ready {
		return out
	}
	sum, err := p.store.Sum()
	if err != nil {
		return out
	}
	for ; c.danys > 0; c.danys-- {
		// The DANYs still queued at the server are not wanted any more.
		c.wbuf = AppendDCAN(p.grow(&c.wconn, 8), -1)
	}
	p.checkSent = true
	c.wbuf = AppendCHECK(p.grow(&c.wconn, 40), sum)
	c.inflight = append(c.inflight, oreq{op: CHECK})
	return out
}

func (p *Peer) checked(now spec.Time, m Msg, out []spec.Output) []spec.Output {
	if p.verified {
		return out
	}
	p.verified = true
	v := Verified{Elapsed: now.Sub(p.start), MD5: hex.EncodeToString(m.MD5[:]), FromServer: p.cnt.fromServer,
		FromPeers: p.cnt.fromPeers, Duplicates: p.cnt.dup, Corrupt: p.cnt.corrupt}
	out = append(out, spec.Info("p2p: the server confirmed the file", slog.String("md5", v.MD5), slog.Duration("time", v.Elapsed)),
		spec.Emit(spec.Event{Name: "verified", Value: v}))
	switch {
	case p.cfg.Linger == 0:
		p.done = true
		out = append(out, spec.Exit(""))
	case p.cfg.Linger > 0:
		out = append(out, spec.SetTimer(tLinger, now.Add(p.cfg.Linger)))
	}
	return out
}

// checkFailed starts again, from the server only, after CHECKSUM_NOT_FIT:
// without the hash extension a corrupt chunk is found only now, and not
// where.
func (p *Peer) checkFailed(now spec.Time, out []spec.Output) []spec.Output {
	p.cnt.checkFailed++
	p.fails++
	out = append(out, spec.Warn("p2p: the server says the file's checksum does not fit; downloading again"))
	if p.fails > 3 {
		p.done = true
		return append(out, spec.Exit("p2p: checksum does not fit after 3 downloads"))
	}
	p.store.Reset()
	p.have = newBitset(p.n)
	p.nhave, p.complete, p.checkSent = 0, false, false
	for i := range p.req {
		p.req[i] = 0
	}
	p.reqd = newBitset(p.n)
	p.nreq, p.dups = 0, 0
	p.pend, p.npend, p.pendFrom = newBitset(p.n), 0, nil
	// What was queued to be pushed, announced or reported names chunks
	// the store no longer holds: a push would send zeros as the file.
	// (The hash list, still to be pushed to a child or acknowledged, is
	// good: it stays.)
	p.report = slices.DeleteFunc(p.report, func(i int) bool { return i >= 0 })
	for _, ic := range p.ins {
		ic.pushq = slices.DeleteFunc(ic.pushq, func(r push) bool { return r.chunk >= 0 })
		ic.pendHave = ic.pendHave[:0]
	}
	for _, c := range append([]*oconn(nil), p.outs...) {
		if !c.server {
			out = p.closeOut(now, c, endAbort, out)
		}
	}
	if p.hashes == nil {
		for _, nb := range p.known {
			nb.banned = true // without per-chunk hashes no peer can be trusted again
		}
	}
	return out
}

// --- connections neighbours dial -----------------------------------------

func (p *Peer) accepted(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	p.lastAccepted = max(p.lastAccepted, in.Stream)
	if p.dead[in.Stream] {
		// The simulator can report a connection reset before its
		// accept; it is gone.
		delete(p.dead, in.Stream)
		return out
	}
	if len(p.ins) >= p.cfg.MaxIn {
		p.cnt.unknown++
		return append(out, spec.Abort(in.Stream), spec.Debug("p2p: too many peers downloading from us", slog.String("from", in.Addr.String())))
	}
	same := 0
	for _, o := range p.ins {
		if o.remote.Addr() == in.Addr.Addr() {
			same++
		}
	}
	if same >= p.cfg.MaxInPerAddr {
		// One host must not take every place (32 silent sockets from
		// one address shut the port to every other neighbour).
		p.cnt.unknown++
		return append(out, spec.Abort(in.Stream), spec.Debug("p2p: too many connections from one address", slog.String("from", in.Addr.String())))
	}
	c := &iconn{wconn: wconn{st: in.Stream, p: NewParser(Requests, Limits{Data: 1})}, remote: in.Addr, since: now}
	p.ins = append(p.ins, c)
	p.byIn[in.Stream] = c
	return out
}

func (p *Peer) readIn(now spec.Time, c *iconn, out []spec.Output) []spec.Output {
	for !c.gone && !c.closing {
		m, err := c.p.Next()
		if err == ErrMore {
			break
		}
		if err != nil {
			pe := err.(*ParseError)
			p.cnt.unknown++
			out = append(out, spec.Debug("p2p: bad request", slog.String("from", c.remote.String()), slog.String("err", pe.Error())))
			if pe.Fatal {
				p.dropPending(c)
				p.writeIn(c, ireq{op: ERROR, err: ErrUnknownCommand})
				return p.closeIn(c, false, out)
			}
			p.answer(c, ireq{op: ERROR, err: ErrUnknownCommand})
			if c.unread > p.maxUnread() {
				return p.cutOff(c, out)
			}
			continue
		}
		if len(c.pending) >= p.cfg.MaxPending {
			// Answers are written in order, so a neighbour that keeps
			// asking without reading them would make this peer queue
			// requests without bound; every honest one stays far below
			// (PeerDepth requests, BUSY beyond BusyAt).
			p.cnt.flooded++
			out = append(out, spec.Debug("p2p: too many queued requests", slog.String("from", c.remote.String()), slog.Int("pending", len(c.pending))))
			p.dropPending(c)
			p.writeIn(c, ireq{op: ERROR, err: ErrUnknownCommand})
			return p.closeIn(c, false, out)
		}
		out = p.serve(now, c, m, out)
		if c.unread > p.maxUnread() {
			return p.cutOff(c, out)
		}
	}
	if c.gone || c.closing {
		return out
	}
	p.schedIn(c)
	return p.armIdle(now, &c.wconn, out)
}

// maxUnread is the bound on c.unread.
func (p *Peer) maxUnread() int { return unreadCap(p.cfg.MaxUnread, p.n) }

// cutOff resets c, whose neighbour asks for answers (a CLRSP of every
// chunk for a 7-byte CLREQ, an ERROR for a junk line) and does not read
// them: nothing is owed to it, and what it left unread is dropped with
// the connection rather than queued until it reads.
func (p *Peer) cutOff(c *iconn, out []spec.Output) []spec.Output {
	p.cnt.unread++
	out = append(out, spec.Debug("p2p: neighbour not reading its answers, resetting", slog.String("from", c.remote.String()), slog.Int("unread", c.unread)))
	return p.closeIn(c, true, out)
}

// answer queues or writes an answer on c, keeping answers in order.
func (p *Peer) answer(c *iconn, r ireq) {
	paced := r.op == DREQ || r.op == HREQ
	if len(c.pending) == 0 && !paced {
		p.writeIn(c, r)
		return
	}
	if paced {
		p.upq++
	}
	c.pending = append(c.pending, r)
}

// writeIn writes an answer that is not paced, counted against MaxUnread.
func (p *Peer) writeIn(c *iconn, r ireq) {
	before := len(c.wbuf)
	switch r.op {
	case ERROR:
		c.wbuf = AppendERROR(p.grow(&c.wconn, 32), r.err)
	case PHEL:
		c.wbuf = AppendOp(p.grow(&c.wconn, 8), PHEL)
	case XHEL:
		b := AppendXHEL(p.grow(&c.wconn, 96), nil, p.pace.rate > 0)
		if p.hashes != nil {
			b = AppendHAVE(b, true, nil)
			c.pendHash = false
		}
		c.wbuf = b
	case CLRSP:
		ids := make([]int, 0, p.nhave)
		for i := 0; i < p.n; i++ {
			if p.have.has(i) {
				ids = append(ids, i)
			}
		}
		c.pendHave = c.pendHave[:0] // the list covers them
		c.wbuf = AppendCLRSP(p.grow(&c.wconn, 8+6*len(ids)), ids)
	}
	c.unread += len(c.wbuf) - before
}

// serve answers one request from a neighbour.
func (p *Peer) serve(now spec.Time, c *iconn, m Msg, out []spec.Output) []spec.Output {
	unknown := func(why string) []spec.Output {
		p.cnt.unknown++
		p.answer(c, ireq{op: ERROR, err: ErrUnknownCommand})
		return append(out, spec.Debug("p2p: "+why, slog.String("from", c.remote.String()), slog.String("op", m.Op.String())))
	}
	if !c.hello && m.Op != CHEL {
		return unknown("request before CHEL")
	}
	if p.cfg.Legacy && m.Op.Extension() {
		return unknown("extension to a legacy peer")
	}
	if m.Op.Extension() && m.Op != XHEL && !c.ext {
		return unknown("extension before XHEL") // as on the server
	}
	if !c.ext && m.Op != HAVE && len(c.items) > 0 {
		// A seed-style peer asks one thing at a time: a new request
		// means the last answer arrived.
		p.pace.acked(c.clear())
	}
	if !c.ext || m.Op == HAVE {
		p.unstall(c)
	}
	switch m.Op {
	case CHEL:
		if c.hello {
			return unknown("second CHEL")
		}
		c.hello = true
		a := netip.AddrPortFrom(c.remote.Addr(), m.Port)
		nb := p.hear(a)
		if nb.banned {
			return p.closeIn(c, true, out)
		}
		if nb.in != nil && nb.in != c {
			out = p.closeIn(nb.in, true, out) // it reconnected; the old one is stale
		}
		nb.in, c.nb = c, nb
		p.answer(c, ireq{op: PHEL})
		// The seed: the accepting peer connects back to the new peer's
		// listening port, so both can download from each other. MaxIn
		// bounds the neighbours this makes.
		if nb.out == nil && p.joined && !p.self(a) {
			nb.retryAt = 0
			out = p.dialPeer(now, nb, out)
		}
	case XHEL:
		c.ext = true
		c.push = m.Push
		p.answer(c, ireq{op: XHEL})
	case CLREQ:
		p.answer(c, ireq{op: CLRSP})
	case DREQ:
		switch {
		case !p.joined || (m.Chunk < p.n && !p.have.has(m.Chunk)):
			p.cnt.refused++
			p.answer(c, ireq{op: ERROR, err: ErrChunkUndownloaded})
		case m.Chunk >= p.n:
			p.cnt.overflow++
			p.answer(c, ireq{op: ERROR, err: ErrOffsetOverflow})
		case c.ext && p.upq >= p.cfg.BusyAt:
			// Also when this connection has requests queued already: the
			// uplink is as busy for them, and a neighbour that asks
			// without reading must not queue without bound.
			p.cnt.busy++
			p.answer(c, ireq{op: ERROR, err: ErrBusy})
		default:
			p.answer(c, ireq{op: DREQ, chunk: m.Chunk})
		}
	case HREQ:
		if p.hashes == nil {
			p.answer(c, ireq{op: ERROR, err: ErrChunkUndownloaded})
			return out
		}
		p.answer(c, ireq{op: HREQ})
	case TSUB:
		// Never answered: a stranger's is counted and ignored. One that
		// comes before this peer's own place (its TREE is still on the
		// way from the server) waits for it.
		if c.ext && c.push && p.tr.n == 0 && !p.cfg.NoTree {
			c.tsubID, c.tsubTree = m.TreeID, m.Stripe
			return out
		}
		if !c.ext || !c.push || p.tr.n == 0 || m.Stripe != p.tr.home() || !p.tr.isChild(m.Stripe, m.TreeID) {
			p.cnt.unknown++
			return append(out, spec.Debug("p2p: TSUB from a peer that is not our child", slog.String("from", c.remote.String()), slog.Int("id", m.TreeID), slog.Int("tree", m.Stripe)))
		}
		out = p.adoptChild(now, c, m.TreeID, out)
	case HAVE:
		if c.nb != nil && c.nb.out != nil {
			p.learn(c.nb.out, m)
			p.needFill = true
		}
		for _, i := range m.Chunks {
			if c.owed.ack(i) {
				p.pace.acked(1)
			}
		}
		if m.HaveHash && c.owed.ack(-1) {
			p.pace.acked(1)
		}
	default:
		return unknown("unexpected request")
	}
	return out
}

// unstall puts a stalled neighbour (see upload), which has now
// acknowledged something, back in turn.
func (p *Peer) unstall(c *iconn) {
	if c.owed.stalled {
		c.owed.stalled = false
		p.schedIn(c)
	}
}

// schedIn puts c in the upload ring if it has a push waiting or a paced
// answer heads its queue.
func (p *Peer) schedIn(c *iconn) {
	if !c.inRing && !c.gone && !c.closing && (len(c.pushq) > 0 || len(c.pending) > 0 && (c.pending[0].op == DREQ || c.pending[0].op == HREQ)) {
		c.inRing = true
		p.ring = append(p.ring, c)
	}
}

// next takes from the ring a neighbour with a push waiting, or else the
// neighbour that has the fewest chunks, the first in the ring among
// equals: the distribution is over when the last peer has the file, so
// the peer furthest behind goes first.
func (p *Peer) next() *iconn {
	best, bestN := 0, 1<<62
	for k, c := range p.ring {
		n := 0
		if c.nb != nil && c.nb.out != nil {
			n = c.nb.out.hasN
		}
		if len(c.pushq) > 0 {
			n -= 1 << 40
			if c.tree {
				// Children in heap order: the first heads the larger
				// subtree, so the deepest peers wait least.
				n = -1<<40 + p.tr.pos(p.tr.home(), c.tid)
			}
		}
		if c.tree && len(c.pending) > 0 && c.pending[0].op == HREQ {
			// A child without the hash list can pass nothing on.
			n -= 1 << 41
		}
		if n < bestN {
			best, bestN = k, n
		}
	}
	c := p.ring[best]
	p.ring = append(p.ring[:best], p.ring[best+1:]...)
	return c
}

// upload writes paced answers, the peer furthest behind first, while the
// pacer allows.
func (p *Peer) upload(now spec.Time, out []spec.Output) []spec.Output {
	for len(p.ring) > 0 && p.pace.ready(now) {
		c := p.next()
		c.inRing = false
		if c.gone || c.closing {
			continue
		}
		if p.pace.windowed() && c.owed.stalled {
			// An answer to it went unacknowledged for AckTimeout: one
			// that does not read must not hold the window round after
			// round (see Server.serve). Back in turn when it
			// acknowledges (unstall).
			p.cnt.stalled++
			continue
		}
		if len(c.pushq) > 0 && !(c.tree && len(c.pending) > 0 && c.pending[0].op == HREQ) {
			p.pushOne(now, c)
			p.schedIn(c)
			continue
		}
		if len(c.pending) == 0 {
			continue
		}
		r := c.pending[0]
		c.pending = c.pending[1:]
		p.upq--
		switch {
		case r.op == HREQ:
			p.sendHashList(now, c)
		case p.have.has(r.chunk):
			if err := p.sendChunk(now, c, r.chunk, AppendDATAHeader); err != nil {
				p.writeIn(c, ireq{op: ERROR, err: ErrChunkUndownloaded})
				out = append(out, spec.Warn("p2p: store", slog.String("err", err.Error())))
			}
		default:
			p.cnt.refused++
			p.writeIn(c, ireq{op: ERROR, err: ErrChunkUndownloaded})
		}
		queued := c.unread
		for len(c.pending) > 0 && c.pending[0].op != DREQ && c.pending[0].op != HREQ {
			p.writeIn(c, c.pending[0])
			c.pending = c.pending[1:]
		}
		if c.unread-queued > p.maxUnread() {
			// Answers queued behind a paced one added nothing to
			// unread when they were asked for, so readIn could not
			// check them: the limit holds for what goes out at once
			// here (see Server.serve).
			out = p.cutOff(c, out)
			continue
		}
		p.schedIn(c)
	}
	if p.pace.rate > 0 && p.joined {
		// Account the time the uplink had nothing to send.
		p.pace.drain(now)
		switch {
		case len(p.ring) == 0 && p.idleAt == 0:
			p.idleAt = now.Add(time.Duration(p.pace.queued / p.pace.rate * float64(time.Second)))
		case len(p.ring) > 0 && p.idleAt != 0:
			if now > p.idleAt {
				p.cnt.idle += uint64(now.Sub(p.idleAt) / time.Millisecond)
			}
			p.idleAt = 0
		}
	}
	if len(p.ring) == 0 {
		p.ring = nil
	} else if at := p.pace.wake(now); at != 0 && p.paceAt == 0 {
		p.paceAt = at
		out = append(out, spec.SetTimer(tPaceUp, at))
	}
	if at := p.acks.next(p.cfg.AckTimeout); at != 0 && p.ackAt == 0 {
		p.ackAt = at
		out = append(out, spec.SetTimer(tAckUp, at))
	}
	return out
}

// dropPending forgets the answers c still waits for.
func (p *Peer) dropPending(c *iconn) {
	for _, r := range c.pending {
		if r.op == DREQ || r.op == HREQ {
			p.upq--
		}
	}
	c.pending = nil
}

// haveDelay is how long announcements wait to be batched.
func (p *Peer) haveDelay() time.Duration {
	if p.tr.n > 0 {
		// In the trees announcements only matter when a tree stalls,
		// and every segment of their own delays the pushes behind it,
		// at every hop below.
		return treeHaveDelay
	}
	d := p.cfg.HaveDelay * time.Duration(len(p.ins))
	if p.cfg.PushTo > 0 && len(p.ins) <= 3*p.cfg.PushTo+3 {
		// A small swarm, where chunks from the server are pushed to all
		// or most neighbours: a HAVE mostly tells a neighbour what a push
		// has told it or soon will, so it waits twice as long for company
		// (seeds 1-3, ratio to the bound: N=8 1.060-1.065 -> 1.050-1.052,
		// N=10 1.078-1.081 -> 1.071-1.077; larger swarms lost up to a
		// point when every peer waited longer).
		d *= 2
	}
	return min(max(d, 10*time.Millisecond), 250*time.Millisecond)
}

// toReport queues chunk i for the next report to the server.
func (p *Peer) toReport(now spec.Time, i int, out []spec.Output) []spec.Output {
	p.report = append(p.report, i)
	if !p.repArm {
		p.repArm = true
		out = append(out, spec.SetTimer(tReport, now.Add(p.cfg.ReportEvery)))
	}
	return out
}

// putHaves writes c's pending HAVE announcements.
func (p *Peer) putHaves(c *iconn) {
	if c.gone || c.closing || (len(c.pendHave) == 0 && !c.pendHash) {
		return
	}
	b := p.grow(&c.wconn, 8+6*len(c.pendHave))
	c.wbuf = AppendHAVE(b, c.pendHash, c.pendHave)
	c.pendHave, c.pendHash = c.pendHave[:0], false
}

// --- losing connections ----------------------------------------------------

func (p *Peer) lostOut(now spec.Time, c *oconn, err string, out []spec.Output) []spec.Output {
	if c.p.Partial() && err == "" {
		c.p.Flush()
		out = p.readOut(now, c, out)
		if c.gone {
			return out
		}
	}
	if err != "" {
		return p.closeOut(now, c, endGone, out)
	}
	return p.closeOut(now, c, endClose, out)
}

// How a connection ends.
const (
	endGone  = iota // the runner already reported it reset: nothing to do
	endClose        // the peer sent EOF: FIN ours
	endAbort        // we drop it: reset
)

// closeOut forgets a dialed connection and puts its requests back in the
// pool.
func (p *Peer) closeOut(now spec.Time, c *oconn, how int, out []spec.Output) []spec.Output {
	if c.gone {
		return out
	}
	c.gone = true
	p.abortCut(now, c)
	c.suspect = 0
	delete(p.byOut, c.st)
	for i, o := range p.outs {
		if o == c {
			p.outs = append(p.outs[:i], p.outs[i+1:]...)
			break
		}
	}
	if c.idle {
		out = append(out, spec.CancelTimer(spec.Timer(c.st)))
	}
	switch how {
	case endClose:
		out = append(out, spec.Close(c.st))
	case endAbort:
		out = append(out, spec.Abort(c.st))
	}
	for k, r := range c.inflight {
		if r.op == DREQ {
			p.unrequest(r.chunk)
			if k == 0 && c.p.InBody() && p.joined {
				p.partial.set(r.chunk)
			}
		}
	}
	c.inflight, c.dreqs, c.danys = nil, 0, 0
	if c.has != nil {
		for i := 0; i < p.n; i++ {
			if c.has.has(i) {
				p.avail[i]--
			}
		}
		c.has, c.hasN = nil, 0
	}
	if p.hashing == c {
		p.hashing = nil
	}
	for s := range p.tr.d {
		if c.tsub&(1<<s) != 0 {
			p.tlast[s] = 0 // the tree is cut: pull its chunks until it is back
		}
	}
	if c.server {
		p.srv = nil
		p.srvTry++
		if !p.verified {
			p.checkSent = false // ask again on the next connection
		}
		p.cnt.reconnects++
		if !p.joined && p.cfg.ServerWait > 0 && now.Sub(p.start) >= p.cfg.ServerWait {
			p.done = true
			return append(out, spec.Exit(fmt.Sprintf("p2p: no welcome from the server %v in %v (%d tries%s)", p.cfg.Server, p.cfg.ServerWait, p.srvTry, p.lastWhy())))
		}
		if p.stalled(now) {
			p.done = true
			return append(out, spec.Exit(p.stallText()))
		}
		p.srvAt = now.Add(backoff(p.cfg.Retry, p.srvTry))
		if dl := p.start.Add(p.cfg.ServerWait); !p.joined && p.cfg.ServerWait > 0 && dl < p.srvAt {
			p.srvAt = dl // the last try is at the deadline, not a backoff past it
		}
		if p.joined && !p.verified && !p.lostWarned {
			p.lostWarned = true
			return append(out, spec.Warn("p2p: lost the server; reconnecting", slog.String("server", p.cfg.Server.String())))
		}
		return append(out, spec.Debug("p2p: lost the server", slog.Int("try", p.srvTry)))
	}
	nb := c.nb
	nb.out = nil
	if !c.ready {
		nb.fails++
	} else {
		nb.fails = 0
	}
	nb.retryAt = now.Add(backoff(p.cfg.Retry, nb.fails+1))
	return out
}

// stalled reports whether a welcomed peer has gone ServerWait without a
// chunk from anyone (or, holding them all, without the server's answer
// to CHECK): the server is gone, silent or broken, and nobody else has
// what it lacks.
func (p *Peer) stalled(now spec.Time) bool {
	return p.joined && !p.verified && !p.done && p.cfg.ServerWait > 0 && now.Sub(p.progress) >= p.cfg.ServerWait
}

func (p *Peer) stallText() string {
	srv := "connected, and silent"
	if p.srv == nil {
		srv = fmt.Sprintf("lost, %d tries", p.srvTry)
	}
	if p.complete {
		return fmt.Sprintf("p2p: the server %v has not confirmed the file (CHECK) in %v (%s%s)", p.cfg.Server, p.cfg.ServerWait, srv, p.lastWhy())
	}
	return fmt.Sprintf("p2p: no chunk came from anyone for %v; the server %v: %s%s", p.cfg.ServerWait, p.cfg.Server, srv, p.lastWhy())
}

// lastWhy is "; it last broke the protocol: WHY", after the server's last violation, if any.
func (p *Peer) lastWhy() string {
	if p.srvWhy == "" {
		return ""
	}
	return "; it last broke the protocol: " + p.srvWhy
}

func backoff(first time.Duration, try int) time.Duration {
	d := first
	for i := 1; i < try && d < 8*time.Second; i++ {
		d *= 2
	}
	return min(d, 8*time.Second)
}

func (p *Peer) lostIn(now spec.Time, c *iconn, err string, out []spec.Output) []spec.Output {
	if err == "" && !c.closing {
		if c.p.Partial() {
			c.p.Flush()
			out = p.readIn(now, c, out)
		}
		return p.closeIn(c, false, out)
	}
	return p.forgetIn(c, out)
}

// closeIn ends a connection a neighbour dialed: gracefully (FIN after
// the answers) or by reset.
func (p *Peer) closeIn(c *iconn, abort bool, out []spec.Output) []spec.Output {
	if c.gone || c.closing {
		return out
	}
	c.closing = true
	if abort {
		c.wbuf, c.cutbuf, c.hold = nil, nil, false
		out = append(out, spec.Abort(c.st))
		return p.forgetIn(c, out)
	}
	p.grow(&c.wconn, 0)
	return out
}

func (p *Peer) forgetIn(c *iconn, out []spec.Output) []spec.Output {
	if c.gone {
		return out
	}
	c.gone = true
	p.dropPending(c)
	p.pace.acked(c.clear())
	c.dead = true
	delete(p.byIn, c.st)
	for i, o := range p.ins {
		if o == c {
			p.ins = append(p.ins[:i], p.ins[i+1:]...)
			break
		}
	}
	if c.nb != nil && c.nb.in == c {
		c.nb.in = nil
	}
	if c.idle {
		out = append(out, spec.CancelTimer(spec.Timer(c.st)))
	}
	return out
}

// --- requesting --------------------------------------------------------------

// unrequest forgets one request for chunk i. nreq counts chunks neither
// held nor pending with a request outstanding, so a chunk that is either
// already left it when it came.
func (p *Peer) unrequest(i int) {
	if i < 0 || i >= len(p.req) || p.req[i] == 0 {
		return
	}
	p.req[i]--
	if p.req[i] == 1 {
		p.dups--
	}
	if p.req[i] == 0 {
		p.reqd.unset(i)
		if !p.have.has(i) && !p.pend.has(i) {
			p.nreq--
		}
	}
}

// unpend drops chunk i, kept before the hash list came, without adopting
// it (the list rejected it, or its sender voided it): it is missing
// again, and counts as requested if a request for it is still out.
func (p *Peer) unpend(i int) {
	p.pend.unset(i)
	p.npend--
	if p.req[i] > 0 {
		p.nreq++
	}
}

func (p *Peer) request(now spec.Time, c *oconn, i int) {
	p.owe(now, c)
	switch p.req[i] {
	case 0:
		p.nreq++
		p.reqd.set(i)
		p.reqAt[i] = now
	case 1:
		p.dups++
	}
	p.req[i]++
	c.dreqs++
	c.inflight = append(c.inflight, oreq{op: DREQ, chunk: i, at: now})
	c.wbuf = AppendDREQ(p.grow(&c.wconn, 24), i)
}

// fill issues requests wherever there is room.
func (p *Peer) fill(now spec.Time, out []spec.Output) []spec.Output {
	if !p.joined || p.complete {
		return out
	}
	if c := p.srv; c != nil && c.ready {
		switch {
		case p.srvExt > 0:
			// As many DANYs as there are chunks nobody was asked for, up
			// to ServerDepth; withdraw those no longer wanted. Once the
			// server says every chunk is held somewhere, ask it only for
			// chunks no neighbour has.
			depth := p.cfg.ServerDepth
			switch p.peersOut() {
			case 0:
				// The server is the only source: a deeper pipeline rides
				// out the stalls of a lossy path, as TCP's window would.
				depth *= 8
			case 1:
				// Half the chunks come from the server: two DANYs would
				// leave gaps between its answers.
				depth *= 2
			}
			want := min(depth, p.n-p.nhave-p.nreq-p.npend)
			if now < p.srvDry {
				want = 0 // the server is then an uploader like the others, below
			}
			if p.tr.n > 0 {
				// The server's uplink feeds the trees' roots: ask it for
				// nothing else while the trees bring chunks.
				fed := true
				for s := range p.tr.d {
					fed = fed && p.fed(now, s)
				}
				if fed {
					want = 0
				}
			}
			for c.danys < want {
				c.danys++
				c.wbuf = AppendOp(p.grow(&c.wconn, 8), DANY)
			}
			for c.danys > max(want, 0) {
				c.danys--
				c.wbuf = AppendDCAN(p.grow(&c.wconn, 8), -1)
			}
		case p.srvExt < 0 && len(c.inflight) == 0:
			if i := p.pick(now, c, true); i >= 0 {
				p.request(now, c, i)
			}
		}
		if p.srvExt > 0 && p.hashes == nil && p.hashing == nil && now >= p.hashAt && p.root != nil && !p.listComing(now) {
			src := c
			for _, o := range p.outs {
				if p.roots() > 0 {
					break // the server answers a root at once
				}
				if !o.server && o.ready && o.ext > 0 && o.hasHash {
					src = o
					break
				}
			}
			p.hashing = src
			p.owe(now, src)
			src.inflight = append(src.inflight, oreq{op: HREQ})
			src.wbuf = AppendOp(p.grow(&src.wconn, 8), HREQ)
		}
	}
	total := 0
	for _, c := range p.outs {
		if !c.server {
			total += c.dreqs
		}
	}
	// Each request goes to the neighbour expected to answer first: the
	// one with the fewest of our requests times its recent latency, so
	// idle uploaders (fast answers) draw requests and busy ones shed
	// them. A neighbour never measured counts as fast, to be tried.
	cands := p.cands[:0]
	for _, c := range p.outs {
		if c.server && c.ready && c.ext > 0 && now < p.srvDry && c.danys == 0 {
			cands = append(cands, c)
			continue
		}
		if c.server || !c.ready || c.gone || c.has == nil || c.busy > now {
			continue
		}
		if c.ext <= 0 && len(c.inflight) > 0 {
			continue // a seed-style peer: one request at a time
		}
		cands = append(cands, c)
	}
	p.cands = cands
	if total > p.cfg.MaxOutstanding-2 && total >= 4 {
		// Refill in pairs (see below) when the pipeline is deep anyway.
		cands = cands[:0]
	}
	for total < p.cfg.MaxOutstanding && len(cands) > 0 {
		bi := -1
		var bs time.Duration
		for k, c := range cands {
			depth := p.cfg.PeerDepth
			switch {
			case c.server:
				depth = 1 // the server's uplink is everyone's: one at a time
			case c.ext <= 0:
				depth = 1
			}
			if c.dreqs >= depth {
				continue
			}
			sc := (c.lat + time.Millisecond) * time.Duration(c.dreqs+1)
			if bi < 0 || sc < bs {
				bi, bs = k, sc
			}
		}
		if bi < 0 {
			break
		}
		c := cands[bi]
		i := p.pick(now, c, c.server)
		if i < 0 {
			cands = append(cands[:bi], cands[bi+1:]...)
			continue
		}
		p.request(now, c, i)
		total++
		// A second request to the same neighbour rides in the same
		// segment: half the request segments, for a little less choice.
		if c.ext > 0 && total < p.cfg.MaxOutstanding && c.dreqs < p.cfg.PeerDepth && !c.server {
			if j := p.pick(now, c, false); j >= 0 {
				p.request(now, c, j)
				total++
			}
		}
	}
	for k := range p.cands {
		p.cands[k] = nil
	}
	return out
}

// pick chooses the chunk to ask c for: a chunk whose transfer broke off
// first, a random one while this peer has none, then the rarest among its
// neighbours, ties at random; in endgame (every missing chunk requested)
// a chunk requested once elsewhere. any: c has every chunk (the server).
// -1: nothing to ask c for.
func (p *Peer) pick(now spec.Time, c *oconn, any bool) int {
	best, ties, bestAvail := -1, 0, int32(1<<30)
	random := p.nhave < 1
	part := false
	for k := range p.have {
		w := ^p.have[k] &^ p.reqd[k] &^ p.pend[k]
		if !any {
			w &= c.has[k]
		}
		if p.tr.n > 0 {
			w &^= p.treeHeld(now, k)
		}
		if k == len(p.have)-1 && p.n%64 != 0 {
			w &= 1<<(uint(p.n)%64) - 1
		}
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			i := k<<6 | b
			if p.partial.has(i) {
				if !part {
					part, best, ties = true, i, 1
				} else {
					ties++
					if p.rng.IntN(ties) == 0 {
						best = i
					}
				}
				continue
			}
			if part {
				continue
			}
			a := p.avail[i]
			if random {
				a = 0
			}
			switch {
			case a < bestAvail:
				best, ties, bestAvail = i, 1, a
			case a == bestAvail:
				ties++
				if p.rng.IntN(ties) == 0 {
					best = i
				}
			}
		}
	}
	if best >= 0 || any || p.nhave+p.nreq+p.npend < p.n || p.dups >= endgameMax {
		return best
	}
	// Endgame: ask a second peer for a chunk that is late elsewhere.
	late := now.Add(-max(4*c.lat, 100*time.Millisecond))
	ties = 0
	for k := range p.have {
		w := c.has[k] &^ p.have[k] & p.reqd[k]
		for w != 0 {
			b := bits.TrailingZeros64(w)
			w &= w - 1
			i := k<<6 | b
			if p.req[i] != 1 || c.asked(i) || p.reqAt[i] > late {
				continue
			}
			ties++
			if p.rng.IntN(ties) == 0 {
				best = i
			}
		}
	}
	return best
}

// endgameMax bounds the chunks requested twice at once.
const endgameMax = 4

// front moves c's oldest pending request with op (and chunk, if not
// negative) to the front of the queue, and reports whether there was one.
func (c *oconn) front(op Op, chunk int) bool {
	for k, r := range c.inflight {
		if r.op == op && (chunk < 0 || r.chunk == chunk) {
			copy(c.inflight[1:k+1], c.inflight[:k])
			c.inflight[0] = r
			return true
		}
	}
	return false
}

// withdraw cancels c's pending DREQ for chunk i (an extension server
// drops it from its queue).
func (p *Peer) withdraw(c *oconn, i int) {
	if !c.front(DREQ, i) {
		return
	}
	c.inflight = c.inflight[1:]
	c.dreqs--
	p.unrequest(i)
	c.wbuf = AppendDCAN(p.grow(&c.wconn, 24), i)
}

// owe notes that c owes an answer from now, if it owed none.
func (p *Peer) owe(now spec.Time, c *oconn) {
	if len(c.inflight) == 0 {
		c.last = now
	}
}

// awaits reports whether c owes an answer to an op request.
func (c *oconn) awaits(op Op) bool {
	for _, r := range c.inflight {
		if r.op == op {
			return true
		}
	}
	return false
}

func (c *oconn) asked(i int) bool {
	for _, r := range c.inflight {
		if r.op == DREQ && r.chunk == i {
			return true
		}
	}
	return false
}

// maintain runs every 100ms: reconnections, polls, timeouts, CHECK.
func (p *Peer) maintain(now spec.Time, out []spec.Output) []spec.Output {
	if !p.joined && !p.done && p.cfg.ServerWait > 0 && now.Sub(p.start) >= p.cfg.ServerWait {
		// Also when the server accepted and never answered: its
		// connection's own hello timeout would come later.
		tries := p.srvTry
		if p.srv != nil {
			tries++ // the one under way
		}
		p.done = true
		return append(out, spec.Exit(fmt.Sprintf("p2p: no welcome from the server %v in %v (%d tries%s)", p.cfg.Server, p.cfg.ServerWait, tries, p.lastWhy())))
	}
	if p.stalled(now) {
		// Also with the server connected: one that welcomed and then
		// went silent holds a peer for ever otherwise.
		p.done = true
		return append(out, spec.Exit(p.stallText()))
	}
	if p.srv == nil && now >= p.srvAt {
		out = p.dialServer(now, out)
	}
	for _, c := range append([]*iconn(nil), p.ins...) {
		if !c.hello && !c.gone && !c.closing && now.Sub(c.since) >= p.cfg.HelloTimeout {
			// A neighbour that connected and said nothing holds one of
			// MaxIn places for nothing: reset, as the server does.
			p.cnt.silent++
			out = append(out, spec.Debug("p2p: no CHEL in time, resetting", slog.String("from", c.remote.String())))
			out = p.closeIn(c, true, out)
		}
	}
	for _, c := range append([]*oconn(nil), p.outs...) {
		owes := len(c.inflight) > 0 || (!c.ready && !c.server)
		if owes && !c.server && now.Sub(c.last) > p.cfg.ReqTimeout {
			p.cnt.timeouts++
			out = append(out, spec.Debug("p2p: neighbour stopped answering", slog.String("peer", p.name(c))))
			out = p.closeOut(now, c, endAbort, out)
			continue
		}
		if c.server && !c.ready && now.Sub(c.last) > p.cfg.ReqTimeout {
			out = p.closeOut(now, c, endAbort, out)
			continue
		}
		if c.ready && c.ext == 0 && len(c.inflight) > 0 && c.inflight[0].op == XHEL && now.Sub(c.readyAt) > p.cfg.XhelTimeout {
			out = p.swallowed(now, c, out)
			continue
		}
		if c.cut.on && now.Sub(c.cut.at) > p.cfg.TreeStall {
			// A body that stopped mid-way must not hold the children's
			// connections: void it; the rest of it is not passed on.
			p.abortCut(now, c)
			c.cut.off = true
			out = append(out, spec.Debug("p2p: a body passed through stalled; voided", slog.String("from", p.name(c))))
		}
		if !c.server && c.ready && c.ext < 0 && len(c.inflight) == 0 && now >= c.pollAt && !p.complete {
			c.inflight = append(c.inflight, oreq{op: CLREQ})
			c.wbuf = AppendOp(p.grow(&c.wconn, 8), CLREQ)
			c.last = now
		}
	}
	if p.joined && !p.complete {
		out = p.dialMore(now, out)
	}
	return p.sendCheck(out)
}

// swallowed gives up on c's XHEL: the other side answered the hello
// long ago and not the XHEL pipelined behind it. A seed-style node that
// takes one recv() for one message reads CHEL, XHEL (and a neighbour's
// CLREQ) as one CHEL with trailing junk, answers the welcome, and will
// never answer the rest; waiting for it stalled the download for good
// (the server is asked nothing until it says whether it speaks the
// extensions) or dropped the neighbour every ReqTimeout to dial it the
// same way again. So every later connection to that node speaks the
// seed's protocol, and c is dropped and dialed again at once with CHEL
// alone: a node that was only slow still answers the XHEL and CLREQ
// (an ERROR, an XHEL, a CLRSP), and the server pushes to an extension
// peer; on c those came after the fallback, were matched against the
// new requests, and got an honest neighbour banned. What c had in
// flight is asked again elsewhere, as for any connection lost.
func (p *Peer) swallowed(now spec.Time, c *oconn, out []spec.Output) []spec.Output {
	p.cnt.swallowed++
	out = append(out, spec.Debug("p2p: XHEL unanswered; speaking the seed's protocol", slog.String("peer", p.name(c))))
	if c.server {
		p.srvExt = -1
	} else {
		c.nb.legacy = true
	}
	out = p.closeOut(now, c, endAbort, out)
	p.needFill = true
	if c.server {
		p.srvTry = 0
		return p.dialServer(now, out)
	}
	c.nb.retryAt = 0
	if p.joined && !p.complete && !c.nb.banned {
		out = p.dialPeer(now, c.nb, out)
	}
	return out
}

// --- writing ---------------------------------------------------------------

// grow registers w to be flushed at the end of the step and returns its
// buffer with room for n more bytes.
func (p *Peer) grow(w *wconn, n int) []byte {
	if !w.dirty {
		w.dirty = true
		p.dirty = append(p.dirty, w)
	}
	if cap(w.wbuf)-len(w.wbuf) < n {
		nb := make([]byte, len(w.wbuf), len(w.wbuf)+n+64)
		copy(nb, w.wbuf)
		w.wbuf = nb
	}
	return w.wbuf
}

func (p *Peer) flush(now spec.Time, out []spec.Output) []spec.Output {
	if c := p.srv; c != nil && c.dirty && c.ready && p.srvExt > 0 && len(p.report) > 0 {
		// Reports ride along with whatever else goes to the server.
		hash := false
		ids := p.report[:0]
		for _, i := range p.report {
			if i < 0 {
				hash = true
			} else {
				ids = append(ids, i)
			}
		}
		c.wbuf = AppendHAVE(c.wbuf, hash, ids)
		p.report = p.report[:0]
	}
	// Announcements ride on whatever goes to the neighbour anyway: DATA
	// answers on the connection it dialed, or our own requests on the
	// one we dialed. Only stale ones wait for the timer to get a segment
	// of their own.
	for _, w := range p.dirty {
		if w.gone {
			continue
		}
		if ic := p.byIn[w.st]; ic != nil {
			p.putHaves(ic)
		} else if oc := p.byOut[w.st]; oc != nil && oc.ext > 0 && oc.nb != nil && oc.nb.in != nil && oc.nb.in.ext {
			in := oc.nb.in
			if len(in.pendHave) > 0 || in.pendHash {
				oc.wbuf = AppendHAVE(oc.wbuf, in.pendHash, in.pendHave)
				in.pendHave, in.pendHash = in.pendHave[:0], false
			}
		}
	}
	for _, w := range p.dirty {
		w.dirty = false
		if !w.gone && len(w.cutbuf) > 0 {
			out = append(out, spec.Write(w.st, w.cutbuf))
		}
		w.cutbuf = nil
		if w.hold {
			continue // wbuf waits for the body passing through
		}
		if !w.gone && len(w.wbuf) > 0 {
			out = append(out, spec.Write(w.st, w.wbuf))
		}
		w.wbuf = nil
		if ic := p.byIn[w.st]; ic != nil && ic.closing && !ic.gone {
			out = append(out, spec.Close(w.st))
			out = p.forgetIn(ic, out)
		}
	}
	p.dirty = p.dirty[:0]
	return out
}

// --- pushing -----------------------------------------------------------------

// A chunk fresh from the server is held by this peer alone, and every
// neighbour wants it: instead of announcing it and waiting for requests
// (a HAVE and a DREQ, each queued behind chunk data on two links), the
// peer sends it unasked, ahead of the answers it owes, to the neighbours
// that said "push": to all of them in a small swarm (at most 3*PushTo),
// where no request for the chunk is then needed at all, else to PushTo
// picked at random, who pass it on as any chunk (pushing to more there
// delays the answers that the rest of the swarm waits for). Just above a
// small swarm (at most 3*PushTo+3 neighbours: 7 to 9 peers with the
// defaults) it pushes to as many, picked at random, as the pushes
// already waiting for its uplink leave room for, up to 3*PushTo+3
// waiting, and at least PushTo: there pushing to all sends the late
// copies stale when the peer gets chunks from the server in a burst,
// and pushing to two leaves most neighbours asking (seeds 1-3, ratio to
// the bound: N=8 1.080 -> 1.068, N=9 1.083 -> 1.075). A push that waits
// longer than PushStale for the uplink (the uplink is crowded, as in a
// large swarm) is announced with HAVE instead, so that whoever is free
// serves it.

// pushes appends to dst the neighbours chunk i, just in from the server,
// is pushed to, and queues it for them.
func (p *Peer) pushes(now spec.Time, i int, dst []*iconn) []*iconn {
	if p.cfg.PushTo <= 0 {
		return dst
	}
	for _, ic := range p.ins {
		if ic.ext && ic.push && !ic.closing && !ic.gone && !ic.holds(i) {
			dst = append(dst, ic)
		}
	}
	K := p.cfg.PushTo
	if len(dst) > 3*K && len(dst) <= 3*K+3 {
		// A mid-size swarm: as many as the pushes already waiting for
		// the uplink leave room for, up to 3*K+3 waiting in all.
		q := 0
		for _, ic := range p.ins {
			q += len(ic.pushq)
		}
		K = min(len(dst), max(K, 3*K+3-q))
	}
	if len(dst) > K && len(dst) > 3*p.cfg.PushTo {
		for k := range K {
			j := k + p.rng.IntN(len(dst)-k)
			dst[k], dst[j] = dst[j], dst[k]
		}
		clear(dst[K:])
		dst = dst[:K]
	}
	for _, ic := range dst {
		ic.pushq = append(ic.pushq, push{chunk: i, at: now})
		p.schedIn(ic)
	}
	return dst
}

// holds reports whether c's neighbour has announced chunk i.
func (c *iconn) holds(i int) bool {
	return c.nb != nil && c.nb.out != nil && c.nb.out.has != nil && c.nb.out.has.has(i)
}

// asked reports whether c's neighbour has a request for chunk i waiting.
func (c *iconn) asked(i int) bool {
	for _, r := range c.pending {
		if r.op == DREQ && r.chunk == i {
			return true
		}
	}
	return false
}

// pushOne writes c's oldest push, or announces it if it went stale; a
// chunk the neighbour has announced or asked for meanwhile, or that this
// peer no longer holds (its download started again), is skipped.
func (p *Peer) pushOne(now spec.Time, c *iconn) {
	r := c.pushq[0]
	c.pushq = c.pushq[1:]
	if len(c.pushq) == 0 {
		c.pushq = nil
	}
	switch {
	case r.chunk < 0:
		if !c.gotList && (c.nb == nil || c.nb.out == nil || !c.nb.out.hasHash) {
			p.sendHashList(now, c)
		}
	case !p.have.has(r.chunk) || c.holds(r.chunk) || c.asked(r.chunk):
	case now.Sub(r.at) > p.cfg.PushStale && !r.tree:
		c.pendHave = append(c.pendHave, r.chunk)
		p.grow(&c.wconn, 0)
	default:
		if p.sendChunk(now, c, r.chunk, AppendPUSHHeader) != nil {
			c.pendHave = append(c.pendHave, r.chunk)
			p.grow(&c.wconn, 0)
		}
	}
}

// sendHashList writes the hash list to c (an answer to HREQ, or pushed
// to a child in the trees), counted, awaiting its acknowledgment and
// paced.
func (p *Peer) sendHashList(now spec.Time, c *iconn) {
	b := p.grow(&c.wconn, 32*len(p.hashes)+16)
	b = AppendHASHHeader(b, len(p.hashes))
	for i := range p.hashes {
		b = append(b, p.hashes[i][:]...)
	}
	c.wbuf = b
	p.cnt.hashLists++
	p.acks.add(now, &c.owed, -1)
	p.pace.sent(now, 32*len(p.hashes))
}

// sendChunk writes chunk i to c under the header that header appends (a
// DATA answer or a PUSH), counted, awaiting its acknowledgment and paced.
func (p *Peer) sendChunk(now spec.Time, c *iconn, i int, header func([]byte, int64, int) []byte) error {
	data, err := p.store.Get(i)
	if err != nil {
		return err
	}
	b := p.grow(&c.wconn, len(data)+32)
	b = header(b, int64(i)*int64(p.chunk), len(data))
	c.wbuf = append(b, data...)
	p.cnt.served++
	p.acks.add(now, &c.owed, i)
	p.pace.sent(now, len(data))
	return nil
}

// chunkAt is the chunk that starts at offset, if one of the file's does
// and the peer knows the file's geometry.
func (p *Peer) chunkAt(offset int64) (int, bool) {
	if !p.joined || p.chunk <= 0 || offset < 0 || offset%int64(p.chunk) != 0 || offset/int64(p.chunk) >= int64(p.n) {
		return 0, false
	}
	return int(offset / int64(p.chunk)), true
}

// pushed takes a chunk a neighbour sent unasked: it holds the chunk, and
// the chunk is handled as any DATA (vetted: see data).
func (p *Peer) pushed(now spec.Time, c *oconn, m Msg, vetted bool, out []spec.Output) []spec.Output {
	if i, ok := p.chunkAt(m.Offset); ok {
		if c.has != nil && !c.has.has(i) {
			c.has.set(i)
			c.hasN++
			p.avail[i]++
		}
		if s := p.treeOf(i); s >= 0 && c.tsub&(1<<s) != 0 {
			p.tlast[s] = now
			p.ttop[s] = max(p.ttop[s], i)
		}
	}
	return p.data(now, c, -1, m, vetted, out)
}

// digest is chunk i's SHA-256 as data carries it.
func (p *Peer) digest(i int, data []byte) [32]byte {
	if p.dig != nil {
		if h, ok := p.dig.Digest(i, data); ok {
			return h
		}
	}
	return sha256.Sum256(data)
}
