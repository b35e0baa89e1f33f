package p2p

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// Op is a message's operation code, the first token of its header line.
type Op uint8

// The seed's operation codes, then the extensions (sent only to a node
// that has said XHEL).
const (
	CHEL Op = iota + 1
	SHEL
	PHEL
	CLREQ
	CLRSP
	DREQ
	DATA
	CHECK
	ERROR
	XHEL
	HAVE
	DANY
	HREQ
	HASH
	DCAN
	PUSH
	TREE
	PARENT
	TSUB
	VOID
)

var opNames = [...]string{"", "CHEL", "SHEL", "PHEL", "CLREQ", "CLRSP", "DREQ", "DATA", "CHECK", "ERROR", "XHEL", "HAVE", "DANY", "HREQ", "HASH", "DCAN", "PUSH", "TREE", "PARENT", "TSUB", "VOID"}

func (o Op) String() string {
	if int(o) < len(opNames) && o != 0 {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

func lookupOp(b []byte) Op {
	for i, n := range opNames {
		if i > 0 && string(b) == n {
			return Op(i)
		}
	}
	return 0
}

// Extension reports whether o is one of netspec's extensions, which a node
// only sends to a peer that announced them with XHEL.
func (o Op) Extension() bool { return o >= XHEL }

// Error ids carried by ERROR. The first four are the seed's; BUSY and
// EXHAUSTED are extensions (sent only to XHEL peers).
const (
	ErrUnknownCommand    = "UNKNOWN_COMMAND"
	ErrOffsetOverflow    = "OFFSET_OVERFLOW"
	ErrChunkUndownloaded = "CHUNK_UNDOWNLOADED"
	ErrChecksumNotFit    = "CHECKSUM_NOT_FIT"
	ErrBusy              = "BUSY"
	ErrExhausted         = "EXHAUSTED"
)

// Version is the extension version netspec speaks in XHEL.
const Version = 1

// Msg is one decoded message. Which fields are set depends on Op.
type Msg struct {
	Op Op
	// Port: CHEL.
	Port uint16
	// FileSize and ChunkSize: SHEL.
	FileSize, ChunkSize int64
	// Peers: SHEL's body.
	Peers []netip.AddrPort
	// Chunks: CLRSP's body, HAVE's ids.
	Chunks []int
	// HaveHash: HAVE (or VOID) names the hash list.
	HaveHash bool
	// Chunk: DREQ.
	Chunk int
	// Offset and Size: DATA and PUSH (VOID: Offset); Size is also HASH's
	// count of digests.
	Offset int64
	Size   int
	// Data: DATA's and HASH's raw body. It is valid until the next call
	// to Parser.Next.
	Data []byte
	// MD5: CHECK.
	MD5 [16]byte
	// Err: ERROR's error id.
	Err string
	// Version, Root and Paced: XHEL (Root is empty if the sender has no
	// hash list; Paced says it paces uploads by rate and needs no
	// acknowledgments).
	Version int
	Root    []byte
	Paced   bool
	Push    bool
	// Tree: XHEL from a peer that can take a place in the server's
	// distribution trees.
	Tree bool
	// TreeID, TreeN and Trees: TREE (and TSUB's TreeID); Stripe: PARENT
	// and TSUB; Addr: PARENT.
	TreeID, TreeN, Trees int
	Stripe               int
	Addr                 netip.AddrPort
	// Skipped counts malformed entries dropped from a JSON body.
	Skipped int
}

// Side says which messages a parser expects: requests (the accepting end
// of a connection reads them) or responses (the dialing end reads them).
type Side uint8

// Parser sides.
const (
	Requests Side = iota + 1
	Responses
)

var accepts = [...][]Op{
	Requests:  {CHEL, CLREQ, DREQ, CHECK, XHEL, HAVE, DANY, HREQ, DCAN, TSUB},
	Responses: {SHEL, PHEL, CLRSP, DATA, CHECK, ERROR, XHEL, HAVE, HASH, PUSH, TREE, PARENT, VOID},
}

// Limits bound what a parser buffers, so a hostile peer cannot make it
// allocate without limit.
type Limits struct {
	// Line bounds a header line, terminator included (default 4096).
	Line int
	// JSON bounds a JSON body (default 8 MiB).
	JSON int
	// Data bounds a DATA body (default 64 MiB).
	Data int
	// Hashes bounds the digests of a HASH body (default 1<<20).
	Hashes int
}

func (l *Limits) fill() {
	if l.Line <= 0 {
		l.Line = 4096
	}
	if l.JSON <= 0 {
		l.JSON = 8 << 20
	}
	if l.Data <= 0 {
		l.Data = 64 << 20
	}
	if l.Hashes <= 0 {
		l.Hashes = 1 << 20
	}
}

// ErrMore says the parser needs more bytes.
var ErrMore = errors.New("p2p: need more bytes")

// ParseError is input the parser rejects. A non-fatal one (a bad or
// unknown header line) has been skipped and deserves ERROR
// UNKNOWN_COMMAND; after a fatal one the stream cannot be resynchronised
// and must be closed.
type ParseError struct {
	Fatal bool
	Msg   string
	Line  []byte // the offending line, clipped
}

func (e *ParseError) Error() string {
	return fmt.Sprintf("p2p: %s: %q", e.Msg, e.Line)
}

// Parser decodes the messages of one direction of a stream. Feed it bytes
// as they arrive, then call Next until it returns ErrMore.
type Parser struct {
	side Side
	lim  Limits
	buf  []byte // unconsumed input; may alias the caller's slices
	own  bool   // buf is ours to append to
	// body state: a DATA or HASH header waiting for its raw body, or a
	// SHEL or CLRSP header waiting for its JSON value.
	hdr    Msg
	inRaw  bool
	inJSON bool
	js     jscan // how far the JSON body has been scanned
	body   []byte
	// skip is what is left of the raw body of a message this side does
	// not take (a DATA sent to a server): its length is known, so the
	// stream keeps its framing and the body is dropped, not read as lines.
	skip    int64
	afterEr bool // the last message was ERROR: one detail line may follow
	flushed bool // take an unterminated line as complete
}

// NewParser returns a parser for side with limits lim (zero fields take
// defaults).
func NewParser(side Side, lim Limits) *Parser {
	lim.fill()
	return &Parser{side: side, lim: lim}
}

// SetLimits changes the limits, for messages not yet started.
func (p *Parser) SetLimits(lim Limits) {
	lim.fill()
	p.lim = lim
}

// Feed appends b to the input. b is not modified; the parser may keep
// referring to it until it is consumed.
func (p *Parser) Feed(b []byte) {
	if len(b) == 0 {
		return
	}
	p.flushed = false
	if len(p.buf) == 0 {
		p.buf, p.own = b, false
		return
	}
	if !p.own {
		nb := make([]byte, len(p.buf), len(p.buf)+len(b))
		copy(nb, p.buf)
		p.buf, p.own = nb, true
	}
	p.buf = append(p.buf, b...)
}

// Buffered is the number of input bytes not yet consumed.
func (p *Parser) Buffered() int { return len(p.buf) }

// Partial reports whether the parser holds the start of a header line
// with no terminator yet: the case Flush resolves.
func (p *Parser) Partial() bool {
	return !p.inRaw && !p.inJSON && p.skip == 0 && len(p.buf) > 0 && bytes.IndexByte(p.buf, '\n') < 0
}

// InBody reports whether the parser is in the middle of a message body.
func (p *Parser) InBody() bool { return p.inRaw || p.inJSON }

// Body returns the header of the DATA, PUSH or HASH whose body is still
// arriving, and the part of the body decoded so far (valid until the next
// call to Next); ok is false between messages. A relay uses it to pass a
// body on as it comes (see "Cut-through" in the package documentation).
func (p *Parser) Body() (hdr Msg, body []byte, ok bool) {
	if !p.inRaw {
		return Msg{}, nil, false
	}
	return p.hdr, p.body, true
}

// Flush makes the next call to Next take an unterminated header line as
// complete. Nodes call it when a peer has sent nothing more for a while:
// a client written from the seed's description may send "CLREQ" without
// CRLF and wait for the answer.
func (p *Parser) Flush() { p.flushed = true }

func (p *Parser) consume(n int) {
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf, p.own = nil, false
	}
}

func clipLine(b []byte) []byte {
	if len(b) > 64 {
		b = b[:64]
	}
	return append([]byte(nil), b...)
}

// Next returns the next complete message, ErrMore, or a *ParseError.
func (p *Parser) Next() (Msg, error) {
	for {
		if p.skip > 0 {
			k := min(p.skip, int64(len(p.buf)))
			p.consume(int(k))
			if p.skip -= k; p.skip > 0 {
				return Msg{}, ErrMore
			}
		}
		if p.inRaw {
			return p.rawBody()
		}
		if p.inJSON {
			return p.jsonBody()
		}
		line, n, err := p.line()
		if err != nil {
			return Msg{}, err
		}
		p.consume(n)
		if len(line) == 0 {
			continue // empty lines (a stray CRLF after a body) are ignored
		}
		m, perr := p.header(line)
		if perr != nil {
			if p.afterEr && perr.Msg == "unknown command" {
				// ERROR's optional detail line.
				p.afterEr = false
				continue
			}
			p.afterEr = false
			return Msg{}, perr
		}
		p.afterEr = m.Op == ERROR
		switch m.Op {
		case DATA, HASH, PUSH:
			p.hdr, p.inRaw = m, true
			p.body = p.body[:0]
		case SHEL, CLRSP:
			p.hdr, p.inJSON, p.js = m, true, jscan{}
		default:
			return m, nil
		}
	}
}

// line returns the next header line without its terminator, and how many
// bytes it took.
func (p *Parser) line() ([]byte, int, error) {
	i := bytes.IndexByte(p.buf, '\n')
	if i < 0 {
		if len(p.buf) >= p.lim.Line {
			l := clipLine(p.buf)
			p.consume(len(p.buf))
			return nil, 0, &ParseError{Fatal: true, Msg: "header line too long", Line: l}
		}
		if p.flushed && len(p.buf) > 0 {
			p.flushed = false
			l := bytes.TrimRight(p.buf, "\r \t")
			return l, len(p.buf), nil
		}
		return nil, 0, ErrMore
	}
	if i+1 > p.lim.Line {
		l := clipLine(p.buf[:i])
		p.consume(i + 1)
		return nil, 0, &ParseError{Fatal: true, Msg: "header line too long", Line: l}
	}
	return bytes.TrimRight(p.buf[:i], "\r \t"), i + 1, nil
}

// fields splits a header line on runs of spaces and tabs, into at most
// len(dst) fields; it returns the number found, and -1 if there were more.
func fields(line []byte, dst [][]byte) int {
	n := 0
	for i := 0; i < len(line); {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			break
		}
		j := i
		for j < len(line) && line[j] != ' ' && line[j] != '\t' {
			j++
		}
		if n == len(dst) {
			return -1
		}
		dst[n] = line[i:j]
		n++
		i = j
	}
	return n
}

