package tftp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
)

// Op is a packet's opcode, the first two bytes of every TFTP packet.
type Op uint16

// Opcodes (RFC 1350 §5; OACK is RFC 2347's).
const (
	OpRRQ   Op = 1
	OpWRQ   Op = 2
	OpDATA  Op = 3
	OpACK   Op = 4
	OpERROR Op = 5
	OpOACK  Op = 6
)

func (o Op) String() string {
	switch o {
	case OpRRQ:
		return "RRQ"
	case OpWRQ:
		return "WRQ"
	case OpDATA:
		return "DATA"
	case OpACK:
		return "ACK"
	case OpERROR:
		return "ERROR"
	case OpOACK:
		return "OACK"
	}
	return fmt.Sprintf("op(%d)", uint16(o))
}

// ErrCode is an ERROR packet's code (RFC 1350 appendix; 8 is RFC 2347's).
type ErrCode uint16

// Error codes.
const (
	ErrUndefined       ErrCode = 0 // see the message
	ErrNotFound        ErrCode = 1 // file not found
	ErrAccess          ErrCode = 2 // access violation
	ErrDiskFull        ErrCode = 3 // disk full or allocation exceeded
	ErrIllegal         ErrCode = 4 // illegal TFTP operation
	ErrUnknownTID      ErrCode = 5 // unknown transfer ID
	ErrExists          ErrCode = 6 // file already exists
	ErrNoUser          ErrCode = 7 // no such user
	ErrOptionsRefused  ErrCode = 8 // option negotiation refused
	maxKnownErrCode            = ErrOptionsRefused
	unknownErrCodeName         = "unknown error code"
)

var errNames = [...]string{"not defined", "file not found", "access violation", "disk full or allocation exceeded",
	"illegal TFTP operation", "unknown transfer ID", "file already exists", "no such user", "option negotiation refused"}

func (c ErrCode) String() string {
	if c <= maxKnownErrCode {
		return errNames[c]
	}
	return unknownErrCodeName
}

// Sizes of the protocol.
const (
	// DefaultBlksize is RFC 1350's block size, used without a blksize
	// option.
	DefaultBlksize = 512
	// MinBlksize and MaxBlksize bound the blksize option (RFC 2348).
	MinBlksize = 8
	MaxBlksize = 65464
	// MaxWindowsize bounds the windowsize option (RFC 7440).
	MaxWindowsize = 65535
	// MaxTimeoutOption bounds the timeout option, in seconds (RFC 2349).
	MaxTimeoutOption = 255
	// MaxRequest is the longest request RFC 2347 allows: opcode, file
	// name, mode and options together.
	MaxRequest = 512
	// MaxOptions bounds the options a packet may carry; more is
	// malformed (RFC 2347 defines five, extensions a few more).
	MaxOptions = 16
	// headerLen is a DATA packet's header: opcode and block number.
	headerLen = 4
)

// Option is one RFC 2347 option as it appears on the wire.
type Option struct {
	Name, Value string
}

// Packet is one decoded TFTP packet. The fields each opcode uses:
//
//	RRQ, WRQ  Filename, Mode, Options
//	DATA      Block, Data
//	ACK       Block
//	ERROR     Code, Msg
//	OACK      Options
type Packet struct {
	Op       Op
	Filename string
	Mode     string
	Options  []Option
	Block    uint16
	// Data aliases the decoded bytes.
	Data []byte
	Code ErrCode
	Msg  string
}

// Decoding errors.
var (
	ErrShort     = errors.New("tftp: packet too short")
	ErrOpcode    = errors.New("tftp: unknown opcode")
	ErrMalformed = errors.New("tftp: malformed packet")
)

// Decode parses b into p, reusing p.Options' storage. DATA's Data aliases
// b. Strings must end in NUL, except an ERROR's message, which some
// implementations leave unterminated; a request needs a non-empty file
// name and mode; options come in name/value pairs with non-empty names,
// at most MaxOptions. ACK is exactly four bytes. Decode never panics and
// allocates at most the strings it returns.
func Decode(b []byte, p *Packet) error {
	opts := p.Options[:0]
	*p = Packet{}
	if len(b) < 2 {
		return ErrShort
	}
	p.Op = Op(binary.BigEndian.Uint16(b))
	rest := b[2:]
	switch p.Op {
	case OpRRQ, OpWRQ:
		var name, mode []byte
		var ok bool
		if name, rest, ok = cstring(rest); !ok || len(name) == 0 {
			return fmt.Errorf("%w: %v without a file name", ErrMalformed, p.Op)
		}
		if mode, rest, ok = cstring(rest); !ok || len(mode) == 0 {
			return fmt.Errorf("%w: %v without a mode", ErrMalformed, p.Op)
		}
		p.Filename, p.Mode = string(name), string(mode)
		var err error
		p.Options, err = decodeOptions(rest, opts)
		return err
	case OpOACK:
		var err error
		p.Options, err = decodeOptions(rest, opts)
		return err
	case OpDATA:
		if len(rest) < 2 {
			return ErrShort
		}
		p.Block = binary.BigEndian.Uint16(rest)
		p.Data = rest[2:]
	case OpACK:
		if len(rest) != 2 {
			return fmt.Errorf("%w: ACK of %d bytes", ErrMalformed, len(b))
		}
		p.Block = binary.BigEndian.Uint16(rest)
	case OpERROR:
		if len(rest) < 2 {
			return ErrShort
		}
		p.Code = ErrCode(binary.BigEndian.Uint16(rest))
		msg := rest[2:]
		if i := bytes.IndexByte(msg, 0); i >= 0 {
			msg = msg[:i]
		}
		p.Msg = string(msg)
	default:
		return fmt.Errorf("%w %d", ErrOpcode, uint16(p.Op))
	}
	return nil
}

