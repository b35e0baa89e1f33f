package p2p

import (
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

// DefaultChunkSize is the chunk size a server announces unless told
// otherwise: 16 KiB, small enough that a chunk spreads through a swarm
// quickly (13 ms at 10 Mbit/s), large enough that per-chunk messages cost
// well under 1%.
const DefaultChunkSize = 16 << 10

// DefaultMaxChunks is the most chunks a peer accepts a file in, unless
// its PeerConfig.MaxChunks says otherwise: a server that serves more
// is refused by every default peer.
const DefaultMaxChunks = 1 << 20

// ServerConfig configures a P2P server (the seed's tracker and seed in
// one). The file is passed to NewServer; File names it when it is
// generated, so that a trace can rebuild the server.
type ServerConfig struct {
	Addr netip.AddrPort `json:"addr"`
	File cs.FileSpec    `json:"file"`
	// Path names a file from disk that the server was given instead of
	// File's bytes, for the record: a machine rebuilt from the config
	// serves File, so a trace of such a run replays only where that file
	// is ('netspec replay' reads it).
	Path      string `json:"path,omitempty"`
	PathMD5   string `json:"pathMD5,omitempty"` // that file's MD5 (hex), for the replay
	ChunkSize int    `json:"chunkSize,omitempty"`
	// Seed drives the server's random choices (peer lists, DANY ties).
	Seed uint64 `json:"seed,omitempty"`
	// MaxList bounds the peers listed in SHEL (default 8). Every byte the
	// server sends that is not the file delays the file: with a
	// thousand peers, a 50-peer list would cost the server 10% of its
	// upload time.
	MaxList int `json:"maxList,omitempty"`
	// UploadRate is the payload bits per second the server's uplink
	// carries, if known; Backlog is how many bytes it lets wait in front
	// of the line (default 2 chunks). Without a rate, Window bounds the
	// DATA and HASH responses written and not yet acknowledged (default
	// 8); AckTimeout frees the slot of one never acknowledged (default
	// 500ms). See "Pacing" in the package documentation.
	UploadRate float64       `json:"uploadRate,omitempty"`
	Backlog    int           `json:"backlog,omitempty"`
	Window     int           `json:"window,omitempty"`
	AckTimeout time.Duration `json:"ackTimeout,omitempty"`
	// HashSeeds bounds the hash lists the server sends per HashEvery
	// (defaults 1 per second); peers get the list from each other. Each
	// copy, 32 bytes per chunk, takes the server's uplink, which every
	// peer waits for: one a second rather than two took N = 3..7 0.3-0.7%
	// closer to the bound (seeds 1-3), and larger N by less than the
	// spread between seeds.
	HashSeeds int           `json:"hashSeeds,omitempty"`
	HashEvery time.Duration `json:"hashEvery,omitempty"`
	// MaxConns bounds connections (default 4096), MaxPerAddr those from
	// one IP address (default 256); MaxPending bounds the requests
	// queued on one (default 256, or the file's chunk count and some if
	// more: a seed-style client may ask for every chunk at once).
	MaxConns   int `json:"maxConns,omitempty"`
	MaxPerAddr int `json:"maxPerAddr,omitempty"`
	MaxPending int `json:"maxPending,omitempty"`
	// HelloTimeout resets a connection that has not said CHEL this long
	// after it was accepted (default 10s): connections held open and
	// silent cannot take the places of peers.
	HelloTimeout time.Duration `json:"helloTimeout,omitempty"`
	// MaxUnread bounds the bytes of answers that are not paced (SHEL,
	// CLRSP, CHECK, ERROR) written on one connection since the runner
	// last said it had taken everything written (InStreamWritable): a
	// client that asks, CLREQ after CLREQ, and never reads would
	// otherwise make the server queue hundreds of times its input, all
	// of it in memory. Such a client is reset. Default 256 KiB, or four
	// lists of every chunk if that is more.
	MaxUnread int `json:"maxUnread,omitempty"`
	// IdleFlush is how long an unterminated header line waits for its
	// CRLF before it is taken as complete (default 200ms).
	IdleFlush time.Duration `json:"idleFlush,omitempty"`
	// Expect is how many peers the server expects to join together; with
	// it, the first Expect extension peers that offer ("XHEL 1 tree") get
	// a place in Trees distribution trees (default 2), and the server
	// feeds each tree's root one stripe of the file (see "Trees" in the
	// package documentation). 0: no trees.
	Expect int `json:"expect,omitempty"`
	Trees  int `json:"trees,omitempty"`
	// Legacy makes the server speak only the seed's protocol, answering
	// the extensions with UNKNOWN_COMMAND, like a server written from the
	// seed's description.
	Legacy bool `json:"legacy,omitempty"`
}

func (c *ServerConfig) fill() {
	if c.ChunkSize <= 0 {
		c.ChunkSize = DefaultChunkSize
	}
	if c.MaxList <= 0 {
		c.MaxList = 8
	}
	if c.Window <= 0 {
		c.Window = 8
	}
	if c.Backlog <= 0 {
		c.Backlog = 2 * c.ChunkSize
	}
	if c.AckTimeout <= 0 {
		c.AckTimeout = 500 * time.Millisecond
	}
	if c.HashSeeds <= 0 {
		c.HashSeeds = 1
	}
	if c.HashEvery <= 0 {
		c.HashEvery = time.Second
	}
	if c.MaxConns <= 0 {
		c.MaxConns = 4096
	}
	if c.MaxPerAddr <= 0 {
		c.MaxPerAddr = 256
	}
	if c.HelloTimeout <= 0 {
		c.HelloTimeout = 10 * time.Second
	}
	if c.IdleFlush <= 0 {
		c.IdleFlush = 200 * time.Millisecond
	}
	if c.Trees <= 0 {
		c.Trees = 2
	}
	c.Trees = min(c.Trees, maxTrees)
}

// Server is the P2P server machine.
type Server struct {
	cfg   ServerConfig
	c     *Content
	rng   spec.Rand
	conns map[spec.Stream]*sconn
	dead  map[spec.Stream]bool // reset before they were accepted
	// perAddr counts connections by IP address; silent is the accepted
	// connections not yet heard CHEL from, oldest first, and helloAt
	// when the timer that resets them is set (0: not set).
	perAddr  spec.PerAddr
	limitLog spec.Throttle // the MaxConns warning
	silent   []*sconn
	helloAt  spec.Time
	// lastAccepted is the highest accepted stream id seen.
	lastAccepted spec.Stream
	ring         []*sconn // connections with paced work, served round-robin
	online       []*sconn // connections that said CHEL, in join order
	holders      []int32  // peers known to hold, or being sent, each chunk
	pace         pacer
	acks         ackLog
	hashN        int
	hashAt       spec.Time
	dirty        []*sconn
	ackAt        spec.Time // when the ack timer is set for (0: not set)
	paceAt       spec.Time // when the pacing timer is set for (0: not set)
	start        spec.Time
	cnt          serverCounters
	// the trees: ids by listening address, and each id's connection
	tids   map[netip.AddrPort]int
	tconns []*sconn
	turn   int   // the tree whose root is fed next
	tcur   []int // per tree: the next chunk to feed its root
	// fed: the trees are being fed (see startFeed); placedAt: when the
	// first peer took its place.
	fed      bool
	placedAt spec.Time
}

type serverCounters struct {
	conns, hellos, ext, refused, requests, data, bytes, unknown, overflow, busy uint64
	checkOK, checkBad, fatal, ackTimeouts, danys, hashes, exhausted, stalled    uint64
	unread, silent                                                              uint64
}

type sconn struct {
	st     spec.Stream
	remote netip.AddrPort
	since  spec.Time // accepted
	// after counts bytes the peer sent after we closed: a pipelining
	// client's last requests are let be, a flood is reset (afterMax).
	after   int
	p       *Parser
	hello   bool
	listen  netip.AddrPort
	ext     bool
	tid     int    // its place in the trees (0: none)
	pending []sreq // requests answered in order (DANY aside)
	danys   int    // DANY requests waiting for the scheduler
	owed
	known   bitset // chunks the peer has or is being sent
	knownN  int
	danyAt  spec.Time // when it was last sent a chunk for a DANY
	closing bool      // we closed after a fatal error, or after the peer's EOF
	eof     bool      // the peer will send nothing more
	idle    bool      // idle-flush timer set
	inRing  bool
	gone    bool
	closed  bool // our FIN is queued
	dirty   bool // in Server.dirty
	hashed  bool // it was sent the hash list
	wbuf    []byte
	unread  int // bytes of unpaced answers written since the last InStreamWritable
}

type sreq struct {
	op    Op
	chunk int32
	rare  *sreqRare // an ERROR's id, SHEL's list
}

// sreqRare is what few requests carry: kept apart, a queued request is
// 16 bytes, and a seed-style client may queue one per chunk on each of
// its connections (at 80 bytes, 250 connections asking for all 6,104
// chunks of 100 MB held 120 MB).
type sreqRare struct {
	err  string // a queued ERROR reply
	list []netip.AddrPort
}

// errReq is a queued ERROR reply.
func errReq(id string) sreq { return sreq{op: ERROR, rare: &sreqRare{err: id}} }

// errID is r's ERROR id, if it is one.
func (r sreq) errID() string {
	if r.rare == nil {
		return ""
	}
	return r.rare.err
}

const (
	sockListen spec.Sock  = 1
	tAck       spec.Timer = 1<<62 | 1
	tPace      spec.Timer = 1<<62 | 2
	tFeed      spec.Timer = 1<<62 | 3
	tHello     spec.Timer = 1<<62 | 4
)

// NewServer returns a server of content c.
func NewServer(cfg ServerConfig, c *Content) *Server {
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = max(256, min(c.Chunks()+16, 1<<16))
	}
	cfg.fill()
	return &Server{
		cfg:     cfg,
		c:       c,
		rng:     spec.NewRand(cfg.Seed),
		conns:   map[spec.Stream]*sconn{},
		dead:    map[spec.Stream]bool{},
		perAddr: spec.NewPerAddr(cfg.MaxPerAddr),
		holders: make([]int32, c.Chunks()),
		pace:    newPacer(cfg.UploadRate, cfg.Backlog, cfg.Window),
	}
}

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	c := &s.cnt
	return []spec.Counter{
		{Name: "connections", Value: c.conns}, {Name: "hellos", Value: c.hellos}, {Name: "extended", Value: c.ext},
		{Name: "refused", Value: c.refused}, {Name: "requests", Value: c.requests}, {Name: "data_sent", Value: c.data},
		{Name: "bytes_sent", Value: c.bytes}, {Name: "dany_served", Value: c.danys}, {Name: "dany_exhausted", Value: c.exhausted}, {Name: "hash_lists_sent", Value: c.hashes},
		{Name: "error_unknown_command", Value: c.unknown}, {Name: "error_offset_overflow", Value: c.overflow},
		{Name: "error_busy", Value: c.busy}, {Name: "check_ok", Value: c.checkOK}, {Name: "check_failed", Value: c.checkBad},
		{Name: "fatal_input", Value: c.fatal}, {Name: "ack_timeouts", Value: c.ackTimeouts}, {Name: "stalled_skips", Value: c.stalled},
		{Name: "unread_cutoffs", Value: c.unread}, {Name: "silent_cutoffs", Value: c.silent},
	}
}

