package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec/cs"
)

var swarmChunks = regexp.MustCompile(`(\d+) chunks from the server, (\d+) from peers`)

// A server and five peers on loopback: every peer verifies the file
// (SHA-256 per chunk, MD5 with the server), saves it, and the peers
// really trade chunks: the server is paced at 40 Mbit/s, far below what
// loopback gives the peers. One peer speaks only the seed's protocol.
// Pulling, and in the distribution trees (--expect 5: the seed-style peer
// takes no place, so the trees have a hole that its subtree must pull
// around).
func TestP2PFivePeersOnLoopback(t *testing.T) {
	for _, expect := range []string{"0", "5"} {
		t.Run("expect "+expect, func(t *testing.T) { fivePeers(t, expect) })
	}
}

func fivePeers(t *testing.T, expect string) {
	const size = 4_000_000
	addr, log := swarmServer(t, "p2p", "serve", "-p", "0", "--ip", "127.0.0.1", "--size", strconv.Itoa(size), "--seed", "11",
		"--rate", "40mbit", "--expect", expect)
	_ = log
	want, _ := cs.Generate(cs.FileSpec{Seed: 11, Size: size})
	host, port := split(t, addr)
	dir := t.TempDir()
	type result struct {
		i            int
		code         int
		stdout, errs string
	}
	results := make(chan result, 5)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Peer 3 writes through a link into a FIFO, as into /dev/stdout: in
	// order, once verified, the link and the FIFO kept.
	fifo := filepath.Join(dir, "fifo")
	fromFIFO := readFIFO(t, fifo)
	if err := os.Symlink("fifo", filepath.Join(dir, "peer3")); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		args := []string{"p2p", "get", "-s", host, "-sp", port, "-p", "0", "--ip", "127.0.0.1", "-o", filepath.Join(dir, fmt.Sprintf("peer%d", i)),
			"--linger", "3s", "-q"}
		if i == 4 {
			args = append(args, "--legacy")
		}
		go func() {
			out, errs := &syncBuffer{}, &syncBuffer{}
			code := run(ctx, args, strings.NewReader(""), out, errs)
			results <- result{i, code, out.String(), errs.String()}
		}()
	}
	fromPeers := 0
	for k := 0; k < 5; k++ {
		r := <-results
		if r.code != 0 || !strings.Contains(r.stdout, "time used: ") || !strings.Contains(r.stdout, "the server's CHECK agrees") {
			t.Fatalf("peer %d: exit %d\n%s\n%s", r.i, r.code, r.stdout, r.errs)
		}
		var got []byte
		var err error
		if r.i == 3 {
			checkFIFO(t, fifo, fromFIFO, string(want))
			got = want
		} else {
			got, err = os.ReadFile(filepath.Join(dir, fmt.Sprintf("peer%d", r.i)))
		}
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("peer %d saved %d bytes that differ from the file (%v)", r.i, len(got), err)
		}
		m := swarmChunks.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("peer %d did not say where its chunks came from:\n%s", r.i, r.stdout)
		}
		n, _ := strconv.Atoi(m[2])
		fromPeers += n
	}
	if fromPeers == 0 {
		t.Fatal("every chunk came from the server: the peers did not trade")
	}
}

