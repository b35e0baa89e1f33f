package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/nettest"
	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
	pintftp "github.com/pin/tftp/v3"
)

// startTFTP runs `netspec tftp serve` on a free loopback port over root
// and returns its host and port; it stops when the test ends.
func startTFTP(t *testing.T, root string, extra ...string) (host, port string, out *syncBuffer) {
	t.Helper()
	out = &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	args := append([]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", root}, extra...)
	// The log (stderr) goes in out too: tests read the transfers' options there.
	go func() { done <- run(ctx, args, strings.NewReader(""), out, out) }()
	t.Cleanup(func() {
		cancel()
		if err := awaitExit(done, 10*time.Second, "tftp serve"); err != nil {
			t.Error(err)
		}
	})
	addr := out.wait(t, `tftp: serving .* on (\S+)\n`)[1]
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return h, p, out
}

// tftpRoot writes a root with files at the sizes that matter: empty,
// one byte, exactly one 512-byte block and one 1428-byte block, and
// several hundred blocks; returns the root and the files' bytes.
func tftpRoot(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{}
	for i, f := range []struct {
		name string
		size int
	}{{"empty", 0}, {"one", 1}, {"block512", 512}, {"block1428", 1428}, {"dir/kernel.img", 300_001}} {
		b := make([]byte, f.size)
		file.SynthBytes(uint64(i)+100, 0, b)
		p := filepath.Join(root, filepath.FromSlash(f.name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		files[f.name] = b
	}
	return root, files
}

func tool(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func sameFile(t *testing.T, path string, want []byte, what string) {
	t.Helper()
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: got %d bytes that differ from the %d served", what, len(got), len(want))
	}
}

func TestTFTPUsage(t *testing.T) {
	root := t.TempDir()
	for _, tc := range []struct {
		args []string
		code int
	}{
		{[]string{"tftp"}, 2},
		{[]string{"tftp", "-h"}, 0},
		{[]string{"tftp", "bogus"}, 2},
		{[]string{"tftp", "serve", "-h"}, 0},
		{[]string{"tftp", "serve", "--root", root}, 2},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0"}, 2},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", root, "--max-blksize", "7"}, 2},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", root, "--max-windowsize", "0"}, 2},
		{[]string{"tftp", "serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(root, "missing")}, 2},
		{[]string{"tftp", "get", "-h"}, 0},
		{[]string{"tftp", "get", "127.0.0.1:9"}, 2},
		{[]string{"tftp", "get", "127.0.0.1:9", "x", "--blksize", "70000"}, 2},
		{[]string{"tftp", "get", "127.0.0.1:9", "x", "--windowsize", "0"}, 2},
		{[]string{"tftp", "get", "127.0.0.1:9", "x", "--bogus"}, 2},
		{[]string{"tftp", "put", "-h"}, 0},
		{[]string{"tftp", "put", "127.0.0.1:9"}, 2},
		{[]string{"tftp", "put", "127.0.0.1:9", filepath.Join(root, "missing")}, 2},
	} {
		code, _, stderr := runCmd(tc.args...)
		if code != tc.code {
			t.Errorf("netspec %s: exit %d, want %d (stderr: %s)", strings.Join(tc.args, " "), code, tc.code, stderr)
		}
		if code == 2 && len(tc.args) > 1 && !strings.Contains(stderr, "netspec") {
			t.Errorf("netspec %s: exit 2 without a message", strings.Join(tc.args, " "))
		}
	}
}

// curl downloads every file, byte for byte, with RFC 1350's 512-byte
// blocks and with --tftp-blksize 1428; missing files, "..", and
// symlinks out of the root fail; a 600 KB file in 8-byte blocks wraps
// the block number past 65535.
func TestTFTPWithCurl(t *testing.T) {
	need(t, "curl")
	root, files := tftpRoot(t)
	outside := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(outside, []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	wrap := make([]byte, 600_000)
	file.SynthBytes(77, 0, wrap)
	if err := os.WriteFile(filepath.Join(root, "wrap.bin"), wrap, 0o644); err != nil {
		t.Fatal(err)
	}
	host, port, _ := startTFTP(t, root)
	dir := t.TempDir()
	for name, want := range files {
		for _, blk := range []string{"", "1428"} {
			dst := filepath.Join(dir, fmt.Sprintf("curl-%s-%s", strings.ReplaceAll(name, "/", "_"), blk))
			args := []string{"-sS", "-o", dst}
			if blk != "" {
				args = append(args, "--tftp-blksize", blk)
			}
			if out, err := tool(t, "curl", append(args, fmt.Sprintf("tftp://%s:%s/%s", host, port, name))...); err != nil {
				t.Fatalf("curl %s (blksize %q): %v\n%s", name, blk, err, out)
			}
			sameFile(t, dst, want, "curl "+name+" blksize "+blk)
		}
	}
	dst := filepath.Join(dir, "wrapped")
	if out, err := tool(t, "curl", "-sS", "--tftp-blksize", "8", "-o", dst, fmt.Sprintf("tftp://%s:%s/wrap.bin", host, port)); err != nil {
		t.Fatalf("curl with 8-byte blocks: %v\n%s", err, out)
	}
	sameFile(t, dst, wrap, "75,000 blocks of 8 bytes (block numbers wrap)")
	for _, bad := range []string{"missing", "../secret", "escape", "dir"} {
		dst := filepath.Join(dir, "bad")
		out, err := tool(t, "curl", "-sS", "--path-as-is", "-o", dst, fmt.Sprintf("tftp://%s:%s/%s", host, port, bad))
		if err == nil {
			t.Errorf("curl %s succeeded: %s", bad, out)
		}
		if b, err := os.ReadFile(dst); err == nil && bytes.Contains(b, []byte("secret")) {
			t.Errorf("curl %s read the file outside the root", bad)
		}
	}
}

// curl uploads too: from a file it announces the size (tsize), from
// stdin it announces 0, size unknown; both arrive whole.
func TestTFTPUploadWithCurl(t *testing.T) {
	need(t, "curl")
	root := t.TempDir()
	host, port, _ := startTFTP(t, root, "--allow-write")
	body := make([]byte, 3000)
	file.SynthBytes(5, 0, body)
	src := filepath.Join(t.TempDir(), "src.bin")
	if err := os.WriteFile(src, body, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := tool(t, "curl", "-sS", "-T", src, fmt.Sprintf("tftp://%s:%s/from-file.bin", host, port)); err != nil {
		t.Fatalf("curl -T FILE: %v\n%s", err, out)
	}
	sameFile(t, filepath.Join(root, "from-file.bin"), body, "curl -T FILE")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "curl", "-sS", "-T", "-", fmt.Sprintf("tftp://%s:%s/from-stdin.bin", host, port))
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("curl -T - (tsize 0): %v\n%s", err, out)
	}
	sameFile(t, filepath.Join(root, "from-stdin.bin"), body, "curl -T - (tsize 0)")
}

// tftp-hpa's client gets every file, and, with --allow-write, puts one
// that appears complete; a second put of the same name is refused and
// changes nothing.
func TestTFTPWithTftpHPA(t *testing.T) {
	need(t, "tftp")
	root, files := tftpRoot(t)
	host, port, srvOut := startTFTP(t, root, "--allow-write")
	dir := t.TempDir()
	for name, want := range files {
		dst := filepath.Join(dir, strings.ReplaceAll(name, "/", "_"))
		if out, err := tool(t, "tftp", "-m", "binary", host, port, "-c", "get", name, dst); err != nil || strings.Contains(out, "Error") {
			t.Fatalf("tftp get %s: %v\n%s", name, err, out)
		}
		sameFile(t, dst, want, "tftp-hpa get "+name)
	}
	src := filepath.Join(root, "dir/kernel.img")
	if out, err := tool(t, "tftp", "-m", "binary", host, port, "-c", "put", src, "dir/uploaded.img"); err != nil || strings.Contains(out, "Error") {
		t.Fatalf("tftp put: %v\n%s", err, out)
	}
	srvOut.wait(t, `tftp: put dir/uploaded.img from \S+, 300001 bytes`)
	sameFile(t, filepath.Join(root, "dir/uploaded.img"), files["dir/kernel.img"], "tftp-hpa put")
	out, _ := tool(t, "tftp", "-m", "binary", host, port, "-c", "put", filepath.Join(root, "one"), "dir/uploaded.img")
	if !strings.Contains(out, "already exists") {
		t.Errorf("a second put of the same name: %q, want 'file already exists'", out)
	}
	sameFile(t, filepath.Join(root, "dir/uploaded.img"), files["dir/kernel.img"], "after a refused overwrite")
	entries, _ := os.ReadDir(filepath.Join(root, "dir"))
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".part") {
			t.Errorf("a temporary file was left behind: %s", e.Name())
		}
	}
}

// atftp negotiates windowsize (RFC 7440) as well as blksize. CI installs
// it; elsewhere the test skips where it is missing, unless
// NETSPEC_REQUIRE_TOOLS is set.
func TestTFTPWithAtftp(t *testing.T) {
	need(t, "atftp")
	root, files := tftpRoot(t)
	host, port, log := startTFTP(t, root)
	dir := t.TempDir()
	for _, w := range []string{"1", "16", "64"} {
		dst := filepath.Join(dir, "k"+w)
		out, err := tool(t, "atftp", "--option", "blksize 1428", "--option", "windowsize "+w, "-g", "-r", "dir/kernel.img", "-l", dst, host, port)
		if err != nil {
			t.Fatalf("atftp windowsize %s: %v\n%s", w, err, out)
		}
		sameFile(t, dst, files["dir/kernel.img"], "atftp windowsize "+w)
		// The window was negotiated, not silently refused.
		log.wait(t, `blksize=1428 windowsize=`+w+`\b`)
	}
}

// An independent Go implementation (github.com/pin/tftp) as client of
// our server and as server for our client.
func TestTFTPPinInterop(t *testing.T) {
	root, files := tftpRoot(t)
	host, port, _ := startTFTP(t, root)
	c, err := pintftp.NewClient(net.JoinHostPort(host, port))
	if err != nil {
		t.Fatal(err)
	}
	c.SetBlockSize(1428)
	c.RequestTSize(true)
	c.SetTimeout(time.Second)
	for name, want := range files {
		wt, err := c.Receive(name, "octet")
		if err != nil {
			t.Fatalf("pin/tftp receive %s: %v", name, err)
		}
		var got bytes.Buffer
		if _, err := wt.WriteTo(&got); err != nil {
			t.Fatalf("pin/tftp %s: %v", name, err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("pin/tftp got %d bytes of %s, want %d", got.Len(), name, len(want))
		}
	}

	// Our client against pin's server, which knows blksize and tsize but
	// not windowsize: the client must fall back to lock step.
	srv := pintftp.NewServer(func(name string, rf io.ReaderFrom) error {
		b, ok := files[name]
		if !ok {
			return fmt.Errorf("no such file")
		}
		rf.(pintftp.OutgoingTransfer).SetSize(int64(len(b)))
		_, err := rf.ReadFrom(bytes.NewReader(b))
		return err
	}, nil)
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(pc) }()
	defer srv.Shutdown()
	dst := filepath.Join(t.TempDir(), "k")
	code, out, stderr := runCmd("tftp", "get", "-q", pc.LocalAddr().String(), "dir/kernel.img", "-o", dst, "--windowsize", "16")
	if code != 0 {
		t.Fatalf("netspec tftp get from pin/tftp: exit %d\n%s%s", code, out, stderr)
	}
	sameFile(t, dst, files["dir/kernel.img"], "netspec tftp get from pin/tftp")
}

// netspec tftp get and put against netspec tftp serve: exact files; a
// failed download leaves neither PATH nor PATH.part.
func TestTFTPGetPut(t *testing.T) {
	root, files := tftpRoot(t)
	host, port, _ := startTFTP(t, root, "--allow-write")
	server := net.JoinHostPort(host, port)
	dir := t.TempDir()
	for name, want := range files {
		for _, w := range []string{"1", "64"} {
			dst := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+w)
			code, out, stderr := runCmd("tftp", "get", server, name, "-o", dst, "--windowsize", w, "-q")
			if code != 0 {
				t.Fatalf("get %s: exit %d\n%s%s", name, code, out, stderr)
			}
			sameFile(t, dst, want, "netspec tftp get "+name)
		}
	}
	dst := filepath.Join(dir, "missing")
	code, _, stderr := runCmd("tftp", "get", server, "missing", "-o", dst)
	if code != 1 || !strings.Contains(stderr, "file not found") {
		t.Fatalf("get missing: exit %d, %s", code, stderr)
	}
	for _, p := range []string{dst, dst + ".part"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("a failed download left %s", p)
		}
	}
	src := filepath.Join(root, "dir/kernel.img")
	if code, out, stderr := runCmd("tftp", "put", server, src, "copy.img"); code != 0 {
		t.Fatalf("put: exit %d\n%s%s", code, out, stderr)
	}
	sameFile(t, filepath.Join(root, "copy.img"), files["dir/kernel.img"], "netspec tftp put")
	if code, _, stderr := runCmd("tftp", "put", server, src, "copy.img"); code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("put over an existing file: exit %d, %s", code, stderr)
	}
}

