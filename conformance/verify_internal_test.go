package conformance

import (
	"strings"
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// verify holds a stream to exactly the bytes the node wrote on it: a
// harness peer that received more than the trace says (the runner wrote
// something twice, or a stale buffer) fails the replay, though what it
// received begins with the right bytes.
func TestVerifyStreamBytes(t *testing.T) {
	const st = spec.Stream(7)
	write := trace.Record{Node: "n", Out: "write", Stream: uint64(st)}
	write.SetPayload([]byte("hello"))
	want := []trace.Record{write, {Node: "n", Out: "close", Stream: uint64(st)}}
	tests := []struct {
		name, got string
		err       string // "" if verify must accept it
	}{
		{"exact", "hello", ""},
		{"one byte more", "hello!", "carried 6 bytes, want 5"},
		{"a byte changed", "hellO", "carried 5 bytes, want 5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A peer that has read everything and the FIN.
			p := &peerConn{got: []byte(tc.got), eof: true, done: make(chan struct{})}
			close(p.done)
			h := &harness{conns: map[spec.Stream]*peerConn{st: p}}
			err := h.verify("n", want)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("verify of a stream that carried %q: %v", tc.got, err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("verify of a stream that carried %q where %q was written: %v, want an error saying %q", tc.got, "hello", err, tc.err)
			}
		})
	}
}