// maxInt is the largest decimal argument accepted, 2^53-1 (the doc's
// "value < 2^53"), so values stay exact anywhere, JSON included.
const maxInt = 1<<53 - 1

func atoi(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 16 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	return v, v <= maxInt
}

func (p *Parser) header(line []byte) (Msg, *ParseError) {
	bad := func(why string) (Msg, *ParseError) {
		return Msg{}, &ParseError{Msg: why, Line: clipLine(line)}
	}
	var f [8][]byte
	n := fields(line, f[:])
	op := Op(0)
	if n != 0 {
		op = lookupOp(f[0])
	}
	if op == HAVE {
		return p.have(line)
	}
	if op == 0 || n < 0 {
		return bad("unknown command")
	}
	ok := false
	for _, a := range accepts[p.side] {
		ok = ok || a == op
	}
	if !ok {
		return p.unexpected(op, f[1:n], line)
	}
	args := f[1:n]
	m := Msg{Op: op}
	want := func(k int) bool { return len(args) == k }
	switch op {
	case CHEL:
		v, good := int64(0), want(1)
		if good {
			v, good = atoi(args[0])
		}
		if !good || v == 0 || v > 65535 {
			return bad("unknown command")
		}
		m.Port = uint16(v)
	case SHEL:
		if !want(2) {
			return bad("unknown command")
		}
		var g1, g2 bool
		m.FileSize, g1 = atoi(args[0])
		m.ChunkSize, g2 = atoi(args[1])
		if !g1 || !g2 || m.ChunkSize == 0 || m.ChunkSize > int64(p.lim.Data) {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad SHEL geometry", Line: clipLine(line)}
		}
	case PHEL, CLREQ, CLRSP, DANY, HREQ:
		if !want(0) {
			return bad("unknown command")
		}
	case VOID:
		if !want(1) {
			return bad("unknown command")
		}
		if string(args[0]) == "HASH" {
			m.HaveHash = true
			break
		}
		v, good := atoi(args[0])
		if !good {
			return bad("unknown command")
		}
		m.Offset = v
	case DCAN:
		m.Chunk = -1
		if len(args) == 1 {
			v, good := atoi(args[0])
			if !good {
				return bad("unknown command")
			}
			m.Chunk = int(v)
		} else if len(args) != 0 {
			return bad("unknown command")
		}
	case DREQ:
		if !want(1) {
			return bad("unknown command")
		}
		v, good := atoi(args[0])
		if !good {
			return bad("unknown command")
		}
		m.Chunk = int(v)
	case DATA, PUSH:
		if !want(2) {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad DATA header", Line: clipLine(line)}
		}
		off, g1 := atoi(args[0])
		size, g2 := atoi(args[1])
		if !g1 || !g2 || size > int64(p.lim.Data) {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad DATA header", Line: clipLine(line)}
		}
		m.Offset, m.Size = off, int(size)
	case HASH:
		if !want(1) {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad HASH header", Line: clipLine(line)}
		}
		c, good := atoi(args[0])
		if !good || c > int64(p.lim.Hashes) {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad HASH header", Line: clipLine(line)}
		}
		m.Size = int(c)
	case CHECK:
		if !want(1) || len(args[0]) != 32 {
			return bad("unknown command")
		}
		if _, err := hex.Decode(m.MD5[:], args[0]); err != nil {
			return bad("unknown command")
		}
	case ERROR:
		if !want(1) {
			return bad("unknown command")
		}
		m.Err = string(args[0])
	case XHEL:
		if len(args) < 1 {
			return bad("unknown command")
		}
		v, good := atoi(args[0])
		if !good || v < 1 {
			return bad("unknown command")
		}
		m.Version = int(v)
		for _, a := range args[1:] {
			switch {
			case len(a) == 64 && m.Root == nil:
				root := make([]byte, 32)
				if _, err := hex.Decode(root, a); err == nil {
					m.Root = root
				}
			case string(a) == "rate":
				m.Paced = true
			case string(a) == "push":
				m.Push = true
			case string(a) == "tree":
				m.Tree = true
			}
		}
	case TREE:
		if !want(3) {
			return bad("unknown command")
		}
		id, g1 := atoi(args[0])
		n, g2 := atoi(args[1])
		d, g3 := atoi(args[2])
		if !g1 || !g2 || !g3 || !(tree{id: int(id), n: int(n), d: int(d)}).valid() {
			return bad("unknown command")
		}
		m.TreeID, m.TreeN, m.Trees = int(id), int(n), int(d)
	case PARENT:
		if !want(3) {
			return bad("unknown command")
		}
		st, g1 := atoi(args[0])
		port, g2 := atoi(args[2])
		a, err := netip.ParseAddr(string(args[1]))
		if !g1 || !g2 || err != nil || st >= maxTrees || port == 0 || port > 65535 {
			return bad("unknown command")
		}
		m.Stripe, m.Addr = int(st), netip.AddrPortFrom(a.Unmap(), uint16(port))
	case TSUB:
		if !want(2) {
			return bad("unknown command")
		}
		id, g1 := atoi(args[0])
		st, g2 := atoi(args[1])
		if !g1 || !g2 || id == 0 || st >= maxTrees {
			return bad("unknown command")
		}
		m.TreeID, m.Stripe = int(id), int(st)
	}
	return m, nil
}

