package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/nettest"
)

// need skips a test when a tool is missing, unless CI says tools are
// required (NETSPEC_REQUIRE_TOOLS=1), where a missing tool is a failure.
func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("NETSPEC_REQUIRE_TOOLS") != "" {
				t.Fatalf("%s is required (NETSPEC_REQUIRE_TOOLS is set) but not installed", tool)
			}
			t.Skipf("%s not installed; CI installs it", tool)
		}
	}
}

// runCmd runs netspec in-process. Commands write from several goroutines
// (runners, timers), as they may to a file; the buffers are safe for it.
func runCmd(args ...string) (int, string, string) {
	var out, errb syncBuffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{nil, 2},
		{[]string{"-h"}, 0},
		{[]string{"bogus"}, 2},
		{[]string{"echo"}, 2},
		{[]string{"echo", "-h"}, 0},
		{[]string{"echo", "bogus"}, 2},
		{[]string{"echo", "serve", "-h"}, 0},
		{[]string{"echo", "serve", "--max-per-addr", "0"}, 2}, // on the seeds' addresses, had it started
		{[]string{"echo", "serve", "--tcp", "127.0.0.1:0", "--max-per-addr", "0"}, 2},
		{[]string{"echo", "send", "127.0.0.1:0", "x"}, 2}, // port 0 cannot be sent to
		{[]string{"file", "get", "127.0.0.1:0", "x"}, 2},
		{[]string{"file", "get", "127.0.0.1:7", "x", "-o", "/nonexistent/x"}, 2}, // refused before any session
		{[]string{"tftp", "get", "127.0.0.1:7", "x", "-o", "/nonexistent/x"}, 2},
		{[]string{"stream", "serve", "--addr", "127.0.0.1:0", "--delay", "1ms", "20ms"}, 2}, // the delay twice
		{[]string{"stream", "serve", "--addr", "127.0.0.1:0", "1e-9"}, 2},
		{[]string{"p2p", "serve", "--rate", "nan"}, 2},
		{[]string{"p2p", "serve", "--rate", "10"}, 2}, // 10 bit/s: a typo
		{[]string{"echo", "serve", "--bogus"}, 2},
		{[]string{"echo", "serve", "--udp", "not an address"}, 2},
		{[]string{"echo", "serve", "--udp", ""}, 2},
		{[]string{"-help"}, 0},
		{[]string{"help", "bogus"}, 2},
		{[]string{"echo", "send", "127.0.0.1:9"}, 2},
		{[]string{"echo", "send", "--retries", "-1", "127.0.0.1:9", "x"}, 2},
		{[]string{"sim", "-h"}, 0},
		{[]string{"sim", "nosuchscenario"}, 2},
		{[]string{"sim", "--seed", "minus one"}, 2},
		{[]string{"sim", "echo", "extra"}, 2},
		{[]string{"sim", "chat", "--clients", "-1"}, 2},
		{[]string{"sim", "swarm", "--n", "1-2", "--trace", os.DevNull}, 2},
		{[]string{"sim", "swarm", "--trees", "-1"}, 2},
		{[]string{"p2p", "serve", "--trees", "2"}, 2}, // trees need --expect
		{[]string{"p2p", "serve", "--expect", "-1"}, 2},
		{[]string{"lab", "swarm", "--trees", "17"}, 2},
		{[]string{"lab", "swarm", "--size", "2000000000"}, 2},
		{[]string{"lab", "swarm", "--timeout", "0s"}, 2},
		{[]string{"lab", "swarm", "--rate", "16000"}, 2}, // P2P's timers need faster links
		{[]string{"sim", "swarm", "--rate", "16000"}, 2},
		{[]string{"replay"}, 2},
		{[]string{"replay", "/nonexistent.ndjson"}, 1},
		{[]string{"replay", "../../conformance/testdata/echo-sim.ndjson", "--node", "nobody"}, 2},
		{[]string{"echo", "send", "--timeout", "-1s", "127.0.0.1:7", "x"}, 2},
		{[]string{"sim", "echo", "--max-size", "-2"}, 2},
		{[]string{"sim", "stream", "--duration", "-1s"}, 2},
		{[]string{"sim", "file", "--cc", "bogus"}, 2},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", ".", "--max-duration", "0s"}, 2},
		// NaN passes every "x < 0 || x >= 1" check.
		{[]string{"file", "get", "127.0.0.1:7", "x", "--loss", "NaN"}, 2},
		{[]string{"file", "get", "127.0.0.1:7", "x", "--dup", "NaN"}, 2},
		{[]string{"stream", "serve", "--addr", "127.0.0.1:0", "--loss", "NaN"}, 2},
		{[]string{"lab", "swarm", "--rate", "NaN"}, 2},
		{[]string{"p2p", "serve", "-p", "0", "--size", "3000000", "--chunk-size", "1"}, 2}, // more chunks than peers take
		{[]string{"sim", "echo", "--trace", os.TempDir()}, 2},
		{[]string{"sim", "echo", "--trace", "x.out", "--pcap", "./x.out"}, 2},
		{[]string{"trace", "pcap", "../../conformance/testdata/echo-sim.ndjson", "../../conformance/testdata/echo-sim.ndjson"}, 2},
		{[]string{"trace", "show", "../../conformance/testdata/echo-sim.ndjson", "--svg", "../../conformance/testdata/echo-sim.ndjson"}, 2},
		{[]string{"trace", "show", "../../conformance/testdata/echo-sim.ndjson", "--from", "100000h"}, 1}, // nothing to draw
		{[]string{"tftp", "get", "", "x"}, 2},
		{[]string{"tftp", "put", "127.0.0.1:7", os.TempDir()}, 2},
		{[]string{"tftp", "put", "127.0.0.1:7", "main.go", ""}, 2},
		{[]string{"cs", "get", "-s", ""}, 2},
		{[]string{"stream", "listen", ""}, 2},
		{[]string{"echo", "serve", "--udp", "127.0.0.1:0", "--trace", ""}, 2},
	}
	for _, tc := range tests {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		if tc.code == 2 && stderr == "" {
			t.Errorf("netspec %s: exit 2 with no message", strings.Join(tc.args, " "))
		}
	}
}

