package file

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"path"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// Sockets and timers of both roles.
const (
	sockUDP   spec.Sock  = 1
	workTimer spec.Timer = 1
	// sessionTimers is the base of the session layer's timer ids.
	sessionTimers spec.Timer = 1 << 32
)

// ServerConfig configures a file server.
type ServerConfig struct {
	// Addr is where the server listens.
	Addr netip.AddrPort `json:"addr"`
	// Files is a synthetic root, used when no file system is given to
	// NewServer (in the simulator and in replay).
	Files []SynthFile `json:"files,omitempty"`
	// Root names the directory a command serves, for the record: a
	// machine rebuilt from this config cannot open it and serves Files.
	Root string `json:"root,omitempty"`
	// Session tunes the session layer.
	Session rudp.Config `json:"session"`
	// Chunk is the body size of DATA frames (default 64 KiB);
	// SendBuffer how many bytes of answers a session may hold
	// unacknowledged before the server stops queueing more (default
	// 1 MiB, and at least one DATA frame): a file's DATA, and REPLYs too.
	Chunk      int `json:"chunk,omitempty"`
	SendBuffer int `json:"sendBuffer,omitempty"`
	// MaxQueued bounds the requests a session may have waiting for their
	// turn, behind a transfer or a full SendBuffer (default 16); one
	// more is a protocol error.
	MaxQueued int `json:"maxQueued,omitempty"`
	// HashStep is how many bytes of a resumed file's prefix are hashed
	// per step while it is verified (default 4 MiB).
	HashStep int `json:"hashStep,omitempty"`
}

func (c *ServerConfig) fill() {
	if c.Chunk <= 0 {
		c.Chunk = 64 << 10
	}
	c.Chunk = min(c.Chunk, MaxData)
	if c.SendBuffer <= 0 {
		c.SendBuffer = 1 << 20
	}
	// A DATA frame is queued whole, so a buffer smaller than one would
	// never have room and the transfer would never start.
	c.SendBuffer = max(c.SendBuffer, FrameHeaderLen+c.Chunk)
	if c.MaxQueued <= 0 {
		c.MaxQueued = 16
	}
	if c.HashStep <= 0 {
		c.HashStep = 4 << 20
	}
}

// Server is the file server machine. It reads files only through its
// fs.FS, and only names ValidName accepts.
type Server struct {
	cfg      ServerConfig
	fsys     fs.FS
	ep       *rudp.Endpoint
	sessions map[rudp.ConnID]*session
	order    []rudp.ConnID // sessions in the order they opened
	scratch  []byte
	stopped  bool
	workSet  bool
	now      spec.Time // the current step's time
	c        serverCounters
}

type serverCounters struct {
	requests, gets, served, refused, notFound, resumed, restarted, changed, badFrames, chat, bytes uint64
}

type session struct {
	id       rudp.ConnID
	peer     netip.AddrPort
	p        parser
	xfer     *transfer
	queue    []request
	chatting bool
	eof      bool // the client closed its side
	closing  bool
	written  int64 // bytes written to the session (its acknowledged ones are written - Buffered)
}

type request struct {
	typ  byte
	body []byte
}

type transfer struct {
	name       string
	f          fs.File
	size, pos  int64
	mod        time.Time // the file's modification time when opened
	start      int64     // first byte sent
	h          hash.Hash
	verifyLeft int64 // prefix bytes still to hash before deciding where to start
	want       [32]byte
}

// NewServer returns a server reading fsys, or cfg.Files if fsys is nil.
func NewServer(cfg ServerConfig, fsys fs.FS) *Server {
	cfg.fill()
	if fsys == nil {
		fsys = Synthetic(cfg.Files)
	}
	return &Server{
		cfg:      cfg,
		fsys:     fsys,
		ep:       rudp.NewEndpoint(cfg.Session, sockUDP, sessionTimers, true),
		sessions: map[rudp.ConnID]*session{},
	}
}

