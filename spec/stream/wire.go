package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// Wire constants; doc.go lays the packets out byte by byte.
const (
	// PayloadType is the RTP payload type of data packets: the first
	// dynamic type (RFC 3551 §6), outside 64-95 so RTP and RTCP can share
	// a port (RFC 5761 §4).
	PayloadType = 96
	// ClockRate is the RTP timestamp clock of payload type 96 here, as an
	// SDP would say with a=rtpmap:96 NSTR/90000: timestamps count the
	// sampling instants of the packets at 90 kHz.
	ClockRate = 90000
	// DataPayloadSize is the RTP payload of a data packet: index and data,
	// two big-endian uint64s.
	DataPayloadSize = 16
	// DataPacketSize is a whole data packet: 12-byte RTP header + payload.
	DataPacketSize = 12 + DataPayloadSize
	// AppName is the name field of every netspec-stream RTCP APP packet.
	AppName = "NSTR"
	// CookieSize is a challenge cookie: 4-byte time + 16-byte HMAC.
	CookieSize = 20
	// TokenSize is the consent token the server hands a subscriber.
	TokenSize = 8
	// MinJoinSize is the size a client pads HELLO and ECHO compounds to.
	// It is larger than any answer the server gives an unvalidated
	// address (a CHALLENGE compound is 68 bytes: RR 8, SDES 28, APP 32),
	// so the server never sends more than it received.
	MinJoinSize = 128
	// MaxControlSize bounds the RTCP compounds either side accepts; larger
	// ones are dropped unparsed, which bounds the decoder's allocations.
	MaxControlSize = 1200
)

// APP subtypes (the 5-bit count field of the APP header).
const (
	AppHello     uint8 = 0 // client -> server: join, no cookie
	AppChallenge uint8 = 1 // server -> client: cookie to echo
	AppEcho      uint8 = 2 // client -> server: join with the cookie
	AppWelcome   uint8 = 3 // server -> client: subscribed; token and timing
	AppReport    uint8 = 4 // client -> server: token and the seed's counts
	AppRefuse    uint8 = 5 // server -> client: validated join refused
)

var appNames = [...]string{"HELLO", "CHALLENGE", "ECHO", "WELCOME", "REPORT", "REFUSE"}

// AppString names an APP subtype.
func AppString(sub uint8) string {
	if int(sub) < len(appNames) {
		return appNames[sub]
	}
	return fmt.Sprintf("APP(%d)", sub)
}

// Refusal reasons (REFUSE data).
const (
	RefuseFull uint32 = 1 // the subscriber limit is reached
)

// Data is one data packet: the RTP fields a receiver uses and the seed's
// payload.
type Data struct {
	Seq       uint16
	Timestamp uint32
	SSRC      uint32
	Marker    bool
	Index     uint64
	Value     uint64 // the seed's "data": 2*(Index+1)
}

// DataValue is the seed's data field for packet index: 2*(index+1).
func DataValue(index uint64) uint64 { return 2 * (index + 1) }

// EncodeData marshals a data packet with pion/rtp.
func EncodeData(d Data) []byte {
	payload := make([]byte, DataPayloadSize)
	binary.BigEndian.PutUint64(payload[0:8], d.Index)
	binary.BigEndian.PutUint64(payload[8:16], d.Value)
	p := rtp.Packet{
		Header: rtp.Header{
			Version:        2,
			Marker:         d.Marker,
			PayloadType:    PayloadType,
			SequenceNumber: d.Seq,
			Timestamp:      d.Timestamp,
			SSRC:           d.SSRC,
		},
		Payload: payload,
	}
	b, err := p.Marshal()
	if err != nil {
		// A fixed header with no CSRCs or extensions always marshals.
		panic("stream: rtp marshal: " + err.Error())
	}
	return b
}

// Decoding errors. Each is a reason a datagram is dropped and counted.
var (
	ErrShort       = errors.New("too short")
	ErrVersion     = errors.New("not RTP version 2")
	ErrPayloadType = errors.New("unexpected payload type")
	ErrPayload     = errors.New("payload is not index+data")
	ErrDataValue   = errors.New("data is not 2*(index+1)")
	ErrTooLarge    = errors.New("control packet too large")
	ErrCompound    = errors.New("invalid RTCP compound")
)