// stream serve ADDR (--addr forgotten) says where the address goes, not
// that it is a bad delay.
func TestStreamServeAddressAsArgument(t *testing.T) {
	code, _, stderr := runCmd("stream", "serve", "127.0.0.1:5005")
	if code != 2 || !strings.Contains(stderr, "--addr 127.0.0.1:5005") {
		t.Fatalf("exit %d, stderr %q; want 2 and the --addr hint", code, stderr)
	}
}

// A scenario named after flags is a usage error that says where it goes.
func TestSimScenarioComesFirst(t *testing.T) {
	code, _, stderr := runCmd("sim", "--seed", "2", "echo")
	if code != 2 || !strings.Contains(stderr, "netspec sim echo [flags]") {
		t.Fatalf("exit %d, stderr %q; want 2 and where the scenario goes", code, stderr)
	}
}

// help CMD [VERB] shows what CMD [VERB] -h does; a command without flags
// lists none.
func TestHelpCommand(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"help", "echo", "serve"}, "usage: netspec echo serve"},
		{[]string{"help", "echo"}, "usage: netspec echo <verb>"},
		{[]string{"sim", "-h"}, "usage: netspec sim [SCENARIO] [flags]"},
		{[]string{"sim", "echo", "-h"}, "usage: netspec sim echo [flags]"},
	} {
		code, out, stderr := runCmd(tc.args...)
		if code != 0 || !strings.HasPrefix(out, tc.want) {
			t.Errorf("netspec %s: exit %d, output %.60q (stderr %q), want it to start %q", strings.Join(tc.args, " "), code, out, stderr, tc.want)
		}
	}
	// Servers started without an address take the seeds'.
	for cmd, want := range map[string]string{
		"chat serve": "(default 127.0.0.1:9999)",
		"chat join":  "(default the seed's, 127.0.0.1:9999)",
		"file serve": "(default 127.0.0.1:6000)",
		"echo serve": "UDP on 127.0.0.1:9999 (seed 003)\nand TCP on 127.0.0.1:5000 (seed 004)",
	} {
		if _, out, _ := runCmd(append(strings.Fields(cmd), "-h")...); !strings.Contains(out, want) {
			t.Errorf("%s -h does not say %q:\n%s", cmd, want, out)
		}
	}
	if _, out, _ := runCmd("trace", "pcap", "-h"); strings.Contains(out, "flags:") {
		t.Errorf("trace pcap -h lists flags it does not have:\n%s", out)
	}
}

