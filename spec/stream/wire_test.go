package stream_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/netspec/netspec/spec/stream"
	"github.com/pion/rtcp"
	"github.com/pion/rtp"
)

// The data packet is exactly the layout doc.go gives, byte by byte.
func TestDataLayout(t *testing.T) {
	b := stream.EncodeData(stream.Data{Seq: 0x1234, Timestamp: 0xdeadbeef, SSRC: 0x01020304, Index: 5, Value: 12})
	want := []byte{
		0x80, 96, 0x12, 0x34, // V=2, PT=96, sequence number
		0xde, 0xad, 0xbe, 0xef, // timestamp
		0x01, 0x02, 0x03, 0x04, // SSRC
		0, 0, 0, 0, 0, 0, 0, 5, // index
		0, 0, 0, 0, 0, 0, 0, 12, // data = 2*(5+1)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("data packet\n got % x\nwant % x", b, want)
	}
	d, err := stream.DecodeData(b)
	if err != nil || d.Index != 5 || d.Value != 12 || d.Seq != 0x1234 || d.SSRC != 0x01020304 || d.Timestamp != 0xdeadbeef {
		t.Fatalf("decode: %+v, %v", d, err)
	}
	if stream.IsControl(b) {
		t.Fatal("a data packet classified as RTCP")
	}
}

func TestDecodeDataRejects(t *testing.T) {
	good := stream.EncodeData(stream.Data{Seq: 1, Index: 7, Value: 16})
	mod := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, stream.ErrShort},
		{"header only", good[:12], stream.ErrPayload},
		{"short payload", good[:27], stream.ErrPayload},
		{"long payload", append(append([]byte(nil), good...), 0), stream.ErrPayload},
		{"version 1", mod(func(b []byte) []byte { b[0] = 0x40; return b }), stream.ErrVersion},
		{"payload type 0", mod(func(b []byte) []byte { b[1] = 0; return b }), stream.ErrPayloadType},
		{"data is not 2(i+1)", mod(func(b []byte) []byte { b[27]++; return b }), stream.ErrDataValue},
	}
	for _, tc := range tests {
		if _, err := stream.DecodeData(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// A valid RTP packet with CSRCs and an extension header is still
	// read correctly.
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: stream.PayloadType, SequenceNumber: 9, SSRC: 3, CSRC: []uint32{1, 2}}, Payload: good[12:]}
	if err := p.SetExtension(1, []byte{0xaa}); err != nil {
		t.Fatal(err)
	}
	b, _ := p.Marshal()
	if d, err := stream.DecodeData(b); err != nil || d.Index != 7 || d.Seq != 9 {
		t.Fatalf("RTP with CSRCs and extension: %+v, %v", d, err)
	}
}

// Every control message round-trips, is a valid RFC 3550 compound (RR
// first, SDES CNAME), and joins are padded to MinJoinSize, larger than a
// challenge.
func TestControlRoundTrips(t *testing.T) {
	cookie := bytes.Repeat([]byte{7}, stream.CookieSize)
	var tok [stream.TokenSize]byte
	copy(tok[:], "12345678")
	rr := &rtcp.ReceptionReport{SSRC: 9, FractionLost: 3, TotalLost: 0xffffff, LastSequenceNumber: 70000, Jitter: 12}
	tally := stream.Tally{Token: tok, Packets: 1, Duplicates: 2, Reordered: 3, Sum: 4}
	w := stream.Welcome{Token: tok, Interval: 1e6, Report: 1e9, Expire: 5}
	long := strings.Repeat("c", 255)
	tests := []struct {
		name string
		b    []byte
		sub  uint8
		bye  bool
	}{
		{"hello", stream.EncodeJoin(1, "cn", nil), stream.AppHello, false},
		{"hello with a long CNAME", stream.EncodeJoin(1, long, nil), stream.AppHello, false},
		{"echo", stream.EncodeJoin(1, "cn", cookie), stream.AppEcho, false},
		{"challenge", stream.EncodeChallenge(1, "stream-00000001", cookie), stream.AppChallenge, false},
		{"welcome", stream.EncodeWelcome(1, "cn", w), stream.AppWelcome, false},
		{"report", stream.EncodeReport(1, "cn", rr, tally, false, ""), stream.AppReport, false},
		{"report and bye", stream.EncodeReport(1, "cn", rr, tally, true, "listener leaving"), stream.AppReport, true},
		{"refuse", stream.EncodeRefuse(1, "cn", stream.RefuseFull), stream.AppRefuse, false},
	}
	for _, tc := range tests {
		c, err := stream.DecodeControl(tc.b)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !stream.IsControl(tc.b) || c.SSRC != 1 || c.App == nil || c.App.Subtype != tc.sub || c.Bye != tc.bye || c.CNAME == "" {
			t.Fatalf("%s: decoded %+v", tc.name, c)
		}
		if tc.sub == stream.AppHello || tc.sub == stream.AppEcho {
			if len(tc.b) < stream.MinJoinSize {
				t.Errorf("%s is %d bytes, want >= %d", tc.name, len(tc.b), stream.MinJoinSize)
			}
			if !bytes.Equal(c.App.Data[:stream.CookieSize], cookie) && tc.sub == stream.AppEcho {
				t.Errorf("echo lost its cookie")
			}
		}
	}
	ch := stream.EncodeChallenge(0xffffffff, "stream-ffffffff", cookie)
	if len(ch) != 68 || len(ch) > stream.MinJoinSize {
		t.Errorf("challenge is %d bytes, doc.go says 68", len(ch))
	}
	c, _ := stream.DecodeControl(stream.EncodeWelcome(1, "cn", w))
	if got, err := stream.DecodeWelcome(c.App.Data); err != nil || got != w {
		t.Errorf("welcome: %+v, %v", got, err)
	}
	c, _ = stream.DecodeControl(stream.EncodeReport(1, "cn", rr, tally, true, "x"))
	if got, err := stream.DecodeTally(c.App.Data); err != nil || got != tally {
		t.Errorf("tally: %+v, %v", got, err)
	}
	if len(c.Reports) != 1 || c.Reports[0] != *rr || stream.Lost24(c.Reports[0].TotalLost) != -1 {
		t.Errorf("reports %+v", c.Reports)
	}
}

