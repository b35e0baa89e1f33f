package chat_test

import (
	"strings"
	"testing"

	"github.com/netspec/netspec/spec/chat"
)

// Timelines show chat lines as people wrote them, Chinese included, cut
// between characters, with control characters escaped.
func TestDescribeText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"你好，世界\n", `"你好，世界"`},
		{strings.Repeat("聊", 20) + "\n", `"` + strings.Repeat("聊", 13) + `..."`},
		{"\x1b[2Jhi\n", `"\x1b[2Jhi"`},
	}
	for _, tc := range tests {
		if got := chat.Describe([]byte(tc.in)); got != tc.want {
			t.Errorf("Describe(%q) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
