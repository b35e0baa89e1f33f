package file

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"fmt"
	"hash"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// ClientConfig configures a file client.
type ClientConfig struct {
	// Server is the server's address.
	Server netip.AddrPort `json:"server"`
	// Session tunes the session layer; give every client its own Seed.
	Session rudp.Config `json:"session"`
}

// Client is the file client machine: it opens one session to the server
// at start, turns commands into requests and answers into events, and
// verifies every file it receives against the server's SHA-256.
//
// Commands: "help", "time", "about", "chat", "exitchat", "ls" [DIR],
// "get" NAME [OFFSET] (Data: the SHA-256 state of the first OFFSET bytes
// already held, as crypto/sha256's MarshalBinary gives it), "say" (Data:
// a chat line), "exit".
//
// Events: "connected"; "reply" (Text; Value Reply); "chat" (Text from
// the console); "file-start" (Value FileStart); "data" (Data: the next
// bytes of the file, in order); "file-done" (Value FileDone: the bytes
// matched the server's SHA-256); "file-error" (Text: why the GET failed;
// Value FileError, Corrupt if the bytes did not match); "closed"
// (Text: why the session ended, empty if cleanly). The machine exits when
// the session ends: cleanly after "exit", else with the reason.
type Client struct {
	cfg     ClientConfig
	ep      *rudp.Endpoint
	conn    rudp.ConnID
	bound   bool
	p       parser
	pending []pendingReq
	xfer    *incoming
	exiting bool
	early   []spec.Command // commands before the socket is bound
	done    bool
	exitMsg string // set with done: the machine exits after the step's sends
	c       clientCounters
}

type clientCounters struct{ requests, files, failed, badFrames uint64 }

type pendingReq struct {
	get    bool
	name   string
	offset int64
	state  []byte
}

type incoming struct {
	name         string
	size, offset int64
	got          int64 // bytes since offset
	h            hash.Hash
}

// Reply is the value of a "reply" event.
type Reply struct {
	OK bool `json:"ok"`
}

// FileStart is the value of a "file-start" event: data events follow
// with the bytes from Offset to Size (Offset is the resume point the
// server accepted, or 0 if it did not).
type FileStart struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
}

// FileError is the value of a "file-error" event. Corrupt says the bytes
// received do not hash to what the server sent: none of them, resumed
// prefix included, may be kept.
type FileError struct {
	Name    string `json:"name"`
	Corrupt bool   `json:"corrupt,omitempty"`
}

// FileDone is the value of a "file-done" event.
type FileDone struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	Offset int64  `json:"offset"`
	SHA256 string `json:"sha256"`
}

// NewClient returns a client for cfg.
func NewClient(cfg ClientConfig) *Client {
	return &Client{cfg: cfg, ep: rudp.NewEndpoint(cfg.Session, sockUDP, sessionTimers, false), p: parser{accept: serverSends}}
}

// Counters implements spec.Inspector.
func (c *Client) Counters() []spec.Counter {
	return append([]spec.Counter{
		{Name: "requests", Value: c.c.requests},
		{Name: "files_received", Value: c.c.files},
		{Name: "files_failed", Value: c.c.failed},
		{Name: "malformed_frames", Value: c.c.badFrames},
	}, c.ep.Counters()...)
}

// Stats returns the session's statistics.
func (c *Client) Stats() (rudp.Stats, bool) { return c.ep.Stats(c.conn) }

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if c.done {
		return out
	}
	switch in.Kind {
	case spec.InStart:
		a := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if c.cfg.Server.Addr().Is6() && !c.cfg.Server.Addr().Is4In6() {
			a = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
		return append(out, spec.Bind(sockUDP, spec.UDP, a))
	case spec.InBound:
		if in.Err != "" {
			c.done = true
			return append(out, spec.Exit("file: bind: "+in.Err))
		}
		c.bound = true
		c.conn = c.ep.Dial(now, c.cfg.Server)
		for _, cmd := range c.early {
			out = c.command(cmd, out)
		}
		c.early = nil
	case spec.InCommand:
		if !c.bound {
			c.early = append(c.early, in.Cmd)
			return out
		}
		out = c.command(in.Cmd, out)
	case spec.InStop:
		c.done = true
		if c.bound {
			c.ep.Abort(c.conn, "stopped")
			out = c.ep.Flush(now, out)
		}
		return append(out, spec.Exit(""))
	}
	out, _ = c.ep.Handle(now, in, out)
	for ev, ok := c.ep.Next(); ok && !c.done; ev, ok = c.ep.Next() {
		out = c.event(ev, out)
	}
	out = c.ep.Flush(now, out)
	if c.done {
		// After the flush: the acknowledgement of the server's FIN must
		// leave before the runner stops us.
		out = append(out, spec.Exit(c.exitMsg))
	}
	return out
}