// Files named on the command line that cannot serve (missing, a
// directory, a config with a bad line or an unknown key, a log that
// cannot be opened) are bad command
// lines: exit 2 with the file named, before anything is bound.
func TestBadFilesExit2(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	badLine := write("badline.ini", "[server]\nport\n")
	typo := write("typo.ini", "[server]\nportt = 20734\n")
	negative := write("negative.ini", "[server]\nfile_size = -5\n")
	both := write("both.ini", "port = 0\nip = 127.0.0.1\nserver_ip = 127.0.0.1\nserver_port = 1\nfile_size = 1\nfile_path = x\nbogus = 1\n")
	for _, tc := range []struct {
		args []string
		want string // in the message
	}{
		{[]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", "/nonexistent"}, "/nonexistent"},
		{[]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", badLine}, "not a directory"},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", "/nonexistent"}, "/nonexistent"},
		{[]string{"cs", "serve", "-p", "0", "-f", "/nonexistent"}, "/nonexistent"},
		{[]string{"cs", "serve", "-p", "0", "-f", dir}, "not a regular file"},
		{[]string{"cs", "serve", "-p", "0", "--size", "2000000000"}, "--size"},
		{[]string{"p2p", "serve", "-p", "0", "-f", dir}, "not a regular file"},
		{[]string{"p2p", "serve", "--config", "/nonexistent.ini"}, "/nonexistent.ini"},
		{[]string{"p2p", "serve", "--config", badLine}, "want key = value"},
		{[]string{"p2p", "serve", "--config", typo}, `unknown key "portt"`},
		{[]string{"p2p", "serve", "--config", negative}, "file_size"},
		{[]string{"p2p", "get", "--config", both}, `unknown key "bogus"`},
		{[]string{"echo", "send", "127.0.0.1:7", strings.Repeat("x", 65508)}, "at most 65507"},
		{[]string{"echo", "serve", "--udp", "127.0.0.1:0", "--log", filepath.Join(dir, "missing", "x.log")}, "--log"},
		{[]string{"chat", "serve", "--addr", "127.0.0.1:0", "--log", dir}, "--log"},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != 2 || !strings.Contains(stderr, tc.want) {
			t.Errorf("netspec %.80s: exit %d (%q), want 2 naming %q", strings.Join(tc.args, " "), code, stderr, tc.want)
		}
	}
}

// The default job runs, is reproducible from the command it prints, and
// says how to reproduce itself.
func TestSimDefaultReproduces(t *testing.T) {
	code, out, stderr := runCmd("sim")
	if code != 0 {
		t.Fatalf("netspec sim: exit %d: %s", code, stderr)
	}
	i := strings.LastIndex(out, "reproduce: ")
	if i < 0 {
		t.Fatalf("no reproduce line in:\n%s", out)
	}
	repro := strings.Fields(strings.TrimSpace(out[i+len("reproduce: "):]))
	if repro[0] != "netspec" {
		t.Fatalf("reproduce line %q", repro)
	}
	code, again, _ := runCmd(repro[1:]...)
	if code != 0 || again != out {
		t.Fatalf("rerunning %q gave different output:\n%s\nvs\n%s", repro, again, out)
	}
	code, j, _ := runCmd("sim", "--json", "--seed", "3", "--loss", "0.2")
	var v map[string]any
	if code != 0 || json.Unmarshal([]byte(j), &v) != nil || v["reproduce"] != "netspec sim swarm --seed=3 --loss=0.2" {
		t.Fatalf("sim --json: exit %d, output %s", code, j)
	}
}

