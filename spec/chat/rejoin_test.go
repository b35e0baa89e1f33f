package chat_test

import (
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

func clientSends(out []spec.Output) [][]byte {
	var r [][]byte
	for _, o := range out {
		if o.Kind == spec.OutSend {
			r = append(r, o.Data)
		}
	}
	return r
}

// A welcomed client that the server expired (a partition) and that finds
// the room full on its return is told so: after an Interval without a
// word from the server it pads its datagrams again, as a stranger does.
func TestExpiredClientIsToldTheChatIsFull(t *testing.T) {
	iv := 3 * time.Second
	b, _ := newServer(t, chat.ServerConfig{MaxMembers: 1, Interval: iv})
	c := chat.NewClient(chat.ClientConfig{Server: srvAddr, Interval: iv})
	me := addr(9)
	step := func(now time.Duration, in spec.Input) [][]byte {
		return clientSends(c.Step(at(now), in, nil))
	}
	step(0, spec.Input{Kind: spec.InStart})
	first := step(time.Millisecond, spec.Input{Kind: spec.InBound, Sock: 1, Addr: me})
	t.Logf("first datagram %d bytes", len(first[0]))
	for to, ds := range b.dgram(time.Millisecond, me, string(first[0])) {
		for _, d := range ds {
			if to == me {
				step(2*time.Millisecond, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: srvAddr, Data: []byte(d)})
			}
		}
	}
	// Partition: the server hears nothing from the client for 2 intervals.
	b.step(iv+10*time.Millisecond, spec.Input{Kind: spec.InTimer, Timer: 1})
	// Someone else takes the only place.
	b.dgram(iv+20*time.Millisecond, addr(1), "hello")
	// The client types a line; its heartbeat also goes out.
	ds := step(2*iv, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "line", Data: []byte("hi\n")}})
	ds = append(ds, step(2*iv, spec.Input{Kind: spec.InTimer, Timer: 1})...)
	for _, d := range ds {
		got := b.dgram(2*iv, me, string(d))
		t.Logf("client sent %d bytes %q; server answered %q", len(d), d, got[me])
		if len(got[me]) == 0 {
			t.Errorf("client was told nothing about the full chat")
		}
	}
}