// Checked is the value of the server's "checked" event.
type Checked struct {
	Peer string `json:"peer"`
	OK   bool   `json:"ok"`
}

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		s.start = now
		out = append(out, spec.Bind(sockListen, spec.TCP, s.cfg.Addr))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("p2p: listen on "+s.cfg.Addr.String()+": "+in.Err))
		}
		out = append(out,
			spec.Info("p2p server listening", slog.String("addr", in.Addr.String()), slog.Int64("bytes", s.c.Size()), slog.Int("chunk", s.c.ChunkSize()), slog.String("md5", hex.EncodeToString(s.c.md5[:]))),
			spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
	case spec.InAccepted:
		s.lastAccepted = max(s.lastAccepted, in.Stream)
		if s.dead[in.Stream] {
			// The simulator can report a connection reset before its
			// accept; it is gone.
			delete(s.dead, in.Stream)
			break
		}
		switch {
		case len(s.conns) >= s.cfg.MaxConns:
			s.cnt.refused++
			out = append(out, spec.Abort(in.Stream), spec.Debug("p2p: connection limit reached, refusing", slog.String("from", in.Addr.String())))
			if n, ok := s.limitLog.Hit(now, time.Second); ok {
				out = append(out, spec.Warn("p2p: connection limit reached, refusing", slog.Int("max", s.cfg.MaxConns), slog.Uint64("refused", n)))
			}
			return out
		case !s.perAddr.Take(in.Addr.Addr()):
			s.cnt.refused++
			return append(out, spec.Abort(in.Stream), spec.Debug("p2p: connection limit for the address reached, refusing", slog.String("from", in.Addr.String())))
		}
		s.cnt.conns++
		c := &sconn{st: in.Stream, remote: in.Addr, since: now, p: NewParser(Requests, Limits{Data: 1})}
		s.conns[in.Stream] = c
		s.silent = append(s.silent, c)
		if s.helloAt == 0 {
			s.helloAt = now.Add(s.cfg.HelloTimeout)
			out = append(out, spec.SetTimer(tHello, s.helloAt))
		}
	case spec.InStreamData:
		c := s.conns[in.Stream]
		if c == nil {
			return out
		}
		if c.closing {
			if c.after += len(in.Data); c.after > afterMax && !c.gone {
				s.cnt.fatal++
				out = append(out, spec.Debug("p2p server: client still sending after we closed, resetting", slog.String("from", c.remote.String()), slog.Int("bytes", c.after)))
				c.wbuf = nil
				s.drop(c)
				if c.idle {
					c.idle = false
					out = append(out, spec.CancelTimer(spec.Timer(c.st)))
				}
				out = append(out, spec.Abort(c.st))
			}
			return out
		}
		c.p.Feed(in.Data)
		out = s.read(now, c, out)
	case spec.InStreamWritable:
		// Everything written to c has been taken: its client reads.
		if c := s.conns[in.Stream]; c != nil {
			c.unread = 0
			if !c.ext && s.cfg.UploadRate == 0 {
				// A seed-style client acknowledges by asking again,
				// which one that pipelined its requests never does:
				// its answers taken by the transport stand in for
				// acknowledgments (it used to get Window answers per
				// AckTimeout, 8 chunks every 500 ms).
				s.ackAll(c)
			}
		}
	case spec.InTimer:
		if in.Timer == tAck {
			s.ackAt = 0
			n := s.acks.expire(now, s.cfg.AckTimeout)
			s.cnt.ackTimeouts += uint64(n)
			s.pace.acked(n)
		} else if in.Timer == tPace {
			s.paceAt = 0
		} else if in.Timer == tFeed {
			s.startFeed(now)
		} else if in.Timer == tHello {
			out = s.resetSilent(now, out)
		} else if c := s.conns[spec.Stream(in.Timer)]; c != nil {
			c.idle = false
			// Only a seed-style client's line may lack its CRLF: an
			// extension peer's partial line is a segment boundary.
			if !c.closing && c.p.Partial() && !c.ext {
				c.p.Flush()
				out = s.read(now, c, out)
			}
		}
	case spec.InStreamClosed:
		c := s.conns[in.Stream]
		if c == nil {
			// Only an id above every accepted one can be a connection not
			// accepted yet (runners number accepts in order); the others
			// are connections the server is done with.
			if in.Err != "" && in.Stream > s.lastAccepted && len(s.dead) < 1024 {
				s.dead[in.Stream] = true
			}
			return out
		}
		if in.Err != "" || c.closing {
			s.drop(c)
			if c.idle {
				out = append(out, spec.CancelTimer(spec.Timer(c.st)))
			}
			break
		}
		// EOF: the peer asks nothing more but may still be reading; it
		// gets the answers it asked for, then our FIN.
		c.eof = true
		c.danys = 0
		s.leave(c)
		s.ackAll(c)
		if c.p.Partial() {
			c.p.Flush()
			out = s.read(now, c, out)
		}
		s.closeIfDone(c)
	case spec.InStop:
		return append(out, spec.Exit(""))
	}
	out = s.serve(now, out)
	return s.flush(now, out)
}

