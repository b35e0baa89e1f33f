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
	tests = append(tests, struct{ name, trace, want string }{"--node with no records", `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"s","role":"server","config":{}}]}
{"t":1,"net":"partition","err":"p"}`, `node "s" has no records`})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "t.ndjson")
			if err := os.WriteFile(file, []byte(tc.trace+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			args := []string{"replay", file, "--spec-only"}
			if strings.HasPrefix(tc.name, "--node") {
				args = append(args, "--node", "s")
			}
			code, out, stderr := runCmd(args...)
			if code != 1 || !strings.Contains(out+stderr, tc.want) {
				t.Fatalf("exit %d, want 1 saying %q:\n%s%s", code, tc.want, out, stderr)
			}
		})
	}
}

// A node name that only records give reaches the terminal cleaned, and
// the summary counts nodes, not their spec and impl failures apiece.
func TestReplayReportsCleanly(t *testing.T) {
	evil := `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[]}
{"t":0,"node":"ev\u001b]0;pwned\u0007il","in":"start"}`
	file := filepath.Join(t.TempDir(), "t.ndjson")
	if err := os.WriteFile(file, []byte(evil+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCmd("replay", file, "--spec-only")
	if code != 1 || strings.ContainsAny(out, "\x1b\x07") {
		t.Fatalf("exit %d, output with control bytes %q", code, out)
	}

	raw, err := os.ReadFile("../../conformance/testdata/echo-impl-udp-client.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(raw), "\n")
	for i, l := range lines {
		if strings.Contains(l, `"out":"send"`) {
			lines[i] = strings.Replace(l, `"text":"`, `"text":"tampered `, 1)
			break
		}
	}
	file = filepath.Join(t.TempDir(), "tampered.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, stderr := runCmd("replay", file)
	if code != 1 || !strings.Contains(stderr, "1 node(s) failed") {
		t.Fatalf("exit %d, want 1 saying one node failed:\n%s%s", code, out, stderr)
	}
}