// Sessions is the number of sessions the server's endpoint holds.
func (s *Server) Sessions() int { return s.ep.Sessions() }

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	c := &s.c
	return append([]spec.Counter{
		{Name: "requests", Value: c.requests},
		{Name: "gets", Value: c.gets},
		{Name: "files_served", Value: c.served},
		{Name: "names_refused", Value: c.refused},
		{Name: "files_not_found", Value: c.notFound},
		{Name: "gets_resumed", Value: c.resumed},
		{Name: "resumes_restarted", Value: c.restarted},
		{Name: "changed_mid_transfer", Value: c.changed},
		{Name: "malformed_frames", Value: c.badFrames},
		{Name: "chat_lines", Value: c.chat},
		{Name: "file_bytes_sent", Value: c.bytes},
	}, s.ep.Counters()...)
}

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if s.stopped {
		return out
	}
	s.now = now
	switch in.Kind {
	case spec.InStart:
		return append(out, spec.Bind(sockUDP, spec.UDP, s.cfg.Addr))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit(fmt.Sprintf("file: bind %v: %s", s.cfg.Addr, in.Err)))
		}
		return append(out, spec.Info("file server listening", slog.String("addr", in.Addr.String())),
			spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
	case spec.InStop:
		s.stopped = true
		s.ep.Shutdown("server shutting down")
		for _, id := range s.order {
			s.endTransfer(s.sessions[id])
		}
		out = s.ep.Flush(now, out)
		return append(out, spec.Exit(""))
	case spec.InCommand:
		out = s.command(in.Cmd, out)
	case spec.InTimer:
		if in.Timer == workTimer {
			s.workSet = false
			out = s.verify(out)
		}
	}
	out, _ = s.ep.Handle(now, in, out)
	for ev, ok := s.ep.Next(); ok; ev, ok = s.ep.Next() {
		out = s.event(now, ev, out)
	}
	for _, id := range s.order {
		out = s.fill(s.sessions[id], out)
	}
	out = s.ep.Flush(now, out)
	if !s.workSet {
		for _, id := range s.order {
			if x := s.sessions[id].xfer; x != nil && x.verifyLeft > 0 {
				s.workSet = true
				out = append(out, spec.SetTimer(workTimer, now))
				break
			}
		}
	}
	return out
}

// command handles the console: "say TEXT" goes to every client chatting.
func (s *Server) command(cmd spec.Command, out []spec.Output) []spec.Output {
	if cmd.Name != "say" {
		return append(out, spec.Debug("file: unknown console command", slog.String("name", cmd.Name)))
	}
	text := string(cmd.Data)
	if text == "" {
		text = strings.Join(cmd.Args, " ")
	}
	n := 0
	for _, id := range s.order {
		if ss := s.sessions[id]; ss.chatting && !ss.closing {
			n++
			s.write(ss, appendFrame(nil, FrameChat, []byte(text)))
		}
	}
	if n == 0 {
		out = append(out, spec.Emit(spec.Event{Name: "chat-nobody", Text: "no client is chatting"}))
	}
	return out
}

func (s *Server) event(now spec.Time, ev rudp.Event, out []spec.Output) []spec.Output {
	ss := s.sessions[ev.Conn]
	switch ev.Kind {
	case rudp.Accepted:
		ss = &session{id: ev.Conn, peer: ev.Peer, p: parser{accept: clientSends}}
		s.sessions[ev.Conn] = ss
		s.order = append(s.order, ev.Conn)
		return append(out, spec.Emit(spec.Event{Name: "session", Text: "open " + ev.Peer.String()}))
	case rudp.Data:
		if ss == nil || ss.closing {
			return out
		}
		h := serverHandler{s: s, ss: ss, out: out}
		if err := ss.p.feed(ev.Data, &h); err != nil {
			return s.abort(ss, err, h.out)
		}
		return h.out
	case rudp.PeerClosed:
		if ss != nil {
			ss.eof = true
			s.maybeClose(ss)
		}
	case rudp.Closed:
		if ss == nil {
			return out
		}
		s.endTransfer(ss)
		delete(s.sessions, ev.Conn)
		s.order = slices.DeleteFunc(s.order, func(id rudp.ConnID) bool { return id == ev.Conn })
		text := "closed " + ev.Peer.String()
		if ev.Err != "" {
			text += ": " + ev.Err
		}
		return append(out, spec.Emit(spec.Event{Name: "session", Text: text}))
	}
	return out
}