// RFC 3550 A.2 header validity: the first packet is SR or RR, versions
// are 2, only the last packet is padded, lengths add up.
func TestValidateCompound(t *testing.T) {
	good := stream.EncodeJoin(1, "cn", nil)
	mod := func(f func(b []byte)) []byte { b := append([]byte(nil), good...); f(b); return b }
	bad := map[string][]byte{
		"empty":               nil,
		"not a multiple of 4": good[:len(good)-1],
		"truncated":           good[:len(good)-4],
		"first is SDES":       good[8:],
		"version 1":           mod(func(b []byte) { b[0] = 0x40 | b[0]&0x3f }),
		"padding not last":    mod(func(b []byte) { b[0] |= 0x20 }),
		"padding in between":  mod(func(b []byte) { b[8] |= 0x20 }),
		"padded lone RR":      {0xa0, 0xc9, 0x00, 0x01, 0x01, 0x02, 0x03, 0x04},
		"length overruns":     mod(func(b []byte) { binary.BigEndian.PutUint16(b[2:], 1000) }),
		"oversized":           append(append([]byte(nil), good...), make([]byte, stream.MaxControlSize)...),
	}
	for name, b := range bad {
		if err := stream.ValidateCompound(b); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := stream.DecodeControl(b); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if err := stream.ValidateCompound(good); err != nil {
		t.Fatal(err)
	}
}

func TestDescribe(t *testing.T) {
	for _, b := range [][]byte{
		stream.EncodeData(stream.Data{Index: 1, Value: 4}),
		stream.EncodeJoin(1, "cn", nil),
		stream.EncodeBye(1, "cn", "server stopped"),
		{0x80, 200, 0, 0},
		nil,
	} {
		if d := stream.Describe(b); d == "" {
			t.Errorf("no description for % x", b)
		}
	}
	if d := stream.Describe(stream.EncodeData(stream.Data{Seq: 3, Index: 1, Value: 4})); !strings.Contains(d, "index=1 data=4") {
		t.Errorf("describe: %s", d)
	}
}

// FuzzDecodeData: any bytes decode or fail cleanly, and whatever decodes
// re-encodes (as the plain form) to a packet that decodes the same.
func FuzzDecodeData(f *testing.F) {
	f.Add(stream.EncodeData(stream.Data{Seq: 65535, Timestamp: 1, SSRC: 2, Index: 3, Value: 8}))
	f.Add(stream.EncodeData(stream.Data{})[:20])
	f.Add([]byte{0x80, 96})
	f.Add([]byte{0xb0, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := stream.DecodeData(b)
		_ = stream.Describe(b)
		if err != nil {
			return
		}
		again, err := stream.DecodeData(stream.EncodeData(d))
		if err != nil || again != d {
			t.Fatalf("re-encoded %+v decodes as %+v, %v", d, again, err)
		}
	})
}

// FuzzDecodeControl: any bytes validate or fail cleanly; a compound that
// decodes is at most MaxControlSize, and one the package has an encoder
// for (HELLO, ECHO, CHALLENGE, WELCOME, REPORT, REFUSE, BYE) re-encodes
// to a compound that decodes to what the encoder was given.
func FuzzDecodeControl(f *testing.F) {
	var tok [stream.TokenSize]byte
	f.Add(stream.EncodeJoin(1, "cn", nil))
	f.Add(stream.EncodeJoin(1, "cn", make([]byte, stream.CookieSize)))
	f.Add(stream.EncodeChallenge(1, "stream-1", make([]byte, stream.CookieSize)))
	f.Add(stream.EncodeWelcome(1, "cn", stream.Welcome{Token: tok, Interval: 1, Report: 1, Expire: 1}))
	f.Add(stream.EncodeReport(1, "cn", &rtcp.ReceptionReport{SSRC: 2}, stream.Tally{}, true, "bye"))
	f.Add(stream.EncodeReport(1, "cn", nil, stream.Tally{Packets: 3, Sum: 9}, false, ""))
	f.Add(stream.EncodeRefuse(1, "cn", 1))
	f.Add(stream.EncodeBye(1, "cn", ""))
	f.Add([]byte{0x81, 201, 0, 1, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := stream.DecodeControl(b)
		checkDescribe(t, b)
		if err != nil {
			return
		}
		if len(b) > stream.MaxControlSize {
			t.Fatalf("decoded a %d-byte compound", len(b))
		}
		if c.App != nil {
			_, _ = stream.DecodeWelcome(c.App.Data)
			_, _ = stream.DecodeTally(c.App.Data)
		}
		enc, want, ok := reencode(t, c)
		if !ok {
			return
		}
		again, err := stream.DecodeControl(enc)
		if err != nil {
			t.Fatalf("%+v re-encodes to % x, which does not decode: %v", c, enc, err)
		}
		if d := cmp.Diff(want, again, cmpopts.EquateEmpty()); d != "" {
			t.Fatalf("%+v re-encoded decodes differently (-want +got):\n%s", c, d)
		}
	})
}

// joinBase is the size of a join compound whose APP carries no data.
func joinBase(ssrc uint32, cname string) int {
	return len(stream.EncodeChallenge(ssrc, cname, nil))
}

// reencode marshals c again with the package's encoder for what it
// carries, and returns the Control that encoding must decode to; ok is
// false when no encoder makes c's kind of compound.
func reencode(t *testing.T, c stream.Control) (enc []byte, want stream.Control, ok bool) {
	want = stream.Control{SSRC: c.SSRC, CNAME: c.CNAME}
	app := func(sub uint8, data []byte) *stream.App {
		return &stream.App{Subtype: sub, SSRC: c.SSRC, Data: data}
	}
	if c.App == nil {
		if !c.Bye || len(c.Reports) > 0 {
			return nil, want, false
		}
		want.Bye, want.ByeReason = true, c.ByeReason
		return stream.EncodeBye(c.SSRC, c.CNAME, c.ByeReason), want, true
	}
	data := c.App.Data
	switch c.App.Subtype {
	case stream.AppHello, stream.AppEcho:
		if len(c.Reports) > 0 || c.Bye {
			return nil, want, false
		}
		var cookie []byte
		if c.App.Subtype == stream.AppEcho {
			if len(data) < stream.CookieSize {
				return nil, want, false
			}
			cookie = data[:stream.CookieSize]
		}
		enc = stream.EncodeJoin(c.SSRC, c.CNAME, cookie)
		// The cookie (zeros in a HELLO), then zeros padding the datagram
		// to MinJoinSize: no shorter, and no more than a word over.
		if len(enc) < stream.MinJoinSize || len(enc) >= stream.MinJoinSize+4 && len(enc) != joinBase(c.SSRC, c.CNAME)+stream.CookieSize {
			t.Fatalf("join re-encoded as %d bytes, want %d or just over", len(enc), stream.MinJoinSize)
		}
		padded := make([]byte, len(enc)-joinBase(c.SSRC, c.CNAME))
		copy(padded, cookie)
		want.App = app(c.App.Subtype, padded)
		return enc, want, true
	case stream.AppChallenge:
		if len(data) != stream.CookieSize || len(c.Reports) > 0 || c.Bye {
			return nil, want, false
		}
		want.App = app(stream.AppChallenge, data)
		return stream.EncodeChallenge(c.SSRC, c.CNAME, data), want, true
	case stream.AppWelcome:
		w, err := stream.DecodeWelcome(data)
		if err != nil || len(c.Reports) > 0 || c.Bye {
			return nil, want, false
		}
		enc = stream.EncodeWelcome(c.SSRC, c.CNAME, w)
		// The reserved word goes out zero.
		want.App = app(stream.AppWelcome, append(bytes.Clone(data[:len(data)-4]), 0, 0, 0, 0))
		return enc, want, true
	case stream.AppReport:
		tally, err := stream.DecodeTally(data)
		if err != nil || len(c.Reports) > 1 {
			return nil, want, false
		}
		var rr *rtcp.ReceptionReport
		if len(c.Reports) == 1 {
			rr = &c.Reports[0]
		}
		want.Reports, want.Bye, want.ByeReason = c.Reports, c.Bye, c.ByeReason
		want.App = app(stream.AppReport, data)
		return stream.EncodeReport(c.SSRC, c.CNAME, rr, tally, c.Bye, c.ByeReason), want, true
	case stream.AppRefuse:
		if len(data) != 4 || len(c.Reports) > 0 || c.Bye {
			return nil, want, false
		}
		want.App = app(stream.AppRefuse, data)
		return stream.EncodeRefuse(c.SSRC, c.CNAME, binary.BigEndian.Uint32(data)), want, true
	}
	return nil, want, false
}