// The seed's protocol by hand, with nc: a client written from the seed's
// description gets SHEL and the peer list, exact chunks, the seed's
// error ids, and never an extension message.
func TestP2PSeedProtocolWithNetcat(t *testing.T) {
	need(t, "nc")
	addr, _ := swarmServer(t, "p2p", "serve", "-p", "0", "--ip", "127.0.0.1", "--size", "40000", "--seed", "5", "--chunk-size", "16384")
	want, _ := cs.Generate(cs.FileSpec{Seed: 5, Size: 40000})
	out := swarmNC(t, addr, "DREQ 0\r\nCHEL 51999\r\nCLREQ\r\nDREQ 2\r\nDREQ 3\r\nHELLO\r\nCHECK "+fmt.Sprintf("%x", cs.Digest(want))+"\r\n")
	wantOut := "ERROR UNKNOWN_COMMAND\r\n" +
		"SHEL 40000 16384\r\n[]\r\n" +
		"CLRSP\r\n[0,1,2]\r\n" +
		"DATA 32768 7232\r\n" + string(want[32768:]) +
		"ERROR OFFSET_OVERFLOW\r\n" +
		"ERROR UNKNOWN_COMMAND\r\n" +
		"CHECK " + fmt.Sprintf("%x", cs.Digest(want)) + "\r\n"
	if out != wantOut {
		t.Fatalf("the server answered %q...\nwant %q...", clipSwarm(out), clipSwarm(wantOut))
	}
	// A wrong sum, in either case of hex digits, is the seed's
	// CHECKSUM_NOT_FIT; the right one in upper case is accepted.
	bad := cs.Digest(want)
	bad[0] ^= 1
	sum := strings.ToUpper(fmt.Sprintf("%x", cs.Digest(want)))
	if out := swarmNC(t, addr, "CHEL 51997\r\nCHECK "+fmt.Sprintf("%x", bad)+"\r\nCHECK "+sum+"\r\n"); !strings.HasSuffix(out, "\r\nERROR CHECKSUM_NOT_FIT\r\nCHECK "+fmt.Sprintf("%x", cs.Digest(want))+"\r\n") {
		t.Fatalf("CHECK with a wrong and then the right sum got %q", clipSwarm(out))
	}
	// Without CRLF, as a seed-style client may send it: the line is
	// taken as complete once nothing more comes.
	if out := swarmNC(t, addr, "CHEL 51998"); !strings.HasPrefix(out, "SHEL 40000 16384\r\n[") {
		t.Fatalf("an unterminated CHEL got %q", out)
	}
}

func clipSwarm(s string) string {
	if len(s) > 200 {
		return s[:200]
	}
	return s
}