// abort answers a broken request stream with a REPLY saying why and
// closes the session; nothing more it sent is answered.
func (s *Server) abort(ss *session, err error, out []spec.Output) []spec.Output {
	s.c.badFrames++
	out = append(out, spec.Debug("file: bad request stream", slog.String("peer", ss.peer.String()), slog.String("err", err.Error())))
	s.reply(ss, StatusError, "protocol error: "+err.Error())
	s.endTransfer(ss)
	ss.queue = nil
	ss.closing = true
	s.ep.Close(ss.id)
	return out
}

// maybeClose closes a session whose client has finished sending once
// everything it asked for has been answered.
func (s *Server) maybeClose(ss *session) {
	if ss.eof && ss.xfer == nil && len(ss.queue) == 0 && !ss.closing {
		ss.closing = true
		s.ep.Close(ss.id)
	}
}

type serverHandler struct {
	s   *Server
	ss  *session
	out []spec.Output
}

func (h *serverHandler) dataBegin(int) error { return fmt.Errorf("%w: DATA from a client", ErrFrame) }
func (h *serverHandler) data([]byte) error   { return nil }

func (h *serverHandler) frame(typ byte, body []byte) error {
	s, ss := h.s, h.ss
	if typ == FrameSay {
		s.c.chat++
		h.out = append(h.out, spec.Emit(spec.Event{Name: "say", Text: string(body), Value: ChatLine{From: ss.peer.String()}}))
		return nil
	}
	// Every request takes its turn through the queue, answered at once
	// only if nothing is ahead of it and the session has room: a client
	// that pipelines small requests for large answers and never
	// acknowledges them must not make the server buffer without bound.
	if len(ss.queue) >= s.cfg.MaxQueued {
		return fmt.Errorf("%w: more than %d requests queued", ErrFrame, s.cfg.MaxQueued)
	}
	ss.queue = append(ss.queue, request{typ, body})
	var err error
	h.out, err = s.next(ss, h.out)
	return err
}

// ChatLine is the value of a server's "say" event.
type ChatLine struct {
	From string `json:"from"`
}

func (s *Server) reply(ss *session, status byte, text string) {
	// REPLY text is UTF-8 on the wire: a long answer is cut on a rune
	// boundary, and bytes that are not UTF-8 (a listed file's name, say)
	// are replaced.
	text = strings.ToValidUTF8(text, "\uFFFD")
	if len(text) > MaxControl-1 {
		cut := MaxControl - 1
		for cut > 0 && !utf8.RuneStart(text[cut]) {
			cut--
		}
		text = text[:cut]
	}
	s.write(ss, appendFrame(nil, FrameReply, []byte{status}, []byte(text)))
}

// request answers one request; a GET starts a transfer.
func (s *Server) request(ss *session, r request, out []spec.Output) ([]spec.Output, error) {
	s.c.requests++
	if r.typ == FrameGet {
		g, err := decodeGet(r.body)
		if err != nil {
			return out, err
		}
		return s.get(ss, g, out), nil
	}
	line := strings.TrimSpace(string(r.body))
	word, arg, _ := strings.Cut(line, " ")
	arg = strings.TrimSpace(arg)
	switch word {
	case "help":
		s.reply(ss, StatusOK, HelpText)
	case "time":
		w := s.now.Wall()
		s.reply(ss, StatusOK, fmt.Sprintf("server time: %s (unix %d.%03d)", w.Format("2006-01-02 15:04:05.000 MST"), w.Unix(), w.Nanosecond()/1e6))
	case "about":
		s.reply(ss, StatusOK, AboutText)
	case "ls":
		st, text := s.list(arg)
		s.reply(ss, st, text)
	case "chat":
		ss.chatting = true
		s.reply(ss, StatusOK, "chatting with the server's console; type exitchat to stop")
	case "exitchat":
		ss.chatting = false
		s.reply(ss, StatusOK, "chat ended")
	default:
		s.reply(ss, StatusError, fmt.Sprintf("unknown command %q (try help)", word))
	}
	return out, nil
}