// maxSkip bounds the body of a message that is skipped (the default
// bound of a DATA body): skipping allocates nothing, so it need not be
// the chunk size, and a side that takes no bodies (Limits.Data 1) still
// keeps its framing when sent one.
const maxSkip = 64 << 20

// unexpected answers a message this side never takes. One with a raw
// body whose length its header gives is an error whose body is skipped;
// one whose body is longer than maxSkip loses the stream's framing.
func (p *Parser) unexpected(op Op, args [][]byte, line []byte) (Msg, *ParseError) {
	var size int64
	switch op {
	case DATA, PUSH:
		if len(args) != 2 {
			return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
		}
		_, g1 := atoi(args[0])
		n, g2 := atoi(args[1])
		if !g1 || !g2 || n > maxSkip {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad " + op.String() + " header", Line: clipLine(line)}
		}
		size = n
	case HASH:
		if len(args) != 1 {
			return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
		}
		n, good := atoi(args[0])
		if !good || n > maxSkip/32 {
			return Msg{}, &ParseError{Fatal: true, Msg: "bad HASH header", Line: clipLine(line)}
		}
		size = n * 32
	}
	p.skip = size
	return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
}

// have parses "HAVE [HASH] id...", which may be longer than the field
// array.
func (p *Parser) have(line []byte) (Msg, *ParseError) {
	m := Msg{Op: HAVE}
	rest := line[4:]
	if len(rest) > 0 && rest[0] != ' ' && rest[0] != '\t' {
		return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
	}
	for len(rest) > 0 {
		var tok []byte
		rest = bytes.TrimLeft(rest, " \t")
		if len(rest) == 0 {
			break
		}
		if i := bytes.IndexAny(rest, " \t"); i >= 0 {
			tok, rest = rest[:i], rest[i:]
		} else {
			tok, rest = rest, nil
		}
		if string(tok) == "HASH" {
			m.HaveHash = true
			continue
		}
		v, ok := atoi(tok)
		if !ok {
			return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
		}
		m.Chunks = append(m.Chunks, int(v))
	}
	if len(m.Chunks) == 0 && !m.HaveHash {
		return Msg{}, &ParseError{Msg: "unknown command", Line: clipLine(line)}
	}
	return m, nil
}