// resetSilent resets the connections that have not said CHEL within
// HelloTimeout of their accept, and sets the timer for the next one's
// deadline. silent is in accept order, so the oldest come first.
func (s *Server) resetSilent(now spec.Time, out []spec.Output) []spec.Output {
	s.helloAt = 0
	keep := s.silent[:0]
	for _, c := range s.silent {
		switch {
		case c.gone || c.hello:
			continue
		case now.Sub(c.since) >= s.cfg.HelloTimeout:
			s.cnt.silent++
			out = append(out, spec.Debug("p2p server: no CHEL in time, resetting", slog.String("from", c.remote.String())))
			c.wbuf, c.closing = nil, true
			s.drop(c)
			if c.idle {
				c.idle = false
				out = append(out, spec.CancelTimer(spec.Timer(c.st)))
			}
			out = append(out, spec.Abort(c.st))
			continue
		}
		keep = append(keep, c)
	}
	clear(s.silent[len(keep):])
	s.silent = keep
	if len(keep) > 0 {
		s.helloAt = keep[0].since.Add(s.cfg.HelloTimeout)
		out = append(out, spec.SetTimer(tHello, s.helloAt))
	}
	return out
}

// drop forgets a connection.
func (s *Server) drop(c *sconn) {
	if c.gone {
		return
	}
	c.gone = true
	delete(s.conns, c.st)
	s.perAddr.Release(c.remote.Addr())
	s.leave(c)
	s.pace.acked(c.clear())
	c.dead = true
	if c.known != nil {
		for i := range s.holders {
			if c.known.has(i) {
				s.holders[i]--
			}
		}
	}
}

