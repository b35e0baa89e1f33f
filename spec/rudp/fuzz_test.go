package rudp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

// estPeer and estPeerID are the hand-played server of FuzzEstablished.
var estPeer = netip.MustParseAddrPort("10.0.0.2:7000")

const estPeerID uint32 = 0x5eed0001

// estRig drives one dialing endpoint as an embedding machine would,
// checks the session's bookkeeping after every step, and records what
// the application was told.
type estRig struct {
	t       *testing.T
	ep      *Endpoint
	id      ConnID
	now     spec.Time
	timers  map[spec.Timer]spec.Time
	stream  []byte // Data delivered, in order
	eof     bool   // PeerClosed seen
	closed  bool   // Closed seen
	closeEv string
}

// Operations of a FuzzEstablished program, chosen by a byte modulo
// opCount; each reads its arguments from the bytes that follow.
const (
	opWait    = iota // wait b*7 ms, firing timers
	opWrite          // the application writes b*37 bytes
	opClose          // the application closes
	opSegment        // the peer sends a SEG built from the next bytes
	opRST            // the peer sends a RST with reason b
	opRaw            // the peer sends a chunk of raw bytes
	opCount
)

// FuzzEstablished plays the server of an established session by hand:
// segments with any flags, sequence and acknowledgement numbers, SACK
// blocks, windows and echoes, resets and garbage, interleaved with the
// application writing and closing and with time passing. Whatever
// arrives, the endpoint never panics, every datagram it sends decodes,
// its bookkeeping stays consistent, the application gets exactly the
// peer's stream in order (each data segment's payload is its sequence
// number) and nothing after PeerClosed or Closed, and once the peer
// falls silent the session ends within five minutes.
func FuzzEstablished(f *testing.F) {
	seg := func(flags, seq, ack, wnd, echo byte, sacks ...byte) []byte {
		b := []byte{opSegment, flags, seq, ack, wnd, echo, byte(len(sacks) / 2)}
		return append(b, sacks...)
	}
	// prog is spectest.Seq that also takes segments.
	prog := func(parts ...any) []byte {
		var b []byte
		for _, x := range parts {
			if s, ok := x.([]byte); ok {
				b = append(b, s...)
			} else {
				b = append(b, spectest.Seq(x)...)
			}
		}
		return b
	}
	const (
		d   = FlagDATA
		fin = FlagDATA | FlagFIN
	)
	// The peer acknowledges everything (the 4,000 bytes written at the
	// start are segments 0..2) and sends three segments and a FIN in
	// order; the application closes, and the peer acknowledges its FIN.
	f.Add(prog(opWait, 2, seg(0, 0, 3, 64, 0), seg(d, 0, 3, 64, 0), seg(d, 1, 3, 64, 0), seg(fin, 2, 3, 64, 0), opClose, opWait, 3, seg(0, 0, 4, 64, 0)))
	// Reordering and a hole the peer repairs; a SACK of our segments.
	f.Add(prog(seg(d, 2, 1, 64, 0), seg(d, 1, 1, 64, 0), seg(0, 0, 3, 64, 0, 5, 9), opWait, 30, seg(d, 0, 9, 64, 0), opWrite, 200))
	// A FIN below data already held (a protocol error), then data past it.
	f.Add(prog(seg(d, 3, 1, 64, 0), seg(fin, 1, 1, 64, 0), seg(d, 0, 1, 64, 0), seg(d, 4, 1, 64, 0)))
	// Data past a held FIN; an acknowledgement of data never sent; a
	// zero window; an echo; then a reset.
	f.Add(prog(seg(fin, 1, 1, 64, 0), seg(d, 2, 200, 0, 0), seg(FlagECHO|FlagPING, 0, 2, 0, 7), opWait, 255, opRST, ReasonAbort))
	// Garbage, a wrapped sequence number, duplicate SACK blocks.
	f.Add(prog(opRaw, "\x01\x03\x00\x00\x00\x00\x00\x01garbage", seg(d, 0xff, 1, 64, 0), seg(0, 0, 1, 64, 0, 3, 3, 3, 3), opClose, opWait, 255))
	f.Fuzz(func(t *testing.T, prog []byte) {
		r := &estRig{t: t, ep: NewEndpoint(Config{Seed: 1, RecvWindow: 64}, 1, 1<<32, false), now: spec.SimEpoch, timers: map[spec.Timer]spec.Time{}}
		r.id = r.ep.Dial(r.now, estPeer)
		r.settle(nil)
		if err := r.ep.Write(r.id, make([]byte, 4000)); err != nil {
			t.Fatal(err)
		}
		r.settle(nil)
		r.wait(10 * time.Millisecond)
		r.deliver((&Packet{Type: TypeSYNACK, Dst: uint32(r.id), Src: estPeerID, MSS: 1452, Wnd: 64, TS: 1}).Append(nil))
		p := spectest.Prog(prog)
		for ops := 0; len(p) > 0 && ops < 512; ops++ {
			switch p.Byte() % opCount {
			case opWait:
				r.wait(time.Duration(p.Byte()) * 7 * time.Millisecond)
			case opWrite:
				_ = r.ep.Write(r.id, make([]byte, int(p.Byte())*37))
				r.settle(nil)
			case opClose:
				r.ep.Close(r.id)
				r.settle(nil)
			case opSegment:
				r.deliver(segment(uint32(r.id), &p))
			case opRST:
				r.deliver((&Packet{Type: TypeRST, Dst: uint32(r.id), Reason: p.Byte()}).Append(nil))
			case opRaw:
				r.deliver(p.Chunk(64))
			}
		}
		r.wait(5 * time.Minute)
		if n := r.ep.Sessions(); n != 0 {
			t.Fatalf("%d sessions after 5 minutes of silence", n)
		}
		if !r.closed {
			t.Fatal("the session went away without a Closed event")
		}
	})
}

