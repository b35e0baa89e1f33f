package file

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Frame types; doc.go gives the bodies.
const (
	FrameCmd   byte = 0x01 // client: a command line
	FrameGet   byte = 0x02 // client: offset u64 | prefix SHA-256 | name
	FrameSay   byte = 0x03 // client: a chat line for the server's console
	FrameReply byte = 0x81 // server: status u8 | text
	FrameFile  byte = 0x82 // server: size u64 | offset u64 | name
	FrameData  byte = 0x83 // server: file bytes
	FrameEnd   byte = 0x84 // server: SHA-256 of the whole file
	FrameChat  byte = 0x85 // server: a chat line from the console
)

// Frame sizes.
const (
	FrameHeaderLen = 5
	// MaxControl bounds the body of every frame but DATA.
	MaxControl = 64 << 10
	// MaxData bounds a DATA body.
	MaxData = 1 << 20
	// MaxName bounds a file name.
	MaxName = 1024
)

// Reply statuses.
const (
	StatusOK    byte = 0
	StatusError byte = 1
)

// ErrFrame is a malformed frame: the stream cannot be trusted after it.
var ErrFrame = errors.New("file: malformed frame")

// appendFrame appends a frame of type typ whose body is the
// concatenation of parts.
func appendFrame(dst []byte, typ byte, parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += len(p)
	}
	dst = append(dst, typ, 0, 0, 0, 0)
	binary.BigEndian.PutUint32(dst[len(dst)-4:], uint32(n))
	for _, p := range parts {
		dst = append(dst, p...)
	}
	return dst
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// frameHandler receives what a parser finds: whole control frames, and
// DATA bodies piece by piece as they arrive (begin with the body's
// length, then pieces). A non-nil error stops the parser.
type frameHandler interface {
	frame(typ byte, body []byte) error
	dataBegin(n int) error
	data(piece []byte) error
}

// parser splits a session's byte stream into frames. Control frames are
// buffered (at most MaxControl bytes); DATA bodies are passed on without
// copying.
type parser struct {
	accept func(typ byte) bool
	hdr    [FrameHeaderLen]byte
	nhdr   int
	typ    byte
	left   int // body bytes still to come
	body   []byte
	inBody bool
}

// feed parses b. After an error the parser must not be fed again.
func (p *parser) feed(b []byte, h frameHandler) error {
	for len(b) > 0 {
		if !p.inBody {
			k := copy(p.hdr[p.nhdr:], b)
			p.nhdr += k
			b = b[k:]
			if p.nhdr < FrameHeaderLen {
				return nil
			}
			p.nhdr = 0
			p.typ = p.hdr[0]
			n := binary.BigEndian.Uint32(p.hdr[1:])
			if !p.accept(p.typ) {
				return fmt.Errorf("%w: unexpected type 0x%02x", ErrFrame, p.typ)
			}
			limit := uint32(MaxControl)
			if p.typ == FrameData {
				limit = MaxData
			}
			if n > limit {
				return fmt.Errorf("%w: type 0x%02x body of %d bytes exceeds %d", ErrFrame, p.typ, n, limit)
			}
			p.left, p.inBody = int(n), true
			if p.typ == FrameData {
				if err := h.dataBegin(p.left); err != nil {
					return err
				}
			}
		}
		if p.typ == FrameData {
			k := min(p.left, len(b))
			if k > 0 {
				if err := h.data(b[:k:k]); err != nil {
					return err
				}
			}
			p.left -= k
			b = b[k:]
		} else {
			k := min(p.left, len(b))
			p.body = append(p.body, b[:k]...)
			p.left -= k
			b = b[k:]
		}
		if p.left == 0 {
			p.inBody = false
			if p.typ != FrameData {
				body := p.body
				p.body = nil
				if err := h.frame(p.typ, body); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func clientSends(t byte) bool { return t == FrameCmd || t == FrameGet || t == FrameSay }

func serverSends(t byte) bool { return t >= FrameReply && t <= FrameChat }

// getRequest is a decoded GET body.
type getRequest struct {
	offset uint64
	prefix [32]byte
	name   string
}

func decodeGet(b []byte) (getRequest, error) {
	if len(b) < 8+32+1 || len(b) > 8+32+MaxName {
		return getRequest{}, fmt.Errorf("%w: GET body of %d bytes", ErrFrame, len(b))
	}
	var g getRequest
	g.offset = binary.BigEndian.Uint64(b)
	copy(g.prefix[:], b[8:40])
	g.name = string(b[40:])
	return g, nil
}

// fileHeader is a decoded FILE body.
type fileHeader struct {
	size, offset uint64
	name         string
}

func decodeFile(b []byte) (fileHeader, error) {
	if len(b) < 16 || len(b) > 16+MaxName {
		return fileHeader{}, fmt.Errorf("%w: FILE body of %d bytes", ErrFrame, len(b))
	}
	h := fileHeader{size: binary.BigEndian.Uint64(b), offset: binary.BigEndian.Uint64(b[8:]), name: string(b[16:])}
	if h.offset > h.size || h.size > 1<<62 {
		return fileHeader{}, fmt.Errorf("%w: FILE offset %d of size %d", ErrFrame, h.offset, h.size)
	}
	return h, nil
}

// describeFrames summarises the frames at the start of a chunk of stream
// bytes, for logs; it accepts any bytes. A chunk that starts inside a
// frame (most segments of a download) has no header to read: what is not
// a known type with a body within its limit is shown as such, not decoded
// into an invented frame.
func describeFrames(b []byte) string {
	s := ""
	for len(b) >= FrameHeaderLen && len(s) < 200 {
		n := binary.BigEndian.Uint32(b[1:])
		if !knownFrame(b[0]) || n > frameLimit(b[0]) {
			return s + fmt.Sprintf("mid-frame data (%d bytes)", len(b))
		}
		s += fmt.Sprintf("[0x%02x %dB]", b[0], n)
		if int(n) > len(b)-FrameHeaderLen {
			break
		}
		b = b[FrameHeaderLen+int(n):]
	}
	return s
}

func knownFrame(t byte) bool { return clientSends(t) || serverSends(t) }

// frameLimit is the largest body a frame of type t may have.
func frameLimit(t byte) uint32 {
	if t == FrameData {
		return MaxData
	}
	return MaxControl
}
