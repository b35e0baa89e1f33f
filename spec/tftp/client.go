package tftp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
)

// ClientConfig configures a TFTP client. Zero fields take the defaults
// given.
type ClientConfig struct {
	// Server is where requests go (RFC 1350: port 69).
	Server netip.AddrPort `json:"server"`
	// Blksize, if set, is asked for with the blksize option (RFC 2348);
	// Windowsize, if above 1, with the windowsize option (RFC 7440).
	Blksize    int `json:"blksize,omitempty"`
	Windowsize int `json:"windowsize,omitempty"`
	// Timeout is the retransmission interval (default 1s); with
	// TimeoutOption it is also sent as the timeout option (RFC 2349,
	// whole seconds, at least 1).
	Timeout       time.Duration `json:"timeout,omitempty"`
	TimeoutOption bool          `json:"timeoutOption,omitempty"`
	// Retries is how many times a transfer resends without progress
	// before it gives up (default 5).
	Retries int `json:"retries,omitempty"`
	// NoTSize leaves out the tsize option (RFC 2349).
	NoTSize bool `json:"noTsize,omitempty"`
	// Dally is how long a download waits after its final ACK to answer
	// a retransmitted final block (default eight times Timeout, so the
	// sender's first three resends, one, three and seven timeouts later
	// with its backoff, are answered; negative: not at all).
	Dally time.Duration `json:"dally,omitempty"`
	// MaxSize refuses downloads larger than this many bytes (0: any).
	MaxSize int64 `json:"maxSize,omitempty"`
	// Files is a synthetic local directory for "put NAME LOCAL", used
	// when NewClient is given no file system.
	Files []file.SynthFile `json:"files,omitempty"`
}

func (c *ClientConfig) fill() {
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.Dally == 0 {
		c.Dally = 8 * c.Timeout
	}
	if c.Blksize != 0 {
		c.Blksize = min(max(c.Blksize, MinBlksize), MaxBlksize)
	}
	c.Windowsize = min(max(c.Windowsize, 1), maxWindow)
}

// FileStart is the value of a client's "file-start" event: the
// transfer's parameters, once the server's first answer fixed them.
type FileStart struct {
	Op         string `json:"op"` // "get" or "put"
	Name       string `json:"name"`
	Size       int64  `json:"size"` // -1: unknown (no tsize)
	Blksize    int    `json:"blksize"`
	Windowsize int    `json:"windowsize"`
	Server     string `json:"server"` // the server's transfer ID
}

// FileDone is the value of a client's "file-done" event.
type FileDone struct {
	Op    string `json:"op"`
	Name  string `json:"name"`
	Bytes int64  `json:"bytes"`
}

// FileError is the value of a client's "file-error" event. Remote says
// the server sent the error; Code is the TFTP error code sent or
// received.
type FileError struct {
	Op     string `json:"op"`
	Name   string `json:"name"`
	Code   int    `json:"code"`
	Err    string `json:"err"`
	Remote bool   `json:"remote,omitempty"`
}

// Client is the TFTP client machine. Commands: "get NAME" downloads
// NAME, reporting its bytes in "data" events; "put NAME [LOCAL]" uploads
// LOCAL from the client's file system, or the command's Data; "exit"
// exits once the queued transfers are done. Transfers run one at a time,
// each from a fresh port (its transfer ID).
type Client struct {
	cfg      ClientConfig
	fsys     fs.FS
	queue    []spec.Command
	cur      *clientXfer
	dallier  *clientXfer
	nextSock spec.Sock
	exiting  bool
	stopped  bool
	failures int
	lastErr  string
	pkt      Packet
	c        clientCounters
	st       xferStats
}

type clientCounters struct {
	transfers, done, failed, bytes, malformed uint64
}

type clientXfer struct {
	x       xfer
	write   bool
	asked   Options
	tsize   int64
	data    []byte // an upload's bytes, from the command
	srcFile fs.File
	done    bool
}

// NewClient returns a client; "put NAME LOCAL" reads LOCAL from fsys
// (nil: the synthetic files cfg.Files).
func NewClient(cfg ClientConfig, fsys fs.FS) *Client {
	cfg.fill()
	if fsys == nil {
		fsys = file.Synthetic(cfg.Files)
	}
	return &Client{cfg: cfg, fsys: fsys, nextSock: 1}
}

