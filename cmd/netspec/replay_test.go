package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
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

// A server given a file with -f records the file's name, and its trace
// replays where that file is (and, with --root, from elsewhere): the
// recorded config used to name the generated default instead, and a
// replay served other bytes.
func TestReplayServesTheRecordedFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f.bin")
	if err := os.WriteFile(file, bytes.Repeat([]byte("netspec "), 30000), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, proto := range []string{"cs", "p2p"} {
		t.Run(proto, func(t *testing.T) {
			tr := filepath.Join(dir, proto+".ndjson")
			ctx, cancel := context.WithCancel(context.Background())
			pr, pw := io.Pipe()
			done := make(chan int, 1)
			go func() {
				done <- run(ctx, []string{proto, "serve", "-p", "0", "--ip", "127.0.0.1", "-f", file, "--trace", tr}, strings.NewReader(""), pw, io.Discard)
				pw.Close()
			}()
			var addr string
			sc := bufio.NewScanner(pr)
			for addr == "" && sc.Scan() {
				if m := swarmListening.FindStringSubmatch(sc.Text()); m != nil {
					addr = m[1]
				}
			}
			go io.Copy(io.Discard, pr)
			if addr == "" {
				cancel()
				t.Fatal("the server never said where it serves")
			}
			host, port := split(t, addr)
			args := []string{"cs", "get", "-s", host, "-p", port, "-o", filepath.Join(dir, proto+".out"), "-q"}
			if proto == "p2p" {
				args = []string{"p2p", "get", "-s", host, "-sp", port, "-p", "0", "-o", filepath.Join(dir, proto+".out"), "-q", "--linger", "0"}
			}
			if code, out, errs := runCmd(args...); code != 0 {
				cancel()
				t.Fatalf("get: exit %d\n%s%s", code, out, errs)
			}
			cancel()
			if code := <-done; code != 0 {
				t.Fatalf("the server exited %d", code)
			}
			wd, _ := os.Getwd()
			if err := os.Chdir(t.TempDir()); err != nil {
				t.Fatal(err)
			}
			defer os.Chdir(wd)
			// The recorded path is absolute here; a relative one would be
			// looked for under --root.
			if code, out, errs := runCmd("replay", tr); code != 0 {
				t.Fatalf("replay: exit %d\n%s%s", code, out, errs)
			}
			orig, _ := os.ReadFile(file)
			os.WriteFile(file, append([]byte("changed "), orig...), 0o644)
			if code, out, errs := runCmd("replay", "--spec-only", tr); code == 0 || !strings.Contains(out+errs, "the file changed since") {
				t.Fatalf("replay over a changed file: exit %d, %q; want a failure saying so", code, out+errs)
			}
			os.WriteFile(file, orig, 0o644)
			os.Rename(file, file+".gone")
			defer os.Rename(file+".gone", file)
			if code, out, errs := runCmd("replay", "--spec-only", tr); code == 0 || !strings.Contains(out+errs, "cannot be read here") {
				t.Fatalf("replay without the file: exit %d, %q; want a failure naming it", code, out+errs)
			}
		})
	}
}