// HelpText is the answer to "help".
const HelpText = `commands:
  help         this list
  time         the server's clock
  about        what this server is
  ls [DIR]     the files served (size and name)
  get NAME     download NAME; an interrupted download resumes
  chat         talk to the server's console; exitchat stops
  exit         close the session`

// AboutText is the answer to "about".
const AboutText = `netspec file service: seed 002's UDP file server (a course project: TCP-like
handshake and teardown over UDP, several clients, a command menu, acknowledged
transfers) as an executable specification. Sessions run over spec/rudp: a
stateless-cookie handshake, selective repeat with SACK, congestion control;
every download is verified with SHA-256.`

func (s *Server) list(dir string) (byte, string) {
	if d := strings.TrimSuffix(dir, "/"); d != "" {
		dir = d // "/" stays itself, and is refused as absolute
	}
	if dir == "" || dir == "." {
		dir = "."
	} else if strings.HasPrefix(dir, "/") {
		s.c.refused++
		return StatusError, "refused: absolute paths are not served (names are relative to the root)"
	} else if err := ValidName(dir); err != nil {
		s.c.refused++
		return StatusError, "refused: " + err.Error()
	}
	// Stat first, as get does: reading a FIFO as a directory would open
	// it, and block.
	if fi, err := fs.Stat(s.fsys, dir); err != nil {
		return StatusError, "ls: " + fsError(err)
	} else if !fi.IsDir() {
		return StatusError, "ls: not a directory"
	}
	entries, err := fs.ReadDir(s.fsys, dir)
	if err != nil {
		return StatusError, "ls: " + fsError(err)
	}
	var b strings.Builder
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		if ValidName(p) != nil {
			continue // it could not be fetched, and might forge lines of the listing
		}
		fi, err := fs.Stat(s.fsys, p) // follows symlinks that stay inside the root
		if err != nil {
			continue
		}
		line := ""
		switch {
		case fi.IsDir():
			line = fmt.Sprintf("%12s  %s/\n", "-", e.Name())
		case fi.Mode().IsRegular():
			line = fmt.Sprintf("%12d  %s\n", fi.Size(), e.Name())
		default:
			continue
		}
		if b.Len()+len(line) > MaxControl-64 {
			b.WriteString("... (listing truncated)\n")
			break
		}
		b.WriteString(line)
	}
	if b.Len() == 0 {
		return StatusOK, "(empty)"
	}
	return StatusOK, strings.TrimSuffix(b.String(), "\n")
}