// IsControl reports whether a datagram is RTCP rather than RTP, by the
// RFC 5761 §4 rule: RTCP packet types 192-223 sit where RTP's marker bit
// and payload types 64-95 would.
func IsControl(b []byte) bool {
	return len(b) >= 2 && b[1] >= 192 && b[1] <= 223
}

// DecodeData parses an RTP data packet. It accepts any valid RTPv2
// header (CSRCs, extension, padding) but only the stream's payload type
// and a payload of exactly index and data with data = 2*(index+1).
func DecodeData(b []byte) (Data, error) {
	if len(b) < 12 {
		return Data{}, ErrShort
	}
	if b[0]>>6 != 2 {
		return Data{}, ErrVersion
	}
	var p rtp.Packet
	if err := p.Unmarshal(b); err != nil {
		return Data{}, fmt.Errorf("rtp: %w", err)
	}
	if p.PayloadType != PayloadType {
		return Data{}, ErrPayloadType
	}
	if len(p.Payload) != DataPayloadSize {
		return Data{}, ErrPayload
	}
	d := Data{
		Seq:       p.SequenceNumber,
		Timestamp: p.Timestamp,
		SSRC:      p.SSRC,
		Marker:    p.Marker,
		Index:     binary.BigEndian.Uint64(p.Payload[0:8]),
		Value:     binary.BigEndian.Uint64(p.Payload[8:16]),
	}
	if d.Value != DataValue(d.Index) {
		return Data{}, ErrDataValue
	}
	return d, nil
}

// App is a netspec-stream RTCP APP packet.
type App struct {
	Subtype uint8
	SSRC    uint32
	Data    []byte
}

// Control is what a validated RTCP compound packet says.
type Control struct {
	// SSRC is the sender's: the SR or RR that opens the compound.
	SSRC uint32
	// Reports are the RR's (or SR's) reception report blocks.
	Reports []rtcp.ReceptionReport
	// CNAME is the sender's SDES CNAME, if present.
	CNAME string
	// App is the first APP packet named AppName, if any.
	App *App
	// Bye is set if the compound holds a BYE for SSRC; Reason is its text.
	Bye       bool
	ByeReason string
}

// ValidateCompound applies the RTCP header validity checks of RFC 3550
// A.2 without allocating: every packet is version 2, the first is an SR
// or RR, only the last may be padded, and the length fields add up to the
// datagram's length.
func ValidateCompound(b []byte) error {
	if len(b) > MaxControlSize {
		return ErrTooLarge
	}
	if len(b) < 8 || len(b)%4 != 0 {
		return fmt.Errorf("%w: length %d", ErrCompound, len(b))
	}
	if b[1] != byte(rtcp.TypeSenderReport) && b[1] != byte(rtcp.TypeReceiverReport) {
		return fmt.Errorf("%w: first packet type %d is not SR or RR", ErrCompound, b[1])
	}
	// A.2 masks the first packet's padding bit with its type: padding
	// belongs on the last packet, so a one-packet compound has none.
	if b[0]&0x20 != 0 {
		return fmt.Errorf("%w: padding on the first packet", ErrCompound)
	}
	for off := 0; off < len(b); {
		if len(b)-off < 4 {
			return fmt.Errorf("%w: trailing %d bytes", ErrCompound, len(b)-off)
		}
		if b[off]>>6 != 2 {
			return fmt.Errorf("%w: version %d", ErrCompound, b[off]>>6)
		}
		n := (int(binary.BigEndian.Uint16(b[off+2:])) + 1) * 4
		if n > len(b)-off {
			return fmt.Errorf("%w: packet length %d overruns the datagram", ErrCompound, n)
		}
		if b[off]&0x20 != 0 && off+n != len(b) {
			return fmt.Errorf("%w: padding before the last packet", ErrCompound)
		}
		off += n
	}
	return nil
}