func (p *Parser) rawBody() (Msg, error) {
	want := p.hdr.Size
	if p.hdr.Op == HASH {
		want *= 32
	}
	need := want - len(p.body)
	if need > 0 {
		k := min(need, len(p.buf))
		if len(p.body) == 0 && k == need {
			// The whole body is in one input slice: no copy.
			m := p.hdr
			m.Data = p.buf[:k:k]
			p.consume(k)
			p.inRaw = false
			return m, nil
		}
		if cap(p.body) < want {
			nb := make([]byte, len(p.body), want)
			copy(nb, p.body)
			p.body = nb
		}
		p.body = append(p.body, p.buf[:k]...)
		p.consume(k)
		if len(p.body) < want {
			return Msg{}, ErrMore
		}
	}
	m := p.hdr
	m.Data = p.body
	p.inRaw = false
	return m, nil
}

// jscan is how far the scan of a JSON body has come. A body arrives a
// segment at a time, and Next is called after each: rescanning it from
// its first byte every time would cost time quadratic in its length (a
// 12 MB CLRSP in 1460-byte segments: hours), so the scan resumes where
// it stopped.
type jscan struct {
	pos   int  // bytes of the body scanned so far
	open  bool // the opening bracket has been seen
	depth int
	str   bool // inside a string
	esc   bool // after a backslash inside a string
}