// fsError says what went wrong opening a file without the server's own
// paths.
func fsError(err error) string {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "no such file"
	case errors.Is(err, fs.ErrPermission):
		return "permission denied"
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// get starts a transfer, or refuses it.
func (s *Server) get(ss *session, g getRequest, out []spec.Output) []spec.Output {
	s.c.gets++
	if err := ValidName(g.name); err != nil {
		s.c.refused++
		s.reply(ss, StatusError, "refused: "+err.Error())
		return append(out, spec.Info("file: refused a name", slog.String("peer", ss.peer.String()), slog.String("name", g.name)))
	}
	// Stat before Open: opening a FIFO or a device can block the
	// runner's only goroutine, and with it every session. (The Stat
	// after Open is the one that counts, for a file replaced between
	// the two; impl/rootfs refuses such files at open too.)
	if fi, err := fs.Stat(s.fsys, g.name); err != nil {
		s.c.notFound++
		s.reply(ss, StatusError, fmt.Sprintf("get %s: %s", g.name, fsError(err)))
		return out
	} else if !fi.Mode().IsRegular() {
		s.c.refused++
		s.reply(ss, StatusError, fmt.Sprintf("get %s: not a regular file", g.name))
		return out
	}
	f, err := s.fsys.Open(g.name)
	if err != nil {
		s.c.notFound++
		s.reply(ss, StatusError, fmt.Sprintf("get %s: %s", g.name, fsError(err)))
		return out
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		s.c.refused++
		s.reply(ss, StatusError, fmt.Sprintf("get %s: not a regular file", g.name))
		return out
	}
	x := &transfer{name: g.name, f: f, size: fi.Size(), mod: fi.ModTime(), h: sha256.New(), want: g.prefix}
	ss.xfer = x
	// Unsigned: an offset of 2^63 or more is no resume point, and as an
	// int64 it would be negative and skip the FILE frame. An offset
	// past the end restarts the file, as doc.go says.
	if g.offset > 0 && g.offset <= uint64(x.size) {
		x.verifyLeft = int64(g.offset)
		return out
	}
	return s.begin(ss, out)
}

// begin sends the FILE header of a transfer whose start is decided.
func (s *Server) begin(ss *session, out []spec.Output) []spec.Output {
	x := ss.xfer
	s.write(ss, appendFrame(nil, FrameFile, u64(uint64(x.size)), u64(uint64(x.start)), []byte(x.name)))
	return append(out, spec.Info("file: sending", slog.String("peer", ss.peer.String()), slog.String("name", x.name),
		slog.Int64("size", x.size), slog.Int64("from", x.start)))
}

// verify hashes up to HashStep bytes of each resumed transfer's prefix,
// then starts it from the client's offset if the prefix matches, or from
// the beginning if not.
func (s *Server) verify(out []spec.Output) []spec.Output {
	if s.scratch == nil {
		s.scratch = make([]byte, 256<<10)
	}
	for _, id := range s.order {
		ss := s.sessions[id]
		x := ss.xfer
		if x == nil || x.verifyLeft == 0 {
			continue
		}
		budget := int64(s.cfg.HashStep)
		for x.verifyLeft > 0 && budget > 0 {
			n := int(min(x.verifyLeft, budget, int64(len(s.scratch))))
			k, err := io.ReadFull(x.f, s.scratch[:n])
			x.h.Write(s.scratch[:k])
			x.pos += int64(k)
			x.verifyLeft -= int64(k)
			budget -= int64(k)
			if err != nil {
				s.fail(ss, "read failed while checking the resumed prefix")
				break
			}
		}
		if ss.xfer == nil || x.verifyLeft > 0 {
			continue
		}
		var sum [32]byte
		x.h.Sum(sum[:0])
		if sum == x.want {
			s.c.resumed++
			x.start = x.pos
		} else {
			// The client's partial file is not a prefix of ours: start over.
			s.c.restarted++
			x.f.Close()
			f, err := s.fsys.Open(x.name)
			if err != nil {
				s.fail(ss, "reopen failed")
				continue
			}
			fi, err := f.Stat()
			if err != nil {
				f.Close()
				s.fail(ss, "reopen failed")
				continue
			}
			x.f, x.pos, x.start, x.h = f, 0, 0, sha256.New()
			x.size, x.mod = fi.Size(), fi.ModTime()
		}
		out = s.begin(ss, out)
	}
	return out
}

// write queues b on session ss.
func (s *Server) write(ss *session, b []byte) {
	if s.ep.Write(ss.id, b) == nil {
		ss.written += int64(len(b))
	}
}

// budget is how many unacknowledged bytes session ss may hold while it
// is sent a file: two DATA frames, plus twice what its peer has
// acknowledged, up to SendBuffer. A client that takes what it is sent
// reaches SendBuffer after about as many bytes (a few round trips), as a
// congestion window grows in slow start; one that acknowledges nothing
// (an attacker holding sessions open with a GET each) holds two frames,
// not SendBuffer. Replies keep the whole SendBuffer: requests are
// pipelined, and MaxQueued of them wait behind the buffer.
func (s *Server) budget(ss *session) int {
	acked := ss.written - int64(s.ep.Buffered(ss.id))
	return int(min(int64(s.cfg.SendBuffer), 2*int64(FrameHeaderLen+s.cfg.Chunk)+2*acked))
}

// fill tops up a sending transfer's session with DATA frames, and ends
// the transfer with END once the whole file is queued; a session with
// no transfer answers its queued requests as far as it has room.
func (s *Server) fill(ss *session, out []spec.Output) []spec.Output {
	x := ss.xfer
	if x == nil {
		out, err := s.next(ss, out)
		if err != nil {
			out = s.abort(ss, err, out)
		}
		return out
	}
	if x.verifyLeft > 0 {
		return out
	}
	for x.pos < x.size {
		room := s.budget(ss) - s.ep.Buffered(ss.id)
		n := int(min(int64(s.cfg.Chunk), x.size-x.pos))
		if room < n {
			return out
		}
		buf := make([]byte, FrameHeaderLen+n)
		appendFrame(buf[:0], FrameData)
		buf[1], buf[2], buf[3], buf[4] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		if _, err := io.ReadFull(x.f, buf[FrameHeaderLen:]); err != nil {
			s.fail(ss, "read failed: "+fsError(err))
			return out
		}
		x.h.Write(buf[FrameHeaderLen:])
		x.pos += int64(n)
		s.c.bytes += uint64(n)
		s.write(ss, buf)
	}
	// The digest covers the bytes sent; they are one version of the
	// file only if it did not change meanwhile (a file rewritten in
	// place mid-transfer would give a mix of two that no one has).
	if fi, err := x.f.Stat(); err != nil || fi.Size() != x.size || !fi.ModTime().Equal(x.mod) {
		s.c.changed++
		s.fail(ss, "the file changed while it was being sent: get it again")
		return out
	}
	var sum [32]byte
	s.write(ss, appendFrame(nil, FrameEnd, x.h.Sum(sum[:0])))
	s.c.served++
	// The seed's server said 文件传输完成 ("file transfer complete"):
	// here the last byte and the digest are with the session, which
	// delivers them or ends in an error the log also says.
	out = append(out, spec.Info("file: sent", slog.String("peer", ss.peer.String()), slog.String("name", x.name), slog.Int64("bytes", x.size-x.start)),
		spec.Emit(spec.Event{Name: "served", Text: x.name, Value: Served{Peer: ss.peer.String(), Name: x.name, Size: x.size, From: x.start}}))
	s.endTransfer(ss)
	return s.fill(ss, out)
}

// Served is the value of a server's "served" event: a transfer is fully
// queued.
type Served struct {
	Peer string `json:"peer"`
	Name string `json:"name"`
	Size int64  `json:"size"`
	From int64  `json:"from"`
}

// fail ends a transfer with an error reply the client reads as the GET's
// failure.
func (s *Server) fail(ss *session, why string) {
	s.reply(ss, StatusError, fmt.Sprintf("get %s: %s", ss.xfer.name, why))
	s.endTransfer(ss)
}

func (s *Server) endTransfer(ss *session) {
	if ss == nil || ss.xfer == nil {
		return
	}
	ss.xfer.f.Close()
	ss.xfer = nil
}

// next answers queued requests in order, up to the next GET (which
// starts a transfer) and only while the session holds less than
// SendBuffer unacknowledged bytes: memory per session is bounded by
// SendBuffer plus one answer, and MaxQueued requests. The rest wait for
// acknowledgements (fill calls next at every step). A malformed request
// is returned as an error for the caller to abort the session with.
func (s *Server) next(ss *session, out []spec.Output) ([]spec.Output, error) {
	for len(ss.queue) > 0 && ss.xfer == nil && !ss.closing && s.ep.Buffered(ss.id) < s.cfg.SendBuffer {
		r := ss.queue[0]
		ss.queue[0] = request{}
		ss.queue = ss.queue[1:]
		var err error
		if out, err = s.request(ss, r, out); err != nil {
			return out, err
		}
	}
	if len(ss.queue) == 0 {
		ss.queue = nil // let the drained backing array go
	}
	s.maybeClose(ss)
	return out, nil
}
