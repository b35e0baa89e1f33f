package timeline

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/netspec/netspec/spec/trace"
)

var twoNodes = trace.Header{Protocol: "echo", Nodes: []trace.NodeInfo{
	{Name: "a", Addr: "10.0.0.1"},
	{Name: "b", Addr: "10.0.0.2"},
}}

// render draws d both ways, failing the test if either fails or the SVG
// is not well-formed XML.
func render(t *testing.T, d Diagram) string {
	t.Helper()
	var txt, svg bytes.Buffer
	if err := d.Text(&txt); err != nil {
		t.Fatal(err)
	}
	if err := d.SVG(&svg); err != nil {
		t.Fatal(err)
	}
	dec := xml.NewDecoder(&svg)
	for {
		_, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not XML: %v", err)
		}
	}
	return txt.String()
}

func texts(d Diagram) []string {
	var out []string
	for _, s := range d.Steps {
		out = append(out, s.Text)
	}
	return out
}

// Crashes, partitions and heals draw where they belong, or not at all:
// never on another node's lane, and with no lanes nothing panics.
func TestFaultSteps(t *testing.T) {
	crashB := trace.Record{T: 1, Node: "b", Net: "crash", Err: "node crashed"}
	part := trace.Record{T: 2, Net: "partition", Err: "partition 0 cuts [b] off"}
	heal := trace.Record{T: 3, Net: "heal", Err: "partition 0 heals"}
	tests := []struct {
		name  string
		h     trace.Header
		nodes []string
		want  []Step
	}{
		{"no nodes at all", trace.Header{Protocol: "echo"}, nil, []Step{
			{T: 2, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✖ partition 0 cuts [b] off", Fault: true},
			{T: 3, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✔ partition 0 heals"},
		}},
		{"the crashed node filtered out", twoNodes, []string{"a"}, []Step{
			{T: 2, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✖ partition 0 cuts [b] off", Fault: true},
			{T: 3, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✔ partition 0 heals"},
		}},
		{"no node drawn", twoNodes, []string{"zzz"}, []Step{
			{T: 2, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✖ partition 0 cuts [b] off", Fault: true},
			{T: 3, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✔ partition 0 heals"},
		}},
		{"on its own lane", twoNodes, []string{"b"}, []Step{
			{T: 1, Kind: NodeStep, Lane: 0, From: -1, To: -1, Text: "✖ node crashed", Fault: true},
			{T: 2, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✖ partition 0 cuts [b] off", Fault: true},
			{T: 3, Kind: WideStep, Lane: -1, From: -1, To: -1, Text: "✔ partition 0 heals"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := Build(tc.h, []trace.Record{crashB, part, heal}, Filter{Nodes: tc.nodes, Net: true, IO: true}, nil)
			if fmt.Sprint(d.Steps) != fmt.Sprint(tc.want) {
				t.Errorf("steps %+v\nwant  %+v", d.Steps, tc.want)
			}
			out := render(t, d)
			if !strings.Contains(out, "═ ✖ partition 0 cuts [b] off") {
				t.Errorf("no partition row across the diagram:\n%s", out)
			}
		})
	}
}

// Every loss kind is a lost arrow; a kind this tool does not know is
// shown as such, not as a loss.
func TestNetKinds(t *testing.T) {
	tests := []struct {
		kind  string
		fault bool
		text  string
	}{
		{"loss", true, "#1 LOST: why"},
		{"queue-drop", true, "#1 LOST: why"},
		{"cut", true, "#1 LOST: why"},
		{"no-route", true, "#1 LOST: why"},
		{"host-down", true, "#1 LOST: why"},
		{"no-port", true, "#1 LOST: why"},
		{"teleport", false, "#1 ?teleport why"},
	}
	for _, tc := range tests {
		r := trace.Record{T: 1, Net: tc.kind, ID: 1, From: "10.0.0.1:5", Addr: "10.0.0.2:7", Err: "why"}
		d := Build(twoNodes, []trace.Record{r}, Filter{Net: true}, nil)
		if len(d.Steps) != 1 || d.Steps[0].Fault != tc.fault || d.Steps[0].Text != tc.text {
			t.Errorf("%s: %+v, want fault %v %q", tc.kind, d.Steps, tc.fault, tc.text)
		}
	}
}

// A packet sent before the window and delivered inside it decodes with its
// bytes, as a copy if it is one, and --match finds it.
func TestWindowKeepsPackets(t *testing.T) {
	send := trace.Record{T: 1, Net: "send", ID: 1, Proto: "udp", From: "10.0.0.1:5", Addr: "10.0.0.2:7", Text: "hello"}
	recs := []trace.Record{
		send,
		{T: 2, Net: "dup", ID: 2, Name: "copy of 1"},
		{T: 10, Net: "deliver", ID: 1, Proto: "udp", From: "10.0.0.1:5", Addr: "10.0.0.2:7"},
		{T: 11, Net: "deliver", ID: 2, Proto: "udp", From: "10.0.0.1:5", Addr: "10.0.0.2:7"},
		{T: 12, Net: "deliver", ID: 3, Proto: "udp", From: "10.0.0.1:5", Addr: "10.0.0.2:7"},
	}
	d := Build(twoNodes, recs, Filter{Net: true, From: 5, HasFrom: true, Match: regexp.MustCompile("hello")}, nil)
	want := []string{`#1 udp 5 B "hello"`, `#2 udp 5 B "hello" (copy of #1)`}
	if fmt.Sprint(texts(d)) != fmt.Sprint(want) {
		t.Errorf("got %q, want %q", texts(d), want)
	}
	// Records before the epoch show unless a window excludes them.
	early := []trace.Record{{T: -5, Node: "a", In: "start"}}
	if d := Build(twoNodes, early, Filter{IO: true}, nil); len(d.Steps) != 1 {
		t.Errorf("a record at t<0 is hidden without --from")
	}
	if d := Build(twoNodes, early, Filter{IO: true, HasFrom: true}, nil); len(d.Steps) != 0 {
		t.Errorf("a record at t<0 is drawn with --from 0")
	}
}

// A packet with an end off the diagram (a forged source, a node left out)
// is a half arrow from or to the edge, labelled with that end's address
// and the send's note.
func TestOffDiagramPackets(t *testing.T) {
	recs := []trace.Record{
		{T: 1, Net: "send", ID: 1, Proto: "udp", From: "10.9.9.9:5555", Addr: "10.0.0.1:7", Text: "x", Err: "forged"},
		{T: 2, Net: "deliver", ID: 1, Proto: "udp", From: "10.9.9.9:5555", Addr: "10.0.0.1:7"},
		{T: 3, Net: "send", ID: 2, Proto: "udp", From: "10.0.0.1:7", Addr: "10.0.0.2:5", Text: "y"},
		{T: 4, Net: "loss", ID: 2, Proto: "udp", From: "10.0.0.1:7", Addr: "10.0.0.2:5", Err: "uplink loss"},
	}
	d := Build(twoNodes, recs, Filter{Net: true, Nodes: []string{"a"}}, nil)
	want := []Step{
		{T: 2, Kind: ArrowStep, Lane: -1, From: -1, To: 0, Text: `#1 udp 1 B "x" (from 10.9.9.9:5555, forged)`},
		{T: 4, Kind: ArrowStep, Lane: -1, From: 0, To: -1, Text: "#2 LOST: uplink loss (to 10.0.0.2:5)", Fault: true},
	}
	if fmt.Sprint(d.Steps) != fmt.Sprint(want) {
		t.Fatalf("steps %+v\nwant  %+v", d.Steps, want)
	}
	out := render(t, d)
	for _, row := range []string{"◀─────────────┤ #1", "├╌╌╌╌╌╌╌╌╌╌╌╌╌✕ #2"} {
		if !strings.Contains(out, row) {
			t.Errorf("no %q in\n%s", row, out)
		}
	}
	if strings.Contains(out, "◉") {
		t.Errorf("a packet with one end off the diagram drawn as a local event:\n%s", out)
	}
}

// Whatever a trace's strings hold, the terminal gets no control bytes
// and the SVG stays XML.
func TestHostileStrings(t *testing.T) {
	evil := "a<b&\"c\x01\x1b[31m\x1b]0;title\x07\x7f\u0085\u202e\xff\xfe\ufffe"
	h := trace.Header{Protocol: "echo", Nodes: []trace.NodeInfo{{Name: evil, Addr: "10.0.0.1"}, {Name: "x", Addr: "10.0.0.2"}}}
	recs := []trace.Record{
		{T: 1, Node: evil, Out: "event", Name: evil, Msg: evil, Value: []byte(`"` + evil + `"`)},
		{T: 2, Node: "x", Out: "log", Level: evil, Msg: evil, Attrs: []string{evil}},
		{T: 3, Node: "x", In: "bound", Addr: evil, Err: evil},
		{T: 4, Node: "x", In: "command", Name: evil, Args: []string{evil}},
		{T: 5, Net: "send", ID: 1, Proto: evil, From: "10.0.0.1:1", Addr: "10.0.0.2:2", Err: evil},
		{T: 6, Net: "deliver", ID: 1, Proto: evil, From: "10.0.0.1:1", Addr: "10.0.0.2:2"},
		{T: 7, Net: "partition", Err: evil},
		{T: 8, Net: evil, ID: 9, From: "10.0.0.1:1", Addr: "10.0.0.2:2", Err: evil},
		{T: 9, Node: evil, Net: "crash", Err: evil},
	}
	describe := func(string, []byte) string { return evil }
	d := Build(h, recs, Filter{Net: true, IO: true, Logs: true}, describe)
	if len(d.Steps) != len(recs)-1 {
		t.Fatalf("%d steps, want %d", len(d.Steps), len(recs)-1)
	}
	out := render(t, d)
	if !utf8.ValidString(out) {
		t.Errorf("invalid UTF-8 reaches the terminal")
	}
	for _, c := range out {
		if c < 0x20 && c != '\n' || c >= 0x7f && c <= 0x9f || c == 0x202e || c == 0xfffe {
			t.Fatalf("%U reaches the terminal:\n%s", c, out)
		}
	}
	if !strings.Contains(out, `\x1b[31m`) || !strings.Contains(out, `\xff`) {
		t.Errorf("hostile bytes not shown as escapes:\n%s", out)
	}
}

// Only nodes with something drawn get a lane, however many the header
// lists.
func TestOnlyBusyLanes(t *testing.T) {
	h := trace.Header{Protocol: "echo"}
	for i := range 50000 {
		h.Nodes = append(h.Nodes, trace.NodeInfo{Name: fmt.Sprintf("n%d", i)})
	}
	recs := []trace.Record{{T: 1, Node: "n49999", In: "start"}, {T: 2, Node: "n7", In: "start"}}
	d := Build(h, recs, Filter{IO: true}, nil)
	if fmt.Sprint(d.Lanes) != "[n7 n49999]" || d.Steps[0].Lane != 1 || d.Steps[1].Lane != 0 {
		t.Fatalf("lanes %v, steps %+v", d.Lanes, d.Steps)
	}
}

// A simulated host with a second address (sim.NodeSettings.Aliases, in
// the header's per-node settings) draws its traffic at either address on
// its own lane.
func TestAliasedHostLane(t *testing.T) {
	h := trace.Header{Protocol: "echo", Nodes: []trace.NodeInfo{
		{Name: "a", Addr: "10.0.0.200", Sim: []byte(`{"aliases":["10.0.0.1"]}`)},
		{Name: "b", Addr: "10.0.0.2"},
	}}
	recs := []trace.Record{
		{T: 1, Net: "send", ID: 1, Proto: "udp", From: "10.0.0.2:5", Addr: "10.0.0.1:7", Text: "x"},
		{T: 2, Net: "deliver", ID: 1, Proto: "udp", From: "10.0.0.2:5", Addr: "10.0.0.1:7"},
	}
	d := Build(h, recs, Filter{Net: true}, nil)
	if len(d.Steps) != 1 || d.Steps[0].From != 1 || d.Steps[0].To != 0 {
		t.Fatalf("steps %+v, want one arrow from lane 1 (b) to lane 0 (a)", d.Steps)
	}
}