// Counters implements spec.Inspector.
func (c *Client) Counters() []spec.Counter {
	return append([]spec.Counter{
		{Name: "transfers", Value: c.c.transfers},
		{Name: "transfers_done", Value: c.c.done},
		{Name: "transfers_failed", Value: c.c.failed},
		{Name: "file_bytes", Value: c.c.bytes},
		{Name: "malformed", Value: c.c.malformed + c.st.malformed},
	}, c.st.counters()...)
}

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if c.stopped {
		return out
	}
	switch in.Kind {
	case spec.InCommand:
		switch in.Cmd.Name {
		case "get", "put":
			c.queue = append(c.queue, in.Cmd)
		case "exit":
			c.exiting = true
		default:
			return append(out, spec.Debug("tftp: unknown command", slog.String("name", in.Cmd.Name)))
		}
	case spec.InBound:
		if cx := c.cur; cx != nil && in.Sock == cx.x.sock {
			out = c.bound(now, cx, in, out)
		}
	case spec.InDatagram:
		switch {
		case c.cur != nil && in.Sock == c.cur.x.sock:
			out = c.datagram(now, c.cur, in, out)
		case c.dallier != nil && in.Sock == c.dallier.x.sock:
			out = c.datagram(now, c.dallier, in, out)
		}
	case spec.InTimer:
		switch {
		case c.cur != nil && in.Timer == c.cur.x.timer:
			out = c.timer(now, c.cur, out)
		case c.dallier != nil && in.Timer == c.dallier.x.timer:
			out = c.release(c.dallier, out)
		}
	case spec.InStop:
		c.stopped = true
		if cx := c.cur; cx != nil {
			if cx.x.ph != phaseBinding && cx.x.ph != phaseRequest {
				out = append(out, errorTo(cx.x.sock, cx.x.peer, ErrUndefined, "client shutting down"))
			}
			out = c.fail(cx, ErrUndefined, "stopped", false, out)
		}
		if c.dallier != nil {
			out = c.release(c.dallier, out)
		}
		return append(out, spec.Exit(""))
	}
	return c.next(now, out)
}

// next starts the next queued transfer, or exits when asked to and
// nothing is left.
func (c *Client) next(now spec.Time, out []spec.Output) []spec.Output {
	for c.cur == nil && len(c.queue) > 0 {
		cmd := c.queue[0]
		c.queue = c.queue[1:]
		out = c.start(now, cmd, out)
	}
	if c.cur != nil || !c.exiting || c.dallier != nil {
		return out
	}
	c.exiting = false
	switch {
	case c.failures == 1:
		return append(out, spec.Exit("tftp: "+c.lastErr))
	case c.failures > 1:
		return append(out, spec.Exit(fmt.Sprintf("tftp: %d transfers failed; the last: %s", c.failures, c.lastErr)))
	}
	return append(out, spec.Exit(""))
}

func (c *Client) start(now spec.Time, cmd spec.Command, out []spec.Output) []spec.Output {
	cx := &clientXfer{write: cmd.Name == "put", tsize: -1}
	c.c.transfers++
	name := ""
	if len(cmd.Args) > 0 {
		name = cmd.Args[0]
	}
	cx.x = xfer{name: name, peer: c.cfg.Server, blksize: DefaultBlksize, window: 1, timeout: c.cfg.Timeout,
		retries: c.cfg.Retries, firstRetries: -1, verified: true, started: now, st: &c.st}
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return c.fail(cx, ErrUndefined, "a file name without NUL bytes is needed", false, out)
	}
	if cx.write {
		var size int64
		var src io.ReaderAt
		if len(cmd.Args) > 1 {
			f, err := c.fsys.Open(cmd.Args[1])
			if err != nil {
				return c.fail(cx, ErrUndefined, "local file: "+err.Error(), false, out)
			}
			st, err := f.Stat()
			ra, ok := f.(io.ReaderAt)
			if err != nil || !ok || !st.Mode().IsRegular() {
				f.Close()
				return c.fail(cx, ErrUndefined, "local file: not a regular file", false, out)
			}
			cx.srcFile, src, size = f, ra, st.Size()
		} else {
			cx.data = cmd.Data
			src, size = bytes.NewReader(cmd.Data), int64(len(cmd.Data))
		}
		cx.x.startSending(src, size)
	}
	cx.x.sock = c.nextSock
	cx.x.timer = spec.Timer(cx.x.sock)
	c.nextSock++
	if c.nextSock == 0 {
		c.nextSock = 1
	}
	c.cur = cx
	bind := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
	if c.cfg.Server.Addr().Is6() {
		bind = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
	}
	return append(out, spec.Bind(cx.x.sock, spec.UDP, bind))
}

