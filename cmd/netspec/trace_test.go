package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/pcap"
)

func TestTraceShowFilters(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "d.svg")
	code, out, stderr := runCmd("trace", "show", "../../conformance/testdata/echo-sim.ndjson", "--node", "server", "--match", "datagram", "--limit", "5", "--svg", svg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 6 || !strings.Contains(lines[0], "server") || strings.Contains(lines[0], "client") {
		t.Fatalf("want a header with only the server's lane and 5 lines, got:\n%s", out)
	}
	for _, l := range lines[1:] {
		if !strings.Contains(l, "datagram") {
			t.Errorf("line does not match the filter: %s", l)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	if err := xml.Unmarshal(b, new(struct{ XMLName xml.Name })); err != nil || !strings.Contains(string(b), "<svg") {
		t.Fatalf("--svg wrote invalid SVG: %v", err)
	}
	// Network arrows: every loss is drawn as a broken arrow.
	code, out, _ = runCmd("trace", "show", "../../conformance/testdata/echo-sim.ndjson", "--only", "net", "--match", "LOST")
	if code != 0 || !strings.Contains(out, "✕") {
		t.Fatalf("no lost packets drawn in a lossy trace:\n%s", out)
	}
	// A duplicate is drawn with the bytes of the packet it copies.
	code, out, _ = runCmd("trace", "show", "../../conformance/testdata/file-sim.ndjson", "--only", "net", "--match", "copy of")
	if code != 0 || !strings.Contains(out, "SYN") || strings.Contains(out, "too short") {
		t.Fatalf("duplicates not decoded as their originals:\n%s", out)
	}
	if code, _, _ := runCmd("trace", "show", "x", "--only", "bogus"); code != 2 {
		t.Errorf("bad --only: exit %d, want 2", code)
	}
}

// tsharkFrames returns, per pcapng interface, how many frames tshark
// decodes as IP packets (that match filter, if not empty).
func tsharkFrames(t *testing.T, file string, filter ...string) map[string]int {
	t.Helper()
	args := []string{"-r", file, "-T", "fields", "-e", "frame.interface_id", "-e", "ip.proto"}
	if len(filter) > 0 {
		args = append(args, "-Y", strings.Join(filter, " && "))
	}
	out, err := exec.Command("tshark", args...).Output()
	if err != nil {
		t.Fatalf("tshark -r %s: %v", file, err)
	}
	n := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(l)
		if len(f) == 2 && (f[1] == "17" || f[1] == "6") {
			n[f[0]]++
		}
	}
	return n
}

// A simulated run's pcapng decodes in tshark, with one frame per packet
// the simulator says it delivered (interface 0) or dropped (interface 1).
func TestSimPcapDecodesInTshark(t *testing.T) {
	need(t, "tshark")
	file := filepath.Join(t.TempDir(), "run.pcapng")
	code, out, stderr := runCmd("sim", "echo", "--seed", "5", "--loss", "0.1", "--json", "--pcap", file)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Result struct {
			Net struct{ Delivered, Lost int }
		}
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	got := tsharkFrames(t, file)
	if got["0"] != res.Result.Net.Delivered || got["1"] != res.Result.Net.Lost || got["1"] == 0 {
		t.Fatalf("tshark decoded %d delivered and %d dropped packets; the simulator says %d and %d", got["0"], got["1"], res.Result.Net.Delivered, res.Result.Net.Lost)
	}
	comments, err := exec.Command("tshark", "-r", file, "-Y", "frame.comment contains \"dropped\"", "-T", "fields", "-e", "frame.interface_id").Output()
	if err != nil || strings.Count(string(comments), "1\n") != res.Result.Net.Lost {
		t.Fatalf("dropped packets lack their comment: %v %q", err, comments)
	}
}

// Without faults, tshark's TCP analysis finds nothing amiss in a
// simulated capture: every connection opens with SYN and SYN-ACK, and
// sequence and acknowledgment numbers follow the bytes.
func TestSimPcapTCPAnalysisClean(t *testing.T) {
	need(t, "tshark")
	file := filepath.Join(t.TempDir(), "clean.pcapng")
	if code, _, stderr := runCmd("sim", "echo", "--seed", "5", "--loss", "0", "--dup", "0", "--jitter", "0", "--pcap", file); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	tcpAnalysisClean(t, file)
}

// tcpAnalysisClean fails unless file's TCP connections open with a
// handshake and tshark's analysis flags none of its segments.
func tcpAnalysisClean(t *testing.T, file string) {
	t.Helper()
	syn := tsharkFrames(t, file, "tcp.flags.syn==1", "tcp.flags.ack==0")["0"]
	synAck := tsharkFrames(t, file, "tcp.flags.syn==1", "tcp.flags.ack==1")["0"]
	if syn == 0 || synAck != syn {
		t.Errorf("%d SYNs and %d SYN-ACKs, want as many of each, at least one", syn, synAck)
	}
	out, err := exec.Command("tshark", "-r", file, "-Y", "tcp.analysis.flags").Output()
	if err != nil || len(out) > 0 {
		t.Errorf("tshark's TCP analysis flags segments (%v):\n%s", err, out)
	}
}

// A socket run's trace converts too: every datagram its node received or
// sent becomes a frame.
func TestImplTracePcap(t *testing.T) {
	need(t, "tshark")
	src := "../../conformance/testdata/echo-impl-server.ndjson"
	file := filepath.Join(t.TempDir(), "impl.pcapng")
	if code, _, stderr := runCmd("trace", "pcap", src, file); code != 0 {
		t.Fatalf("trace pcap: %s", stderr)
	}
	t2, err := conformance.Load(src)
	if err != nil {
		t.Fatal(err)
	}
	// A frame per datagram, and per SocketMSS bytes of a stream chunk.
	want, chunks := 0, 0
	for _, r := range t2.Records {
		p, _ := r.Payload()
		switch {
		case r.In == "datagram" || r.Out == "send":
			want++
		case r.In == "data" || r.Out == "write":
			want += (len(p) + pcap.SocketMSS - 1) / pcap.SocketMSS
			chunks++
		}
	}
	if chunks == 0 {
		t.Fatal("the trace has no stream chunks: the test proves less than it says")
	}
	if got := tsharkFrames(t, file, "udp || tcp.len > 0"); got["0"] != want {
		t.Fatalf("tshark decoded %d frames, the trace's datagrams and stream chunks make %d", got["0"], want)
	}
	tcpAnalysisClean(t, file)
}

// For the stream protocol, tshark's RTP analysis of a simulated run's
// capture (what receivers got: interface 0) reports per stream exactly the
// loss the simulator says it inflicted: the data packets it dropped whose
// sequence numbers lie in the range the receiver saw.
func TestSimPcapRTPLossMatchesGroundTruth(t *testing.T) {
	need(t, "tshark")
	dir := t.TempDir()
	pcapFile, traceFile := filepath.Join(dir, "s.pcapng"), filepath.Join(dir, "s.ndjson")
	code, _, stderr := runCmd("sim", "stream", "--seed", "3", "--loss", "0.1", "--dup", "0", "--clients", "2",
		"--silent=false", "--spoof", "0", "--duration", "3s", "--pcap", pcapFile, "--trace", traceFile)
	if code != 0 {
		t.Fatalf("sim stream: exit %d: %s", code, stderr)
	}
	// Ground truth from the simulator's own records of every packet.
	raw, err := os.ReadFile(traceFile)
	if err != nil {
		t.Fatal(err)
	}
	type rec struct {
		Net, Addr, From, B64, Text string
		ID                         uint64
	}
	seqOf := map[uint64]int{} // data packet id -> RTP sequence number
	dst := map[uint64]string{}
	delivered := map[string][]int{}
	dropped := map[string][]int{}
	port := ""
	for _, line := range strings.Split(string(raw), "\n")[1:] {
		var r rec
		if json.Unmarshal([]byte(line), &r) != nil || r.Net == "" {
			continue
		}
		switch {
		case r.Net == "send":
			p, _ := base64.StdEncoding.DecodeString(r.B64)
			// RTP version 2, payload type 96: the stream's data packets.
			if len(p) >= 12 && p[0]>>6 == 2 && p[1]&0x7f == 96 {
				seqOf[r.ID] = int(p[2])<<8 | int(p[3])
				dst[r.ID] = r.Addr
				port = r.From[strings.LastIndex(r.From, ":")+1:]
			}
		case r.Net == "deliver":
			if s, ok := seqOf[r.ID]; ok {
				delivered[dst[r.ID]] = append(delivered[dst[r.ID]], s)
			}
		case r.Net != "dup" && r.Net != "crash" && r.Net != "partition" && r.Net != "heal":
			if s, ok := seqOf[r.ID]; ok {
				dropped[dst[r.ID]] = append(dropped[dst[r.ID]], s)
			}
		}
	}
	if len(delivered) != 2 || port == "" {
		t.Fatalf("ground truth has %d receivers (want 2), server port %q", len(delivered), port)
	}
	truth := map[string]int{}
	for to, seqs := range delivered {
		lo, hi := slices.Min(seqs), slices.Max(seqs)
		for _, s := range dropped[to] {
			if s >= lo && s <= hi {
				truth[to]++
			}
		}
	}
	out, err := exec.Command("tshark", "-r", pcapFile, "-2", "-R", "frame.interface_id == 0",
		"-d", "udp.port=="+port+",rtp", "-q", "-z", "rtp,streams").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	// Rows: start end src sport dst dport ssrc payload pkts lost (pct) ...
	got := map[string]int{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) < 10 || f[3] != port {
			continue
		}
		lost, err := strconv.Atoi(f[9])
		if err != nil {
			continue
		}
		got[f[4]+":"+f[5]] = lost
	}
	for to, want := range truth {
		if g, ok := got[to]; !ok || g != want {
			t.Errorf("stream to %s: tshark says %d lost, the simulator dropped %d in range (tshark:\n%s)", to, got[to], want, out)
		}
	}
	total := 0
	for _, n := range truth {
		total += n
	}
	if total == 0 {
		t.Fatal("10% loss dropped nothing: the test proves nothing")
	}
}

