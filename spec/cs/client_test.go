package cs

import (
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

// The end of the stream is the end of the file (doc.go), so a server
// that sends only the first bytes of the expected file and closes
// cleanly must not make a match: every byte that came is right, but
// some never came. The client's "done" says Match false, with the bytes
// it got, and it exits with an error, not cleanly.
func TestShortStreamEndedByFINDoesNotMatch(t *testing.T) {
	want := fuzzData(t, 100)
	for _, tc := range []struct {
		name string
		got  int // bytes of the file sent before the FIN
	}{{"nothing", 0}, {"one byte", 1}, {"all but the last byte", 99}, {"the whole file", 100}} {
		t.Run(tc.name, func(t *testing.T) {
			expect := fuzzFile
			expect.Size = int64(len(want))
			r := spectest.NewRig(t, NewClient(ClientConfig{Server: fuzzServer, Expect: &expect}, want))
			r.Step(spec.Input{Kind: spec.InStart})
			r.Step(spec.Input{Kind: spec.InConnected, Stream: stream, Addr: fuzzServer})
			if tc.got > 0 {
				r.Step(spec.Input{Kind: spec.InStreamData, Stream: stream, Data: want[:tc.got]})
			}
			r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: stream})
			var done *Done
			for _, ev := range r.Events {
				if ev.Name == "done" {
					d := ev.Value.(Done)
					done = &d
				}
			}
			whole := tc.got == len(want)
			if done == nil || done.Match == nil || *done.Match != whole || done.Bytes != int64(tc.got) {
				if done == nil {
					t.Fatalf("no done event after %d of %d bytes and a FIN", tc.got, len(want))
				}
				t.Fatalf("done for %d bytes, match %v, after %d of %d bytes and a FIN; want match %v", done.Bytes, done.Match != nil && *done.Match, tc.got, len(want), whole)
			}
			if !r.ExitNow || (r.Exit == "") != whole {
				t.Fatalf("exit %v %q after %d of %d bytes; want a clean exit only with the whole file", r.ExitNow, r.Exit, tc.got, len(want))
			}
		})
	}
}
