package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/cs"
)

var swarmListening = regexp.MustCompile(`(?m)^(?:cs|p2p): serving .* on (\S+)$`)

// swarmServer runs `netspec ARGS...` in-process until the test ends and
// returns the address it serves on and its output.
func swarmServer(t *testing.T, args ...string) (string, *syncBuffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, args, strings.NewReader(""), io.MultiWriter(out, pw), io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := awaitExit(done, 10*time.Second, "netspec "+strings.Join(args, " ")); err != nil {
			t.Error(err)
		}
	})
	sc := bufio.NewScanner(pr)
	for sc.Scan() {
		if m := swarmListening.FindStringSubmatch(sc.Text()); m != nil {
			go io.Copy(io.Discard, pr)
			return m[1], out
		}
	}
	t.Fatalf("netspec %s never said where it serves", strings.Join(args, " "))
	return "", nil
}

// The seed's client is nc: `nc HOST PORT > out` gets the whole file, as
// does `netspec cs get -o`.
func TestCSWithNetcat(t *testing.T) {
	need(t, "nc")
	addr, log := swarmServer(t, "cs", "serve", "-p", "0", "--ip", "127.0.0.1", "--size", "2500000", "--seed", "7")
	want, err := cs.Generate(cs.FileSpec{Seed: 7, Size: 2500000})
	if err != nil {
		t.Fatal(err)
	}
	host, port := split(t, addr)
	dir := t.TempDir()
	out := filepath.Join(dir, "nc.out")
	if _, err := shell(t, "nc "+host+" "+port+" < /dev/null > "+out); err != nil {
		t.Fatalf("nc: %v", err)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("nc received %d bytes that differ from the %d-byte file", len(got), len(want))
	}
	saved := filepath.Join(dir, "get.out")
	code, stdout, stderr := runCmd("cs", "get", "-s", host, "-p", port, "-o", saved, "-q")
	if code != 0 || !strings.Contains(stdout, "time used: ") || !strings.Contains(stdout, "2500000 bytes") {
		t.Fatalf("cs get: exit %d\n%s%s", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(saved); !bytes.Equal(got, want) {
		t.Fatalf("cs get saved %d bytes that differ from the file", len(got))
	}
	if _, err := os.Stat(saved + ".part"); err == nil {
		t.Error("cs get left its .part file behind")
	}
	for deadline := time.Now().Add(5 * time.Second); strings.Count(log.String(), "finished downloading") < 2; {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not log both downloads:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A download from a server that is not there fails with a one-line
// error, exit 1.
func TestCSGetFailsCleanly(t *testing.T) {
	code, _, stderr := runCmd("cs", "get", "-s", "127.0.0.1", "-p", "1", "-q")
	if code != 1 || !strings.Contains(stderr, "cs get:") || strings.Count(strings.TrimSpace(stderr), "\n") > 1 {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}

// -s takes HOST or HOST:PORT, as every other verb's address does.
func TestSwarmDialAddr(t *testing.T) {
	tests := []struct {
		server  string
		port    int
		portSet bool
		want    string // "" for an error
	}{
		{"127.0.0.1", 52000, false, "127.0.0.1:52000"},
		{"127.0.0.1", 9, true, "127.0.0.1:9"},
		{"127.0.0.1:7", 52000, false, "127.0.0.1:7"},
		{"127.0.0.1:7", 7, true, "127.0.0.1:7"},
		{"127.0.0.1:7", 8, true, ""},
		{"::1", 52000, false, "[::1]:52000"},
		{"[::1]:7", 52000, false, "[::1]:7"},
		{"127.0.0.1:0", 52000, false, ""},
		{"127.0.0.1:x", 52000, false, ""},
		{"127.0.0.1:1:2", 52000, false, ""},
	}
	for _, tc := range tests {
		got, err := swarmDialAddr(tc.server, tc.port, "p", tc.portSet)
		switch {
		case tc.want == "" && err == nil:
			t.Errorf("swarmDialAddr(%q, %d, %v) = %v, want an error", tc.server, tc.port, tc.portSet, got)
		case tc.want != "" && (err != nil || got.String() != tc.want):
			t.Errorf("swarmDialAddr(%q, %d, %v) = %v, %v; want %s", tc.server, tc.port, tc.portSet, got, err, tc.want)
		}
	}
}

func TestSwarmExitCodes(t *testing.T) {
	dir := t.TempDir()
	badINI := filepath.Join(dir, "bad.ini")
	if err := os.WriteFile(badINI, []byte("[server]\nport = fifty-two thousand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	brokenINI := filepath.Join(dir, "broken.ini")
	if err := os.WriteFile(brokenINI, []byte("[server\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"cs"}, 2},
		{[]string{"cs", "-h"}, 0},
		{[]string{"cs", "serve", "-h"}, 0},
		{[]string{"cs", "get", "-h"}, 0},
		{[]string{"cs", "serve", "-f", badINI, brokenINI}, 2}, // the file twice
		{[]string{"cs", "serve", badINI, brokenINI}, 2},
		{[]string{"cs", "serve", "-p", "-1"}, 2},
		{[]string{"cs", "serve", "--bogus"}, 2},
		{[]string{"cs", "serve", "-p", "0", "--max-per-addr", "0"}, 2},
		{[]string{"cs", "serve", "--ip", "nowhere"}, 2},
		{[]string{"cs", "serve", "--size", "-5"}, 2},
		{[]string{"cs", "serve", "extra"}, 2},
		{[]string{"cs", "get", "-p", "0"}, 2},
		{[]string{"cs", "get", "--idle", "0s"}, 2},
		{[]string{"p2p"}, 2},
		{[]string{"p2p", "serve", "-h"}, 0},
		{[]string{"p2p", "get", "-h"}, 0},
		{[]string{"p2p", "serve", "--chunk-size", "0"}, 2},
		{[]string{"p2p", "serve", "--rate", "fast"}, 2},
		{[]string{"p2p", "serve", "--config", filepath.Join(dir, "missing.ini")}, 2},
		{[]string{"p2p", "serve", "--config", badINI}, 2},
		{[]string{"p2p", "serve", "--config", brokenINI}, 2},
		{[]string{"p2p", "get", "-sp", "70000"}, 2},
		{[]string{"p2p", "get", "-p", "-2"}, 2},
		{[]string{"p2p", "get", "--max-size", "-1"}, 2},
		{[]string{"cs", "get", "-s", "127.0.0.1:1", "-p", "2"}, 2},
		{[]string{"p2p", "serve", "--trees", "3"}, 2},
		{[]string{"p2p", "serve", "--trees", "-1", "--expect", "3"}, 2},
		{[]string{"p2p", "serve", "--trees", "17", "--expect", "3"}, 2},
		{[]string{"p2p", "get", "-s", "127.0.0.1:x"}, 2},
	}
	for _, tc := range tests {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		if tc.code != 0 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && len(tc.args) > 1 {
			t.Errorf("netspec %s: more than one line on stderr:\n%s", strings.Join(tc.args, " "), stderr)
		}
	}
}

// swarmNC runs nc with input and returns what the server said.
func swarmNC(t *testing.T, addr, input string) string {
	t.Helper()
	host, port := split(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nc", "-N", host, port)
	cmd.Stdin = strings.NewReader(input)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nc: %v (got %q)", err, out)
	}
	return string(out)
}

// A C/S server killed mid-file (SIGKILL: no chance to reset anything
// itself) must not end its stream as if the file ended there: its
// client saved 90 of 200 MB as the whole file when the kernel closed the
// socket with a FIN. The runner keeps SO_LINGER 0 until the machine's
// own FIN, so the kernel resets instead.
func TestCSKilledServerResets(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, selfAsNetspec()[0], append(selfAsNetspec()[1:], "cs", "serve", "-p", "0", "--ip", "127.0.0.1", "--size", "50000000")...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	var addr string
	sc := bufio.NewScanner(stdout)
	for addr == "" && sc.Scan() {
		if m := swarmListening.FindStringSubmatch(sc.Text()); m != nil {
			addr = m[1]
		}
	}
	if addr == "" {
		t.Fatal("the server never said where it serves")
	}
	go io.Copy(io.Discard, stdout)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, c)
	if err == nil {
		t.Fatalf("the stream of a server killed mid-file ended cleanly after %d more bytes, as if the file were %d bytes", n, n+1<<20)
	}
}

// The seed ran its server as 'server.py FILE': the file alone, without
// -f, is served too.
func TestCSServesPositionalFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.txt")
	want := []byte("the seed's test file\n")
	if err := os.WriteFile(path, want, 0o644); err != nil {
		t.Fatal(err)
	}
	addr, _ := swarmServer(t, "cs", "serve", "-p", "0", "--ip", "127.0.0.1", path)
	host, port := split(t, addr)
	saved := filepath.Join(t.TempDir(), "got")
	if code, stdout, stderr := runCmd("cs", "get", "-s", host, "-p", port, "-o", saved, "-q"); code != 0 {
		t.Fatalf("cs get: exit %d\n%s%s", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(saved); !bytes.Equal(got, want) {
		t.Fatalf("got %q, want the file given alone, %q", got, want)
	}
}