// leave takes c off the online list.
func (s *Server) leave(c *sconn) {
	for i, o := range s.online {
		if o == c {
			s.online = append(s.online[:i], s.online[i+1:]...)
			return
		}
	}
}

func (s *Server) reply(c *sconn, r sreq) {
	// An extension peer matches answers by kind, so its CHECK is
	// answered at once rather than behind the chunks it still waits for.
	urgent := c.ext && (r.op == CHECK || r.errID() == ErrChecksumNotFit)
	if (len(c.pending) == 0 || urgent) && r.op != DREQ && r.op != HREQ {
		s.write(c, r)
		return
	}
	c.pending = append(c.pending, r)
}

// read handles every complete message in c's parser.
func (s *Server) read(now spec.Time, c *sconn, out []spec.Output) []spec.Output {
	for !c.closing {
		m, err := c.p.Next()
		if err == ErrMore {
			break
		}
		if err != nil {
			pe := err.(*ParseError)
			s.cnt.unknown++
			out = append(out, spec.Debug("p2p server: bad request", slog.String("from", c.remote.String()), slog.String("err", pe.Error())))
			if pe.Fatal {
				s.cnt.fatal++
				s.fatal(c)
				break
			}
			s.reply(c, errReq(ErrUnknownCommand))
			if c.unread > unreadCap(s.cfg.MaxUnread, s.c.Chunks()) {
				return s.cutOff(c, out)
			}
			continue
		}
		s.cnt.requests++
		if !c.ext && len(c.items) > 0 {
			// A client without the extensions asks one thing at a time:
			// a new request means the last answer arrived.
			s.ackAll(c)
		}
		if len(c.pending)+c.danys >= s.cfg.MaxPending {
			s.cnt.fatal++
			out = append(out, spec.Debug("p2p server: too many queued requests", slog.String("from", c.remote.String())))
			s.fatal(c)
			break
		}
		out = s.request(now, c, m, out)
		if c.unread > unreadCap(s.cfg.MaxUnread, s.c.Chunks()) {
			return s.cutOff(c, out)
		}
	}
	if c.closing {
		return out
	}
	s.closeIfDone(c)
	if c.p.Partial() && !c.idle {
		c.idle = true
		out = append(out, spec.SetTimer(spec.Timer(c.st), now.Add(s.cfg.IdleFlush)))
	} else if !c.p.Partial() && c.idle {
		c.idle = false
		out = append(out, spec.CancelTimer(spec.Timer(c.st)))
	}
	s.schedule(c)
	return out
}

// cutOff resets c, whose client asks for answers it does not read.
// Closing gracefully would keep what it has not read queued until it
// does; nothing is owed to a client that does not read.
func (s *Server) cutOff(c *sconn, out []spec.Output) []spec.Output {
	s.cnt.unread++
	out = append(out, spec.Debug("p2p server: client not reading its answers, resetting", slog.String("from", c.remote.String()), slog.Int("unread", c.unread)))
	c.wbuf, c.closing = nil, true
	s.drop(c)
	if c.idle {
		c.idle = false
		out = append(out, spec.CancelTimer(spec.Timer(c.st)))
	}
	return append(out, spec.Abort(c.st))
}