// end scans b, the body so far (its first s.pos bytes already scanned),
// for the end of the JSON array at its start (after optional
// whitespace): it returns the index just past the closing bracket, 0 if
// b holds only part of the array, or -1 if b does not start with one.
func (s *jscan) end(b []byte) int {
	i := s.pos
	if !s.open {
		for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n') {
			i++
		}
		s.pos = i
		if i == len(b) {
			return 0
		}
		if b[i] != '[' {
			return -1
		}
		s.open = true
	}
	for ; i < len(b); i++ {
		c := b[i]
		switch {
		case s.str:
			switch {
			case s.esc:
				s.esc = false
			case c == '\\':
				s.esc = true
			case c == '"':
				s.str = false
			}
		case c == '"':
			s.str = true
		case c == '[' || c == '{':
			s.depth++
		case c == ']' || c == '}':
			s.depth--
			if s.depth == 0 {
				return i + 1
			}
		}
	}
	s.pos = i
	return 0
}

func (p *Parser) jsonBody() (Msg, error) {
	end := p.js.end(p.buf)
	switch {
	case end < 0:
		l := clipLine(p.buf)
		p.consume(len(p.buf))
		p.inJSON = false
		return Msg{}, &ParseError{Fatal: true, Msg: p.hdr.Op.String() + " body is not a JSON array", Line: l}
	case end == 0:
		if len(p.buf) > p.lim.JSON {
			l := clipLine(p.buf)
			p.consume(len(p.buf))
			p.inJSON = false
			return Msg{}, &ParseError{Fatal: true, Msg: "JSON body too long", Line: l}
		}
		return Msg{}, ErrMore
	}
	if end > p.lim.JSON {
		l := clipLine(p.buf)
		p.consume(end)
		p.inJSON = false
		return Msg{}, &ParseError{Fatal: true, Msg: "JSON body too long", Line: l}
	}
	raw := p.buf[:end]
	m := p.hdr
	p.inJSON = false
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		l := clipLine(raw)
		p.consume(end)
		return Msg{}, &ParseError{Fatal: true, Msg: m.Op.String() + " body: " + err.Error(), Line: l}
	}
	for _, it := range items {
		if m.Op == SHEL {
			if ap, ok := decodePeer(it); ok {
				m.Peers = append(m.Peers, ap)
			} else {
				m.Skipped++
			}
			continue
		}
		v, err := strconv.ParseInt(string(bytes.TrimSpace(it)), 10, 64)
		if err != nil || v < 0 || v > maxInt {
			m.Skipped++
			continue
		}
		m.Chunks = append(m.Chunks, int(v))
	}
	p.consume(end)
	// The body's CRLF, if the sender wrote one, is an empty line that the
	// header reader skips.
	return m, nil
}

// decodePeer accepts ["ip", port] (the seed's (IP, PORT) tuple as Python's
// json writes it) and "ip:port".
func decodePeer(raw json.RawMessage) (netip.AddrPort, bool) {
	var pair []json.RawMessage
	if err := json.Unmarshal(raw, &pair); err == nil {
		if len(pair) != 2 {
			return netip.AddrPort{}, false
		}
		var ip string
		var port float64
		if json.Unmarshal(pair[0], &ip) != nil || json.Unmarshal(pair[1], &port) != nil {
			return netip.AddrPort{}, false
		}
		a, err := netip.ParseAddr(ip)
		if err != nil || port < 1 || port > 65535 || port != float64(int(port)) {
			return netip.AddrPort{}, false
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
			return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
		}
	}
	return netip.AddrPort{}, false
}
