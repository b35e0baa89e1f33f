package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A replay that checks nothing, or skips nodes the header does not
// describe, fails instead of reporting a pass.
func TestReplayNothingFails(t *testing.T) {
	tests := []struct {
		name, trace, want string
	}{
		{"no nodes, no records", `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[]}`, "no node with records"},
		{"records of no header node", `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[]}
{"t":0,"node":"s","in":"start"}
{"t":1,"node":"s","out":"exit","err":"anything at all"}`, `NOT IN HEADER`},
		{"only net records", `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"s","role":"server","config":{}}]}
{"t":1,"net":"partition","err":"p"}`, "no node with records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "t.ndjson")
			if err := os.WriteFile(file, []byte(tc.trace+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, stderr := runCmd("replay", file, "--spec-only")
			if code != 1 || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("exit %d, want 1 saying %q:\n%s%s", code, tc.want, out, stderr)
			}
		})
	}
}