// cstring splits a NUL-terminated string off b.
func cstring(b []byte) (s, rest []byte, ok bool) {
	i := bytes.IndexByte(b, 0)
	if i < 0 {
		return nil, b, false
	}
	return b[:i], b[i+1:], true
}

func decodeOptions(b []byte, opts []Option) ([]Option, error) {
	for len(b) > 0 {
		if len(opts) == MaxOptions {
			return nil, fmt.Errorf("%w: more than %d options", ErrMalformed, MaxOptions)
		}
		name, rest, ok := cstring(b)
		if !ok || len(name) == 0 {
			return nil, fmt.Errorf("%w: option without a name", ErrMalformed)
		}
		val, rest, ok := cstring(rest)
		if !ok {
			return nil, fmt.Errorf("%w: option %q without a value", ErrMalformed, name)
		}
		opts = append(opts, Option{Name: string(name), Value: string(val)})
		b = rest
	}
	return opts, nil
}

// Append encodes p onto b. Strings are written as they are: a NUL inside
// one would make the packet decode differently, so Valid checks first.
func (p Packet) Append(b []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(p.Op))
	switch p.Op {
	case OpRRQ, OpWRQ:
		b = append(append(b, p.Filename...), 0)
		b = append(append(b, p.Mode...), 0)
		b = appendOptions(b, p.Options)
	case OpOACK:
		b = appendOptions(b, p.Options)
	case OpDATA:
		b = binary.BigEndian.AppendUint16(b, p.Block)
		b = append(b, p.Data...)
	case OpACK:
		b = binary.BigEndian.AppendUint16(b, p.Block)
	case OpERROR:
		b = binary.BigEndian.AppendUint16(b, uint16(p.Code))
		b = append(append(b, p.Msg...), 0)
	}
	return b
}

func appendOptions(b []byte, opts []Option) []byte {
	for _, o := range opts {
		b = append(append(b, o.Name...), 0)
		b = append(append(b, o.Value...), 0)
	}
	return b
}

// Valid reports whether p encodes to bytes that decode back to p.
func (p Packet) Valid() error {
	nul := func(s string) bool { return strings.IndexByte(s, 0) >= 0 }
	switch p.Op {
	case OpRRQ, OpWRQ:
		if p.Filename == "" || p.Mode == "" || nul(p.Filename) || nul(p.Mode) {
			return fmt.Errorf("%w: request needs a file name and a mode without NUL", ErrMalformed)
		}
	case OpOACK, OpDATA, OpACK:
	case OpERROR:
		if nul(p.Msg) {
			return fmt.Errorf("%w: NUL in an error message", ErrMalformed)
		}
		return nil
	default:
		return fmt.Errorf("%w %d", ErrOpcode, uint16(p.Op))
	}
	if len(p.Options) > MaxOptions {
		return fmt.Errorf("%w: more than %d options", ErrMalformed, MaxOptions)
	}
	for _, o := range p.Options {
		if o.Name == "" || nul(o.Name) || nul(o.Value) {
			return fmt.Errorf("%w: option %q", ErrMalformed, o.Name)
		}
	}
	return nil
}

// AppendData encodes a DATA packet header for block onto b; the caller
// appends the payload.
func AppendData(b []byte, block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, uint16(OpDATA)), block)
}

// AppendAck encodes an ACK of block onto b.
func AppendAck(b []byte, block uint16) []byte {
	return binary.BigEndian.AppendUint16(binary.BigEndian.AppendUint16(b, uint16(OpACK)), block)
}

// AppendError encodes an ERROR onto b.
func AppendError(b []byte, code ErrCode, msg string) []byte {
	p := Packet{Op: OpERROR, Code: code, Msg: strings.ReplaceAll(msg, "\x00", "")}
	return p.Append(b)
}

