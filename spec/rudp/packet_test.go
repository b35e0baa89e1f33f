package rudp

import (
	"bytes"
	"reflect"
	"testing"
)

func samplePackets() []Packet {
	return []Packet{
		{Type: TypeSYN, Src: 0xdeadbeef, MSS: 1452, Wnd: 2048},
		{Type: TypeSYNACK, Dst: 1, Src: 2, MSS: 1400, Wnd: 64, TS: 946684800, MAC: [16]byte{1, 2, 3}},
		{Type: TypeRST, Dst: 7, Reason: ReasonBusy},
		{Type: TypeSEG, Dst: 9, Flags: FlagDATA, Seq: 4, Ack: 3, Wnd: 100, Stamp: 17, Payload: []byte("hello")},
		{Type: TypeSEG, Dst: 9, Flags: FlagPING | FlagECHO, Ack: 1 << 31, Wnd: 1, Echo: 65535, NSACK: 2,
			SACK: [MaxSACK]Block{{5, 7}, {0xfffffff0, 3}}},
		{Type: TypeSEG, Dst: 9, Flags: FlagDATA | FlagCOOKIE | FlagFIN, Cookie: Cookie{TS: 5, Src: 6, MSS: 1452, Wnd: 9, MAC: [16]byte{9}}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, p := range samplePackets() {
		b := p.Append(nil)
		if len(b) != p.Len() {
			t.Errorf("%s: encoded %d bytes, Len says %d", Describe(b), len(b), p.Len())
		}
		var q Packet
		if err := Decode(b, &q); err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if len(q.Payload) == 0 {
			q.Payload = nil
		}
		if !equal(&p, &q) {
			t.Errorf("round trip changed the packet:\n got %+v\nwant %+v", q, p)
		}
	}
}

func equal(a, b *Packet) bool {
	if !bytes.Equal(a.Payload, b.Payload) {
		return false
	}
	x, y := *a, *b
	x.Payload, y.Payload = nil, nil
	return reflect.DeepEqual(x, y)
}

// Hostile bytes are errors, never panics, and a SYN of any length but
// 64 bytes is refused: shorter, answers could be larger than the
// request; longer, it would not be the one layout doc.go gives.
func TestDecodeRejects(t *testing.T) {
	syn := (&Packet{Type: TypeSYN, Src: 1, MSS: 1452, Wnd: 1}).Append(nil)
	seg := (&Packet{Type: TypeSEG, Dst: 1, Flags: FlagDATA, Payload: []byte("x")}).Append(nil)
	mutate := func(b []byte, i int, v byte) []byte {
		c := append([]byte(nil), b...)
		c[i] = v
		return c
	}
	for name, b := range map[string][]byte{
		"empty":             nil,
		"short SYN":         syn[:SynLen-1],
		"long SYN":          append(syn, 0),
		"bad version":       mutate(syn, 0, 2),
		"unknown type":      mutate(syn, 1, 9),
		"SYN with id 0":     mutate(mutate(mutate(mutate(syn, 8, 0), 9, 0), 10, 0), 11, 0),
		"unknown flag":      mutate(seg, 2, 0x81),
		"payload, no DATA":  mutate(seg, 2, 0),
		"too many SACKs":    mutate(seg, 3, MaxSACK+1),
		"SACK past the end": mutate(seg, 3, 1),
		"RST too long":      append((&Packet{Type: TypeRST, Dst: 1, Reason: 1}).Append(nil), 0),
		"RST reason 0":      (&Packet{Type: TypeRST, Dst: 1}).Append(nil),
		"echo without ECHO": mutate(seg, 23, 1),
		"huge":              make([]byte, MaxPacket+1),
	} {
		var p Packet
		if err := Decode(b, &p); err == nil {
			t.Errorf("%s: decoded without error: %+v", name, p)
		}
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		ref  uint64
		w    uint32
		want uint64
	}{
		{0, 0, 0}, {0, 5, 5}, {10, 3, 3}, {1 << 32, 0xffffffff, 1<<32 - 1},
		{1<<32 - 3, 2, 1<<32 + 2}, {5 << 32, 7, 5<<32 + 7}, {0, 0xfffffffe, 0xfffffffe},
	} {
		if got := expand(tc.ref, tc.w); got != tc.want {
			t.Errorf("expand(%#x, %#x) = %#x, want %#x", tc.ref, tc.w, got, tc.want)
		}
	}
}

// FuzzDecode: any bytes decode or fail cleanly, and whatever decodes
// re-encodes to a packet that decodes the same.
func FuzzDecode(f *testing.F) {
	for _, p := range samplePackets() {
		f.Add(p.Append(nil))
	}
	f.Add([]byte{1, 3, 0, 8, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Packet
		if err := Decode(b, &p); err != nil {
			return
		}
		_ = Describe(b)
		again := p.Append(nil)
		var q Packet
		if err := Decode(again, &q); err != nil {
			t.Fatalf("re-encoded packet does not decode: %v", err)
		}
		if len(q.Payload) == 0 {
			q.Payload = nil
		}
		if len(p.Payload) == 0 {
			p.Payload = nil
		}
		if !equal(&p, &q) {
			t.Fatalf("decode(encode(p)) != p:\n%+v\n%+v", p, q)
		}
	})
}