// serveTFTP is what `netspec file serve --tftp ADDR` runs: it serves
// the root it is given, next to whatever else the command runs.
func TestServeTFTPFunc(t *testing.T) {
	root, files := tftpRoot(t)
	rt, err := rootfs.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	out := &syncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveTFTP(ctx, &env{stdin: strings.NewReader(""), stdout: out, stderr: io.Discard},
			netip.MustParseAddrPort("127.0.0.1:0"), rt, false, slog.New(slog.DiscardHandler))
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serveTFTP: %v", err)
		}
	}()
	addr := out.wait(t, `tftp: serving .* on (\S+)\n`)[1]
	dst := filepath.Join(t.TempDir(), "k")
	if code, o, e := runCmd("tftp", "get", "-q", addr, "dir/kernel.img", "-o", dst); code != 0 {
		t.Fatalf("get: exit %d\n%s%s", code, o, e)
	}
	sameFile(t, dst, files["dir/kernel.img"], "get from serveTFTP")
	if code, _, e := runCmd("tftp", "put", addr, dst, "new"); code != 1 || !strings.Contains(e, "access violation") {
		t.Fatalf("put without --allow-write: exit %d, %s", code, e)
	}
}

// netspec sim tftp runs, passes its own checks, and reruns byte for byte
// from the command it prints.
func TestSimTFTPReproduces(t *testing.T) {
	code, out, stderr := runCmd("sim", "tftp", "--size", "50000", "--loss", "0.05", "--seed", "4")
	if code != 0 || !strings.Contains(out, "client3 │ get │ yes") {
		t.Fatalf("netspec sim tftp: exit %d\n%s%s", code, out, stderr)
	}
	i := strings.LastIndex(out, "reproduce: ")
	if i < 0 {
		t.Fatalf("no reproduce line in:\n%s", out)
	}
	repro := strings.Fields(strings.TrimSpace(out[i+len("reproduce: "):]))
	if code, again, _ := runCmd(repro[1:]...); code != 0 || again != out {
		t.Fatalf("rerunning %q gave different output", repro)
	}
	if code, _, _ := runCmd("sim", "tftp", "--windowsize", "0"); code != 2 {
		t.Fatalf("sim tftp --windowsize 0: exit %d, want 2", code)
	}
}

