package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec/stream"
)

func TestStreamExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"stream"}, 2},
		{[]string{"stream", "-h"}, 0},
		{[]string{"stream", "serve", "-h"}, 0},
		{[]string{"stream", "listen", "-h"}, 0},
		{[]string{"stream", "serve", "--expire", "1"}, 2}, // on the default address, had it started
		{[]string{"stream", "serve", "--addr", "nowhere:x"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "soon"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "-2"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "1", "2"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--delay", "0s"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "NaN"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "1e-12"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "25h"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--delay", "86401"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--interval", "1ns"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--interval", "25h"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--expire", "4294967296"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--loss", "1"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--expire", "1"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--report", "1ns"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--report", "-1s"}, 2},
		{[]string{"stream", "serve", "--addr", ":0", "--bogus"}, 2},
		{[]string{"stream", "listen", "--count", "1", "--duration", "1s"}, 2}, // from the default server, had it started
		{[]string{"stream", "listen", "127.0.0.1"}, 2},
		{[]string{"stream", "listen", "127.0.0.1:9", "--count", "1", "--duration", "1s"}, 2},
		{[]string{"stream", "listen", "127.0.0.1:9", "--port", "70000"}, 2},
		{[]string{"stream", "listen", "127.0.0.1:9", "--count", "-1"}, 2},
		{[]string{"stream", "listen", "127.0.0.1:9", "extra"}, 2},
	}
	for _, tc := range tests {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		if tc.code == 2 && stderr == "" {
			t.Errorf("netspec %s: exit 2 with no message", strings.Join(tc.args, " "))
		}
		if tc.code == 2 && strings.Count(strings.TrimSpace(stderr), "\n") > 0 && len(tc.args) > 1 {
			t.Errorf("netspec %s: a bad command line should say one line, said:\n%s", strings.Join(tc.args, " "), stderr)
		}
	}
}