// segment builds a SEG to session dst from a program's next bytes:
// flags, seq and ack (small signed numbers, so they land near the
// streams' starts and wrap below 0), window, echo, and up to 3 SACK
// blocks. A data segment's payload is its sequence number, 2 bytes.
func segment(dst uint32, p *spectest.Prog) []byte {
	small := func() uint32 { return uint32(int32(int8(p.Byte()))) }
	pk := Packet{Type: TypeSEG, Dst: dst}
	pk.Flags = p.Byte() & (FlagDATA | FlagFIN | FlagPING | FlagECHO)
	if pk.Flags&FlagFIN != 0 {
		pk.Flags |= FlagDATA
	}
	pk.Seq, pk.Ack, pk.Wnd = small(), small(), uint32(p.Byte())
	if echo := p.Byte(); pk.Flags&FlagECHO != 0 {
		pk.Echo = uint16(echo)
	}
	for n := int(p.Byte() % 4); n > 0; n-- {
		s := small()
		pk.SACK[pk.NSACK] = Block{s, s + uint32(p.Byte()%40) + 1}
		pk.NSACK++
	}
	if pk.Flags&FlagDATA != 0 {
		pk.Payload = binary.BigEndian.AppendUint16(nil, uint16(pk.Seq))
	} else {
		pk.Seq = 0
	}
	return pk.Append(nil)
}

func (r *estRig) deliver(b []byte) {
	out, _ := r.ep.Handle(r.now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: estPeer, Data: b}, nil)
	r.settle(out)
}

// wait advances the clock by d, firing every timer due on the way.
func (r *estRig) wait(d time.Duration) {
	to := r.now.Add(d)
	for fired := 0; ; fired++ {
		tm, at, ok := spectest.Earliest(r.timers)
		if !ok || at > to {
			break
		}
		if fired > 100000 {
			r.t.Fatalf("timer livelock at %v", r.now.Sub(spec.SimEpoch))
		}
		delete(r.timers, tm)
		r.now = max(r.now, at)
		out, _ := r.ep.Handle(r.now, spec.Input{Kind: spec.InTimer, Timer: tm}, nil)
		r.settle(out)
	}
	r.now = max(r.now, to)
}

// settle ends a step as an embedding machine does (events, then Flush)
// and checks what the step did.
func (r *estRig) settle(out []spec.Output) {
	r.events()
	out = r.ep.Flush(r.now, out)
	r.events()
	for _, o := range out {
		switch o.Kind {
		case spec.OutSend:
			var p Packet
			if err := Decode(o.Data, &p); err != nil {
				r.t.Fatalf("sent a datagram that does not decode: %v", err)
			}
			if o.Addr != estPeer {
				r.t.Fatalf("sent to %v, the peer is %v", o.Addr, estPeer)
			}
		case spec.OutSetTimer:
			if o.At < r.now {
				r.t.Fatalf("timer set %v in the past", r.now.Sub(o.At))
			}
			r.timers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(r.timers, o.Timer)
		}
	}
	r.check()
}

