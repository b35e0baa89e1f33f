package spectest

import (
	"strings"
	"testing"
)

// CheckDescribe checks what spec.Protocol.Describe promises a timeline,
// whatever b holds: describe(b) is one line of at most max bytes, the
// same every time, and leaves b as it was. It returns the description,
// for a protocol's own checks.
func CheckDescribe(t *testing.T, describe func([]byte) string, b []byte, max int) string {
	t.Helper()
	orig := string(b)
	d := describe(b)
	if string(b) != orig {
		t.Fatalf("Describe changed its input %q to %q", orig, b)
	}
	if strings.ContainsAny(d, "\r\n") {
		t.Fatalf("Describe(%q) is not one line: %q", b, d)
	}
	if len(d) > max {
		t.Fatalf("Describe of %d bytes is %d bytes long, limit %d: %.200q", len(b), len(d), max, d)
	}
	if again := describe(b); again != d {
		t.Fatalf("Describe(%q) gave %q, then %q", b, d, again)
	}
	return d
}
