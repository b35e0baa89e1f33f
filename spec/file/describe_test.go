package file

import (
	"bytes"
	"strings"
	"testing"

	"github.com/netspec/netspec/spec/rudp"
)

// The frame summary decodes frame headers only where there are some: a
// chunk that starts inside a frame is said to, not read as an invented
// frame with a type and a length from file bytes.
func TestDescribeFrames(t *testing.T) {
	file := appendFrame(nil, FrameFile, u64(3), u64(0), []byte("a"))
	data := appendFrame(nil, FrameData, []byte("xyz"))
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"whole frames", append(append([]byte{}, file...), data...), "[0x82 17B][0x83 3B]"},
		{"a frame, cut short", data[:6], "[0x83 3B]"},
		{"file bytes", []byte{0x05, 0x5c, 0x23, 0x4e, 0x5d, 1, 2, 3}, "mid-frame data (8 bytes)"},
		{"unknown type, small length", []byte{0x05, 0, 0, 0, 1, 'x'}, "mid-frame data (6 bytes)"},
		{"known type, length over its limit", []byte{FrameReply, 0, 1, 0, 1, 0}, "mid-frame data (6 bytes)"},
		{"DATA up to its limit", []byte{FrameData, 0, 0x10, 0, 0, 0}, "[0x83 1048576B]"},
		{"after a frame, not a frame", append(append([]byte{}, data...), 0x00, 0xff, 0xff, 0xff, 0xff, 9), "[0x83 3B]mid-frame data (6 bytes)"},
	}
	for _, tc := range tests {
		if got := describeFrames(tc.in); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A download's middle segment, as the trace tools see it.
func TestDescribeMidDownloadSegment(t *testing.T) {
	p := rudp.Packet{Type: rudp.TypeSEG, Flags: rudp.FlagDATA, Dst: 1, Seq: 7, Wnd: 8,
		Payload: append([]byte{0x05}, bytes.Repeat([]byte{0x5c, 0x23, 0x4e, 0x5d}, 300)...)}
	got := Describe(p.Append(nil))
	if !strings.Contains(got, "mid-frame data (1201 bytes)") || strings.Contains(got, "[0x05") {
		t.Errorf("Describe = %q, want the payload shown as mid-frame data", got)
	}
}
