package echo

import (
	"net/netip"
	"testing"

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