// A server on the wildcard address answers a request sent to 127.0.0.2
// from 127.0.0.2, both the transfer (from its new port) and a refusal
// (from the server's port): clients and firewalls that match the
// answer's source against where they sent would drop anything else.
func TestTFTPAnswersFromAddressAsked(t *testing.T) {
	if !nettest.PrivateNet(t) {
		return
	}
	root, files := tftpRoot(t)
	_, port, _ := startTFTP(t, root, "--addr", "0.0.0.0:0")
	server := netip.MustParseAddrPort("127.0.0.2:" + port)
	rrq := func(name string) []byte { return []byte("\x00\x01" + name + "\x00octet\x00") }
	buf := make([]byte, 600)
	for _, tc := range []struct{ name, what string }{{"one", "DATA 1"}, {"missing", "ERROR 1"}} {
		// A port of its own per request: a request from a port whose
		// transfer is still open is taken for a retransmission.
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.WriteToUDPAddrPort(rrq(tc.name), server); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", tc.name, err)
		}
		if from.Addr() != server.Addr() {
			t.Errorf("%s: %s came from %v, want %v", tc.name, tc.what, from, server.Addr())
		}
		switch tc.name {
		case "one":
			if n != 5 || buf[1] != 3 || buf[4] != files["one"][0] || from.Port() == server.Port() {
				t.Errorf("answer %x from %v, want DATA 1 from a new port", buf[:n], from)
			}
			_, _ = c.WriteToUDPAddrPort([]byte{0, 4, 0, 1}, from) // ACK 1: done
		default:
			if buf[1] != 5 || from != server {
				t.Errorf("answer %x from %v, want an ERROR from %v", buf[:n], from, server)
			}
		}
	}
	// netspec's own client takes answers from the server's address alone.
	dst := filepath.Join(t.TempDir(), "kernel.img")
	if code, out, stderr := runCmd("tftp", "get", server.String(), "dir/kernel.img", "-o", dst, "-q"); code != 0 {
		t.Fatalf("netspec tftp get from %v: exit %d\n%s%s", server, code, out, stderr)
	}
	sameFile(t, dst, files["dir/kernel.img"], "netspec tftp get from 127.0.0.2")
}