func TestReplayCommand(t *testing.T) {
	code, out, stderr := runCmd("replay", "../../conformance/testdata/echo-sim.ndjson")
	if code != 0 || !strings.Contains(out, "server") {
		t.Fatalf("replay: exit %d\n%s\n%s", code, out, stderr)
	}
}

// serve starts `netspec ARGS...` in-process and returns the addresses it
// reports listening on, by transport.
func serve(t *testing.T, args ...string) map[string]string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() { done <- run(ctx, args, strings.NewReader(""), pw, io.Discard); pw.Close() }()
	t.Cleanup(func() {
		cancel()
		if err := awaitExit(done, 5*time.Second, "server"); err != nil {
			t.Error(err)
		}
	})
	addrs := map[string]string{}
	sc := bufio.NewScanner(pr)
	want := strings.Count(strings.Join(args, " "), "--udp") + strings.Count(strings.Join(args, " "), "--tcp")
	for len(addrs) < want && sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 5 && f[1] == "listening" {
			addrs[f[3]] = f[4]
		}
	}
	go io.Copy(io.Discard, pr)
	return addrs
}

// The seed's own test, with the real nc: echo '233' | nc -u -w1 HOST PORT
// prints 233; and nc over TCP gets its bytes back.
func TestEchoWithNetcat(t *testing.T) {
	need(t, "nc")
	addrs := serve(t, "echo", "serve", "--udp", "127.0.0.1:0", "--tcp", "127.0.0.1:0")
	host, port := split(t, addrs["udp"])
	out, err := shell(t, "echo '233' | nc -u -w1 "+host+" "+port)
	if err != nil || out != "233\n" {
		t.Fatalf("nc -u: %q, %v", out, err)
	}
	host, port = split(t, addrs["tcp"])
	payload := strings.Repeat("netspec echo over tcp\n", 5000)
	cmd := exec.Command("nc", "-N", host, port)
	cmd.Stdin = strings.NewReader(payload)
	got, err := cmd.Output()
	if err != nil || string(got) != payload {
		t.Fatalf("nc over tcp returned %d bytes (%v), sent %d", len(got), err, len(payload))
	}
}

// nc whose output goes to a reader that starts late (a full pipe stops
// nc reading its socket) is slowed by TCP's flow control, not reset: the
// server stops reading it while its echo waits, and 32 MiB come back
// whole. (It used to reset such a client once 1 MiB of echo waited.)
func TestEchoWithNetcatSlowReader(t *testing.T) {
	need(t, "nc", "sha256sum")
	host, port := split(t, serve(t, "echo", "serve", "--tcp", "127.0.0.1:0")["tcp"])
	in := filepath.Join(t.TempDir(), "in")
	data := make([]byte, 32<<20)
	for i := range data {
		data[i] = byte(i ^ i>>9 ^ i>>17)
	}
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := shell(t, "nc -N "+host+" "+port+" < "+in+" | (sleep 1; sha256sum)")
	if want := fmt.Sprintf("%x  -\n", sha256.Sum256(data)); err != nil || out != want {
		t.Fatalf("nc through a late reader: %q (%v), want %q", out, err, want)
	}
}

// A server on the wildcard address answers from the address nc sent to,
// which nc -u, its socket connected, insists on.
func TestEchoWithNetcatOnOtherAddress(t *testing.T) {
	need(t, "nc")
	if !nettest.PrivateNet(t) {
		return
	}
	_, port := split(t, serve(t, "echo", "serve", "--udp", "0.0.0.0:0")["udp"])
	out, err := shell(t, "echo '233' | nc -u -w1 127.0.0.2 "+port)
	if err != nil || out != "233\n" {
		t.Fatalf("nc -u to 127.0.0.2: %q, %v", out, err)
	}
}