// config.ini supplies the seed's keys; flags given on the command line
// take precedence.
func TestP2PConfigINI(t *testing.T) {
	dir := t.TempDir()
	ini := filepath.Join(dir, "config.ini")
	out := filepath.Join(dir, "from-ini.bin")
	// config.ini names a port that is taken: the server works only
	// because -p overrides it.
	taken, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	if err := os.WriteFile(ini, []byte(fmt.Sprintf("; the seed's config.ini\n[server]\nport = %d\nip = 127.0.0.1\nfile_path =\nfile_size = 123457\n", takenPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	addr, log := swarmServer(t, "p2p", "serve", "--config", ini, "-p", "0")
	if !strings.Contains(log.String(), "serving 123457 bytes") || !strings.HasPrefix(addr, "127.0.0.1:") || strings.HasSuffix(addr, fmt.Sprintf(":%d", takenPort)) {
		t.Fatalf("the server ignored config.ini or -p: %s on %s (config port %d)", log, addr, takenPort)
	}
	host, port := split(t, addr)
	client := fmt.Sprintf("[client]\nport = 0\nip = 127.0.0.1\nserver_ip = %s\nserver_port = %s\nfile_path = %s\n", host, port, out)
	if err := os.WriteFile(ini, []byte(client), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCmd("p2p", "get", "--config", ini, "--linger", "0s", "-q")
	if code != 0 {
		t.Fatalf("p2p get with config.ini: exit %d\n%s%s", code, stdout, stderr)
	}
	want, _ := cs.Generate(cs.FileSpec{Seed: 1, Size: 123457})
	if got, _ := os.ReadFile(out); !bytes.Equal(got, want) {
		t.Fatalf("saved %d bytes, want the %d-byte file", len(got), len(want))
	}

	// The client's flags beat its section: config.ini names a server
	// that refuses (another loopback address, a closed port) and
	// another output file.
	closed, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	iniOut, flagOut := filepath.Join(dir, "named-in-ini.bin"), filepath.Join(dir, "named-by-o.bin")
	bad := fmt.Sprintf("[client]\nport = 0\nip = 127.0.0.1\nserver_ip = 127.0.0.2\nserver_port = %d\nfile_path = %s\n", closedPort, iniOut)
	if err := os.WriteFile(ini, []byte(bad), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runCmd("p2p", "get", "--config", ini, "-s", host, "-sp", port, "-p", "0", "-o", flagOut, "--linger", "0s", "-q")
	if code != 0 {
		t.Fatalf("p2p get -s -sp -o over config.ini: exit %d\n%s%s", code, stdout, stderr)
	}
	if got, _ := os.ReadFile(flagOut); !bytes.Equal(got, want) {
		t.Fatalf("-o file has %d bytes, want the %d-byte file", len(got), len(want))
	}
	if _, err := os.Stat(iniOut); err == nil {
		t.Fatal("the client also wrote config.ini's file_path")
	}

	// -f beats the server section's file_path.
	mine := filepath.Join(dir, "mine.bin")
	if err := os.WriteFile(mine, make([]byte, 4321), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ini, []byte("[server]\nport = 0\nip = 127.0.0.1\nfile_path = "+filepath.Join(dir, "absent.bin")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, log := swarmServer(t, "p2p", "serve", "--config", ini, "-f", mine); !strings.Contains(log.String(), "serving 4321 bytes") {
		t.Fatalf("-f did not beat file_path: %s", log)
	}
}

func TestSwarmParseRate(t *testing.T) {
	for in, want := range map[string]float64{"10mbit": 10e6, "10M": 10e6, "1.5gbit": 1.5e9, "800kbps": 800e3, "12345": 12345, "": 0} {
		if got, err := swarmParseRate(in); err != nil || got != want {
			t.Errorf("%q: %v %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"fast", "-1mbit", "0", "mbit", "1e20"} {
		if _, err := swarmParseRate(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// BenchmarkLoopback measures the real binaries' speed on loopback, side
// by side: one C/S download and one P2P download (server and a single
// peer, SHA-256 per chunk, MD5 at the end) of the same 20 MB file.
func BenchmarkLoopback(b *testing.B) {
	const size = 20_000_000
	for _, mode := range []string{"cs", "p2p"} {
		b.Run(mode, func(b *testing.B) {
			args := []string{mode, "serve", "-p", "0", "--ip", "127.0.0.1", "--size", strconv.Itoa(size)}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			out := &syncBuffer{}
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, strings.NewReader(""), out, &syncBuffer{}) }()
			var addr string
			for deadline := time.Now().Add(5 * time.Second); addr == "" && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
				if m := swarmListening.FindStringSubmatch(out.String()); m != nil {
					addr = m[1]
				}
			}
			if addr == "" {
				b.Fatal("server did not start")
			}
			i := strings.LastIndex(addr, ":")
			host, port := addr[:i], addr[i+1:]
			b.SetBytes(size)
			b.ResetTimer()
			for n := 0; n < b.N; n++ {
				var get []string
				if mode == "cs" {
					get = []string{"cs", "get", "-s", host, "-p", port, "-q"}
				} else {
					get = []string{"p2p", "get", "-s", host, "-sp", port, "-p", "0", "--ip", "127.0.0.1", "--linger", "0s", "-q"}
				}
				if code, stdout, stderr := runCmd(get...); code != 0 {
					b.Fatalf("%s: exit %d\n%s%s", strings.Join(get, " "), code, stdout, stderr)
				}
			}
			b.StopTimer()
			cancel()
			<-done
		})
	}
}

// A peer whose server is not there says so within seconds and gives up
// after --server-wait, instead of waiting silently for ever.
func TestP2PGetGivesUpOnAMissingServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close() // nothing listens there now: dials are refused
	start := time.Now()
	code, _, stderr := runCmd("p2p", "get", "-s", "127.0.0.1", "-sp", strconv.Itoa(port), "-p", "0", "--config", os.DevNull, "--server-wait", "4s", "-q")
	if code != 1 || !strings.Contains(stderr, "no answer from 127.0.0.1:"+strconv.Itoa(port)+" yet") || !strings.Contains(stderr, "no welcome from the server") {
		t.Fatalf("exit %d after %v, stderr:\n%s\nwant a warning, then exit 1 giving up on the server", code, time.Since(start), stderr)
	}
}

// A download that fails after the server announced the file leaves
// nothing behind: not OUTPUT, not the OUTPUT.part its chunks went to.
func TestP2PGetFailedLeavesNoFile(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			// A server that welcomes, then is gone.
			_, _ = c.Write([]byte("SHEL 1000000 16384\r\n[]\r\n"))
			time.Sleep(100 * time.Millisecond)
			c.Close()
		}
	}()
	dir := t.TempDir()
	out := filepath.Join(dir, "out.bin")
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	code, _, stderr := runCmd("p2p", "get", "-s", "127.0.0.1", "-sp", port, "-p", "0", "--config", os.DevNull, "--server-wait", "2s", "-q", "-o", out)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Fatalf("a failed download left %v", left)
	}
}

// config.ini is read as configparser reads it: [DEFAULT] supplies keys
// to every section (the section's own win), and a UTF-8 byte order
// mark, as Notepad writes, is no part of the first line.
func TestP2PConfigINIDefaultSectionAndBOM(t *testing.T) {
	ini, err := parseSwarmINI(strings.NewReader("\ufeff[DEFAULT]\nip = 127.0.0.1\nport = 1\n[server]\nport = 2\n[client]\nserver_port = 3\n"), "config.ini")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		section  string
		wantPort int
	}{{"server", 2}, {"client", 1}} {
		fs := flag.NewFlagSet("", flag.ContinueOnError)
		port, ip := fs.Int("p", 0, ""), fs.String("ip", "", "")
		if err := ini.apply(fs, tc.section, map[string]any{"port": port, "ip": ip}, map[string]string{"port": "p", "ip": "ip"}); err != nil {
			t.Fatal(err)
		}
		if *port != tc.wantPort || *ip != "127.0.0.1" {
			t.Errorf("[%s]: port %d ip %q, want %d and [DEFAULT]'s 127.0.0.1", tc.section, *port, *ip, tc.wantPort)
		}
	}
	// A typo in [DEFAULT] is as much a typo as anywhere.
	ini, err = parseSwarmINI(strings.NewReader("[DEFAULT]\nprot = 1\n"), "config.ini")
	if err != nil {
		t.Fatal(err)
	}
	if err := ini.apply(flag.NewFlagSet("", flag.ContinueOnError), "server", map[string]any{}, map[string]string{}); err == nil || !strings.Contains(err.Error(), `"prot"`) {
		t.Errorf("unknown key in [DEFAULT]: %v, want an error naming it", err)
	}
}

// A key or a section given twice is refused, as by configparser: a
// silent choice of one would hide which port a peer listens on.
func TestSwarmINIDuplicates(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"[server]\nport = 1\nPORT = 2\n", "config.ini:3: port given again (first at line 2)"},
		{"[server]\nport = 1\n[client]\nport = 2\n[Server]\nip = x\n", "config.ini:5: section [server] again (first at line 1)"},
	} {
		if _, err := parseSwarmINI(strings.NewReader(tc.in), "config.ini"); err == nil || err.Error() != tc.want {
			t.Errorf("%q: %v, want %s", tc.in, err, tc.want)
		}
	}
	if _, err := parseSwarmINI(strings.NewReader("[server]\nport = 1\n[client]\nport = 2\n"), "config.ini"); err != nil {
		t.Errorf("one key in two sections: %v", err)
	}
}

// The config.ini reader never panics, and what it accepts is what it
// would read back from its own rendering: section and key names trimmed
// and lower-case, values trimmed, the byte-order mark only at the start.
func FuzzSwarmINI(f *testing.F) {
	for _, s := range []string{
		"[server]\nport = 52000\nip = 10.0.0.1\nfile_path = f.bin\nfile_size = 10485760\n",
		"\ufeff[DEFAULT]\nip = 127.0.0.1\n[client]\nserver_ip: 10.0.0.1\r\nserver_port=52000\n",
		"; comment\n# comment\nport = 1\n[ Server ]\n  PORT = 2  \n",
		"[bad\n", "=x\n", "[]\nk=v=w\n", "key\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ini, err := parseSwarmINI(bytes.NewReader(b), "fuzz.ini")
		if err != nil {
			return
		}
		var sb strings.Builder
		sb.WriteString("# rendered\n") // so no key sits where a BOM is skipped
		for _, sec := range slices.Sorted(maps.Keys(ini)) {
			if sec != strings.ToLower(strings.TrimSpace(sec)) {
				t.Fatalf("section %q not trimmed and lower-case", sec)
			}
			fmt.Fprintf(&sb, "[%s]\n", sec)
			for _, k := range slices.Sorted(maps.Keys(ini[sec])) {
				v := ini[sec][k]
				if k == "" || k != strings.ToLower(strings.TrimSpace(k)) || v != strings.TrimSpace(v) {
					t.Fatalf("[%s] %q = %q not trimmed and lower-case", sec, k, v)
				}
				fmt.Fprintf(&sb, "%s = %s\n", k, v)
			}
		}
		again, err := parseSwarmINI(strings.NewReader(sb.String()), "rendered.ini")
		if err != nil {
			t.Fatalf("its own rendering does not parse: %v\n%s", err, sb.String())
		}
		if !reflect.DeepEqual(nonEmpty(ini), nonEmpty(again)) {
			t.Fatalf("read %q, rendered and read back %q", ini, again)
		}
	})
}

// nonEmpty drops sections without keys: a header alone records nothing.
func nonEmpty(ini swarmINI) swarmINI {
	out := swarmINI{}
	for s, kv := range ini {
		if len(kv) > 0 {
			out[s] = kv
		}
	}
	return out
}