// afterMax is how many bytes a peer may send after the server closed
// its side (a protocol violation's ERROR, then FIN) before it is reset:
// requests it had pipelined pass, a flood is cut (24 GB were read and
// dropped in 30 s).
const afterMax = 64 << 10

// fatal answers UNKNOWN_COMMAND, nothing more, and closes c: after a
// fatal parse error the stream cannot be resynchronised.
func (s *Server) fatal(c *sconn) {
	c.pending, c.danys = nil, 0
	s.ackAll(c)
	s.write(c, errReq(ErrUnknownCommand))
	c.closing = true
	s.leave(c)
}

// closeIfDone closes a connection whose peer sent EOF once every answer
// is out.
func (s *Server) closeIfDone(c *sconn) {
	if c.eof && !c.closing && len(c.pending) == 0 {
		c.closing = true
		s.grow(c, 0)
	}
}

func (s *Server) request(now spec.Time, c *sconn, m Msg, out []spec.Output) []spec.Output {
	unknown := func(why string) []spec.Output {
		s.cnt.unknown++
		s.reply(c, errReq(ErrUnknownCommand))
		return append(out, spec.Debug("p2p server: "+why, slog.String("from", c.remote.String()), slog.String("op", m.Op.String())))
	}
	if !c.hello && m.Op != CHEL {
		return unknown("request before CHEL")
	}
	if s.cfg.Legacy && m.Op.Extension() {
		return unknown("extension to a legacy server")
	}
	if m.Op.Extension() && m.Op != XHEL && !c.ext {
		// Extension messages travel only after XHEL (doc.go): a seed-style
		// node answers them UNKNOWN_COMMAND, and so does this one.
		return unknown("extension before XHEL")
	}
	switch m.Op {
	case CHEL:
		if c.hello {
			return unknown("second CHEL")
		}
		c.hello = true
		s.cnt.hellos++
		c.listen = netip.AddrPortFrom(c.remote.Addr(), m.Port)
		for _, o := range s.online {
			if o.listen == c.listen {
				s.leave(o) // the same peer again: its old connection is stale
				break
			}
		}
		s.reply(c, sreq{op: SHEL, rare: &sreqRare{list: s.peerList(c)}})
		s.online = append(s.online, c)
		out = append(out, spec.Info("p2p server: peer joined", slog.String("peer", c.listen.String()), slog.Int("online", len(s.online))))
	case XHEL:
		if !c.ext {
			c.ext = true
			s.cnt.ext++
			c.known = newBitset(s.c.Chunks())
		}
		s.reply(c, sreq{op: XHEL})
		if m.Tree {
			out = s.place(now, c, out)
		}
	case CLREQ:
		s.reply(c, sreq{op: CLRSP})
	case DREQ:
		if m.Chunk >= s.c.Chunks() {
			s.cnt.overflow++
			s.reply(c, errReq(ErrOffsetOverflow))
			return append(out, spec.Debug("p2p server: DREQ out of range", slog.String("from", c.remote.String()), slog.Int("chunk", m.Chunk)))
		}
		s.reply(c, sreq{op: DREQ, chunk: int32(m.Chunk)})
	case DANY:
		c.danys++
	case DCAN:
		if m.Chunk < 0 {
			if c.danys > 0 {
				c.danys--
			}
			break
		}
		for i, r := range c.pending {
			if r.op == DREQ && int(r.chunk) == m.Chunk {
				c.pending = append(c.pending[:i], c.pending[i+1:]...)
				break
			}
		}
	case HREQ:
		if now.Sub(s.hashAt) >= s.cfg.HashEvery {
			s.hashAt, s.hashN = now, 0
		}
		if s.hashN >= s.cfg.HashSeeds && c.ext && !s.root(c) {
			s.cnt.busy++
			s.reply(c, errReq(ErrBusy))
			return out
		}
		s.hashN++
		s.reply(c, sreq{op: HREQ})
	case HAVE:
		if c.known == nil {
			c.known = newBitset(s.c.Chunks())
		}
		for _, i := range m.Chunks {
			if i < 0 || i >= s.c.Chunks() {
				continue
			}
			if !c.known.has(i) {
				c.known.set(i)
				c.knownN++
				s.holders[i]++
			}
			s.ack(c, i)
		}
		if m.HaveHash {
			s.ack(c, -1)
		}
	case CHECK:
		ok := m.MD5 == s.c.md5
		ev := Checked{Peer: c.listen.String(), OK: ok}
		if ok {
			s.cnt.checkOK++
			s.reply(c, sreq{op: CHECK})
			out = append(out, spec.Info("p2p server: peer verified the file", slog.String("peer", c.listen.String()), slog.Duration("t", now.Sub(s.start))))
		} else {
			s.cnt.checkBad++
			s.reply(c, errReq(ErrChecksumNotFit))
			out = append(out, spec.Warn("p2p server: peer's checksum does not fit", slog.String("peer", c.listen.String())))
		}
		out = append(out, spec.Emit(spec.Event{Name: "checked", Value: ev}))
	default:
		return unknown("unexpected message")
	}
	return out
}