// request builds the RRQ or WRQ with the options the config asks for.
func (c *Client) request(cx *clientXfer) []byte {
	o := Options{TSize: -1}
	if c.cfg.Blksize > 0 {
		o.Blksize = c.cfg.Blksize
	}
	if c.cfg.Windowsize > 1 {
		o.Windowsize = c.cfg.Windowsize
	}
	if c.cfg.TimeoutOption {
		o.Timeout = min(max(int(c.cfg.Timeout/time.Second), 1), MaxTimeoutOption)
	}
	if !c.cfg.NoTSize {
		o.TSize = 0
		if cx.write {
			o.TSize = cx.x.size
		}
	}
	cx.asked = o
	p := Packet{Op: OpRRQ, Filename: cx.x.name, Mode: "octet", Options: o.List()}
	if cx.write {
		p.Op = OpWRQ
	}
	return p.Append(nil)
}

func (c *Client) bound(now spec.Time, cx *clientXfer, in spec.Input, out []spec.Output) []spec.Output {
	if in.Err != "" {
		return c.fail(cx, ErrUndefined, "bind: "+in.Err, false, out)
	}
	req := c.request(cx)
	if len(req) > MaxRequest {
		return c.fail(cx, ErrUndefined, fmt.Sprintf("the request is longer than %d bytes: shorten the name", MaxRequest), false, out)
	}
	cx.x.ph = phaseRequest
	cx.x.first = req
	out = append(out, spec.Send(cx.x.sock, cx.x.peer, req))
	return cx.x.arm(now, out)
}

func (c *Client) datagram(now spec.Time, cx *clientXfer, in spec.Input, out []spec.Output) []spec.Output {
	p := &c.pkt
	if err := Decode(in.Data, p); err != nil {
		c.c.malformed++
		return append(out, spec.Debug("tftp: malformed datagram", slog.String("from", in.Addr.String()), slog.String("err", err.Error())))
	}
	locked := cx.x.ph != phaseRequest
	if in.Addr.Addr().Unmap() != c.cfg.Server.Addr().Unmap() || (locked && in.Addr != cx.x.peer) {
		c.st.unknownTID++
		out = append(out, spec.Debug("tftp: datagram from an unknown transfer ID", slog.String("from", in.Addr.String())))
		if b, _ := fitError(ErrUnknownTID, "unknown transfer ID", len(in.Data)); b != nil && p.Op != OpERROR {
			out = append(out, spec.Send(cx.x.sock, in.Addr, b))
		}
		return out
	}
	if cx.done {
		if p.Op == OpDATA {
			out, _, _ = cx.x.onData(now, p.Block, p.Data, nil, out)
		}
		return out
	}
	if p.Op == OpERROR {
		return c.fail(cx, p.Code, p.Msg, true, out)
	}
	if !locked {
		// The first answer fixes the server's transfer ID and, with an
		// OACK, the options.
		cx.x.peer = in.Addr
		cx.x.first = nil
		switch {
		case p.Op == OpOACK:
			if err := c.negotiate(cx, p.Options); err != nil {
				code := ErrOptionsRefused
				if c.cfg.MaxSize > 0 && cx.tsize > c.cfg.MaxSize {
					code = ErrDiskFull
				}
				out = append(out, errorTo(cx.x.sock, cx.x.peer, code, err.Error()))
				return c.fail(cx, code, err.Error(), false, out)
			}
			out = c.started(cx, out)
			if !cx.write {
				cx.x.ph = phaseData
				out = cx.x.ack(out)
				return cx.x.arm(now, out)
			}
			return c.send(now, cx, out)
		case !cx.write && p.Op == OpDATA:
			cx.x.ph = phaseData
			out = c.started(cx, out)
		case cx.write && p.Op == OpACK && p.Block == 0:
			out = c.started(cx, out)
			return c.send(now, cx, out)
		default:
			out = append(out, errorTo(cx.x.sock, cx.x.peer, ErrIllegal, "unexpected "+p.Op.String()))
			return c.fail(cx, ErrIllegal, "server answered with "+p.Op.String(), false, out)
		}
	}
	switch {
	case !cx.write && p.Op == OpDATA:
		return c.receive(now, cx, p.Block, p.Data, out)
	case !cx.write && p.Op == OpOACK:
		if cx.x.got == 0 {
			return cx.x.ack(out) // our ACK 0 was lost
		}
		return out
	case cx.write && p.Op == OpACK:
		out, done, err := cx.x.onAck(now, p.Block, out)
		switch {
		case err != nil:
			out = append(out, errorTo(cx.x.sock, cx.x.peer, ErrUndefined, "cannot read the local file"))
			return c.fail(cx, ErrUndefined, "local file: "+err.Error(), false, out)
		case done:
			return c.succeed(cx, out)
		}
		return out
	case cx.write && p.Op == OpOACK:
		return out // a duplicate
	}
	out = append(out, errorTo(cx.x.sock, cx.x.peer, ErrIllegal, "unexpected "+p.Op.String()))
	return c.fail(cx, ErrIllegal, "server sent "+p.Op.String(), false, out)
}

