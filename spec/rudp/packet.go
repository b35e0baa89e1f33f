package rudp

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Wire constants; doc.go draws the layouts.
const (
	// Version is the protocol version in byte 0 of every packet.
	Version = 1

	// Packet types (byte 1).
	TypeSYN    uint8 = 1
	TypeSYNACK uint8 = 2
	TypeSEG    uint8 = 3
	TypeRST    uint8 = 4

	// SEG flags (byte 2).
	FlagDATA   uint8 = 0x01 // the segment occupies sequence number Seq
	FlagFIN    uint8 = 0x02 // Seq is the sender's last sequence number
	FlagCOOKIE uint8 = 0x04 // a 32-byte cookie echo follows the SACK blocks
	FlagPING   uint8 = 0x08 // acknowledge at once (keepalive, end of a burst)
	FlagECHO   uint8 = 0x10 // Echo is the stamp of the arrival this acknowledges
	knownFlags       = FlagDATA | FlagFIN | FlagCOOKIE | FlagPING | FlagECHO

	// Sizes in bytes.
	HeaderLen    = 8  // the common header
	SynLen       = 64 // a SYN is padded to this, so answers never amplify
	SynAckLen    = 40
	SegHeaderLen = 24 // a SEG without SACK blocks, cookie or payload
	BlockLen     = 8  // one SACK block
	CookieLen    = 32
	RstLen       = 8
	MACLen       = 16
	// MaxSACK bounds the SACK blocks of one SEG.
	MaxSACK = 8
	// MaxPacket is the largest UDP payload over IPv4.
	MaxPacket = 65507
)

// RST reasons (byte 3 of a RST).
const (
	ReasonUnknown  uint8 = 1 // no such session
	ReasonBusy     uint8 = 2 // the server has no room for another session
	ReasonCookie   uint8 = 3 // the handshake cookie is stale
	ReasonAbort    uint8 = 4 // the application aborted the session
	ReasonShutdown uint8 = 5 // the endpoint is shutting down
	ReasonProtocol uint8 = 6 // the peer broke the protocol
	ReasonTimeout  uint8 = 7 // the sender gave up on an unresponsive peer
	maxReason      uint8 = 7
)

// ReasonText describes a RST reason.
func ReasonText(r uint8) string {
	switch r {
	case ReasonUnknown:
		return "unknown session"
	case ReasonBusy:
		return "server busy"
	case ReasonCookie:
		return "handshake cookie expired"
	case ReasonAbort:
		return "aborted by the application"
	case ReasonShutdown:
		return "peer shutting down"
	case ReasonProtocol:
		return "protocol error"
	case ReasonTimeout:
		return "peer timed out"
	}
	return fmt.Sprintf("reason %d", r)
}

// Block is a SACK block: the peer holds segments [Start, End) (wire
// sequence numbers, modulo 2^32).
type Block struct{ Start, End uint32 }

// Cookie is the state a stateless server hands the client in its SYN-ACK
// and gets back, authenticated, with the client's first segment.
type Cookie struct {
	TS  uint32 // server clock in milliseconds, modulo 2^32
	Src uint32 // the client's session id
	MSS uint16 // the client's largest datagram
	Wnd uint32 // the client's receive window, in segments
	MAC [MACLen]byte
}

// Packet is one decoded datagram. Which fields are meaningful depends on
// Type; Payload aliases the decoded bytes.
type Packet struct {
	Type   uint8
	Flags  uint8
	Reason uint8  // RST
	Dst    uint32 // the receiver's session id (0 in a SYN)
	Src    uint32 // SYN, SYNACK: the sender's session id
	MSS    uint16 // SYN, SYNACK: the sender's largest datagram
	Wnd    uint32 // SYN, SYNACK, SEG: the sender's receive window (segments)
	TS     uint32 // SYNACK: cookie timestamp
	MAC    [MACLen]byte
	Seq    uint32 // SEG with FlagDATA
	Ack    uint32 // SEG: next sequence number the sender expects
	Stamp  uint16 // SEG: the sender's transmission counter, modulo 2^16
	Echo   uint16 // SEG with FlagECHO: the Stamp of the data segment whose arrival this acknowledges
	NSACK  int
	SACK   [MaxSACK]Block
	Cookie Cookie // SEG with FlagCOOKIE
	// Payload is the SEG's application bytes.
	Payload []byte
}

// Decoding errors.
var (
	ErrShort   = errors.New("rudp: packet too short")
	ErrVersion = errors.New("rudp: unknown version")
	ErrType    = errors.New("rudp: unknown packet type")
	ErrFlags   = errors.New("rudp: bad flags")
	ErrLength  = errors.New("rudp: bad length")
	ErrField   = errors.New("rudp: bad field")
)

