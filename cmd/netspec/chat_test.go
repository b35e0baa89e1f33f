package main

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec/chat"
)

func TestChatExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"chat"}, 2},
		{[]string{"chat", "-h"}, 0},
		{[]string{"chat", "bogus"}, 2},
		{[]string{"chat", "serve", "-h"}, 0},
		{[]string{"chat", "serve", "--interval", "0s"}, 2}, // on the seed's address, had it started
		{[]string{"chat", "serve", "--addr", "not an address"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--interval", "0s"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--interval", "soon"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--rate", "NaN"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--rate", "1e-300"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--rate", "Inf"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--burst", "0"}, 2},
		{[]string{"chat", "join", "127.0.0.1:9", "--interval", "9ms"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--max-members", "0"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "--rate", "-1"}, 2},
		{[]string{"chat", "serve", "--addr", ":0", "extra"}, 2},
		{[]string{"chat", "join", "-h"}, 0},
		{[]string{"chat", "join", "--nick", "9lives"}, 2}, // to the seed's server, had it started
		{[]string{"chat", "join", "127.0.0.1:9", "--nick", "no spaces"}, 2},
		{[]string{"chat", "join", "127.0.0.1:9", "--nick", "waytoolongforanick"}, 2},
		{[]string{"chat", "join", "127.0.0.1:bogus"}, 2},
	}
	for _, tc := range tests {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		// A bad verb-level command line gets one line (a bare "chat"
		// gets the verb list).
		if tc.code == 2 && len(tc.args) > 1 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 {
			t.Errorf("netspec %s: usage error is not one line: %q", strings.Join(tc.args, " "), stderr)
		}
	}
}

// runChatJoin runs `netspec chat join SERVER --nick NICK` in-process: its
// standard input, what it prints, and its exit code once it exits.
func runChatJoin(server, nick string) (*io.PipeWriter, *lineReader, <-chan int) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"chat", "join", server, "--nick", nick}, inR, outW, io.Discard)
		outW.Close()
	}()
	return inW, newLineReader(outR), done
}

// chatServer starts `netspec chat serve` in-process on a free loopback
// port and returns its host and port.
func chatServer(t *testing.T, args ...string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, append([]string{"chat", "serve", "--addr", "127.0.0.1:0"}, args...), strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	t.Cleanup(func() {
		cancel()
		if err := awaitExit(done, 5*time.Second, "chat server"); err != nil {
			t.Error(err)
		}
	})
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		t.Fatal("chat server printed nothing")
	}
	f := strings.Fields(sc.Text()) // chat: listening on udp HOST:PORT
	if len(f) != 5 {
		t.Fatalf("chat server said %q", sc.Text())
	}
	go io.Copy(io.Discard, pr)
	return split(t, f[4])
}

// lineReader collects the lines a process prints.
type lineReader struct {
	mu    sync.Mutex
	lines []string
	more  chan struct{}
}

func newLineReader(r io.Reader) *lineReader {
	l := &lineReader{more: make(chan struct{}, 1)}
	go func() {
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			l.mu.Lock()
			l.lines = append(l.lines, sc.Text())
			l.mu.Unlock()
			select {
			case l.more <- struct{}{}:
			default:
			}
		}
	}()
	return l
}

// await waits until a printed line equals want (or starts with it, if
// prefix) and returns every line printed so far.
func (l *lineReader) await(t *testing.T, who, want string, prefix bool) []string {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		l.mu.Lock()
		got := append([]string(nil), l.lines...)
		l.mu.Unlock()
		for _, g := range got {
			if g == want || (prefix && strings.HasPrefix(g, want)) {
				return got
			}
		}
		select {
		case <-l.more:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatalf("%s never printed %q; it printed %q", who, want, got)
		}
	}
}

func (l *lineReader) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// nc is one `nc -u HOST PORT` user.
type nc struct {
	name string
	in   io.WriteCloser
	out  *lineReader
	mu   sync.Mutex
}

func startNc(t *testing.T, name, host, port string) *nc {
	t.Helper()
	cmd := exec.Command("nc", "-u", host, port)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return &nc{name: name, in: in, out: newLineReader(out)}
}

func (c *nc) say(t *testing.T, line string) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := io.WriteString(c.in, line+"\n"); err != nil {
		t.Fatalf("%s: %v", c.name, err)
	}
}