// Option names (compared case-insensitively, RFC 2347).
const (
	OptBlksize    = "blksize"
	OptTimeout    = "timeout"
	OptTSize      = "tsize"
	OptWindowsize = "windowsize"
)

// Options are the values of the options this package knows, parsed from
// a request or an OACK. A zero field (TSize: negative) means the option
// is absent.
type Options struct {
	Blksize    int   // bytes per DATA, MinBlksize..MaxBlksize
	Windowsize int   // DATA blocks per ACK, 1..MaxWindowsize
	Timeout    int   // seconds, 1..MaxTimeoutOption
	TSize      int64 // the file's size in bytes; -1: absent
}

// ParseOptions reads the options it knows from opts, case-insensitively,
// keeping the first of duplicates. Unknown options are skipped and
// returned in unknown; a known option with a value out of its RFC's
// range is returned in bad (and left absent).
func ParseOptions(opts []Option) (o Options, unknown, bad []string) {
	o.TSize = -1
	seen := 0
	for _, op := range opts {
		name := strings.ToLower(op.Name)
		bit := 0
		switch name {
		case OptBlksize:
			bit = 1
		case OptTimeout:
			bit = 2
		case OptTSize:
			bit = 4
		case OptWindowsize:
			bit = 8
		default:
			unknown = append(unknown, op.Name)
			continue
		}
		if seen&bit != 0 {
			continue
		}
		seen |= bit
		v, err := strconv.ParseInt(op.Value, 10, 64)
		switch {
		case err != nil || !decimal(op.Value):
			bad = append(bad, op.Name)
		case bit == 1 && v >= MinBlksize && v <= MaxBlksize:
			o.Blksize = int(v)
		case bit == 2 && v >= 1 && v <= MaxTimeoutOption:
			o.Timeout = int(v)
		case bit == 4 && v >= 0:
			o.TSize = v
		case bit == 8 && v >= 1 && v <= MaxWindowsize:
			o.Windowsize = int(v)
		default:
			bad = append(bad, op.Name)
		}
	}
	return o, unknown, bad
}

// List returns o's present options in the order RFC 2347 examples use.
func (o Options) List() []Option {
	var l []Option
	if o.Blksize != 0 {
		l = append(l, Option{OptBlksize, strconv.Itoa(o.Blksize)})
	}
	if o.Windowsize != 0 {
		l = append(l, Option{OptWindowsize, strconv.Itoa(o.Windowsize)})
	}
	if o.Timeout != 0 {
		l = append(l, Option{OptTimeout, strconv.Itoa(o.Timeout)})
	}
	if o.TSize >= 0 {
		l = append(l, Option{OptTSize, strconv.FormatInt(o.TSize, 10)})
	}
	return l
}

// Describe summarises a datagram for timelines; it accepts any bytes.
func Describe(b []byte) string {
	var p Packet
	if err := Decode(b, &p); err != nil {
		return fmt.Sprintf("%d bytes, not TFTP (%v)", len(b), err)
	}
	switch p.Op {
	case OpRRQ, OpWRQ:
		return fmt.Sprintf("%v %s %s%s", p.Op, strconv.Quote(clip(p.Filename)), bare(p.Mode), describeOptions(p.Options))
	case OpOACK:
		return "OACK" + describeOptions(p.Options)
	case OpDATA:
		return fmt.Sprintf("DATA %d (%d bytes)", p.Block, len(p.Data))
	case OpACK:
		return fmt.Sprintf("ACK %d", p.Block)
	}
	return fmt.Sprintf("ERROR %d (%v) %s", p.Code, p.Code, strconv.Quote(clip(p.Msg)))
}

func describeOptions(opts []Option) string {
	var s strings.Builder
	for _, o := range opts {
		fmt.Fprintf(&s, " %s=%s", bare(o.Name), bare(o.Value))
	}
	return s.String()
}

// printable is a peer's message as text: cut at max bytes, with what a
// terminal must not see (control characters, invalid UTF-8) escaped, and
// nothing else: quotes stay quotes.
func printable(s string, max int) string {
	c, cut := spec.Clip(s, max)
	var b strings.Builder
	for i := 0; i < len(c); {
		r, n := utf8.DecodeRuneInString(c[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, c[i])
		case r == '\\' || !unicode.IsPrint(r):
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteRune(r)
		}
		i += n
	}
	if cut {
		b.WriteString("...")
	}
	return b.String()
}

// bare is s clipped and escaped to printable ASCII, without quotes.
func bare(s string) string {
	q := strconv.Quote(clip(s))
	return q[1 : len(q)-1]
}

func clip(s string) string {
	if c, cut := spec.Clip(s, 48); cut {
		return c + "..."
	}
	return s
}

// decimal reports whether v is digits only: ParseInt would also take a
// sign, which RFC 2347's values, "ASCII strings of digits", do not have.
func decimal(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return false
		}
	}
	return v != ""
}