// Decode parses b into p. It never panics and never allocates; p.Payload
// aliases b.
func Decode(b []byte, p *Packet) error {
	if len(b) < HeaderLen {
		return ErrShort
	}
	if len(b) > MaxPacket {
		return ErrLength
	}
	if b[0] != Version {
		return ErrVersion
	}
	*p = Packet{Type: b[1], Dst: binary.BigEndian.Uint32(b[4:])}
	switch p.Type {
	case TypeSYN:
		// Exactly SynLen, as doc.go says: never shorter, so no answer is
		// larger than the SYN; never longer, so the layout has one form.
		if len(b) < SynLen {
			return ErrShort
		}
		if len(b) > SynLen {
			return ErrLength
		}
		if b[2] != 0 || b[3] != 0 || p.Dst != 0 {
			return ErrField
		}
		p.Src = binary.BigEndian.Uint32(b[8:])
		p.MSS = binary.BigEndian.Uint16(b[12:])
		p.Wnd = binary.BigEndian.Uint32(b[16:])
		if p.Src == 0 || binary.BigEndian.Uint16(b[14:]) != 0 {
			return ErrField
		}
	case TypeSYNACK:
		if len(b) != SynAckLen {
			return ErrLength
		}
		if b[2] != 0 || b[3] != 0 || binary.BigEndian.Uint16(b[14:]) != 0 {
			return ErrField
		}
		p.Src = binary.BigEndian.Uint32(b[8:])
		p.MSS = binary.BigEndian.Uint16(b[12:])
		p.Wnd = binary.BigEndian.Uint32(b[16:])
		p.TS = binary.BigEndian.Uint32(b[20:])
		copy(p.MAC[:], b[24:40])
		if p.Src == 0 || p.Dst == 0 {
			return ErrField
		}
	case TypeSEG:
		if len(b) < SegHeaderLen {
			return ErrShort
		}
		p.Flags = b[2]
		p.NSACK = int(b[3])
		if p.Flags&^knownFlags != 0 {
			return ErrFlags
		}
		if p.NSACK > MaxSACK {
			return ErrField
		}
		p.Seq = binary.BigEndian.Uint32(b[8:])
		p.Ack = binary.BigEndian.Uint32(b[12:])
		p.Wnd = binary.BigEndian.Uint32(b[16:])
		p.Stamp = binary.BigEndian.Uint16(b[20:])
		p.Echo = binary.BigEndian.Uint16(b[22:])
		if p.Flags&FlagECHO == 0 && p.Echo != 0 {
			return ErrField
		}
		off := SegHeaderLen
		if len(b) < off+p.NSACK*BlockLen {
			return ErrShort
		}
		for i := 0; i < p.NSACK; i++ {
			s, e := binary.BigEndian.Uint32(b[off:]), binary.BigEndian.Uint32(b[off+4:])
			if e-s == 0 || e-s > 1<<30 {
				return ErrField // empty or wrapped-backwards block
			}
			p.SACK[i] = Block{s, e}
			off += BlockLen
		}
		data := p.Flags&FlagDATA != 0
		if p.Flags&FlagCOOKIE != 0 {
			if !data {
				return ErrFlags
			}
			if len(b) < off+CookieLen {
				return ErrShort
			}
			c := &p.Cookie
			c.TS = binary.BigEndian.Uint32(b[off:])
			c.Src = binary.BigEndian.Uint32(b[off+4:])
			c.MSS = binary.BigEndian.Uint16(b[off+8:])
			if binary.BigEndian.Uint16(b[off+10:]) != 0 {
				return ErrField
			}
			c.Wnd = binary.BigEndian.Uint32(b[off+12:])
			copy(c.MAC[:], b[off+16:off+32])
			if c.Src == 0 {
				return ErrField
			}
			off += CookieLen
		}
		if !data && (p.Flags&FlagFIN != 0 || len(b) > off) {
			return ErrFlags // FIN and payload need a sequence number
		}
		if len(b) > off {
			p.Payload = b[off:len(b):len(b)]
		}
	case TypeRST:
		if len(b) != RstLen {
			return ErrLength
		}
		if b[2] != 0 || b[3] == 0 || b[3] > maxReason {
			return ErrField
		}
		p.Reason = b[3]
	default:
		return ErrType
	}
	return nil
}

// Len is the encoded size of p.
func (p *Packet) Len() int {
	switch p.Type {
	case TypeSYN:
		return SynLen
	case TypeSYNACK:
		return SynAckLen
	case TypeRST:
		return RstLen
	}
	n := SegHeaderLen + p.NSACK*BlockLen + len(p.Payload)
	if p.Flags&FlagCOOKIE != 0 {
		n += CookieLen
	}
	return n
}