// DecodeControl validates and parses an RTCP compound packet with
// pion/rtcp.
func DecodeControl(b []byte) (Control, error) {
	if err := ValidateCompound(b); err != nil {
		return Control{}, err
	}
	pkts, err := rtcp.Unmarshal(b)
	if err != nil {
		return Control{}, fmt.Errorf("%w: %v", ErrCompound, err)
	}
	var c Control
	for i, p := range pkts {
		switch p := p.(type) {
		case *rtcp.ReceiverReport:
			if i == 0 {
				c.SSRC, c.Reports = p.SSRC, p.Reports
			}
		case *rtcp.SenderReport:
			if i == 0 {
				c.SSRC, c.Reports = p.SSRC, p.Reports
			}
		case *rtcp.SourceDescription:
			for _, ch := range p.Chunks {
				if ch.Source != c.SSRC {
					continue
				}
				for _, it := range ch.Items {
					if it.Type == rtcp.SDESCNAME && c.CNAME == "" {
						c.CNAME = it.Text
					}
				}
			}
		case *rtcp.ApplicationDefined:
			if p.Name == AppName && c.App == nil {
				c.App = &App{Subtype: p.SubType, SSRC: p.SSRC, Data: p.Data}
			}
		case *rtcp.Goodbye:
			for _, s := range p.Sources {
				if s == c.SSRC {
					c.Bye, c.ByeReason = true, p.Reason
				}
			}
		}
	}
	return c, nil
}

// compound marshals RR (with reports) + SDES CNAME + the extra packets,
// the RFC 3550 §6.1 shape every netspec-stream control datagram has.
func compound(ssrc uint32, cname string, reports []rtcp.ReceptionReport, extra ...rtcp.Packet) []byte {
	pkts := make([]rtcp.Packet, 0, 2+len(extra))
	pkts = append(pkts, &rtcp.ReceiverReport{SSRC: ssrc, Reports: reports}, rtcp.NewCNAMESourceDescription(ssrc, cname))
	pkts = append(pkts, extra...)
	b, err := rtcp.Marshal(pkts)
	if err != nil {
		// Our packets are well-formed by construction (CNAME <= 255
		// bytes, at most 31 reports, APP data a multiple of 4).
		panic("stream: rtcp marshal: " + err.Error())
	}
	return b
}

func app(sub uint8, ssrc uint32, data []byte) *rtcp.ApplicationDefined {
	return &rtcp.ApplicationDefined{SubType: sub, SSRC: ssrc, Name: AppName, Data: data}
}

// EncodeJoin marshals a HELLO (cookie nil) or an ECHO, padded with zeros
// in the APP data so the datagram is at least MinJoinSize bytes.
func EncodeJoin(ssrc uint32, cname string, cookie []byte) []byte {
	sub := AppHello
	if cookie != nil {
		sub = AppEcho
	}
	base := len(compound(ssrc, cname, nil, app(sub, ssrc, nil)))
	data := make([]byte, CookieSize)
	copy(data, cookie)
	if pad := MinJoinSize - base - len(data); pad > 0 {
		data = append(data, make([]byte, (pad+3)/4*4)...)
	}
	return compound(ssrc, cname, nil, app(sub, ssrc, data))
}

// EncodeChallenge marshals the server's CHALLENGE carrying cookie.
func EncodeChallenge(ssrc uint32, cname string, cookie []byte) []byte {
	return compound(ssrc, cname, nil, app(AppChallenge, ssrc, cookie))
}

// Welcome is the WELCOME payload: what a new subscriber needs to know.
type Welcome struct {
	Token    [TokenSize]byte
	Interval uint64 // ns between data packets
	Report   uint64 // ns between receiver reports
	Expire   uint32 // silent report intervals before the subscriber is dropped
}

const welcomeSize = TokenSize + 8 + 8 + 4 + 4 // the last 4 are reserved, zero

// EncodeWelcome marshals a WELCOME.
func EncodeWelcome(ssrc uint32, cname string, w Welcome) []byte {
	d := make([]byte, welcomeSize)
	copy(d, w.Token[:])
	binary.BigEndian.PutUint64(d[8:], w.Interval)
	binary.BigEndian.PutUint64(d[16:], w.Report)
	binary.BigEndian.PutUint32(d[24:], w.Expire)
	return compound(ssrc, cname, nil, app(AppWelcome, ssrc, d))
}

// DecodeWelcome parses a WELCOME's data.
func DecodeWelcome(d []byte) (Welcome, error) {
	if len(d) != welcomeSize {
		return Welcome{}, fmt.Errorf("welcome: %d bytes, want %d", len(d), welcomeSize)
	}
	var w Welcome
	copy(w.Token[:], d)
	w.Interval = binary.BigEndian.Uint64(d[8:])
	w.Report = binary.BigEndian.Uint64(d[16:])
	w.Expire = binary.BigEndian.Uint32(d[24:])
	if w.Interval == 0 || w.Report == 0 || w.Expire == 0 || w.Interval > uint64(24*time.Hour) || w.Report > uint64(24*time.Hour) {
		return Welcome{}, errors.New("welcome: interval, report interval or expiry out of range")
	}
	return w, nil
}

