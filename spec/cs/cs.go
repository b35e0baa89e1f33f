package cs

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"strconv"
	"time"

	"github.com/netspec/netspec/spec"
)

// DefaultPort is the seed's port.
const DefaultPort = 52000

// Protocol describes C/S file download to the generic tools.
var Protocol = spec.NewProtocol("cs", func(b []byte) string { return fmt.Sprintf("%d bytes of the file", len(b)) },
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) {
		data, err := Generate(c.File)
		if err != nil {
			return nil, err
		}
		return NewServer(c, data), nil
	}),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) {
		var want []byte
		if c.Expect != nil {
			w, err := Generate(*c.Expect)
			if err != nil {
				return nil, err
			}
			want = w
		}
		return NewClient(c, want), nil
	}),
)

const sockListen spec.Sock = 1

// ServerConfig configures a C/S server. The file it serves is passed to
// NewServer; File names it when it is generated, so that a trace can
// rebuild the server.
type ServerConfig struct {
	Addr netip.AddrPort `json:"addr"`
	File FileSpec       `json:"file"`
	// Path names a file from disk that the server was given instead of
	// File's bytes, for the record: a machine rebuilt from the config
	// serves File, so a trace of such a run replays only with that file.
	Path string `json:"path,omitempty"`
	// PathMD5 is that file's MD5 (hex), so a replay can tell it the
	// file changed since.
	PathMD5 string `json:"pathMD5,omitempty"`
	// Piece is how many bytes are queued on a connection at a time
	// (default 256 KiB): the server writes the next piece when the
	// transport has taken the last one, so memory per client is bounded
	// by the file, shared, plus nothing.
	Piece int `json:"piece,omitempty"`
	// MaxStreams bounds concurrent clients (default 4096), MaxPerAddr
	// those from one IP address (default 64), so that one host holding
	// connections it never reads cannot take every place.
	MaxStreams int `json:"maxStreams,omitempty"`
	MaxPerAddr int `json:"maxPerAddr,omitempty"`
	// Stall resets a client whose connection has taken nothing for this
	// long (default 10 minutes): a client that never reads must not keep
	// its place for ever. A client that reads can wait minutes too: a
	// thousand clients of a 10 Mbit/s server each have a window's worth
	// queued on its uplink, and the last one's first bytes leave after
	// the others' 256 MB, 3.5 minutes (2 minutes reset them all in the
	// simulator's seed setup at N = 1000). Checked every Stall/4.
	Stall time.Duration `json:"stall,omitempty"`
}

// Server streams its file to every client that connects, then closes.
type Server struct {
	cfg      ServerConfig
	data     []byte
	streams  map[spec.Stream]*download
	perAddr  spec.PerAddr
	limitLog spec.Throttle        // the MaxStreams warning
	addrLog  spec.Throttle        // the MaxPerAddr warning
	dead     map[spec.Stream]bool // reset before they were accepted
	// last is the highest accepted stream id seen. Runners number
	// accepted streams in the order they are accepted, so only a reset
	// of an id above it can be of a connection not accepted yet; one at
	// or below it is of a connection the server is done with.
	last spec.Stream
	c    serverCounters
	// sweeping: sweepTimer is armed.
	sweeping bool
}

// sweepTimer looks for stalled clients (the server's only timer).
const sweepTimer spec.Timer = 1

type download struct {
	from    netip.AddrPort
	sent    int64
	started spec.Time
	last    spec.Time // the last progress: accepted, a piece taken, closed
	ignored int64     // bytes the client sent, which C/S ignores
	// closed: the whole file is with the transport and our FIN follows
	// it. The client keeps its place until it closes too: the kernel
	// still holds up to a send buffer of the file for it, so a client
	// that stops reading near the end (or never reads a small file)
	// must still count against the limits, and be reset after Stall.
	closed bool
}

type serverCounters struct {
	accepted, served, refused, reset, ignoredBytes, stalled uint64
}

