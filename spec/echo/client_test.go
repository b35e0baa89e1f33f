package echo

import (
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
)

// A TCP echo client exits with an error naming why a message failed: a
// wrong echo is a failure, as it is over UDP, not a success.
func TestTCPClientJudgesTheEcho(t *testing.T) {
	server := netip.MustParseAddrPort("127.0.0.1:7")
	for _, tc := range []struct {
		name  string
		reply string
		err   string // the stream's close error
		want  string // the exit message
	}{
		{"right echo", "hi", "", ""},
		{"wrong echo", "WRONG", "", "echo: 1 message(s) failed (first: the echo differs from the message (5 bytes back for 2 sent))"},
		{"no echo", "", "", "echo: 1 message(s) failed (first: the echo differs from the message (0 bytes back for 2 sent))"},
		{"refused", "", "connection refused", "echo: 1 message(s) failed (first: connection refused)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := NewClient(ClientConfig{Server: server, TCP: true})
			var now spec.Time
			var out []spec.Output
			step := func(in spec.Input) { out = c.Step(now, in, out[:0]) }
			step(spec.Input{Kind: spec.InStart})
			step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "send", Data: []byte("hi")}})
			step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "close"}})
			if tc.err == "" {
				step(spec.Input{Kind: spec.InConnected, Stream: 1, Addr: server})
				if tc.reply != "" {
					step(spec.Input{Kind: spec.InStreamData, Stream: 1, Data: []byte(tc.reply)})
				}
			}
			step(spec.Input{Kind: spec.InStreamClosed, Stream: 1, Err: tc.err})
			var exit *spec.Output
			for i := range out {
				if out[i].Kind == spec.OutExit {
					exit = &out[i]
				}
			}
			if exit == nil {
				t.Fatalf("no exit in %+v", out)
			}
			if exit.Err != tc.want {
				t.Errorf("exit %q, want %q", exit.Err, tc.want)
			}
		})
	}
}

// A UDP message with no echo is sent once and resent Retries times,
// Timeout apart, before the client gives up on it.
func TestUDPClientResendsRetriesTimes(t *testing.T) {
	server := netip.MustParseAddrPort("192.0.2.1:7")
	for _, tc := range []struct {
		retries int
		sends   int
	}{
		{-1, 1}, // no resends
		{0, 3},  // the default, 2
		{1, 2},
		{4, 5},
	} {
		c := NewClient(ClientConfig{Server: server, Timeout: time.Second, Retries: tc.retries})
		now := spec.SimEpoch
		var out []spec.Output
		step := func(in spec.Input) { out = c.Step(now, in, out[:0]) }
		step(spec.Input{Kind: spec.InStart})
		step(spec.Input{Kind: spec.InBound, Sock: 1})
		step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "send", Data: []byte("hi")}})
		sends, timedOut := 0, false
		for i := 0; i < 100 && !timedOut; i++ {
			var next spec.Time
			for _, o := range out {
				switch {
				case o.Kind == spec.OutSend:
					sends++
				case o.Kind == spec.OutSetTimer:
					next = o.At
				case o.Kind == spec.OutEvent && o.Event.Name == "timeout":
					timedOut = true
				}
			}
			if next == 0 {
				break
			}
			now = next
			step(spec.Input{Kind: spec.InTimer, Timer: retryTimer})
		}
		if !timedOut {
			t.Fatalf("Retries %d: the message never timed out", tc.retries)
		}
		if sends != tc.sends {
			t.Errorf("Retries %d: sent %d times, want %d", tc.retries, sends, tc.sends)
		}
	}
}
