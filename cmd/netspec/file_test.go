package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
)

type fileServer struct {
	addr   string
	out    *syncBuffer
	stdin  *io.PipeWriter
	cancel func()
	done   chan int
}

// startFileServer runs `netspec file serve` on a free loopback port
// serving root, with extra flags; it is stopped when the test ends.
func startFileServer(t *testing.T, root string, extra ...string) *fileServer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	s := &fileServer{out: &syncBuffer{}, stdin: pw, cancel: cancel, done: make(chan int, 1)}
	args := append([]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", root}, extra...)
	go func() { s.done <- run(ctx, args, pr, s.out, io.Discard) }()
	s.addr = s.out.wait(t, `serving .* on (\S+)\n`)[1]
	t.Cleanup(func() { s.stop(t) })
	return s
}

func (s *fileServer) stop(t *testing.T) {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	s.stdin.Close()
	select {
	case code := <-s.done:
		if code != 0 {
			t.Errorf("server exited %d", code)
		}
	case <-time.After(10 * time.Second):
		t.Error("server did not stop")
	}
}

// netspec runs a command in-process with a timeout and returns its exit
// code and outputs.
func runFile(t *testing.T, stdin io.Reader, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	var out, errb syncBuffer
	code := run(ctx, args, stdin, &out, &errb)
	return code, out.String(), errb.String()
}

