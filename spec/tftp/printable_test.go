package tftp

import (
	"strings"
	"testing"
)

// A server's message is shown as written, quotes and all, with only what
// a terminal must not see escaped, and cut only when long.
func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`access violation: "../x" is not a path inside the root`, `access violation: "../x" is not a path inside the root`},
		{"bell\a and escape\x1b[2J", `bell\a and escape\x1b[2J`},
		{"bad \xff byte", `bad \xff byte`},
		{`back\slash`, `back\\slash`},
		{"文件不存在", "文件不存在"},
		{strings.Repeat("x", 300), strings.Repeat("x", 200) + "..."},
	} {
		if got := printable(tc.in, 200); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