// Tally is the REPORT payload: the seed's counts, which an RR cannot
// carry.
type Tally struct {
	Token      [TokenSize]byte
	Packets    uint64 // distinct data packets delivered to the application
	Duplicates uint64
	Reordered  uint64
	Sum        uint64 // sum of data over the distinct packets, mod 2^64
}

const tallySize = TokenSize + 4*8

func (t Tally) marshal() []byte {
	d := make([]byte, tallySize)
	copy(d, t.Token[:])
	binary.BigEndian.PutUint64(d[8:], t.Packets)
	binary.BigEndian.PutUint64(d[16:], t.Duplicates)
	binary.BigEndian.PutUint64(d[24:], t.Reordered)
	binary.BigEndian.PutUint64(d[32:], t.Sum)
	return d
}

// DecodeTally parses a REPORT's data.
func DecodeTally(d []byte) (Tally, error) {
	if len(d) != tallySize {
		return Tally{}, fmt.Errorf("report: %d bytes, want %d", len(d), tallySize)
	}
	var t Tally
	copy(t.Token[:], d)
	t.Packets = binary.BigEndian.Uint64(d[8:])
	t.Duplicates = binary.BigEndian.Uint64(d[16:])
	t.Reordered = binary.BigEndian.Uint64(d[24:])
	t.Sum = binary.BigEndian.Uint64(d[32:])
	return t, nil
}

// EncodeReport marshals a receiver report: RR with one block (if rr is
// not nil) + SDES + APP REPORT, and a BYE if leaving.
func EncodeReport(ssrc uint32, cname string, rr *rtcp.ReceptionReport, t Tally, bye bool, reason string) []byte {
	var reports []rtcp.ReceptionReport
	if rr != nil {
		reports = []rtcp.ReceptionReport{*rr}
	}
	extra := []rtcp.Packet{app(AppReport, ssrc, t.marshal())}
	if bye {
		extra = append(extra, &rtcp.Goodbye{Sources: []uint32{ssrc}, Reason: reason})
	}
	return compound(ssrc, cname, reports, extra...)
}

// EncodeRefuse marshals a REFUSE with a reason code.
func EncodeRefuse(ssrc uint32, cname string, reason uint32) []byte {
	d := make([]byte, 4)
	binary.BigEndian.PutUint32(d, reason)
	return compound(ssrc, cname, nil, app(AppRefuse, ssrc, d))
}

// EncodeBye marshals a server's BYE.
func EncodeBye(ssrc uint32, cname, reason string) []byte {
	return compound(ssrc, cname, nil, &rtcp.Goodbye{Sources: []uint32{ssrc}, Reason: reason})
}

// Describe decodes a datagram into one line, for timelines. It accepts
// any bytes.
func Describe(b []byte) string {
	if IsControl(b) {
		c, err := DecodeControl(b)
		if err != nil {
			return fmt.Sprintf("RTCP? %d bytes: %v", len(b), err)
		}
		var s strings.Builder
		fmt.Fprintf(&s, "RTCP ssrc=%08x", c.SSRC)
		for _, r := range c.Reports {
			fmt.Fprintf(&s, " RR[ext=%d lost=%d frac=%d/256 jitter=%d]", r.LastSequenceNumber, lost24(r.TotalLost), r.FractionLost, r.Jitter)
		}
		if c.App != nil {
			fmt.Fprintf(&s, " %s(%d bytes)", AppString(c.App.Subtype), len(c.App.Data))
		}
		if c.Bye {
			fmt.Fprintf(&s, " BYE %q", c.ByeReason)
		}
		return s.String()
	}
	d, err := DecodeData(b)
	if err != nil {
		return fmt.Sprintf("RTP? %d bytes: %v", len(b), err)
	}
	return fmt.Sprintf("RTP seq=%d ts=%d ssrc=%08x index=%d data=%d", d.Seq, d.Timestamp, d.SSRC, d.Index, d.Value)
}

// lost24 sign-extends the 24-bit cumulative-lost field.
func lost24(v uint32) int32 {
	v &= 0xffffff
	if v&0x800000 != 0 {
		return int32(v) - 0x1000000
	}
	return int32(v)
}

// Lost24 is the signed value of an RR's 24-bit cumulative-lost field.
func Lost24(v uint32) int32 { return lost24(v) }
