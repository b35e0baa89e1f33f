package rudp_test

import (
	"testing"

	"github.com/netspec/netspec/spec/rudp"
)

// A FIN names the peer's last sequence number, so a segment above it
// is a broken peer: whichever arrives first, the session never hands
// the application bytes after PeerClosed. A FIN below data already held
// ends the session with a protocol error and a RST; data after a held
// FIN is dropped; a held FIN resent is only a duplicate.
func TestNoDataAfterPeerFIN(t *testing.T) {
	data := func(seq uint32, s string) rudp.Packet {
		return rudp.Packet{Flags: rudp.FlagDATA, Seq: seq, Ack: 1, Wnd: 64, Payload: []byte(s)}
	}
	fin := func(seq uint32) rudp.Packet {
		return rudp.Packet{Flags: rudp.FlagDATA | rudp.FlagFIN, Seq: seq, Ack: 1, Wnd: 64}
	}
	cases := []struct {
		name     string
		arrivals []rudp.Packet
		protoErr bool // the session ends with a protocol error
	}{
		// Segment 2 is held out of order when the FIN at 1 comes.
		{"held data above an out-of-order FIN", []rudp.Packet{data(2, "after"), fin(1), data(0, "a")}, true},
		// Segment 2 is held when the FIN at 0 arrives in order.
		{"held data above an in-order FIN", []rudp.Packet{data(2, "after"), fin(0)}, true},
		// The FIN is held first: segment 2 is past it and dropped.
		{"data after a held FIN", []rudp.Packet{fin(1), data(2, "after"), data(0, "a")}, false},
		// A held FIN that comes again (the sender's probe or RTO resent
		// it) is a duplicate like any other, not data past the end:
		// what is held reaches up to the FIN, not beyond it.
		{"a held FIN resent", []rudp.Packet{fin(1), fin(1), data(0, "a")}, false},
		{"a held FIN resent, data held below it", []rudp.Packet{data(1, "b"), fin(2), fin(2), data(0, "a")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, rudp.Config{Seed: 1})
			h.establish(ms(10), 64)
			h.take()
			for _, p := range tc.arrivals {
				h.deliver(p)
			}
			peerClosed := false
			for _, ev := range h.events {
				switch {
				case ev.Kind == rudp.PeerClosed:
					peerClosed = true
				case ev.Kind == rudp.Data && peerClosed:
					t.Errorf("Data %q delivered after PeerClosed", ev.Data)
				case ev.Kind == rudp.Data && string(ev.Data) == "after":
					t.Errorf("Data %q past the FIN delivered", ev.Data)
				}
			}
			ev, _, closed := h.closed()
			if !tc.protoErr {
				if !peerClosed || closed {
					t.Fatalf("PeerClosed %v, Closed %v (%q): want the stream to end cleanly", peerClosed, closed, ev.Err)
				}
				return
			}
			if !closed || ev.Err == "" {
				t.Fatalf("Closed %v (%q): want the session ended with a protocol error", closed, ev.Err)
			}
			if n := h.counter("rudp_protocol_errors"); n != 1 {
				t.Errorf("rudp_protocol_errors = %d, want 1", n)
			}
			rst := false
			for _, s := range h.take() {
				rst = rst || s.p.Type == rudp.TypeRST && s.p.Reason == rudp.ReasonProtocol
			}
			if !rst {
				t.Error("no RST with reason protocol error sent")
			}
		})
	}
}