// NewServer returns a server of data.
func NewServer(cfg ServerConfig, data []byte) *Server {
	if cfg.Piece <= 0 {
		cfg.Piece = 256 << 10
	}
	if cfg.MaxStreams <= 0 {
		cfg.MaxStreams = 4096
	}
	if cfg.MaxPerAddr <= 0 {
		cfg.MaxPerAddr = 64
	}
	if cfg.Stall <= 0 {
		cfg.Stall = 10 * time.Minute
	}
	return &Server{cfg: cfg, data: data, streams: map[spec.Stream]*download{}, perAddr: spec.NewPerAddr(cfg.MaxPerAddr), dead: map[spec.Stream]bool{}}
}

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	return []spec.Counter{
		{Name: "accepted", Value: s.c.accepted},
		{Name: "served", Value: s.c.served},
		{Name: "refused", Value: s.c.refused},
		{Name: "reset", Value: s.c.reset},
		{Name: "ignored_bytes", Value: s.c.ignoredBytes},
		{Name: "stalled", Value: s.c.stalled},
	}
}

// Served is the value of the server's "served" event.
type Served struct {
	Client  string        `json:"client"`
	Bytes   int64         `json:"bytes"`
	Elapsed time.Duration `json:"elapsed"`
}

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(sockListen, spec.TCP, s.cfg.Addr))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("cs: listen on "+s.cfg.Addr.String()+": "+in.Err))
		}
		out = append(out,
			spec.Info("cs server listening", slog.String("addr", in.Addr.String()), slog.Int("bytes", len(s.data))),
			spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
	case spec.InAccepted:
		s.last = max(s.last, in.Stream)
		if s.dead[in.Stream] {
			// The simulator can report a connection reset before its
			// accept; it is gone, so it gets nothing.
			delete(s.dead, in.Stream)
			return out
		}
		switch {
		case len(s.streams) >= s.cfg.MaxStreams:
			s.c.refused++
			out = append(out, spec.Abort(in.Stream), spec.Debug("cs: too many clients, refusing", slog.String("from", in.Addr.String())))
			if n, ok := s.limitLog.Hit(now, time.Second); ok {
				out = append(out, spec.Warn("cs: too many clients, refusing", slog.Int("max", s.cfg.MaxStreams), slog.Uint64("refused", n)))
			}
			return out
		case !s.perAddr.Take(in.Addr.Addr()):
			s.c.refused++
			out = append(out, spec.Abort(in.Stream), spec.Debug("cs: too many clients from the address, refusing", slog.String("from", in.Addr.String())))
			if n, ok := s.addrLog.Hit(now, time.Second); ok {
				out = append(out, spec.Warn("cs: clients from one address at the limit, refusing (--max-per-addr)", slog.String("addr", in.Addr.Addr().String()), slog.Int("max", s.cfg.MaxPerAddr), slog.Uint64("refused", n)))
			}
			return out
		}
		s.c.accepted++
		d := &download{from: in.Addr, started: now, last: now}
		s.streams[in.Stream] = d
		out = append(out, spec.Info("cs: client connected, sending the file", slog.String("from", in.Addr.String())))
		out = s.pump(now, in.Stream, d, out)
		if !s.sweeping {
			s.sweeping = true
			out = append(out, spec.SetTimer(sweepTimer, now.Add(s.cfg.Stall/4)))
		}
	case spec.InStreamWritable:
		if d := s.streams[in.Stream]; d != nil && !d.closed {
			d.last = now
			out = s.pump(now, in.Stream, d, out)
		}
	case spec.InTimer:
		if in.Timer == sweepTimer {
			out = s.sweep(now, out)
		}
	case spec.InStreamData:
		// The seed's server reads nothing; bytes a client sends are
		// counted and dropped, never buffered.
		if d := s.streams[in.Stream]; d != nil {
			d.ignored += int64(len(in.Data))
			s.c.ignoredBytes += uint64(len(in.Data))
			out = append(out, spec.Debug("cs: ignoring bytes from a client", slog.String("from", d.from.String()), slog.Int("bytes", len(in.Data))))
		}
	case spec.InStreamClosed:
		d := s.streams[in.Stream]
		if d == nil && in.Err != "" && in.Stream&spec.AcceptedStream != 0 && in.Stream > s.last && len(s.dead) < 1024 {
			s.dead[in.Stream] = true
		}
		if d != nil && d.closed {
			// Done with the file, and now the client is too.
			s.forget(in.Stream, d)
			return out
		}
		if d == nil || in.Err == "" {
			// A client that half-closes (nc at the end of its stdin)
			// still gets the whole file.
			return out
		}
		s.forget(in.Stream, d)
		s.c.reset++
		out = append(out, spec.Info("cs: client gone before the end", slog.String("from", d.from.String()), slog.Int64("sent", d.sent), slog.String("err", in.Err)))
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// sweep resets the clients that have made no progress for Stall, in
// stream order, and runs again in Stall/4 while there are clients.
func (s *Server) sweep(now spec.Time, out []spec.Output) []spec.Output {
	s.sweeping = false
	for _, st := range spec.Idle(s.streams, now, s.cfg.Stall, func(d *download) spec.Time { return d.last }) {
		d := s.streams[st]
		s.forget(st, d)
		s.c.stalled++
		msg := "cs: resetting a client that takes nothing"
		if d.closed {
			msg = "cs: resetting a client that holds its finished download open"
		}
		out = append(out, spec.Abort(st), spec.Info(msg, slog.String("from", d.from.String()),
			slog.Duration("for", now.Sub(d.last)), slog.Int64("sent", d.sent)))
	}
	if len(s.streams) > 0 {
		s.sweeping = true
		out = append(out, spec.SetTimer(sweepTimer, now.Add(s.cfg.Stall/4)))
	}
	return out
}

// forget releases a download's place.
func (s *Server) forget(st spec.Stream, d *download) {
	delete(s.streams, st)
	s.perAddr.Release(d.from.Addr())
}

// pump queues the next piece, or closes the stream after the last.
func (s *Server) pump(now spec.Time, st spec.Stream, d *download, out []spec.Output) []spec.Output {
	if d.sent >= int64(len(s.data)) {
		d.closed, d.last = true, now
		s.c.served++
		el := now.Sub(d.started)
		return append(out, spec.Close(st),
			spec.Info("cs: finished sending", slog.String("to", d.from.String()), slog.Duration("time", el)),
			spec.Emit(spec.Event{Name: "served", Value: Served{Client: d.from.String(), Bytes: d.sent, Elapsed: el}}))
	}
	end := min(d.sent+int64(s.cfg.Piece), int64(len(s.data)))
	piece := s.data[d.sent:end:end]
	d.sent = end
	return append(out, spec.Write(st, piece))
}

// ClientConfig configures a C/S client.
type ClientConfig struct {
	Server netip.AddrPort `json:"server"`
	// Keep keeps the file in memory, for the "file" event.
	Keep bool `json:"keep,omitempty"`
	// Expect, if set, is the file the client should receive: it compares
	// every byte as it arrives (the simulator uses this instead of MD5,
	// which is slower than the network it simulates).
	Expect *FileSpec `json:"expect,omitempty"`
	// NoMD5 skips the MD5 of what arrives.
	NoMD5 bool `json:"noMD5,omitempty"`
	// MaxSize bounds the file kept with Keep (default 4 GiB).
	MaxSize int64 `json:"maxSize,omitempty"`
	// Idle gives up when nothing arrives for this long (default 60s).
	Idle time.Duration `json:"idle,omitempty"`
	// ProgressEvery emits a "progress" event each time this many more
	// bytes have arrived (0: none).
	ProgressEvery int64 `json:"progressEvery,omitempty"`
	// Emit hands every received piece to the application as a "data"
	// event, so it can write the file as it comes.
	Emit bool `json:"emit,omitempty"`
	// Linger is how long the client stays after the download before it
	// exits (0: at once). A kernel finishes the FIN handshake of a closed
	// socket after its process exits; a simulated node that exits resets
	// its connections, so simulations give it time to close cleanly.
	Linger time.Duration `json:"linger,omitempty"`
}

// Done is the value of the client's "done" event.
type Done struct {
	Bytes   int64         `json:"bytes"`
	MD5     string        `json:"md5,omitempty"`
	Match   *bool         `json:"match,omitempty"`
	Elapsed time.Duration `json:"elapsed"`
}

// Client downloads the file once and exits.
type Client struct {
	cfg      ClientConfig
	want     []byte
	got      int64
	mismatch bool
	sum      hash.Hash
	kept     []byte
	started  spec.Time
	last     spec.Time
	nextProg int64
	done     bool
}

const (
	stream      spec.Stream = 1
	idleTimer   spec.Timer  = 1
	lingerTimer spec.Timer  = 2
)

// NewClient returns a client; want, if not nil, is the expected file
// (cfg.Expect's bytes).
func NewClient(cfg ClientConfig, want []byte) *Client {
	if cfg.MaxSize <= 0 {
		cfg.MaxSize = 4 << 30
	}
	if cfg.Idle <= 0 {
		cfg.Idle = time.Minute
	}
	c := &Client{cfg: cfg, want: want, nextProg: cfg.ProgressEvery}
	if !cfg.NoMD5 {
		c.sum = md5.New()
	}
	return c
}

// Counters implements spec.Inspector.
func (c *Client) Counters() []spec.Counter {
	return []spec.Counter{{Name: "bytes", Value: uint64(c.got)}}
}

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		c.started, c.last = now, now
		out = append(out, spec.Dial(stream, c.cfg.Server), spec.SetTimer(idleTimer, now.Add(c.cfg.Idle)))
	case spec.InConnected:
		out = append(out, spec.Emit(spec.Event{Name: "connected", Text: in.Addr.String()}))
	case spec.InStreamData:
		if c.done {
			return out
		}
		c.last = now
		if c.want != nil && !c.mismatch {
			end := c.got + int64(len(in.Data))
			if end > int64(len(c.want)) || !bytes.Equal(c.want[c.got:end], in.Data) {
				c.mismatch = true
			}
		}
		if c.sum != nil {
			c.sum.Write(in.Data)
		}
		if c.cfg.Keep {
			if c.got+int64(len(in.Data)) > c.cfg.MaxSize {
				c.done = true
				return append(out, spec.Abort(stream), spec.Exit(fmt.Sprintf("cs: file larger than %d bytes", c.cfg.MaxSize)))
			}
			c.kept = append(c.kept, in.Data...)
		}
		c.got += int64(len(in.Data))
		if c.cfg.Emit {
			out = append(out, spec.Emit(spec.Event{Name: "data", Data: in.Data}))
		}
		if c.cfg.ProgressEvery > 0 && c.got >= c.nextProg {
			for c.nextProg <= c.got {
				c.nextProg += c.cfg.ProgressEvery
			}
			out = append(out, spec.Emit(spec.Event{Name: "progress", Value: c.got}))
		}
	case spec.InStreamClosed:
		if c.done {
			return out
		}
		c.done = true
		out = append(out, spec.CancelTimer(idleTimer))
		if in.Err != "" {
			return append(out, spec.Exit(fmt.Sprintf("cs: download failed after %d bytes: %s", c.got, in.Err)))
		}
		d := Done{Bytes: c.got, Elapsed: now.Sub(c.started)}
		if c.sum != nil {
			d.MD5 = hex.EncodeToString(c.sum.Sum(nil))
		}
		if c.want != nil {
			ok := !c.mismatch && c.got == int64(len(c.want))
			d.Match = &ok
		}
		out = append(out, spec.Close(stream),
			spec.Info("cs: download finished", slog.Int64("bytes", c.got), slog.Duration("time", d.Elapsed), slog.String("md5", d.MD5)))
		if c.cfg.Keep {
			out = append(out, spec.Emit(spec.Event{Name: "file", Data: c.kept}))
		}
		out = append(out, spec.Emit(spec.Event{Name: "done", Text: strconv.FormatInt(c.got, 10), Value: d}))
		if d.Match != nil && !*d.Match {
			return append(out, spec.Exit("cs: the file received differs from the one expected"))
		}
		if c.cfg.Linger > 0 {
			return append(out, spec.SetTimer(lingerTimer, now.Add(c.cfg.Linger)))
		}
		return append(out, spec.Exit(""))
	case spec.InTimer:
		if in.Timer == lingerTimer {
			return append(out, spec.Exit(""))
		}
		if c.done || in.Timer != idleTimer {
			return out
		}
		if now.Sub(c.last) >= c.cfg.Idle {
			c.done = true
			return append(out, spec.Abort(stream), spec.Exit(fmt.Sprintf("cs: nothing received for %v", c.cfg.Idle)))
		}
		out = append(out, spec.SetTimer(idleTimer, c.last.Add(c.cfg.Idle)))
	case spec.InStop:
		if c.done {
			return append(out, spec.Exit(""))
		}
		c.done = true
		return append(out, spec.Abort(stream), spec.Exit("cs: stopped"))
	}
	return out
}