// Append encodes p onto b.
func (p *Packet) Append(b []byte) []byte {
	start := len(b)
	b = append(b, make([]byte, p.Len()-len(p.Payload))...)
	h := b[start:]
	h[0], h[1] = Version, p.Type
	binary.BigEndian.PutUint32(h[4:], p.Dst)
	switch p.Type {
	case TypeSYN, TypeSYNACK:
		binary.BigEndian.PutUint32(h[8:], p.Src)
		binary.BigEndian.PutUint16(h[12:], p.MSS)
		binary.BigEndian.PutUint32(h[16:], p.Wnd)
		if p.Type == TypeSYNACK {
			binary.BigEndian.PutUint32(h[20:], p.TS)
			copy(h[24:40], p.MAC[:])
		}
	case TypeRST:
		h[3] = p.Reason
	case TypeSEG:
		p.putSEG(h)
		b = append(b, p.Payload...)
	}
	return b
}

// putSEG writes a SEG's header, blocks and cookie into h.
func (p *Packet) putSEG(h []byte) int {
	h[0], h[1], h[2], h[3] = Version, TypeSEG, p.Flags, byte(p.NSACK)
	binary.BigEndian.PutUint32(h[4:], p.Dst)
	binary.BigEndian.PutUint32(h[8:], p.Seq)
	binary.BigEndian.PutUint32(h[12:], p.Ack)
	binary.BigEndian.PutUint32(h[16:], p.Wnd)
	binary.BigEndian.PutUint16(h[20:], p.Stamp)
	binary.BigEndian.PutUint16(h[22:], p.Echo)
	off := SegHeaderLen
	for i := 0; i < p.NSACK; i++ {
		binary.BigEndian.PutUint32(h[off:], p.SACK[i].Start)
		binary.BigEndian.PutUint32(h[off+4:], p.SACK[i].End)
		off += BlockLen
	}
	if p.Flags&FlagCOOKIE != 0 {
		c := &p.Cookie
		binary.BigEndian.PutUint32(h[off:], c.TS)
		binary.BigEndian.PutUint32(h[off+4:], c.Src)
		binary.BigEndian.PutUint16(h[off+8:], c.MSS)
		h[off+10], h[off+11] = 0, 0
		binary.BigEndian.PutUint32(h[off+12:], c.Wnd)
		copy(h[off+16:off+32], c.MAC[:])
		off += CookieLen
	}
	return off
}

// Describe summarises a datagram in one line, for timelines. It accepts
// any bytes.
func Describe(b []byte) string {
	var p Packet
	if err := Decode(b, &p); err != nil {
		return fmt.Sprintf("%d bytes, not rudp (%v)", len(b), err)
	}
	switch p.Type {
	case TypeSYN:
		return fmt.Sprintf("SYN src=%08x mss=%d wnd=%d", p.Src, p.MSS, p.Wnd)
	case TypeSYNACK:
		return fmt.Sprintf("SYN-ACK dst=%08x src=%08x mss=%d wnd=%d ts=%d", p.Dst, p.Src, p.MSS, p.Wnd, p.TS)
	case TypeRST:
		return fmt.Sprintf("RST dst=%08x %s", p.Dst, ReasonText(p.Reason))
	}
	s := fmt.Sprintf("SEG dst=%08x ack=%d wnd=%d stamp=%d", p.Dst, p.Ack, p.Wnd, p.Stamp)
	if p.Flags&FlagDATA != 0 {
		s += fmt.Sprintf(" seq=%d len=%d", p.Seq, len(p.Payload))
	}
	for i := 0; i < p.NSACK; i++ {
		s += fmt.Sprintf(" sack=%d-%d", p.SACK[i].Start, p.SACK[i].End)
	}
	for _, f := range []struct {
		bit  uint8
		name string
	}{{FlagFIN, "FIN"}, {FlagCOOKIE, "COOKIE"}, {FlagPING, "PING"}, {FlagECHO, fmt.Sprintf("ECHO=%d", p.Echo)}} {
		if p.Flags&f.bit != 0 {
			s += " " + f.name
		}
	}
	return s
}

// expand turns a 32-bit wire sequence number into the 64-bit number
// closest to ref.
func expand(ref uint64, w uint32) uint64 {
	const span = 1 << 32
	c := ref&^(span-1) | uint64(w)
	switch {
	case c+span/2 < ref && c+span > c:
		c += span
	case c > ref+span/2 && c >= span:
		c -= span
	}
	return c
}
