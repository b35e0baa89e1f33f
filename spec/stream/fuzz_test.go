package stream_test

import (
	"bytes"
	"encoding/binary"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/spectest"
	"github.com/netspec/netspec/spec/stream"
)

// checkDescribe: Describe accepts any bytes and gives one line for a
// timeline (spec.Protocol.Describe), no longer than a quoted BYE reason
// or the report blocks of the datagram could make it.
func checkDescribe(t *testing.T, b []byte) {
	t.Helper()
	spectest.CheckDescribe(t, stream.Describe, b, 4*len(b)+128)
}

// FuzzDecodeAppData: any bytes as a WELCOME's or a REPORT's APP data
// decode or fail cleanly. A WELCOME that decodes has the nonzero
// intervals and expiry, and intervals of at most 24 h, that doc.go
// requires, and goes through EncodeWelcome and back unchanged; a tally
// that decodes goes out in a REPORT as the very bytes it came from.
func FuzzDecodeAppData(f *testing.F) {
	tok := [stream.TokenSize]byte{1, 2, 3, 4, 5, 6, 7, 8}
	welcome := func(w stream.Welcome) []byte {
		c, err := stream.DecodeControl(stream.EncodeWelcome(9, "stream-00000009", w))
		if err != nil {
			f.Fatal(err)
		}
		return c.App.Data
	}
	f.Add(welcome(stream.Welcome{Token: tok, Interval: uint64(time.Millisecond), Report: uint64(time.Second), Expire: 5}))
	f.Add(welcome(stream.Welcome{Interval: uint64(24 * time.Hour), Report: uint64(24 * time.Hour), Expire: 1 << 31}))
	c, err := stream.DecodeControl(stream.EncodeReport(9, "cn", nil, stream.Tally{Token: tok, Packets: 10, Duplicates: 1, Reordered: 2, Sum: 110}, false, ""))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(c.App.Data)
	f.Add(make([]byte, 28))
	f.Add(make([]byte, 40))
	f.Fuzz(func(t *testing.T, d []byte) {
		if w, err := stream.DecodeWelcome(d); err == nil {
			day := uint64(24 * time.Hour)
			if w.Interval == 0 || w.Report == 0 || w.Expire == 0 || w.Interval > day || w.Report > day {
				t.Fatalf("WELCOME out of range decoded: %+v", w)
			}
			c, err := stream.DecodeControl(stream.EncodeWelcome(1, "cn", w))
			if err != nil || c.App == nil || c.App.Subtype != stream.AppWelcome {
				t.Fatalf("EncodeWelcome(%+v) decodes as %+v, %v", w, c, err)
			}
			again, err := stream.DecodeWelcome(c.App.Data)
			if err != nil || again != w {
				t.Fatalf("WELCOME %+v re-encoded decodes as %+v, %v", w, again, err)
			}
			if !bytes.Equal(c.App.Data[:24], d[:24]) || binary.BigEndian.Uint32(d[24:]) != w.Expire {
				t.Fatalf("WELCOME % x re-encoded as % x", d, c.App.Data)
			}
		}
		if tl, err := stream.DecodeTally(d); err == nil {
			c, err := stream.DecodeControl(stream.EncodeReport(1, "cn", nil, tl, false, ""))
			if err != nil || c.App == nil || c.App.Subtype != stream.AppReport {
				t.Fatalf("EncodeReport(%+v) decodes as %+v, %v", tl, c, err)
			}
			if !bytes.Equal(c.App.Data, d) {
				t.Fatalf("tally % x re-encoded as % x", d, c.App.Data)
			}
			again, err := stream.DecodeTally(c.App.Data)
			if err != nil || again != tl {
				t.Fatalf("tally %+v re-encoded decodes as %+v, %v", tl, again, err)
			}
		}
	})
}
