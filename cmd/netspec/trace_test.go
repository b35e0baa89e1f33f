package main

import (
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
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
// decodes as IP packets.
func tsharkFrames(t *testing.T, file string) map[string]int {
	t.Helper()
	out, err := exec.Command("tshark", "-r", file, "-T", "fields", "-e", "frame.interface_id", "-e", "ip.proto").Output()
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
	if got := tsharkFrames(t, file); got["0"] != want {
		t.Fatalf("tshark decoded %d frames, the trace's datagrams and stream chunks make %d", got["0"], want)
	}
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
