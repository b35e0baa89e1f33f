package spec_test

import (
	"testing"

	"github.com/netspec/netspec/spec"
)

func TestClip(t *testing.T) {
	tests := []struct {
		in   string
		max  int
		want string
		cut  bool
	}{
		{"short", 10, "short", false},
		{"exactly10!", 10, "exactly10!", false},
		{"abcdefghijk", 10, "abcdefghij", true},
		{"你好世界", 7, "你好", true}, // 6 bytes: the third character would be split
		{"你好世界", 6, "你好", true},
		{"\xff\xff\xff\xff\xff\xff", 3, "\xff\xff\xff", true},
		{"\x80\x80\x80\x80\x80\x80\x80", 5, "\x80\x80", true}, // continuation bytes only: back at most UTFMax-1
	}
	for _, tc := range tests {
		got, cut := spec.Clip(tc.in, tc.max)
		if got != tc.want || cut != tc.cut {
			t.Errorf("Clip(%q, %d) = %q, %v; want %q, %v", tc.in, tc.max, got, cut, tc.want, tc.cut)
		}
	}
}