// writeSynth writes a file of size bytes, generated from seed.
func writeSynth(t *testing.T, path string, size int64, seed uint64) []byte {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, size)
	file.SynthBytes(seed, 0, b)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFileUsage(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"file"}, 2},
		{[]string{"file", "-h"}, 0},
		{[]string{"file", "bogus"}, 2},
		{[]string{"file", "serve", "-h"}, 0},
		{[]string{"file", "serve", "--root", root, "--max-sessions", "0"}, 2}, // on seed 002's port, had it started
		{[]string{"file", "serve", "--addr", "127.0.0.1:0"}, 2},
		{[]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", root, "--loss", "1.5"}, 2},
		{[]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", root, "--cc", "vegas"}, 2},
		{[]string{"file", "serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(root, "missing")}, 2},
		{[]string{"file", "serve", "--addr", "127.0.0.1:6001", "--root", root, "--tftp", "127.0.0.1:6001"}, 2},
		{[]string{"file", "serve", "--addr", "6001", "--root", root, "--tftp", "127.0.0.1:6001"}, 2},
		{[]string{"file", "get", "-h"}, 0},
		{[]string{"file", "get", "127.0.0.1:9"}, 2},
		{[]string{"file", "get", "127.0.0.1:9", "../etc/passwd"}, 2},
		{[]string{"file", "get", "127.0.0.1:9", "x", "--datagram", "10"}, 2},
		{[]string{"file", "shell"}, 2},
		{[]string{"file", "shell", "-h"}, 0},
	} {
		code, _, stderr := runFile(t, nil, tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		if code == 2 && len(tc.args) > 1 && !strings.Contains(stderr, "netspec") {
			t.Errorf("netspec %s: exit 2 without a message", strings.Join(tc.args, " "))
		}
	}
}

// Real sockets on loopback: files of 0 bytes, 1 byte, exactly one
// segment's payload, one more, and 100 MB arrive byte for byte, with and
// without impl's fault injector (loss, duplication, reordering) on both
// ends; the output path exists only once the download is complete.
func TestFileTransfers(t *testing.T) {
	root := t.TempDir()
	one := rudp.Config{}.MaxDatagram
	if one == 0 {
		one = 1452
	}
	sizes := map[string]int64{"empty.bin": 0, "one.bin": 1, "segment.bin": int64(one - rudp.SegHeaderLen), "segment+1.bin": int64(one - rudp.SegHeaderLen + 1), "big.bin": 100 << 20}
	want := map[string][]byte{}
	i := uint64(0)
	for name, n := range sizes {
		i++
		want[name] = writeSynth(t, filepath.Join(root, name), n, i)
	}
	for _, tc := range []struct {
		name   string
		faults []string
		big    bool
	}{
		{"clean", nil, true},
		{"loss-and-dup", []string{"--loss", "0.02", "--dup", "0.01"}, true},
		// The injector's per-datagram timers make jitter slow on
		// loopback: reordering is exercised on the smaller files.
		{"reordering", []string{"--loss", "0.01", "--dup", "0.01", "--jitter", "200us"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := startFileServer(t, root, tc.faults...)
			dir := t.TempDir()
			for name := range sizes {
				if name == "big.bin" && !tc.big {
					continue
				}
				out := filepath.Join(dir, name)
				args := append([]string{"file", "get", srv.addr, name, "-o", out, "-q"}, tc.faults...)
				code, stdout, stderr := runFile(t, nil, args...)
				if code != 0 {
					t.Fatalf("get %s: exit %d: %s%s", name, code, stdout, stderr)
				}
				got, err := os.ReadFile(out)
				if err != nil || !bytes.Equal(got, want[name]) {
					t.Fatalf("get %s: %d bytes (%v), want %d", name, len(got), err, len(want[name]))
				}
				if !strings.Contains(stdout, fmt.Sprintf("sha256 %x", sha256.Sum256(want[name]))) {
					t.Errorf("get %s: the summary does not give the SHA-256: %q", name, stdout)
				}
				if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
					t.Errorf("get %s: %s.part left behind", name, out)
				}
				var segs, dups uint64
				if _, err := fmt.Sscanf(stdout[strings.Index(stdout, "\n")+1:], name+": %d segments received, %d of them duplicates", &segs, &dups); err != nil {
					t.Fatalf("get %s: no segment count in the summary (%v): %q", name, err, stdout)
				}
				if min := uint64(sizes[name]) / uint64(one); segs < min || dups > segs {
					t.Errorf("get %s: %d segments received, %d duplicates: a %d-byte file takes at least %d", name, segs, dups, sizes[name], min)
				}
				if name == "big.bin" && tc.faults != nil && dups == 0 {
					t.Errorf("get %s with 1%% duplication: no duplicate segment counted", name)
				}
			}
		})
	}
}

// Names that leave the root are refused by the server, never opened:
// ".." and absolute paths (sent through the shell, which does not check
// names itself), and symlinks that lead out (which pass the name check
// and are refused by os.Root). Nothing is written for them.
func TestFileConfinement(t *testing.T) {
	base := t.TempDir()
	root := filepath.Join(base, "root")
	writeSynth(t, filepath.Join(root, "ok.bin"), 100, 1)
	if err := os.WriteFile(filepath.Join(base, "secret"), []byte("never served"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"out": "../secret", "abs": "/etc/passwd", "dirout": "..", "in": "ok.bin"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	srv := startFileServer(t, root)
	dir := t.TempDir()
	for _, name := range []string{"out", "abs", "dirout/secret", "dirout/root/ok.bin"} {
		out := filepath.Join(dir, "x")
		code, stdout, stderr := runFile(t, nil, "file", "get", srv.addr, name, "-o", out, "-q")
		if code != 1 || stdout != "" {
			t.Errorf("get %s: exit %d, stdout %q, stderr %q; want a refusal", name, code, stdout, stderr)
		}
		if _, err := os.Stat(out); !os.IsNotExist(err) {
			t.Errorf("get %s left %s", name, out)
		}
	}
	code, stdout, _ := runFile(t, nil, "file", "get", srv.addr, "in", "-o", filepath.Join(dir, "in"), "-q")
	if code != 0 || !strings.Contains(stdout, "100 bytes") {
		t.Errorf("a symlink inside the root was not served: %d %q", code, stdout)
	}
	script := "get ../secret " + filepath.Join(dir, "a") + "\nget /etc/passwd " + filepath.Join(dir, "b") + "\nget ok.bin/../../secret " + filepath.Join(dir, "c") + "\nls ..\nexit\n"
	code, stdout, stderr := runFile(t, strings.NewReader(script), "file", "shell", srv.addr)
	if code != 0 {
		t.Fatalf("shell: exit %d: %s %s", code, stdout, stderr)
	}
	if n := strings.Count(stdout, "refused"); n != 4 {
		t.Errorf("shell saw %d refusals, want 4:\n%s", n, stdout)
	}
	if strings.Contains(stdout, "never served") {
		t.Error("the secret leaked")
	}
	for _, f := range []string{"a", "b", "c"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !os.IsNotExist(err) {
			t.Errorf("a refused get wrote %s", f)
		}
	}
}

// A partial download resumes from its verified prefix; a corrupt one is
// detected by the server and the file is sent whole.
func TestFileResume(t *testing.T) {
	root := t.TempDir()
	want := writeSynth(t, filepath.Join(root, "data.bin"), 3<<20, 9)
	srv := startFileServer(t, root)
	dir := t.TempDir()
	out := filepath.Join(dir, "data.bin")

	if err := os.WriteFile(out+".part", want[:1<<20], 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runFile(t, nil, "file", "get", srv.addr, "data.bin", "-o", out, "-q")
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("resumed from byte %d", 1<<20)) {
		t.Fatalf("resume: exit %d %q %q", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("resumed file differs")
	}

	bad := append([]byte(nil), want[:1<<20]...)
	bad[777] ^= 0x40
	if err := os.WriteFile(out+".part", bad, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(out)
	code, stdout, stderr = runFile(t, nil, "file", "get", srv.addr, "data.bin", "-o", out, "-q")
	if code != 0 || strings.Contains(stdout, "resumed") {
		t.Fatalf("corrupt partial: exit %d %q %q", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("file after a corrupt partial differs")
	}
}

// A download cut off by the server going away fails and leaves no file
// that looks complete, only PATH.part; the same command later resumes
// and completes it.
func TestFileInterrupted(t *testing.T) {
	root := t.TempDir()
	want := writeSynth(t, filepath.Join(root, "slow.bin"), 64<<20, 3)
	srv := startFileServer(t, root)
	dir := t.TempDir()
	out := filepath.Join(dir, "slow.bin")
	go func() {
		// Stop the server once the download is under way.
		for i := 0; i < 2000; i++ {
			if st, err := os.Stat(out + ".part"); err == nil && st.Size() > 0 {
				break
			}
			time.Sleep(2 * time.Millisecond)
		}
		srv.stop(t)
	}()
	code, stdout, stderr := runFile(t, nil, "file", "get", srv.addr, "slow.bin", "-o", out, "-q")
	if code != 1 {
		t.Fatalf("an interrupted get exited %d: %q %q", code, stdout, stderr)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatalf("an interrupted get left %s", out)
	}
	st, err := os.Stat(out + ".part")
	if err != nil || st.Size() == 0 || st.Size() >= int64(len(want)) {
		t.Fatalf("partial file: %v %v", st, err)
	}
	if !strings.Contains(stderr, "resume") {
		t.Errorf("the error does not say how to resume: %q", stderr)
	}
	srv2 := startFileServer(t, root)
	code, stdout, stderr = runFile(t, nil, "file", "get", srv2.addr, "slow.bin", "-o", out, "-q")
	if code != 0 || !strings.Contains(stdout, "resumed from byte") {
		t.Fatalf("second get: exit %d %q %q", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatal("the resumed file differs")
	}
}

// The seed's menu, interactively: help, time, about, ls, chat both ways
// with the server's console, exitchat, exit.
func TestFileShellAndChat(t *testing.T) {
	root := t.TempDir()
	writeSynth(t, filepath.Join(root, "a.bin"), 10, 1)
	srv := startFileServer(t, root)
	in, feed := io.Pipe()
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(context.Background(), []string{"file", "shell", srv.addr}, in, out, io.Discard) }()
	say := func(s string) {
		if _, err := io.WriteString(feed, s+"\n"); err != nil {
			t.Fatal(err)
		}
	}
	out.wait(t, "connected to")
	say("help")
	out.wait(t, "commands:")
	out.wait(t, "this shell also takes: get NAME PATH")
	clash := t.TempDir()
	if err := os.Mkdir(filepath.Join(clash, "a.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	say("get a.bin " + clash) // a.bin would land on a directory: refused, the shell goes on
	out.wait(t, `a\.bin is a directory`)
	say("1") // the seed's "1": the server's time
	out.wait(t, `server time: \d{4}-`)
	say("4")
	out.wait(t, "netspec file service")
	say("ls")
	out.wait(t, `10  a\.bin`)
	say("2") // chat
	out.wait(t, "chatting with the server's console")
	say("hello console")
	srv.out.wait(t, `\[127\.0\.0\.1:\d+\] hello console`)
	if _, err := io.WriteString(srv.stdin, "hello client\n"); err != nil {
		t.Fatal(err)
	}
	out.wait(t, `\[server\] hello client`)
	say("exitchat")
	out.wait(t, "chat ended")
	say("exit")
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("shell exited %d:\n%s", code, out.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shell did not exit")
	}
	out.wait(t, "bye")
	srv.out.wait(t, "session closed")
}

// Hostile datagrams from a real nc do not disturb the server.
func TestFileGarbageWithNetcat(t *testing.T) {
	need(t, "nc")
	root := t.TempDir()
	want := writeSynth(t, filepath.Join(root, "f.bin"), 50_000, 4)
	srv := startFileServer(t, root)
	host, port := split(t, srv.addr)
	for _, garbage := range []string{"hello\n", "\x01\x03\x00\x08\x00\x00\x00\x01garbage", strings.Repeat("A", 1400)} {
		cmd := exec.Command("nc", "-u", "-w1", host, port)
		cmd.Stdin = strings.NewReader(garbage)
		_ = cmd.Run()
	}
	dir := t.TempDir()
	code, _, stderr := runFile(t, nil, "file", "get", srv.addr, "f.bin", "-o", filepath.Join(dir, "f.bin"), "-q")
	if got, _ := os.ReadFile(filepath.Join(dir, "f.bin")); code != 0 || !bytes.Equal(got, want) {
		t.Fatalf("get after garbage: exit %d %s", code, stderr)
	}
}

// A server on the wildcard address runs each session from the address its
// client dialed (127.0.0.2 here), which the client requires of every
// datagram of its session.
func TestFileGetFromOtherAddress(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	root := t.TempDir()
	want := writeSynth(t, filepath.Join(root, "f.bin"), 1<<20, 9)
	srv := startFileServer(t, root, "--addr", "0.0.0.0:0")
	_, port := split(t, srv.addr)
	out := filepath.Join(t.TempDir(), "f.bin")
	code, stdout, stderr := runFile(t, nil, "file", "get", "127.0.0.2:"+port, "f.bin", "-o", out, "-q")
	if code != 0 {
		t.Fatalf("get: exit %d: %s%s", code, stdout, stderr)
	}
	if got, err := os.ReadFile(out); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes (%v), want %d", len(got), err, len(want))
	}
}

// failWriter fails every write, as a full disk does.
type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("no space left on device") }

// A download whose bytes could not all be written must not be renamed
// to PATH when the machine reports the transfer verified: the shell's
// downloads have no abort, so file-done arrives after the failed write
// (it used to rename the short PATH.part and report success).
func TestFileDownloadWriteErrorKeepsNoFile(t *testing.T) {
	dir := t.TempDir()
	var out, errb syncBuffer
	d, _ := newDownload(&env{stdout: &out, stderr: &errb}, "f.bin", filepath.Join(dir, "f.bin"), true)
	var now spec.Time
	d.event(now, spec.Event{Name: "file-start", Value: file.FileStart{Name: "f.bin", Size: 3 << 20}})
	d.event(now, spec.Event{Name: "data", Data: make([]byte, 1<<20)})
	d.w = bufio.NewWriterSize(failWriter{}, 1<<20) // the disk fills up
	d.event(now, spec.Event{Name: "data", Data: make([]byte, 2<<20)})
	d.event(now, spec.Event{Name: "file-done", Value: file.FileDone{Name: "f.bin", Size: 3 << 20}})
	if err := d.finish(nil); err == nil || !strings.Contains(err.Error(), "no space") {
		t.Fatalf("finish after a failed write: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "f.bin")); !os.IsNotExist(err) {
		t.Fatalf("a download whose write failed left PATH: %v", err)
	}
}

// A transfer the clock saw take no time reports no rate: it read
// "513 bytes in 0s (477.8 GiB/s)".
func TestFileElapsedRate(t *testing.T) {
	for _, tc := range []struct {
		n    int64
		d    time.Duration
		want string
	}{
		{513, time.Microsecond, "<1ms"},
		{513, 0, "<1ms"},
		{3 << 20, 2 * time.Second, "2s (1.5 MiB/s)"},
	} {
		if got := elapsed(tc.n, tc.d); got != tc.want {
			t.Errorf("elapsed(%d, %v) = %q, want %q", tc.n, tc.d, got, tc.want)
		}
	}
}

// The progress line of a download that took no time has no rate either.
func TestFileProgressLineNoRate(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "f", 513, 0, spec.SimEpoch)
	p.finish(spec.SimEpoch.Add(time.Microsecond), 513)
	if got := b.String(); got != "f: 513 B of 513 B (100%)\n" {
		t.Errorf("progress line %q", got)
	}
}

// A plain progress line's ETA is the time the rest takes at the rate so
// far: 9 MiB at 1 MiB/s is 9 s (it printed 0s, a unit slip).
func TestFileProgressLineETA(t *testing.T) {
	var b bytes.Buffer
	p := newProgress(&b, "f", 10<<20, 0, spec.SimEpoch)
	p.update(spec.SimEpoch.Add(time.Second), 1<<20)
	if got := b.String(); got != "f: 1.0 MiB of 10.0 MiB (10%), 1.0 MiB/s, ETA 9s\n" {
		t.Errorf("progress line %q", got)
	}
}

// readFIFO makes a FIFO at path and reads it to EOF in the background.
func readFIFO(t *testing.T, path string) <-chan []byte {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(path)
		got <- b
	}()
	return got
}

// checkFIFO fails t unless path is still the FIFO readFIFO made and the
// reader got want through it.
func checkFIFO(t *testing.T, path string, got <-chan []byte, want string) {
	t.Helper()
	if st, err := os.Lstat(path); err != nil || st.Mode().Type() != fs.ModeNamedPipe {
		t.Fatalf("the FIFO was replaced: %v %v", st, err)
	}
	if b := <-got; string(b) != want {
		t.Fatalf("the FIFO got %q, want %q", b, want)
	}
}

// -o naming a device or FIFO (-o /dev/null) writes into it: PATH.part
// renamed over it replaced /dev/null with a regular file (run as root).
// The test uses a FIFO, so that failing it harms no device.
func TestFileGetIntoDevice(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sink")
	got := readFIFO(t, out)
	d, _ := newDownload(&env{stdout: io.Discard, stderr: io.Discard}, "f.bin", out, true)
	if cmd, err := d.command(true); err != nil || len(cmd.Args) != 1 {
		t.Fatalf("command %v %v, want no resume", cmd, err)
	}
	var now spec.Time
	d.event(now, spec.Event{Name: "file-start", Value: file.FileStart{Name: "f.bin", Size: 5}})
	d.event(now, spec.Event{Name: "data", Data: []byte("hello")})
	d.event(now, spec.Event{Name: "file-done", Value: file.FileDone{Name: "f.bin", Size: 5}})
	if err := d.finish(nil); err != nil {
		t.Fatal(err)
	}
	checkFIFO(t, out, got, "hello")
	if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
		t.Fatalf("left %s.part", out)
	}
}

func TestSameUDPPort(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"127.0.0.1:69", "127.0.0.1:69", true},
		{"127.0.0.1:69", "127.0.0.1:70", false},
		{"127.0.0.1:0", "127.0.0.1:0", false},
		{"0.0.0.0:69", "127.0.0.1:69", true},
		{"127.0.0.2:69", "127.0.0.1:69", false},
		{"[::]:69", "127.0.0.1:69", true},
		{"0.0.0.0:69", "[::1]:69", false},
		{"[::ffff:127.0.0.1]:69", "127.0.0.1:69", true},
	} {
		a, b := netip.MustParseAddrPort(tc.a), netip.MustParseAddrPort(tc.b)
		if got := sameUDPPort(a, b); got != tc.want || sameUDPPort(b, a) != tc.want {
			t.Errorf("sameUDPPort(%s, %s) = %v, want %v both ways", a, b, got, tc.want)
		}
	}
}

// A target that is a directory (get NAME with a directory NAME here, or
// -o DIR where DIR/NAME is one) is refused before anything is fetched:
// the final rename would fail, and again after every resume.
func TestFileGetRefusesDirectoryTarget(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "f.bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	e := &env{stdout: io.Discard, stderr: io.Discard}
	t.Chdir(dir)
	for _, out := range []string{"", dir} {
		_, err := newDownload(e, "f.bin", out, true)
		var u *usageError
		if !errors.As(err, &u) || !strings.Contains(err.Error(), "is a directory") {
			t.Errorf("-o %s: %v, want a usage error naming the directory", out, err)
		}
	}
	if _, err := newDownload(e, "f.bin", filepath.Join(dir, "g.bin"), true); err != nil {
		t.Errorf("a fresh path: %v", err)
	}
}

// -o - writes the file to standard output, and every message to
// standard error, so the output is the file's bytes and nothing else.
func TestFileGetToStdout(t *testing.T) {
	root := t.TempDir()
	want := writeSynth(t, filepath.Join(root, "f.bin"), 300_000, 3)
	s := startFileServer(t, root)
	wd, _ := os.Getwd()
	dir := t.TempDir()
	if err := os.Chdir(dir); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir(wd)
	code, out, errs := runFile(t, nil, "file", "get", s.addr, "f.bin", "-o", "-")
	if code != 0 || out != string(want) {
		t.Fatalf("exit %d, %d bytes on stdout (want the file's %d); stderr %q", code, len(out), len(want), errs)
	}
	if !strings.Contains(errs, "-> standard output") {
		t.Fatalf("stderr %q, want the summary", errs)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left %v in the working directory", ents)
	}
}

// A shell line too long for a command is refused, and the lines after it
// still run (a Scanner stopped the shell there, silently, exit 0).
func TestFileShellSkipsTooLongLine(t *testing.T) {
	root := t.TempDir()
	srv := startFileServer(t, root)
	in := "ls " + strings.Repeat("a", 70_000) + "\ntime\nexit\n"
	code, out, errs := runFile(t, strings.NewReader(in), "file", "shell", srv.addr)
	if code != 0 || !strings.Contains(out, "too long for a command; skipped") || !strings.Contains(out, "server time: ") {
		t.Fatalf("exit %d, stdout %q, stderr %q: want the long line skipped and time answered", code, out, errs)
	}
}

// Two downloads to one PATH cannot both write PATH.part: the second is
// refused at once (both used to claim success). An unused PATH.part the
// lock created is removed with it.
func TestFileGetLocksItsPart(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	e := &env{stdout: io.Discard, stderr: io.Discard}
	d1, _ := newDownload(e, "a", out, true)
	unlock, err := d1.lock()
	if err != nil {
		t.Fatal(err)
	}
	d2, _ := newDownload(e, "b", out, true)
	if _, err := d2.lock(); err == nil || !strings.Contains(err.Error(), "another download is writing") {
		t.Fatalf("a second download to the same path: %v, want it refused", err)
	}
	unlock()
	if _, err := os.Stat(out + ".part"); !os.IsNotExist(err) {
		t.Fatalf("the empty %s.part the lock created was left behind", out)
	}
	unlock2, err := d2.lock()
	if err != nil {
		t.Fatalf("after the first let go: %v", err)
	}
	unlock2()
}

// --connect-timeout gives up on a server that never answers, long before
// the transport's own 85 s of SYNs, and leaves no PATH or PATH.part.
func TestFileGetConnectTimeout(t *testing.T) {
	silent, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	out := filepath.Join(t.TempDir(), "x.bin")
	start := time.Now()
	code, _, stderr := runCmd("file", "get", silent.LocalAddr().String(), "x.bin", "-o", out, "-q", "--connect-timeout", "300ms")
	if code != 1 || !strings.Contains(stderr, "no answer from "+silent.LocalAddr().String()+" in 300ms (--connect-timeout)") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("gave up after %v", d)
	}
	for _, p := range []string{out, out + ".part"} {
		if st, err := os.Stat(p); err == nil && st.Size() > 0 {
			t.Errorf("%s left behind with %d bytes", p, st.Size())
		}
	}
	if code, _, _ := runCmd("file", "get", "127.0.0.1:9", "x", "--connect-timeout", "-1s"); code != 2 {
		t.Errorf("--connect-timeout -1s: exit %d, want 2", code)
	}
}

// backgroundTTY reads like a terminal's input for a job in the
// background (EIO, with SIGTTIN ignored) until brought to the foreground.
type backgroundTTY struct {
	fails int
	r     io.Reader
}

func (b *backgroundTTY) Read(p []byte) (int, error) {
	if b.fails > 0 {
		b.fails--
		return 0, syscall.EIO
	}
	return b.r.Read(p)
}

// A file server started in the background of a terminal keeps serving,
// and its console reads once the job is in the foreground: it was
// stopped by SIGTTIN at its first console read, and served no one.
func TestConsoleWaitsForTheForeground(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lines := make(chan string, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		console(ctx, &env{stdin: &backgroundTTY{fails: 2, r: strings.NewReader("hello\n")}}, func(b []byte) { lines <- string(b) }, func(int) {})
	}()
	select {
	case l := <-lines:
		if l != "hello" {
			t.Fatalf("console line %q", l)
		}
	case <-ctx.Done():
		t.Fatal("the console gave up in the background")
	}
	<-done
}

// A file client's SERVER may be a host alone, as seed 002's client took
// it: the server is then on the seed's control port.
func TestFileServerAddress(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1", "127.0.0.1:6000"},
		{"::1", "[::1]:6000"},
		{"127.0.0.1:7000", "127.0.0.1:7000"},
		{"7000", "127.0.0.1:7000"}, // a bare port, as everywhere
		{"[::1]:7000", "[::1]:7000"},
	} {
		got, err := fileServerAddr(tc.in)
		if err != nil || got.String() != tc.want {
			t.Errorf("fileServerAddr(%q) = %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	// A name resolves to whichever loopback address the resolver gives.
	if got, err := fileServerAddr("localhost"); err != nil || got.Port() != 6000 || !got.Addr().IsLoopback() {
		t.Errorf("fileServerAddr(localhost) = %v, %v; want a loopback address, port 6000", got, err)
	}
	if _, err := fileServerAddr(""); err == nil {
		t.Error("an empty SERVER was taken")
	}
}