// What a listener or a server prints from the network (a CNAME, a BYE
// reason, a chat line) cannot drive the terminal or forge a line.
func TestTermSafe(t *testing.T) {
	tests := []struct{ in, want string }{
		{"listener-0123", "listener-0123"},
		{"café 你好 👨‍👩‍👧 \u202e", "café 你好 👨‍👩‍👧 \u202e"},
		{"a\tb", "a\tb"},
		{"\x1b[31mred\x1b[0m", `\x1b[31mred\x1b[0m`},
		{"x\n- 10.0.0.1:1 left: bye", `x\x0a- 10.0.0.1:1 left: bye`},
		{"bell\a\r\x7f", `bell\x07\x0d\x7f`},
		{"c1 \u0085 \u009b", `c1 \x85 \x9b`},
		{"bad \xff\xfe utf8 \ufffd", "bad \\xff\\xfe utf8 \ufffd"},
		{"", ""},
	}
	for _, tc := range tests {
		if got := termSafe(tc.in); got != tc.want {
			t.Errorf("termSafe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// server is a `netspec stream serve` running in-process.
type server struct {
	addr  string
	ssrc  uint32
	lines chan string
	stop  context.CancelFunc
	done  chan int
}

// startServe runs `netspec stream serve ARGS` and waits until it listens.
func startServe(t *testing.T, args ...string) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &server{lines: make(chan string, 1024), stop: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- run(ctx, append([]string{"stream", "serve"}, args...), strings.NewReader(""), pw, io.Discard)
		pw.Close()
	}()
	sc := bufio.NewScanner(pr)
	re := regexp.MustCompile(`^stream: listening on (\S+) \(ssrc 0x([0-9a-f]{8})\)`)
	for sc.Scan() {
		if m := re.FindStringSubmatch(sc.Text()); m != nil {
			s.addr = m[1]
			v, _ := strconv.ParseUint(m[2], 16, 32)
			s.ssrc = uint32(v)
			break
		}
	}
	if s.addr == "" {
		cancel()
		t.Fatal("the server never said it was listening")
	}
	go func() {
		defer close(s.lines)
		for sc.Scan() {
			select {
			case s.lines <- sc.Text():
			default: // nobody is reading: drop, never block the server
			}
		}
	}()
	t.Cleanup(func() { s.shutdown(t) })
	return s
}

func (s *server) shutdown(t *testing.T) {
	s.stop()
	select {
	case code, ok := <-s.done:
		if ok && code != 0 {
			t.Errorf("server exited %d", code)
		}
		if ok {
			close(s.done)
		}
	case <-time.After(5 * time.Second):
		t.Error("the server did not stop")
	}
}

// await reads the server's output until a line matches re.
func (s *server) await(t *testing.T, re string) string {
	t.Helper()
	r := regexp.MustCompile(re)
	deadline := time.After(10 * time.Second)
	for {
		select {
		case l, ok := <-s.lines:
			if !ok {
				t.Fatalf("server output ended before %q", re)
			}
			if r.MatchString(l) {
				return l
			}
		case <-deadline:
			t.Fatalf("server never printed %q", re)
		}
	}
}

// listen runs `netspec stream listen ARGS` in-process until it ends or
// ctx is done, and returns its exit code and output.
func listen(ctx context.Context, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(ctx, append([]string{"stream", "listen"}, args...), strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// The seed's session on real sockets: a listener prints each packet as
// "Received: Index - i, Data - d" with d = 2(i+1), in order on a clean
// loopback, then its statistics; the server logs the join and the
// goodbye and prints its subscriber table on SIGUSR1.
func TestStreamServeAndListen(t *testing.T) {
	s := startServe(t, "--addr", "127.0.0.1:0", "0.005")
	code, out, stderr := listen(context.Background(), s.addr, "--count", "40")
	if code != 0 {
		t.Fatalf("listen: exit %d\n%s\n%s", code, out, stderr)
	}
	re := regexp.MustCompile(`(?m)^Received: Index - (\d+), Data - (\d+)$`)
	ms := re.FindAllStringSubmatch(out, -1)
	if len(ms) != 40 {
		t.Fatalf("printed %d packets, want 40:\n%s", len(ms), out)
	}
	var first, sum uint64
	for i, m := range ms {
		idx, _ := strconv.ParseUint(m[1], 10, 64)
		d, _ := strconv.ParseUint(m[2], 10, 64)
		if i == 0 {
			first = idx
		}
		if idx != first+uint64(i) || d != 2*(idx+1) {
			t.Fatalf("packet %d: index %d data %d", i, idx, d)
		}
		sum += d
	}
	for _, want := range []string{"UDP client listening on port: ", fmt.Sprintf("Total sum of received data: %d\n", sum),
		"Total packets received: 40\n", "Total packets lost: 0\n", "Packets out of order: 0\n", fmt.Sprintf("0x%08x", s.ssrc)} {
		if !strings.Contains(out, want) {
			t.Errorf("listen output lacks %q:\n%s", want, out)
		}
	}
	s.await(t, `^\+ 127\.0\.0\.1:\d+ joined`)
	// The server goes on sending (every 5 ms) while the goodbye is on its
	// way: it must not have sent fewer than the listener counted, nor
	// gone on for long (a second) after it.
	bye := s.await(t, `^- 127\.0\.0\.1:\d+ left: bye \(\d+ packets sent\)`)
	var sent int
	if _, err := fmt.Sscanf(bye[strings.Index(bye, "(")+1:], "%d packets sent", &sent); err != nil || sent < 40 || sent > 240 {
		t.Errorf("server line %q: want 40 to 240 packets sent", bye)
	}

	// A listener that stays: SIGUSR1 makes the server print its table
	// with what the listener reported; Ctrl-C ends the listener cleanly.
	ctx, cancel := context.WithCancel(context.Background())
	type result struct {
		code     int
		out, err string
	}
	res := make(chan result, 1)
	go func() {
		c, o, e := listen(ctx, s.addr, "--quiet", "--json")
		res <- result{c, o, e}
	}()
	s.await(t, `^\+ .* joined`)
	time.Sleep(1500 * time.Millisecond) // at least one receiver report
	if err := syscall.Kill(os.Getpid(), syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	s.await(t, `^subscribers at .*: 1$`)
	row := s.await(t, `127\.0\.0\.1:\d+ .* listener-`)
	if !strings.Contains(row, " 0 ") {
		t.Errorf("subscriber row %q", row)
	}
	cancel()
	r := <-res
	if r.code != 0 {
		t.Fatalf("listener after Ctrl-C: exit %d: %s", r.code, r.err)
	}
	var st stream.Stats
	if err := json.Unmarshal([]byte(r.out), &st); err != nil {
		t.Fatalf("--json: %v\n%s", err, r.out)
	}
	if st.Ended != "stop" || st.Packets < 100 || len(st.Sources) != 1 || st.Sources[0].SSRC != s.ssrc || st.Reports < 2 {
		t.Fatalf("stats after Ctrl-C: %+v", st)
	}
	s.await(t, `^- .* left: bye`)
}

// Like the seed's client, a listener asked for a taken port moves on to
// the next.
func TestStreamListenMovesPort(t *testing.T) {
	s := startServe(t, "--addr", "127.0.0.1:0", "0.01")
	taken, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.LocalAddr().(*net.UDPAddr).Port
	if port == 65535 {
		t.Skip("the kernel gave the last port")
	}
	if c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4zero, Port: port + 1}); err != nil {
		t.Skipf("port %d is in use too: %v", port+1, err)
	} else {
		c.Close()
	}
	code, out, stderr := listen(context.Background(), s.addr, "--count", "3", "--port", strconv.Itoa(port))
	if code != 0 || !strings.Contains(out, fmt.Sprintf("listening on port: %d\n", port+1)) {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
}

// tshark's own RTP analysis of a loopback capture agrees with the
// listener: the same packet and loss counts for the server's SSRC, while
// the server's fault injector drops 20% of what it sends.
func TestStreamAgreesWithTshark(t *testing.T) {
	need(t, "tshark")
	s := startServe(t, "--addr", "127.0.0.1:0", "--delay", "2ms", "--loss", "0.2", "--fault-seed", "7")
	_, port, _ := net.SplitHostPort(s.addr)
	pcap := filepath.Join(t.TempDir(), "stream.pcapng")
	cctx, ccancel := context.WithTimeout(context.Background(), time.Minute)
	defer ccancel()
	// -P -l prints each captured packet as it is captured, so the test
	// can see the capture is live before the stream starts.
	// -B 64: a 64 MB kernel buffer, so a loaded machine does not make
	// the capture itself lose packets.
	capture := exec.CommandContext(cctx, "tshark", "-i", "lo", "-B", "64", "-f", "udp port "+port, "-w", pcap, "-P", "-l")
	capOut, capErr := &syncBuffer{}, &syncBuffer{}
	capture.Stdout, capture.Stderr = capOut, capErr
	if err := capture.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stopCapture := func() {
		if !stopped {
			stopped = true
			_ = capture.Process.Signal(os.Interrupt)
			_ = capture.Wait()
		}
	}
	defer stopCapture()
	probe, err := net.Dial("udp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	for i := 0; capOut.String() == ""; i++ {
		if i == 200 {
			t.Fatalf("tshark captured nothing in 10s:\n%s", capErr.String())
		}
		// Not RTCP: the server drops it; tshark shows it once capturing.
		_, _ = probe.Write([]byte("probe"))
		time.Sleep(50 * time.Millisecond)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan string, 1)
	go func() {
		_, out, _ := listen(ctx, s.addr, "--json", "--join-timeout", "100ms", "--join-tries", "30")
		res <- out
	}()
	s.await(t, `^\+ .* joined`)
	time.Sleep(2 * time.Second) // about 1000 packets
	// Stop the server first, so every data packet on the wire reaches the
	// listener before it ends; its BYE may be dropped too, so also stop
	// the listener, as Ctrl-C would.
	s.shutdown(t)
	time.Sleep(200 * time.Millisecond)
	cancel()
	out := <-res
	var st stream.Stats
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Sources) != 1 {
		t.Fatalf("listener output %q: %v", out, err)
	}
	src := st.Sources[0]
	time.Sleep(200 * time.Millisecond)
	stopCapture()

	an, err := exec.Command("tshark", "-r", pcap, "-d", "udp.port=="+port+",rtp", "-z", "rtp,streams", "-q").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark analysis: %v\n%s", err, an)
	}
	var pkts, lost int64 = -1, -1
	for _, l := range strings.Split(string(an), "\n") {
		f := strings.Fields(l)
		if len(f) >= 10 && strings.EqualFold(f[6], fmt.Sprintf("0x%08x", src.SSRC)) && f[3] == port {
			pkts, _ = strconv.ParseInt(f[8], 10, 64)
			lost, _ = strconv.ParseInt(f[9], 10, 64)
		}
	}
	if pkts < 0 {
		t.Fatalf("tshark found no RTP stream with SSRC %08x from port %s:\n%s", src.SSRC, port, an)
	}
	t.Logf("listener: received %d, lost %d of %d expected; tshark: %d packets, %d lost", src.Received, src.Lost, src.Expected, pkts, lost)
	if pkts != int64(src.Received) || lost != src.Lost {
		seqs, _ := exec.Command("tshark", "-r", pcap, "-d", "udp.port=="+port+",rtp", "-Y", fmt.Sprintf("rtp.ssrc==0x%08x", src.SSRC), "-T", "fields", "-e", "frame.number", "-e", "rtp.seq", "-e", "frame.time_relative").Output()
		lines := strings.Split(strings.TrimSpace(string(seqs)), "\n")
		t.Logf("listener base %d ext %d; capture first %q last %q", src.BaseSeq, src.ExtMax, lines[0], lines[len(lines)-1])
		if strings.Contains(capErr.String(), "dropped") {
			// The capture lost packets (dumpcap says so): tshark's count
			// is of the capture, not of the stream; nothing to compare.
			t.Skipf("the capture itself dropped packets on this loaded machine: %s", strings.TrimSpace(capErr.String()))
		}
		t.Fatalf("tshark counts %d packets and %d lost; the listener %d and %d\n%s\ncapture: %s", pkts, lost, src.Received, src.Lost, an, capErr.String())
	}
	if share := float64(src.Lost) / float64(src.Expected); src.Expected < 300 || share < 0.1 || share > 0.3 {
		t.Fatalf("lost %d of %d (%.1f%%) with 20%% injected loss", src.Lost, src.Expected, share*100)
	}
}

// netspec sim stream passes its own ground-truth checks and is
// reproducible from its seed.
func TestSimStream(t *testing.T) {
	code, out, stderr := runCmd("sim", "stream", "--seed", "5", "--clients", "2", "--duration", "2s")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "ok (") || !strings.Contains(out, "expired at") || !strings.Contains(out, "0 data packets") {
		t.Fatalf("unexpected output:\n%s", out)
	}
	_, again, _ := runCmd("sim", "stream", "--seed", "5", "--clients", "2", "--duration", "2s")
	if again != out {
		t.Fatal("the same seed gave a different run")
	}
}

// --report prints the subscriber table on its own, every interval.
func TestStreamServeReportsPeriodically(t *testing.T) {
	s := startServe(t, "--addr", "127.0.0.1:0", "--report", "300ms", "0.01")
	done := make(chan int, 1)
	go func() {
		code, _, _ := listen(context.Background(), s.addr, "--quiet", "--duration", "2s")
		done <- code
	}()
	s.await(t, `^\+ .* joined`)
	// Two tables while the listener is subscribed: printed by the timer.
	for range 2 {
		s.await(t, `^subscribers at .*: 1$`)
	}
	if code := <-done; code != 0 {
		t.Fatalf("listen: exit %d", code)
	}
}

// A server on the wildcard address streams to a listener from the address
// the listener joined (127.0.0.2 here): the listener takes packets from
// that address alone.
func TestStreamListenOnOtherAddress(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	s := startServe(t, "--addr", "0.0.0.0:0", "0.005")
	_, port := split(t, s.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	code, out, stderr := listen(ctx, "127.0.0.2:"+port, "--count", "10", "--quiet")
	if code != 0 || !strings.Contains(out, "Total packets received: 10\n") {
		t.Fatalf("listen: exit %d\n%s\n%s", code, out, stderr)
	}
}
