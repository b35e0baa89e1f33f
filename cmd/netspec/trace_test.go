package main

import (
	"encoding/json"
	"encoding/xml"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
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
	raw, _ := os.ReadFile(src)
	want := strings.Count(string(raw), `"in":"datagram"`) + strings.Count(string(raw), `"out":"send"`) +
		strings.Count(string(raw), `"in":"data"`) + strings.Count(string(raw), `"out":"write"`)
	if got := tsharkFrames(t, file); got["0"] != want {
		t.Fatalf("tshark decoded %d frames, the trace has %d datagrams and stream chunks", got["0"], want)
	}
}