func (c *Client) send(now spec.Time, cx *clientXfer, out []spec.Output) []spec.Output {
	out, err := cx.x.sendWindow(now, out)
	if err != nil {
		out = append(out, errorTo(cx.x.sock, cx.x.peer, ErrUndefined, "cannot read the local file"))
		return c.fail(cx, ErrUndefined, "local file: "+err.Error(), false, out)
	}
	return out
}

func (c *Client) receive(now spec.Time, cx *clientXfer, block uint16, data []byte, out []spec.Output) []spec.Output {
	var accepted [][]byte
	sink := func(b []byte) error {
		n := cx.x.bytes + int64(len(b))
		switch {
		case c.cfg.MaxSize > 0 && n > c.cfg.MaxSize:
			return fmt.Errorf("%w: more than %d bytes", errTooLarge, c.cfg.MaxSize)
		case cx.tsize >= 0 && n > cx.tsize:
			return fmt.Errorf("%w: more bytes than the %d tsize announced", errSizeMismatch, cx.tsize)
		}
		if len(b) > 0 {
			accepted = append(accepted, b)
		}
		return nil
	}
	out, res, err := cx.x.onData(now, block, data, sink, out)
	for _, b := range accepted {
		out = append(out, spec.Emit(spec.Event{Name: "data", Data: b}))
	}
	if err == nil && res == dataFinal && cx.tsize >= 0 && cx.x.bytes != cx.tsize {
		err = fmt.Errorf("%w: %d bytes, the tsize announced %d", errSizeMismatch, cx.x.bytes, cx.tsize)
	}
	if err != nil {
		code := ErrUndefined
		switch {
		case errors.Is(err, errOversized):
			code = ErrIllegal
		case errors.Is(err, errTooLarge):
			code = ErrDiskFull
		}
		out = append(out, errorTo(cx.x.sock, cx.x.peer, code, err.Error()))
		return c.fail(cx, code, err.Error(), false, out)
	}
	if res == dataFinal {
		out = c.succeed(cx, out)
		if c.cfg.Dally > 0 {
			cx.done = true
			out = cx.x.dally(now, c.cfg.Dally, out)
			if c.dallier != nil {
				out = c.release(c.dallier, out)
			}
			c.dallier = cx
			c.cur = nil // the next transfer may start
			return out
		}
		out = cx.x.ack(out)
		return c.release(cx, out)
	}
	return out
}

var errSizeMismatch = errors.New("size differs from the tsize option")