// place gives c's peer its place in the trees, if there is one: TREE,
// then its parents that have joined; and tells the peers that have
// joined and are its children where it is. A peer that comes back (the
// same listening address) gets its old place.
func (s *Server) place(now spec.Time, c *sconn, out []spec.Output) []spec.Output {
	n := s.cfg.Expect
	if n <= 0 || c.tid != 0 {
		return out
	}
	if s.tids == nil {
		s.tids = map[netip.AddrPort]int{}
		s.tconns = make([]*sconn, n+1)
	}
	id := s.tids[c.listen]
	if id == 0 {
		if len(s.tids) >= n {
			return out
		}
		id = len(s.tids) + 1
		s.tids[c.listen] = id
	}
	c.tid = id
	s.tconns[id] = c
	if s.tcur == nil {
		s.tcur = make([]int, s.cfg.Trees)
		for st := range s.tcur {
			s.tcur[st] = st
		}
	}
	for st := range s.cfg.Trees {
		if (tree{id: id, n: n, d: s.cfg.Trees}).parent(st) == 0 {
			s.tcur[st] = st // a new connection: feed it what it lacks
		}
	}
	t := tree{id: id, n: n, d: s.cfg.Trees}
	c.wbuf = AppendTREE(s.grow(c, 32), id, n, t.d)
	if s.fed && s.root(c) {
		// A root passes nothing on before it has the hash list.
		s.sendHash(now, c)
	}
	if s.placedAt == 0 {
		s.placedAt = now
		out = append(out, spec.SetTimer(tFeed, now.Add(feedWait)))
	}
	var kids []int
	for st := 0; st < t.d; st++ {
		if p := t.parent(st); p != 0 {
			if pc := s.tconns[p]; pc != nil && !pc.gone {
				c.wbuf = AppendPARENT(s.grow(c, 64), st, pc.listen)
			}
		}
		kids = t.children(st, kids[:0])
		for _, k := range kids {
			if kc := s.tconns[k]; kc != nil && !kc.gone && !kc.closing {
				kc.wbuf = AppendPARENT(s.grow(kc, 64), st, c.listen)
			}
		}
	}
	out = append(out, spec.Debug("p2p server: tree place", slog.String("peer", c.listen.String()), slog.Int("id", id)))
	if len(s.tids) >= min(n, 1+t.d+t.d*t.d) {
		s.startFeed(now)
	}
	return out
}

// feedWait bounds how long the trees wait for their top three levels.
const feedWait = 200 * time.Millisecond

// startFeed starts feeding the trees: the roots' hash lists, then their
// chunks. It waits until the peers of the top three levels have their
// places (or feedWait has passed): their welcomes are small and each
// unblocks a level (a parent to dial, a TSUB to send), while a root's
// hash list and first chunks are 50 kB that everyone else's welcome
// would queue behind on the uplink, and the roots' children could not
// take the chunks any sooner anyway.
func (s *Server) startFeed(now spec.Time) {
	if s.fed {
		return
	}
	s.fed = true
	for st := range s.tcur {
		if c := s.rootConn(st); c != nil && !c.hashed {
			s.sendHash(now, c)
		}
	}
}

// rootPush picks the next chunk to feed a root: the trees take turns, so
// each gets its share of the uplink and no more (a root passes on every
// chunk to all its children, so a burst to one root would queue at
// every hop below it). A root waiting for its hash list is skipped.
func (s *Server) rootPush() (*sconn, int) {
	if !s.fed {
		return nil, -1
	}
	d := s.cfg.Trees
	for range d {
		st := s.turn
		s.turn = (s.turn + 1) % d
		c := s.rootConn(st)
		if c == nil && len(s.ring) > 0 {
			// A tree without its root: its share of the uplink goes to
			// requests, which its stalled peers now make.
			return nil, -1
		}
		if c == nil || (len(c.pending) > 0 && c.pending[0].op == HREQ) {
			continue
		}
		for s.tcur[st] < s.c.Chunks() && c.known.has(s.tcur[st]) {
			s.tcur[st] += d
		}
		if s.tcur[st] >= s.c.Chunks() {
			continue
		}
		i := s.tcur[st]
		s.tcur[st] += d
		return c, i
	}
	return nil, -1
}

// rootHREQ is a root whose next request is for the hash list, if any.
func (s *Server) rootHREQ() *sconn {
	for st := range s.tcur {
		if c := s.rootConn(st); c != nil && len(c.pending) > 0 && c.pending[0].op == HREQ {
			return c
		}
	}
	return nil
}

// rootConn is the connection of tree st's root, if it is connected.
func (s *Server) rootConn(st int) *sconn {
	if s.tcur == nil {
		return nil
	}
	c := s.tconns[tree{n: s.cfg.Expect, d: s.cfg.Trees}.at(st, 1)]
	if c == nil || c.gone || c.closing || c.known == nil {
		return nil
	}
	return c
}

// feeding reports whether a root still has chunks to be fed.
func (s *Server) feeding() bool {
	if !s.fed {
		return false
	}
	for st := range s.tcur {
		if s.tcur[st] < s.c.Chunks() && s.rootConn(st) != nil {
			return true
		}
	}
	return false
}

// root reports whether c's peer is the root of a tree: the server feeds
// it, and it needs the hash list before it can pass anything on.
func (s *Server) root(c *sconn) bool {
	if c.tid == 0 {
		return false
	}
	t := tree{id: c.tid, n: s.cfg.Expect, d: s.cfg.Trees}
	for st := range t.d {
		if t.parent(st) == 0 {
			return true
		}
	}
	return false
}