func (c *Client) command(cmd spec.Command, out []spec.Output) []spec.Output {
	if c.exiting {
		return append(out, spec.Emit(spec.Event{Name: "reply", Text: cmd.Name + ": the session is closing", Value: Reply{}}))
	}
	switch cmd.Name {
	case "help", "time", "about", "chat", "exitchat", "ls":
		line := strings.TrimSpace(cmd.Name + " " + strings.Join(cmd.Args, " "))
		c.send(appendFrame(nil, FrameCmd, []byte(line)))
		c.pending = append(c.pending, pendingReq{name: cmd.Name})
	case "get":
		if len(cmd.Args) < 1 || len(cmd.Args) > 2 || len(cmd.Args[0]) > MaxName || cmd.Args[0] == "" {
			return append(out, spec.Emit(spec.Event{Name: "file-error", Text: "get: want NAME [OFFSET]", Value: FileError{}}))
		}
		r := pendingReq{get: true, name: cmd.Args[0]}
		var prefix [32]byte
		if len(cmd.Args) == 2 {
			off, err := strconv.ParseInt(cmd.Args[1], 10, 64)
			h := sha256.New()
			if err == nil && off > 0 && h.(encoding.BinaryUnmarshaler).UnmarshalBinary(cmd.Data) == nil {
				r.offset, r.state = off, cmd.Data
				h.Sum(prefix[:0])
			}
		}
		c.send(appendFrame(nil, FrameGet, u64(uint64(r.offset)), prefix[:], []byte(r.name)))
		c.pending = append(c.pending, r)
	case "say":
		text := cmd.Data
		if len(text) == 0 {
			text = []byte(strings.Join(cmd.Args, " "))
		}
		if len(text) > MaxControl {
			text = text[:MaxControl]
		}
		c.send(appendFrame(nil, FrameSay, text))
		return out
	case "exit":
		c.exiting = true
		c.ep.Close(c.conn)
		return out
	default:
		return append(out, spec.Emit(spec.Event{Name: "reply", Text: fmt.Sprintf("unknown command %q (try help)", cmd.Name), Value: Reply{}}))
	}
	c.c.requests++
	return out
}

func (c *Client) send(frame []byte) { _ = c.ep.Write(c.conn, frame) }

func (c *Client) event(ev rudp.Event, out []spec.Output) []spec.Output {
	switch ev.Kind {
	case rudp.Connected:
		return append(out, spec.Emit(spec.Event{Name: "connected", Text: ev.Peer.String()}))
	case rudp.Data:
		h := clientHandler{c: c, out: out}
		if err := c.p.feed(ev.Data, &h); err != nil {
			c.c.badFrames++
			h.out = append(h.out, spec.Debug("file: bad answer stream", slog.String("err", err.Error())))
			c.ep.Abort(c.conn, "protocol error: "+err.Error())
		}
		return h.out
	case rudp.PeerClosed:
		if !c.exiting {
			c.ep.Close(c.conn) // the server is done with us
		}
	case rudp.Closed:
		c.done = true
		why := ev.Err
		if why == "" && !c.exiting {
			why = "the server closed the session"
		}
		if why != "" && c.xfer == nil && len(c.pending) == 0 && c.exiting {
			// Everything asked for was answered; a lost final handshake
			// packet does not make the run a failure.
			why = ""
		}
		for _, r := range c.pending {
			ev := spec.Event{Name: "reply", Text: "session ended before the answer: " + orClean(why), Value: Reply{}}
			if r.get {
				ev.Name, ev.Value = "file-error", FileError{Name: r.name}
				c.c.failed++
			}
			out = append(out, spec.Emit(ev))
		}
		c.pending, c.xfer = nil, nil
		out = append(out, spec.Emit(spec.Event{Name: "closed", Text: why}))
		if why != "" {
			c.exitMsg = "file: " + why
		}
		return out
	}
	return out
}