// join is the user joining as nick: /nick, then the token the welcome
// (which starts with welcome) asks for, until the server's "*** ok".
func (c *nc) join(t *testing.T, nick, welcome string) {
	t.Helper()
	c.say(t, "/nick "+nick)
	var tok string
	for _, l := range c.out.await(t, c.name, welcome, true) {
		if strings.HasPrefix(l, welcome) {
			tok = string(chat.TokenAsked([]byte(l)))
		}
	}
	if tok == "" {
		t.Fatalf("%s: the welcome asks for no token", c.name)
	}
	c.say(t, "/ok "+tok)
	c.out.await(t, c.name, "*** ok "+nick+": you hear the chat now", false)
}

// heartbeat types ^hb^ every period until stop is closed, as a user
// staying in the chat without talking would.
func (c *nc) heartbeat(period time.Duration, stop <-chan struct{}) {
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			c.mu.Lock()
			select {
			case <-stop: // checked under the lock: none after stop
			default:
				_, _ = io.WriteString(c.in, "^hb^\n")
			}
			c.mu.Unlock()
		}
	}
}

// Two (and a third) real `nc -u` clients on loopback: one's line
// reaches the other as "[nick] line", quit produces a leave notice, and a
// client that stops sending is expired (and hears nothing after).
func TestChatWithNetcat(t *testing.T) {
	need(t, "nc")
	host, port := chatServer(t, "--interval", "2s")
	alice := startNc(t, "alice", host, port)
	alice.join(t, "alice", "*** welcome alice: 1 member(s) online")
	aliceBeats := make(chan struct{})
	defer close(aliceBeats)
	go alice.heartbeat(500*time.Millisecond, aliceBeats)

	bob := startNc(t, "bob", host, port)
	bob.join(t, "bob", "*** welcome bob: 2 member(s) online")
	bobBeats := make(chan struct{})
	go bob.heartbeat(500*time.Millisecond, bobBeats)
	alice.out.await(t, "alice", "*** bob joined", false)

	alice.say(t, "hello from nc")
	bob.out.await(t, "bob", "[alice] hello from nc", false)
	alice.out.await(t, "alice", "[alice] hello from nc", false) // the sender sees the order too

	carol := startNc(t, "carol", host, port)
	carol.join(t, "carol", "*** welcome carol: 3 member(s) online")
	// bob stops his heartbeats and quits (a heartbeat after quit would
	// join him again, as in the seed).
	close(bobBeats)
	bob.say(t, "see you")
	bob.say(t, "quit")
	bob.out.await(t, "bob", "*** bye bob", false)
	alice.out.await(t, "alice", "*** bob left", false)
	carol.out.await(t, "carol", "*** bob left", false)

	// carol says nothing more: after the interval she is expired, and
	// alice hears of it.
	alice.out.await(t, "alice", "*** carol timed out", false)
	alice.say(t, "is anyone still here?")
	alice.out.await(t, "alice", "[alice] is anyone still here?", false)
	for _, l := range carol.out.all() {
		if l == "[alice] is anyone still here?" || l == "*** carol timed out" {
			t.Fatalf("expired carol was sent %q", l)
		}
	}
	for _, l := range bob.out.all() {
		if l == "[alice] is anyone still here?" {
			t.Fatal("bob was sent a message after he quit")
		}
	}
}

// A server listening on every address answers each nc from the address
// nc connected to: nc -u drops datagrams from any other source, so with
// the kernel's choice of source (127.0.0.1) these two would hear nothing.
func TestChatWithNetcatOnOtherAddresses(t *testing.T) {
	need(t, "nc")
	if !nettest.PrivateNet(t) {
		return
	}
	_, port := chatServer(t, "--addr", "0.0.0.0:0", "--interval", "5s")
	alice := startNc(t, "alice", "127.0.0.2", port)
	alice.join(t, "alice", "*** welcome alice: 1 member(s) online")
	bob := startNc(t, "bob", "127.0.0.3", port)
	bob.join(t, "bob", "*** welcome bob: 2 member(s) online")
	alice.out.await(t, "alice", "*** bob joined", false)
	alice.say(t, "hello across addresses")
	bob.out.await(t, "bob", "[alice] hello across addresses", false)
}