// writeTrace writes a trace file from its lines.
func writeTrace(t *testing.T, lines ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "t.ndjson")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

const twoNodeHeader = `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"a","role":"server","addr":"10.0.0.1","config":{}},{"name":"b","role":"client","addr":"10.0.0.2","config":{}}]}`

// trace show draws what a trace says where it belongs, whatever the trace
// and filters: no panic, no step on the wrong node, no packet losing its
// bytes or its sender to a filter.
func TestTraceShowDraws(t *testing.T) {
	faults := writeTrace(t, twoNodeHeader,
		`{"t":1,"node":"a","in":"start"}`,
		`{"t":2,"node":"b","net":"crash","err":"node crashed"}`,
		`{"t":3,"net":"partition","err":"partition 0 cuts [b] off"}`,
		`{"t":4,"net":"teleport","from":"10.0.0.1:1","addr":"10.0.0.2:2","id":3}`,
	)
	empty := writeTrace(t, `{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[]}`, `{"t":1,"net":"partition","err":"p"}`)
	tests := []struct {
		name    string
		args    []string
		want    []string // substrings of the output
		notWant []string
	}{
		{"a partition with no nodes", []string{empty}, []string{"═ ✖ p"}, nil},
		{"another node's crash", []string{faults, "--node", "a"}, []string{"◀ start", "✖ partition 0"}, []string{"node crashed"}},
		{"a crash on its node", []string{faults, "--node", "b", "--only", "net"}, []string{"● ✖ node crashed"}, nil},
		{"an unknown kind", []string{faults, "--only", "net"}, []string{"#3 ?teleport"}, []string{"LOST"}},
		{"sent before --from", []string{"../../conformance/testdata/tftp-sim.ndjson", "--only", "net", "--from", "21ms", "--match", "copy of"},
			[]string{"DATA 3 (512 bytes) (copy of #10)"}, []string{"0 B"}},
		{"a forged sender", []string{"../../conformance/testdata/chat-sim.ndjson", "--only", "net", "--match", "#23 "},
			[]string{"◀─────────────┤ #23 udp", "(from 10.9.9.9:5555, forged)"}, []string{"◉"}},
		{"a node left out", []string{"../../conformance/testdata/stream-sim.ndjson", "--only", "net", "--node", "client1", "--limit", "2"},
			[]string{"(to 10.0.0.1:5004)", "(from 10.0.0.1:5004)"}, []string{"◉"}},
		{"a list with spaces", []string{faults, "--node", "a, b"}, []string{"a             b"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runCmd(append([]string{"trace", "show"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("no %q in\n%s", w, out)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("%q in\n%s", w, out)
				}
			}
		})
	}
}

// Bad filter values are usage errors, not silently empty diagrams.
func TestTraceShowBadFilters(t *testing.T) {
	file := "../../conformance/testdata/echo-sim.ndjson"
	tests := [][]string{
		{"--limit", "-1"},
		{"--from", "-1s"},
		{"--to", "-1s"},
		{"--from", "3s", "--to", "1s"},
		{"--node", ",,"},
		{"--node", "server,"},
		{"--node", "nosuch"},
	}
	for _, args := range tests {
		code, _, stderr := runCmd(append([]string{"trace", "show", file}, args...)...)
		if code != 2 || !strings.Contains(stderr, "trace show") {
			t.Errorf("%v: exit %d, want 2 with a message: %s", args, code, stderr)
		}
	}
}

// A trace with more busy nodes than fit is refused unless --node picks
// some; the header's idle nodes cost nothing.
func TestTraceShowManyNodes(t *testing.T) {
	var nodes, recs []string
	for i := range 5000 {
		nodes = append(nodes, fmt.Sprintf(`{"name":"n%d","role":"server","config":{}}`, i))
		if i < 100 {
			recs = append(recs, fmt.Sprintf(`{"t":%d,"node":"n%d","in":"start"}`, i, i))
		}
	}
	file := writeTrace(t, append([]string{`{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[` + strings.Join(nodes, ",") + `]}`}, recs...)...)
	code, out, stderr := runCmd("trace", "show", file)
	if code != 2 || !strings.Contains(stderr, "--node") || out != "" {
		t.Fatalf("100 busy nodes: exit %d, %d bytes out, %s", code, len(out), stderr)
	}
	code, out, stderr = runCmd("trace", "show", file, "--node", "n3,n4999,n42")
	if code != 0 || len(strings.Split(strings.TrimSpace(out), "\n")) != 3 {
		t.Fatalf("exit %d: %s%s", code, out, stderr)
	}
}

// Whatever a trace holds, the terminal gets no control bytes and the SVG
// is XML.
func TestTraceShowHostile(t *testing.T) {
	file := writeTrace(t,
		`{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"a<b&\"c\u0001","role":"server","addr":"10.0.0.1","config":{}},{"name":"x","role":"client","addr":"10.0.0.2","config":{}}]}`,
		`{"t":1,"node":"a<b&\"c\u0001","out":"event","name":"n\u001b[31mRED","msg":"</text><script>\u0007","value":"\u0000"}`,
		"{\"t\":2,\"node\":\"x\",\"out\":\"event\",\"name\":\"e\",\"value\":\"\xff\xfe<\"}",
		`{"t":3,"node":"x","in":"bound","sock":1,"addr":"0.0.0.0:1","err":"x\u001b[2J\u009b31m"}`,
	)
	svg := filepath.Join(t.TempDir(), "d.svg")
	code, out, stderr := runCmd("trace", "show", file, "--svg", svg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, c := range out {
		if c < 0x20 && c != '\n' || c >= 0x7f && c <= 0x9f || c == 0xfffd {
			t.Fatalf("%U reaches the terminal:\n%s", c, out)
		}
	}
	b, err := os.ReadFile(svg)
	if err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(strings.NewReader(string(b)))
	for {
		_, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("SVG is not XML: %v", err)
			}
			break
		}
	}
	// A path that cannot be written fails before anything is printed.
	code, out, _ = runCmd("trace", "show", file, "--svg", filepath.Join(t.TempDir(), "no", "such", "dir.svg"))
	if code != 1 || out != "" {
		t.Errorf("unwritable --svg: exit %d, printed %d bytes first", code, len(out))
	}
}