// peerList picks up to MaxList online peers other than c, at random.
func (s *Server) peerList(c *sconn) []netip.AddrPort {
	var idx []int
	for i, o := range s.online {
		if o != c && o.listen != c.listen {
			idx = append(idx, i)
		}
	}
	max := s.cfg.MaxList
	if s.cfg.Expect > 0 {
		// Peers in the trees dial only a few others; every byte of a
		// welcome delays the file (a thousand of them at once).
		max = min(max, treeNeighbours)
	}
	if len(idx) > max {
		for i := 0; i < max; i++ {
			j := i + s.rng.IntN(len(idx)-i)
			idx[i], idx[j] = idx[j], idx[i]
		}
		idx = idx[:max]
	}
	list := make([]netip.AddrPort, len(idx))
	for i, j := range idx {
		list[i] = s.online[j].listen
	}
	return list
}

// schedule puts c in the round-robin ring if it has paced work.
func (s *Server) schedule(c *sconn) {
	if c.inRing || c.gone || c.closing {
		return
	}
	if c.danys > 0 || (len(c.pending) > 0 && (c.pending[0].op == DREQ || c.pending[0].op == HREQ)) {
		c.inRing = true
		s.ring = append(s.ring, c)
	}
}

// next takes from the ring the peer that was last given a chunk of the
// server's choice (DANY) longest ago, the first in the ring among
// equals. Every chunk the server gives out is one only its receiver holds
// and will relay, so taking the peers in turn spreads that relaying
// evenly over their uplinks. Taking the peer known to hold the fewest
// chunks first, as peers do, was slower here: the server's counts come
// from HAVE reports up to ReportEvery old, and likely sent runs of fresh
// chunks to the same few peers (seeds 1-6, ratio to the bound: N=8
// 1.068 -> 1.060, N=20 1.124 -> 1.116, N=100 1.201 -> 1.183).
func (s *Server) next() *sconn {
	best := 0
	for k, c := range s.ring {
		if c.danyAt < s.ring[best].danyAt {
			best = k
		}
	}
	c := s.ring[best]
	s.ring = append(s.ring[:best], s.ring[best+1:]...)
	return c
}

// serve sends paced responses, the peers in turn (see next), while the
// pacer allows.
func (s *Server) serve(now spec.Time, out []spec.Output) []spec.Output {
	for s.pace.ready(now) {
		if c := s.rootHREQ(); c != nil {
			// A root passes nothing on before it has the hash list.
			c.pending = c.pending[1:]
			s.sendHash(now, c)
			continue
		}
		if c, i := s.rootPush(); c != nil {
			s.sendChunk(now, c, i, AppendPUSHHeader)
			s.closeIfDone(c)
			continue
		}
		if len(s.ring) == 0 {
			break
		}
		c := s.next()
		c.inRing = false
		if c.gone || c.closing {
			continue
		}
		if s.pace.windowed() && c.owed.stalled {
			// An answer to it went unacknowledged for AckTimeout: a
			// client that does not read (or a dead one) must not hold
			// the window's slots round after round, as one such
			// connection slowed every other download 200-fold. It is
			// back in turn when it acknowledges (unstall).
			s.cnt.stalled++
			continue
		}
		switch {
		case c.danys > 0 && c.knownN == 0 && len(c.pending) > 0 && c.pending[0].op == HREQ && s.pick(c) >= 0:
			// A peer's first chunk before its hash list: it cannot use
			// the list before it has chunks to trade anyway.
			c.danys--
			s.cnt.danys++
			s.sendData(now, c, s.pick(c))
		case len(c.pending) > 0 && c.pending[0].op == DREQ:
			r := c.pending[0]
			c.pending = c.pending[1:]
			s.sendData(now, c, int(r.chunk))
		case len(c.pending) > 0 && c.pending[0].op == HREQ:
			c.pending = c.pending[1:]
			s.sendHash(now, c)
		case c.danys > 0:
			c.danys--
			if i := s.pick(c); i >= 0 {
				c.danyAt = now
				s.cnt.danys++
				s.sendData(now, c, i)
			} else {
				// Every chunk is held by some peer: the swarm can do the
				// rest, and the server answers DREQs for what it cannot.
				s.cnt.exhausted++
				s.write(c, errReq(ErrExhausted))
			}
		}
		// Answers queued behind the paced one go now.
		queued := c.unread
		for len(c.pending) > 0 && c.pending[0].op != DREQ && c.pending[0].op != HREQ {
			r := c.pending[0]
			c.pending = c.pending[1:]
			s.write(c, r)
		}
		if c.unread-queued > unreadCap(s.cfg.MaxUnread, s.c.Chunks()) {
			// Answers queued behind a paced one added nothing to
			// unread when they were asked for, so read could not
			// check them: the limit holds for what goes out at once
			// here. (Not for c.unread as a whole: on a stream kept
			// full, InStreamWritable seldom comes to reset it, and
			// an honest neighbour's answers add up over a run.)
			out = s.cutOff(c, out)
			continue
		}
		s.schedule(c)
		s.closeIfDone(c)
	}
	if len(s.ring) == 0 {
		s.ring = nil
	}
	if len(s.ring) > 0 || s.feeding() {
		if at := s.pace.wake(now); at != 0 && s.paceAt == 0 {
			s.paceAt = at
			out = append(out, spec.SetTimer(tPace, at))
		}
	}
	return out
}