// `netspec chat join` and an nc user talk to each other; end of input
// leaves cleanly.
func TestChatJoinWithNetcat(t *testing.T) {
	need(t, "nc")
	host, port := chatServer(t, "--interval", "3s")
	alice := startNc(t, "alice", host, port)
	alice.join(t, "alice", "*** welcome alice")
	stop := make(chan struct{})
	defer close(stop)
	go alice.heartbeat(500*time.Millisecond, stop)

	inW, dave, done := runChatJoin(host+":"+port, "dave")
	dave.await(t, "dave", "*** welcome dave: 2 member(s) online", true)
	alice.out.await(t, "alice", "*** dave joined", false)
	if _, err := io.WriteString(inW, "hi from netspec\n"); err != nil {
		t.Fatal(err)
	}
	alice.out.await(t, "alice", "[dave] hi from netspec", false)
	alice.say(t, "/me waves at dave")
	dave.await(t, "dave", "* alice waves at dave", false)
	// Quiet for longer than the interval: heartbeats keep dave in.
	time.Sleep(4 * time.Second)
	alice.say(t, "still there?")
	dave.await(t, "dave", "[alice] still there?", false)
	inW.Close() // end of input: leave
	if err := awaitExit(done, 5*time.Second, "chat join at end of input"); err != nil {
		t.Fatal(err)
	}
	dave.await(t, "dave", "*** bye dave", false)
	alice.out.await(t, "alice", "*** dave left", false)
	for _, l := range alice.out.all() {
		if l == "*** dave timed out" {
			t.Fatal("dave was expired while his heartbeats ran")
		}
	}
	// chat join sends the token itself: it does not tell dave to.
	for _, l := range dave.all() {
		if strings.Contains(l, "/ok") {
			t.Fatalf("chat join showed %q", l)
		}
	}
}

// A line piped into chat join at once, before the server has validated
// the member, comes back to its sender as to everyone: the client holds
// it until "^ok^" (the server withholds everything else from an address
// it has not validated, so sent at once it reached only the others).
// The server logs the line at debug level, as the seed logged every
// datagram.
func TestChatJoinPipedLineComesBack(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "server.log")
	t.Cleanup(func() { // after the server's own clean-up has stopped it
		b, err := os.ReadFile(logFile)
		if err != nil || !strings.Contains(string(b), `msg="chat: message"`) || !strings.Contains(string(b), `text="hello at once"`) {
			t.Errorf("the server's debug log does not have the line (%v): %s", err, b)
		}
	})
	host, port := chatServer(t, "-v", "--log", logFile)
	inW, carol, done := runChatJoin(host+":"+port, "carol")
	go func() { // printf 'hello at once\n' | netspec chat join: the line, then EOF
		_, _ = io.WriteString(inW, "hello at once\n")
		inW.Close()
	}()
	carol.await(t, "carol", "[carol] hello at once", false)
	if err := awaitExit(done, 5*time.Second, "chat join at end of input"); err != nil {
		t.Fatal(err)
	}
}

// One line too long for chat join is skipped, with a word on stderr;
// it used to end the session.
func TestChatReadLines(t *testing.T) {
	long := strings.Repeat("z", 100)
	tests := []struct {
		name, in string
		lines    []string
		skipped  []int
	}{
		{"plain", "a\nb\n", []string{"a", "b"}, nil},
		{"crlf and no final newline", "a\r\n\nb", []string{"a", "", "b"}, nil},
		{"long line in the middle", "a\n" + long + "\nb\n", []string{"a", "b"}, []int{100}},
		{"long line at the end", "a\n" + long, []string{"a"}, []int{100}},
		{"just under the limit", strings.Repeat("y", 31) + "\nb\n", []string{strings.Repeat("y", 31), "b"}, nil},
		{"empty", "", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var lines []string
			var skipped []int
			err := readLines(strings.NewReader(tc.in), 32, func(b []byte) { lines = append(lines, string(b)) },
				func(n int) { skipped = append(skipped, n) })
			if err != nil || !slices.Equal(lines, tc.lines) || !slices.Equal(skipped, tc.skipped) {
				t.Fatalf("lines %q, skipped %v, err %v; want %q, %v", lines, skipped, err, tc.lines, tc.skipped)
			}
		})
	}
}

// "quit" on the server's console stops it, as the seed's did; any other
// line, or the end of its input, does not.
func TestChatServerConsoleQuit(t *testing.T) {
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan int, 1)
	go func() {
		done <- run(context.Background(), []string{"chat", "serve", "--addr", "127.0.0.1:0"}, inR, outW, io.Discard)
		outW.Close()
	}()
	go io.Copy(io.Discard, outR)
	if _, err := io.WriteString(inW, "hello\n  quitting  \n"); err != nil {
		t.Fatal(err)
	}
	select {
	case code := <-done:
		t.Fatalf("the server stopped (exit %d) on a line that is not quit", code)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := io.WriteString(inW, " quit \n"); err != nil {
		t.Fatal(err)
	}
	if err := awaitExit(done, 10*time.Second, "chat serve after quit on the console"); err != nil {
		t.Fatal(err)
	}
	inW.Close()
}