// --trace on socket verbs records a node's run, which replays on spec and
// impl and converts to pcap: a server and its clients over UDP and TCP.
func TestTraceFlagRecordsSocketRuns(t *testing.T) {
	dir := t.TempDir()
	srv, udpCli, tcpCli := filepath.Join(dir, "server.ndjson"), filepath.Join(dir, "udp.ndjson"), filepath.Join(dir, "tcp.ndjson")
	t.Run("run", func(t *testing.T) {
		addrs := serve(t, "echo", "serve", "--udp", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--trace", srv)
		if code, out, stderr := runCmd("echo", "send", "--trace", udpCli, addrs["udp"], "over udp"); code != 0 || out != "over udp\n" {
			t.Fatalf("echo send: exit %d %q %s", code, out, stderr)
		}
		if code, out, stderr := runCmd("echo", "send", "--tcp", "--trace", tcpCli, addrs["tcp"], "over tcp"); code != 0 || out != "over tcp\n" {
			t.Fatalf("echo send --tcp: exit %d %q %s", code, out, stderr)
		}
	}) // the server stops here, flushing its trace
	for _, f := range []string{srv, udpCli, tcpCli} {
		tr, err := conformance.Load(f)
		if err != nil {
			t.Fatal(err)
		}
		if tr.Header.Source != "impl" || len(tr.Records) < 5 {
			t.Errorf("%s: source %q, %d records", f, tr.Header.Source, len(tr.Records))
		}
		if code, out, stderr := runCmd("replay", f); code != 0 {
			t.Errorf("replay %s: exit %d\n%s%s", f, code, out, stderr)
		}
		if code, _, stderr := runCmd("trace", "pcap", f, f+".pcapng"); code != 0 {
			t.Errorf("trace pcap %s: exit %d %s", f, code, stderr)
		}
	}
	if code, _, stderr := runCmd("echo", "serve", "--udp", "127.0.0.1:0", "--trace", filepath.Join(dir, "no", "such", "dir")); code != 2 {
		t.Errorf("--trace into a missing directory: exit %d (%s), want 2", code, stderr)
	}
}

// A trace cut short (its process killed mid-write) is shown as far as it
// goes, and the cut is reported with an error exit.
func TestTraceShowCutShort(t *testing.T) {
	b, err := os.ReadFile("../../conformance/testdata/echo-sim.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(t.TempDir(), "cut.ndjson")
	if err := os.WriteFile(cut, b[:len(b)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("trace", "show", cut)
	if code != 1 || !strings.Contains(errs, "records before it are shown") || strings.Count(out, "\n") < 5 {
		t.Fatalf("exit %d, %d lines shown, stderr %q; want the records before the cut and an error", code, strings.Count(out, "\n"), errs)
	}
}