func orClean(s string) string {
	if s == "" {
		return "closed"
	}
	return s
}

type clientHandler struct {
	c   *Client
	out []spec.Output
}

func (h *clientHandler) head(get bool) (*pendingReq, error) {
	if len(h.c.pending) == 0 || h.c.pending[0].get != get {
		return nil, fmt.Errorf("%w: an answer to no request", ErrFrame)
	}
	return &h.c.pending[0], nil
}

func (h *clientHandler) pop() { h.c.pending = h.c.pending[1:] }

func (h *clientHandler) frame(typ byte, body []byte) error {
	c := h.c
	switch typ {
	case FrameChat:
		h.out = append(h.out, spec.Emit(spec.Event{Name: "chat", Text: string(body)}))
	case FrameReply:
		if len(body) < 1 || body[0] > StatusError {
			return fmt.Errorf("%w: REPLY without a status", ErrFrame)
		}
		if len(c.pending) == 0 {
			return fmt.Errorf("%w: a reply to no request", ErrFrame)
		}
		r := c.pending[0]
		h.pop()
		if r.get {
			c.xfer = nil
			c.c.failed++
			h.out = append(h.out, spec.Emit(spec.Event{Name: "file-error", Text: string(body[1:]), Value: FileError{Name: r.name}}))
			return nil
		}
		h.out = append(h.out, spec.Emit(spec.Event{Name: "reply", Text: string(body[1:]), Value: Reply{OK: body[0] == StatusOK}}))
	case FrameFile:
		r, err := h.head(true)
		if err != nil || c.xfer != nil {
			return fmt.Errorf("%w: FILE outside a GET", ErrFrame)
		}
		fh, err := decodeFile(body)
		if err != nil {
			return err
		}
		if fh.name != r.name || (fh.offset != 0 && int64(fh.offset) != r.offset) {
			return fmt.Errorf("%w: FILE for %q from %d, asked for %q from %d", ErrFrame, fh.name, fh.offset, r.name, r.offset)
		}
		x := &incoming{name: r.name, size: int64(fh.size), offset: int64(fh.offset), h: sha256.New()}
		if x.offset > 0 {
			if err := x.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(r.state); err != nil {
				return fmt.Errorf("file: resume state: %w", err)
			}
		}
		c.xfer = x
		h.out = append(h.out, spec.Emit(spec.Event{Name: "file-start", Text: x.name, Value: FileStart{Name: x.name, Size: x.size, Offset: x.offset}}))
	case FrameEnd:
		x := c.xfer
		if x == nil || len(body) != sha256.Size {
			return fmt.Errorf("%w: END outside a transfer", ErrFrame)
		}
		if x.offset+x.got != x.size {
			return fmt.Errorf("%w: END after %d of %d bytes", ErrFrame, x.offset+x.got, x.size)
		}
		c.xfer = nil
		h.pop()
		var sum [32]byte
		x.h.Sum(sum[:0])
		if string(sum[:]) != string(body) {
			c.c.failed++
			h.out = append(h.out, spec.Emit(spec.Event{Name: "file-error", Text: fmt.Sprintf("get %s: SHA-256 mismatch: received %x, server says %x", x.name, sum, body),
				Value: FileError{Name: x.name, Corrupt: true}}))
			return nil
		}
		c.c.files++
		h.out = append(h.out, spec.Emit(spec.Event{Name: "file-done", Text: x.name, Value: FileDone{Name: x.name, Size: x.size, Offset: x.offset, SHA256: hex.EncodeToString(sum[:])}}))
	default:
		return fmt.Errorf("%w: type 0x%02x from the server", ErrFrame, typ)
	}
	return nil
}

func (h *clientHandler) dataBegin(n int) error {
	x := h.c.xfer
	if x == nil {
		return fmt.Errorf("%w: DATA outside a transfer", ErrFrame)
	}
	if int64(n) > x.size-x.offset-x.got {
		return fmt.Errorf("%w: DATA beyond the announced size", ErrFrame)
	}
	return nil
}

func (h *clientHandler) data(b []byte) error {
	x := h.c.xfer
	x.h.Write(b)
	x.got += int64(len(b))
	h.out = append(h.out, spec.Emit(spec.Event{Name: "data", Data: b}))
	return nil
}
