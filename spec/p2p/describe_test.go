package p2p_test

import (
	"strings"
	"testing"

	"github.com/netspec/netspec/spec/p2p"
)

// Every op in a chunk shows up in its summary (trace show --match finds
// it), however many lines come before it, and the summary stays short.
func TestDescribe(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"a few lines", "CHEL 51000\nXHEL 1 tree\n", `23 bytes "CHEL 51000" "XHEL 1 tree"`},
		{"repeats collapse", strings.Repeat("DANY\n", 13) + "HREQ\n", `70 bytes DANY×13 "HREQ"`},
		{"raw bytes after", "HASH 5\n\x00\x01\x02", `10 bytes "HASH 5" +3`},
		{"ops past the first groups", "PHEL\nCLREQ\nHAVE 1\nDREQ 0 9\nDREQ 9 9\nHREQ\nDANY\nDANY\nHREQ\n", `56 bytes "PHEL" "CLREQ" "HAVE 1" DREQ×2 …4 more: HREQ×2 DANY×2`},
		{"not messages", "\x00\x01", "2 bytes"},
		{"a few repeats stay whole", "DREQ 0 9\nDREQ 9 9\n", `18 bytes "DREQ 0 9" "DREQ 9 9"`},
		{"unknown lines past the first groups", "PHEL\nCLREQ\nHAVE 1\nDREQ 0 9\nHELLO\n", `33 bytes "PHEL" "CLREQ" "HAVE 1" "DREQ 0 9" …1 more`},
	}
	for _, tc := range tests {
		if got := p2p.Describe([]byte(tc.in)); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// A long run of alternating ops stays one short line.
	long := p2p.Describe([]byte(strings.Repeat("DANY\nHREQ\nHAVE 3\n", 1000)))
	if len(long) > 120 || !strings.Contains(long, "HAVE×") {
		t.Errorf("%d-byte summary of 3000 lines: %q", len(long), long)
	}
}