// SERVER is host:port or a host alone for port 69; errors quote what the
// user wrote, not an address made from it.
func TestTFTPServerAddr(t *testing.T) {
	for _, tc := range []struct{ in, want, err string }{
		{"127.0.0.1:6969", "127.0.0.1:6969", ""},
		{"127.0.0.1", "127.0.0.1:69", ""},
		{"::1", "[::1]:69", ""},
		{"[::1]", "[::1]:69", ""},
		{"[::1]:6969", "[::1]:6969", ""},
		{"127.0.0.1:x", "", `"x"`},
		{"127.0.0.1:0", "", `"127.0.0.1:0": port 0`},
	} {
		got, err := tftpServerAddr(tc.in)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err) || strings.Contains(err.Error(), ":69")):
			t.Errorf("%s: %v, want an error naming %s", tc.in, err, tc.err)
		case tc.err == "" && (err != nil || got.String() != tc.want):
			t.Errorf("%s: %v, %v; want %s", tc.in, got, err, tc.want)
		}
	}
}

// A TFTP server's --trace replays over the directory it served
// (replay --root), and not over the synthetic files of its config.
func TestTFTPTraceReplaysOverItsRoot(t *testing.T) {
	root, files := tftpRoot(t)
	dir := t.TempDir()
	srv, cli := filepath.Join(dir, "server.ndjson"), filepath.Join(dir, "client.ndjson")
	var name string
	for n, b := range files {
		if len(b) > 100000 {
			name = n
		}
	}
	t.Run("run", func(t *testing.T) {
		host, port, _ := startTFTP(t, root, "--trace", srv)
		out := filepath.Join(dir, "got")
		if code, _, stderr := runCmd("tftp", "get", "-q", "--trace", cli, host+":"+port, name, "-o", out); code != 0 {
			t.Fatalf("tftp get: exit %d %s", code, stderr)
		}
		sameFile(t, out, files[name], "get with --trace")
	})
	if code, out, stderr := runCmd("replay", srv, "--root", root); code != 0 {
		t.Errorf("replay --root: exit %d\n%s%s", code, out, stderr)
	}
	if code, out, _ := runCmd("replay", "--spec-only", srv); code != 1 || !strings.Contains(out, "DIVERGES") {
		t.Errorf("replay without the root: exit %d, want a divergence (file not found):\n%s", code, out)
	}
	if code, out, stderr := runCmd("replay", cli); code != 0 {
		t.Errorf("replay of the client: exit %d\n%s%s", code, out, stderr)
	}
}