func split(t *testing.T, addr string) (string, string) {
	i := strings.LastIndex(addr, ":")
	if i < 0 {
		t.Fatalf("bad address %q", addr)
	}
	return addr[:i], addr[i+1:]
}

func shell(t *testing.T, script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", script).Output()
	return string(out), err
}

// A command line refused after --trace leaves an existing trace as it
// was, and creates none; and a trace may not be the file a command
// serves or saves.
func TestRefusedCommandKeepsTrace(t *testing.T) {
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep.ndjson")
	if err := os.WriteFile(keep, []byte("keep me\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fresh := filepath.Join(dir, "fresh.ndjson")
	served := filepath.Join(dir, "served.bin")
	if err := os.WriteFile(served, []byte("the file"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"cs", "get", "-trace", keep, "-p", "0"},
		{"p2p", "serve", "-trace", keep, "-chunk-size", "0"},
		{"cs", "get", "-trace", fresh, "-p", "0"},
		{"cs", "serve", "-p", "0", "-f", served, "--trace", served},
		{"p2p", "serve", "-p", "0", "-f", served, "--trace", served},
		{"cs", "get", "-s", "127.0.0.1", "-p", "1", "-o", served, "--trace", served},
	} {
		if code, _, _ := runCmd(args...); code != 2 {
			t.Fatalf("netspec %s: exit %d, want 2", strings.Join(args, " "), code)
		}
	}
	if b, err := os.ReadFile(keep); err != nil || string(b) != "keep me\n" {
		t.Fatalf("the existing trace now holds %q (%v)", b, err)
	}
	if b, err := os.ReadFile(served); err != nil || string(b) != "the file" {
		t.Fatalf("the served file now holds %q (%v)", b, err)
	}
	if _, err := os.Stat(fresh); err == nil {
		t.Fatal("a refused command left an empty trace behind")
	}
}

func TestParseAddr(t *testing.T) {
	tests := []struct {
		in     string
		remote bool
		want   string // the address, or a piece of the error
	}{
		{"127.0.0.1:9999", true, "127.0.0.1:9999"},
		{"9999", true, "127.0.0.1:9999"},
		{"9999", false, "0.0.0.0:9999"},
		{"[::1]:7", true, "[::1]:7"},
		{"127.0.0.1", true, `bad address "127.0.0.1": want HOST:PORT`},
		{"127.0.0.1:x", true, `bad port "x"`},
		{"127.0.0.1:0", true, "port 0 cannot be sent to"},
		{"127.0.0.1:0", false, "127.0.0.1:0"},
	}
	for _, tc := range tests {
		a, err := parseAddr(tc.in, tc.remote)
		got := a.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.Contains(got, tc.want) {
			t.Errorf("parseAddr(%q, %v) = %q, want %q", tc.in, tc.remote, got, tc.want)
		}
	}
}

func TestVerbErr(t *testing.T) {
	for _, tc := range []struct{ verb, err, want string }{
		{"cs get", "cs: download failed after 0 bytes: connection reset by peer", "cs get: download failed after 0 bytes: connection reset by peer"},
		{"p2p get", "p2p: no welcome from the server", "p2p get: no welcome from the server"},
		{"p2p get", "context canceled", "p2p get: context canceled"},
		{"cs get", "csv: not ours", "cs get: csv: not ours"},
	} {
		if got := verbErr(tc.verb, errors.New(tc.err)).Error(); got != tc.want {
			t.Errorf("verbErr(%q, %q) = %q, want %q", tc.verb, tc.err, got, tc.want)
		}
	}
}

// An unknown verb names the verbs there are.
func TestUnknownVerbListsVerbs(t *testing.T) {
	var stderr strings.Builder
	if code := run(context.Background(), []string{"echo", "frob"}, strings.NewReader(""), io.Discard, &stderr); code != 2 {
		t.Fatalf("exit %d, want 2", code)
	}
	if got := stderr.String(); !strings.Contains(got, `unknown verb "frob": want one of send, serve`) {
		t.Fatalf("stderr %q", got)
	}
}