// negotiate checks an OACK against the request (RFC 2347: a server may
// acknowledge only options the client sent, blksize and windowsize no
// larger than asked, timeout exactly as asked) and adopts it.
func (c *Client) negotiate(cx *clientXfer, opts []Option) error {
	a := cx.asked
	seen := map[string]bool{}
	for _, o := range opts {
		name := strings.ToLower(o.Name)
		if seen[name] {
			return fmt.Errorf("option %s acknowledged twice", bare(name))
		}
		seen[name] = true
		v, err := strconv.ParseInt(o.Value, 10, 64)
		if err != nil {
			return fmt.Errorf("option %s has a bad value %q", bare(name), bare(o.Value))
		}
		switch {
		case name == OptBlksize && a.Blksize > 0 && v >= MinBlksize && v <= int64(a.Blksize):
			cx.x.blksize = int(v)
		case name == OptWindowsize && a.Windowsize > 0 && v >= 1 && v <= int64(a.Windowsize):
			cx.x.window = int(v)
		case name == OptTimeout && a.Timeout > 0 && v == int64(a.Timeout):
			cx.x.timeout = time.Duration(v) * time.Second
		case name == OptTSize && a.TSize >= 0 && !cx.write && v >= 0:
			cx.tsize = v
			if c.cfg.MaxSize > 0 && v > c.cfg.MaxSize {
				return fmt.Errorf("file of %d bytes is larger than the %d allowed", v, c.cfg.MaxSize)
			}
		case name == OptTSize && a.TSize >= 0 && cx.write && v == a.TSize:
		case name == OptBlksize && a.Blksize > 0, name == OptWindowsize && a.Windowsize > 0,
			name == OptTimeout && a.Timeout > 0, name == OptTSize && a.TSize >= 0:
			return fmt.Errorf("server acknowledged %s=%s, which is not what was asked for", bare(name), bare(o.Value))
		default:
			return fmt.Errorf("server acknowledged %s=%s, which was not asked for", bare(name), bare(o.Value))
		}
	}
	return nil
}

func (c *Client) started(cx *clientXfer, out []spec.Output) []spec.Output {
	size := cx.tsize
	if cx.write {
		size = cx.x.size
	}
	return append(out, spec.Emit(spec.Event{Name: "file-start", Text: cx.x.name, Value: FileStart{
		Op: cx.op(), Name: cx.x.name, Size: size, Blksize: cx.x.blksize, Windowsize: cx.x.window, Server: cx.x.peer.String()}}))
}

func (c *Client) timer(now spec.Time, cx *clientXfer, out []spec.Output) []spec.Output {
	out, err := cx.x.expire(now, out)
	if err != nil {
		msg := err.Error()
		if cx.x.ph == phaseRequest {
			msg = "no answer from " + c.cfg.Server.String() + " (" + msg + ")"
		}
		return c.fail(cx, ErrUndefined, msg, false, out)
	}
	return out
}

func (c *Client) succeed(cx *clientXfer, out []spec.Output) []spec.Output {
	c.c.done++
	n := cx.x.bytes
	if cx.write {
		n = cx.x.size
	}
	c.c.bytes += uint64(n)
	out = append(out, spec.Emit(spec.Event{Name: "file-done", Text: cx.x.name, Value: FileDone{Op: cx.op(), Name: cx.x.name, Bytes: n}}))
	if cx.write {
		return c.release(cx, out)
	}
	return out
}

// maxShown bounds how much of a server's error message the client shows.
const maxShown = 200

func (c *Client) fail(cx *clientXfer, code ErrCode, msg string, remote bool, out []spec.Output) []spec.Output {
	c.c.failed++
	c.failures++
	text := msg
	if remote {
		text = fmt.Sprintf("server: %s (error %d, %v)", printable(msg, maxShown), code, code)
		switch {
		case msg == "":
			// A server that may not send more than the request sends
			// the code alone.
			text = fmt.Sprintf("server: error %d, %v", code, code)
		case strings.EqualFold(msg, code.String()) || strings.HasPrefix(strings.ToLower(msg), code.String()):
			text = fmt.Sprintf("server: %s (error %d)", printable(msg, maxShown), code)
		}
	}
	c.lastErr = cx.op() + " " + bare(cx.x.name) + ": " + text
	out = append(out, spec.Emit(spec.Event{Name: "file-error", Text: text, Value: FileError{Op: cx.op(), Name: cx.x.name, Code: int(code), Err: msg, Remote: remote}}))
	return c.release(cx, out)
}

// release frees a transfer's socket and timer.
func (c *Client) release(cx *clientXfer, out []spec.Output) []spec.Output {
	if c.cur == cx {
		c.cur = nil
	}
	if c.dallier == cx {
		c.dallier = nil
	}
	if cx.srcFile != nil {
		cx.srcFile.Close()
		cx.srcFile = nil
	}
	if cx.x.sock == 0 {
		return out // never bound
	}
	return append(out, spec.CancelTimer(cx.x.timer), spec.Unbind(cx.x.sock))
}

func (cx *clientXfer) op() string {
	if cx.write {
		return "put"
	}
	return "get"
}