// An upload into a directory that is a symlink out of the root is an
// access violation (error 2), as a read of it is; it was "cannot open
// the file" (error 0).
func TestTFTPUploadThroughSymlinkOutIsAccessViolation(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "esc")); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = rootStore{r}.Create("esc/x", 0)
	if !errors.Is(err, fs.ErrPermission) {
		t.Fatalf("Create through a symlink out of the root: %v, want a permission error", err)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("the upload left %v outside the root", ents)
	}
}

// -o naming a device or FIFO writes into it, and never renames a file
// over it (tftp get -o /dev/null replaced /dev/null, as root).
func TestTFTPGetIntoDevice(t *testing.T) {
	out := filepath.Join(t.TempDir(), "sink")
	got := readFIFO(t, out)
	d, err := newTFTPDownload(&env{stdout: io.Discard, stderr: io.Discard}, "f.bin", out, true)
	if err != nil {
		t.Fatal(err)
	}
	var now spec.Time
	d.event(now, spec.Event{Name: "file-start", Value: tftp.FileStart{Size: 5}})
	d.event(now, spec.Event{Name: "data", Data: []byte("hello")})
	d.event(now, spec.Event{Name: "file-done"})
	if err := d.finish(nil); err != nil {
		t.Fatal(err)
	}
	checkFIFO(t, out, got, "hello")
}

// A server that allows writes removes the remains of uploads a crash cut
// short (hidden temporaries), but not one a live server is writing.
func TestSweepUploadTemps(t *testing.T) {
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	stale := []string{".a.tftp-000000000001.part", "sub/.b.tftp-000000000002.part"}
	for _, n := range append(stale, "keep.part", ".c.tftp-zz.part") {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	live, err := rootStore{r}.Create("live.bin", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Abort()
	if n := sweepUploadTemps(r); n != len(stale) {
		t.Fatalf("removed %d, want the %d stale temporaries", n, len(stale))
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".*"))
	sub, _ := filepath.Glob(filepath.Join(dir, "sub", ".*"))
	if len(sub) != 0 || len(left) != 2 { // the live upload's and .c.tftp-zz.part
		t.Fatalf("left %v %v", left, sub)
	}
}