// events reads the endpoint's events: the stream must be the peer's
// segments 0, 1, 2, ... in order, and nothing follows its end.
func (r *estRig) events() {
	for ev, ok := r.ep.Next(); ok; ev, ok = r.ep.Next() {
		if r.closed {
			r.t.Fatalf("%v after Closed (%q)", ev.Kind, r.closeEv)
		}
		switch ev.Kind {
		case Data:
			if r.eof {
				r.t.Fatalf("Data %x after PeerClosed", ev.Data)
			}
			r.stream = append(r.stream, ev.Data...)
			for i := 0; i+1 < len(r.stream); i += 2 {
				if got := binary.BigEndian.Uint16(r.stream[i:]); got != uint16(i/2) {
					r.t.Fatalf("delivered segment %d where %d belongs", got, i/2)
				}
			}
		case PeerClosed:
			if r.eof {
				r.t.Fatal("PeerClosed twice")
			}
			r.eof = true
		case Closed:
			r.closed, r.closeEv = true, ev.Err
		}
	}
}

// check verifies the session's bookkeeping.
func (r *estRig) check() {
	for _, c := range r.ep.conns {
		if c.inflight < 0 || c.outBytes < 0 || c.pendLen < 0 {
			r.t.Fatalf("%v: inflight %d, outBytes %d, pendLen %d", c.st, c.inflight, c.outBytes, c.pendLen)
		}
		if c.segs != nil {
			n := 0
			for q := c.sndUna; q < c.sndNxt; q++ {
				if c.seg(q).state == segInflight {
					n++
				}
			}
			if n != c.inflight {
				r.t.Fatalf("%v: inflight %d, but %d segments are in flight", c.st, c.inflight, n)
			}
		}
		prev := c.rcvNext
		for _, s := range c.ranges {
			if s.s <= prev || s.e <= s.s || s.e > c.rcvNext+uint64(c.ep.cfg.RecvWindow) {
				r.t.Fatalf("held ranges %v above %d are not sorted, disjoint and within the window", fmt.Sprint(c.ranges), c.rcvNext)
			}
			prev = s.e
		}
		if c.finRcvd && len(c.ranges) > 0 && c.ranges[len(c.ranges)-1].e > c.rcvFinSeq+1 {
			r.t.Fatalf("segments held up to %d past the peer's FIN at %d", c.ranges[len(c.ranges)-1].e-1, c.rcvFinSeq)
		}
	}
}

// FuzzDescribe: Describe takes any datagram (doc.go: "It accepts any
// bytes") and summarises it in one line whose fields are all fixed-size
// numbers, so it is short whatever arrives: at most 512 bytes (eight
// SACK blocks and every flag come to about 330). What decodes is named
// by its type.
func FuzzDescribe(f *testing.F) {
	var mac [MACLen]byte
	for i := range mac {
		mac[i] = byte(i)
	}
	for _, p := range []Packet{
		{Type: TypeSYN, Src: 0x1234, MSS: 1452, Wnd: 64},
		{Type: TypeSYNACK, Dst: 0x1234, Src: 0xabcd, MSS: 1452, Wnd: 64, TS: 99, MAC: mac},
		{Type: TypeRST, Dst: 7, Reason: ReasonTimeout},
		{Type: TypeSEG, Dst: 1, Seq: 0, Flags: FlagDATA | FlagCOOKIE, Cookie: Cookie{TS: 99, Src: 0x1234, MSS: 1452, Wnd: 64, MAC: mac}, Payload: []byte("hello")},
		{Type: TypeSEG, Dst: 1, Ack: 1 << 31, Wnd: 1 << 31, Stamp: 65535, Echo: 65535, Flags: FlagECHO | FlagPING, NSACK: MaxSACK,
			SACK: [MaxSACK]Block{{1 << 31, 1<<31 + 1<<30}, {2, 3}, {4, 5}, {6, 7}, {8, 9}, {10, 11}, {12, 13}, {14, 15}}},
		{Type: TypeSEG, Dst: 1, Seq: 1<<32 - 1, Flags: FlagDATA | FlagFIN},
	} {
		f.Add(p.Append(nil))
	}
	f.Add([]byte{})
	f.Add([]byte{1, 9, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d := spectest.CheckDescribe(t, Describe, b, 512)
		var p Packet
		if Decode(b, &p) != nil {
			return
		}
		want := map[uint8]string{TypeSYN: "SYN ", TypeSYNACK: "SYN-ACK ", TypeRST: "RST ", TypeSEG: "SEG "}[p.Type]
		if !strings.HasPrefix(d, want) {
			t.Fatalf("a %d-type packet described as %q", p.Type, d)
		}
	})
}