// pick chooses the chunk a DANY gets: one no connected peer holds or is
// being sent, searched from a random place so that peers asking at the
// same time get different ones; -1 if there is none.
func (s *Server) pick(c *sconn) int {
	n := s.c.Chunks()
	if n == 0 {
		return -1
	}
	start := s.rng.IntN(n)
	for k := 0; k < n; k++ {
		i := start + k
		if i >= n {
			i -= n
		}
		if s.holders[i] == 0 && (c.known == nil || !c.known.has(i)) {
			return i
		}
	}
	return -1
}

func (s *Server) track(now spec.Time, c *sconn, chunk, n int) {
	if s.pace.windowed() {
		// Only a window waits for acknowledgments: paced by rate,
		// logging them would only count late reports as timeouts.
		s.acks.add(now, &c.owed, chunk)
	}
	s.pace.sent(now, n)
}

func (s *Server) sendData(now spec.Time, c *sconn, i int) {
	s.sendChunk(now, c, i, AppendDATAHeader)
}

// sendChunk writes chunk i to c under header (DATA, or PUSH to a root).
func (s *Server) sendChunk(now spec.Time, c *sconn, i int, header func([]byte, int64, int) []byte) {
	if c.known != nil && !c.known.has(i) {
		c.known.set(i)
		c.knownN++
		s.holders[i]++
	}
	data := s.c.Chunk(i)
	c.wbuf = s.grow(c, len(data)+32)
	c.wbuf = header(c.wbuf, int64(i)*int64(s.c.ChunkSize()), len(data))
	c.wbuf = append(c.wbuf, data...)
	s.cnt.data++
	s.cnt.bytes += uint64(len(data))
	s.track(now, c, i, len(data))
}

func (s *Server) sendHash(now spec.Time, c *sconn) {
	hs := s.c.Hashes()
	c.wbuf = s.grow(c, 32*len(hs)+16)
	c.wbuf = AppendHASHHeader(c.wbuf, len(hs))
	for i := range hs {
		c.wbuf = append(c.wbuf, hs[i][:]...)
	}
	s.cnt.hashes++
	c.hashed = true
	s.track(now, c, -1, 32*len(hs))
}

// grow makes sure c's write buffer is registered for flushing and has
// room for n more bytes.
func (s *Server) grow(c *sconn, n int) []byte {
	if !c.dirty {
		c.dirty = true
		s.dirty = append(s.dirty, c)
	}
	if cap(c.wbuf)-len(c.wbuf) < n {
		nb := make([]byte, len(c.wbuf), len(c.wbuf)+n+256)
		copy(nb, c.wbuf)
		return nb
	}
	return c.wbuf
}

// write encodes an unpaced answer, counted against MaxUnread.
func (s *Server) write(c *sconn, r sreq) {
	b := s.grow(c, 96)
	before := len(b)
	switch r.op {
	case SHEL:
		b = AppendSHEL(b, s.c.Size(), int64(s.c.ChunkSize()), r.rare.list)
	case XHEL:
		root := s.c.Root()
		b = AppendXHEL(b, root[:], s.pace.rate > 0)
	case CLRSP:
		ids := make([]int, s.c.Chunks())
		for i := range ids {
			ids[i] = i
		}
		b = AppendCLRSP(b, ids)
	case CHECK:
		b = AppendCHECK(b, s.c.md5) // only a CHECK of the file's MD5 is answered so
	case ERROR:
		b = AppendERROR(b, r.errID())
	}
	c.unread += len(b) - before
	c.wbuf = b
}

func (s *Server) flush(now spec.Time, out []spec.Output) []spec.Output {
	for _, c := range s.dirty {
		if len(c.wbuf) > 0 && !c.gone {
			out = append(out, spec.Write(c.st, c.wbuf))
		}
		c.wbuf, c.dirty = nil, false
		if c.closing && !c.gone && !c.closed {
			c.closed = true
			out = append(out, spec.Close(c.st))
			if c.idle {
				c.idle = false
				out = append(out, spec.CancelTimer(spec.Timer(c.st)))
			}
			if c.eof {
				s.drop(c) // both sides have finished
			} else {
				s.leave(c)
			}
		}
	}
	s.dirty = s.dirty[:0]
	if at := s.acks.next(s.cfg.AckTimeout); at != 0 && s.ackAt == 0 {
		s.ackAt = at
		out = append(out, spec.SetTimer(tAck, at))
	}
	return out
}

// ack frees the slot of c's oldest unacknowledged response for chunk
// (-1: a hash list).
func (s *Server) ack(c *sconn, chunk int) {
	if c.owed.ack(chunk) {
		s.pace.acked(1)
	}
	s.unstall(c)
}

func (s *Server) ackAll(c *sconn) {
	s.pace.acked(c.clear())
	s.unstall(c)
}

// unstall puts a stalled connection, which has now acknowledged
// something (a late one too), back in turn.
func (s *Server) unstall(c *sconn) {
	if c.owed.stalled {
		c.owed.stalled = false
		s.schedule(c)
	}
}

// String is for logs.
func (s *Server) String() string {
	return fmt.Sprintf("p2p server (%d bytes, %d chunks, %d online)", s.c.Size(), s.c.Chunks(), len(s.online))
}
