// Package timeline draws a trace as a sequence diagram: one lifeline per
// node, a line per input or output, and an arrow per packet the network
// carried, in the terminal or as SVG.
//
// Everything a trace says (node names, payloads, errors, addresses) is
// untrusted: Clean escapes what a terminal or an XML parser must not see.
package timeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// MaxLanes is the most lifelines a diagram draws: past it a terminal line
// is thousands of columns wide and every step costs a row of that width.
const MaxLanes = 64

// Filter selects what to draw.
type Filter struct {
	Nodes []string       // only these nodes (empty: all)
	Match *regexp.Regexp // only lines whose text matches
	Net   bool           // draw the network's packet arrows
	IO    bool           // draw the nodes' inputs and outputs
	Logs  bool           // include log records
	// From and To bound the records drawn, in ns since the trace's epoch,
	// if HasFrom and HasTo say so.
	From, To       int64
	HasFrom, HasTo bool
	Limit          int // at most this many lines (0: all)
}

func (f Filter) inWindow(t int64) bool {
	return (!f.HasFrom || t >= f.From) && (!f.HasTo || t <= f.To)
}

// Describe decodes a payload for a protocol (spec.Protocol.Describe).
type Describe func(protocol string, payload []byte) string

// Kind is what a step draws.
type Kind uint8

// Kinds of steps.
const (
	NodeStep  Kind = iota // a node's input or output, or its crash: on Lane
	ArrowStep             // a packet from lane From to lane To (-1: off the diagram)
	WideStep              // the whole network (a partition): across every lane
)

// Step is one drawn line.
type Step struct {
	T     int64
	Kind  Kind
	Lane  int    // NodeStep: the node's lane
	From  int    // ArrowStep: start lane (-1: a sender not drawn)
	To    int    // ArrowStep: end lane (-1: a receiver not drawn)
	Text  string // what happened, already Cleaned
	Fault bool   // a drop or a failure: drawn in red, or as a lost arrow
}

// Diagram is a trace laid out as lanes and steps.
type Diagram struct {
	Lanes []string // already Cleaned
	Steps []Step
}

// lossKinds are the network's record kinds (sim.NetKind) that drop a
// packet; a kind neither listed here nor handled by name is unknown.
var lossKinds = map[string]bool{"loss": true, "queue-drop": true, "cut": true, "no-route": true, "host-down": true, "no-port": true}

// Build lays out a trace. Only lanes with something drawn on them are kept.
func Build(h trace.Header, recs []trace.Record, f Filter, describe Describe) Diagram {
	var names []string
	lane := map[string]int{}
	byAddr := map[netip.Addr]int{}
	proto := map[string]string{}
	only := map[string]bool{}
	for _, n := range f.Nodes {
		only[n] = true
	}
	wanted := func(n string) bool { return len(f.Nodes) == 0 || only[n] }
	for _, n := range h.Nodes {
		if !wanted(n.Name) || hasLane(lane, n.Name) {
			continue
		}
		lane[n.Name] = len(names)
		names = append(names, n.Name)
		if a, err := netip.ParseAddr(n.Addr); err == nil {
			byAddr[a] = lane[n.Name]
		}
		// A simulated host's further addresses (sim.NodeSettings.Aliases)
		// are its lane too.
		var ns struct {
			Aliases []netip.Addr `json:"aliases"`
		}
		if len(n.Sim) > 0 && json.Unmarshal(n.Sim, &ns) == nil {
			for _, a := range ns.Aliases {
				byAddr[a] = lane[n.Name]
			}
		}
		proto[n.Name] = n.Protocol
		if proto[n.Name] == "" {
			proto[n.Name] = h.Protocol
		}
	}
	// Traces without a header entry per node (socket runs) still draw.
	for _, r := range recs {
		if r.Node != "" && r.Net == "" && !hasLane(lane, r.Node) && wanted(r.Node) {
			lane[r.Node] = len(names)
			names = append(names, r.Node)
			proto[r.Node] = h.Protocol
		}
	}

	// What the network's send and dup records say about a packet is
	// needed when it arrives or is lost, whatever the time window.
	type packet struct {
		payload []byte
		err     string // the send's note ("forged")
		copyOf  uint64 // a duplicate's original
	}
	sent := map[uint64]packet{}
	var steps []Step
	for _, r := range recs {
		st := Step{T: r.T, Lane: -1, From: -1, To: -1}
		switch r.Net {
		case "":
			l, ok := lane[r.Node]
			if !ok || !f.IO || (r.Out == "log" && !f.Logs) || !f.inWindow(r.T) {
				continue
			}
			st.Kind, st.Lane = NodeStep, l
			st.Text = describeRecord(r, describe, proto[r.Node])
		case "send":
			p, _ := r.Payload() // the reader has checked it
			sent[r.ID] = packet{payload: p, err: r.Err}
			continue
		case "dup":
			// The copy carries the original's bytes under its own id.
			var orig uint64
			if _, err := fmt.Sscanf(r.Name, "copy of %d", &orig); err == nil {
				p := sent[orig]
				p.copyOf = orig
				sent[r.ID] = p
			}
			continue
		case "deliver":
			p := sent[r.ID]
			delete(sent, r.ID)
			if !f.Net || !f.inWindow(r.T) {
				continue
			}
			st.Kind, st.From, st.To = ArrowStep, laneOf(byAddr, r.From), laneOf(byAddr, r.Addr)
			st.Text = fmt.Sprintf("#%d %s", r.ID, decode(describe, h.Protocol, r.Proto, p.payload, r.Msg))
			if p.copyOf != 0 {
				st.Text += fmt.Sprintf(" (copy of #%d)", p.copyOf)
			}
			if r.Delay > 1e6 {
				st.Text += fmt.Sprintf(" (+%.1fms)", float64(r.Delay)/1e6)
			}
			st.Text += offDiagram(st, r, p.err)
		case "crash":
			// A crash belongs to its node: not drawn if the node is not.
			l, ok := lane[r.Node]
			if !ok || !f.Net || !f.inWindow(r.T) {
				continue
			}
			st.Kind, st.Lane, st.Fault = NodeStep, l, true
			st.Text = "✖ " + r.Err
		case "partition", "heal":
			if !f.Net || !f.inWindow(r.T) {
				continue
			}
			st.Kind, st.Fault = WideStep, r.Net == "partition"
			st.Text = "✖ " + r.Err
			if r.Net == "heal" {
				st.Text = "✔ " + r.Err
			}
		default:
			p := sent[r.ID]
			delete(sent, r.ID)
			if !f.Net || !f.inWindow(r.T) {
				continue
			}
			st.Kind, st.From, st.To = ArrowStep, laneOf(byAddr, r.From), laneOf(byAddr, r.Addr)
			if lossKinds[r.Net] {
				st.Fault = true
				st.Text = fmt.Sprintf("#%d LOST: %s", r.ID, r.Err)
			} else {
				// A kind this tool does not know: say so, do not guess.
				st.Text = strings.TrimSpace(fmt.Sprintf("#%d ?%s %s", r.ID, r.Net, r.Err))
			}
			st.Text += offDiagram(st, r, p.err)
			if st.From < 0 && st.To < 0 {
				// Not a packet between drawn nodes: the node's, if drawn,
				// or the network's if it names no node or address at all.
				if l, ok := lane[r.Node]; ok {
					st.Kind, st.Lane = NodeStep, l
				} else if r.Node == "" && r.From == "" && r.Addr == "" {
					st.Kind = WideStep
				}
			}
		}
		if st.Kind == ArrowStep && st.From < 0 && st.To < 0 {
			continue // neither end is drawn
		}
		st.Text = Clean(st.Text)
		if f.Match != nil && !f.Match.MatchString(st.Text) {
			continue
		}
		steps = append(steps, st)
		if f.Limit > 0 && len(steps) >= f.Limit {
			break
		}
	}
	return compact(names, steps)
}

// offDiagram labels a packet arrow with the address of an end that is not
// drawn (a forged source, a host no node has, a node left out) and the
// send's note.
func offDiagram(st Step, r trace.Record, sendErr string) string {
	var notes []string
	switch {
	case st.From < 0 && st.To >= 0:
		notes = append(notes, "from "+r.From)
	case st.To < 0 && st.From >= 0:
		notes = append(notes, "to "+r.Addr)
	}
	if sendErr != "" {
		notes = append(notes, sendErr)
	}
	if len(notes) == 0 {
		return ""
	}
	return " (" + strings.Join(notes, ", ") + ")"
}

// compact keeps only the lanes that steps use, in their order.
func compact(names []string, steps []Step) Diagram {
	used := make([]bool, len(names))
	for _, s := range steps {
		switch s.Kind {
		case NodeStep:
			used[s.Lane] = true
		case ArrowStep:
			if s.From >= 0 {
				used[s.From] = true
			}
			if s.To >= 0 {
				used[s.To] = true
			}
		}
	}
	d := Diagram{Steps: steps}
	renum := make([]int, len(names))
	for i, n := range names {
		renum[i] = -1
		if used[i] {
			renum[i] = len(d.Lanes)
			d.Lanes = append(d.Lanes, Clean(n))
		}
	}
	at := func(l int) int {
		if l < 0 {
			return -1
		}
		return renum[l]
	}
	for i := range d.Steps {
		s := &d.Steps[i]
		s.Lane, s.From, s.To = at(s.Lane), at(s.From), at(s.To)
	}
	return d
}

func hasLane(lane map[string]int, n string) bool { _, ok := lane[n]; return ok }

func laneOf(byAddr map[netip.Addr]int, s string) int {
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		return -1
	}
	if l, ok := byAddr[a.Addr()]; ok {
		return l
	}
	return -1
}

func decode(describe Describe, protocol, transport string, payload []byte, flags string) string {
	switch flags {
	case "S":
		return "tcp SYN"
	case "SA":
		return "tcp SYN-ACK"
	case "R":
		return "tcp RST"
	case "F":
		return "tcp FIN"
	}
	s := transport
	if describe != nil {
		if d := describe(protocol, payload); d != "" {
			return s + " " + d
		}
	}
	return s + " " + preview(payload)
}

func preview(b []byte) string {
	s, cut := spec.Clip(string(b[:min(len(b), 33)]), 32) // no copy of a big payload
	q := strconv.Quote(s)
	if cut {
		q += "…"
	}
	return fmt.Sprintf("%d B %s", len(b), q)
}

// describeRecord is the text of a node's input or output.
func describeRecord(r trace.Record, describe Describe, protocol string) string {
	p, _ := r.Payload()
	body := func() string {
		if describe != nil && len(p) > 0 {
			if d := describe(protocol, p); d != "" {
				return d
			}
		}
		return preview(p)
	}
	switch {
	case r.In == "datagram":
		return fmt.Sprintf("◀ datagram from %s: %s", r.Addr, body())
	case r.Out == "send":
		return fmt.Sprintf("▶ send to %s: %s", r.Addr, body())
	case r.In == "data":
		return fmt.Sprintf("◀ stream %s data: %s", sid(r.Stream), body())
	case r.Out == "write":
		return fmt.Sprintf("▶ stream %s write: %s", sid(r.Stream), body())
	case r.In == "timer":
		return fmt.Sprintf("⏰ timer %d", r.Timer)
	case r.Out == "set-timer":
		return fmt.Sprintf("  set timer %d for +%.3fms", r.Timer, float64(r.At-r.T)/1e6)
	case r.In == "command":
		return fmt.Sprintf("⌨ %s %s %s", r.Name, strings.Join(r.Args, " "), preview(p))
	case r.Out == "event":
		return fmt.Sprintf("★ %s %s %s", r.Name, r.Msg, string(r.Value))
	case r.Out == "log":
		return fmt.Sprintf("  log %s %s %s", r.Level, r.Msg, strings.Join(r.Attrs, " "))
	case r.Out == "exit":
		if r.Err != "" {
			return "■ exit: " + r.Err
		}
		return "■ exit"
	case r.In == "closed":
		if r.Err != "" {
			return fmt.Sprintf("◀ stream %s reset: %s", sid(r.Stream), r.Err)
		}
		return fmt.Sprintf("◀ stream %s EOF", sid(r.Stream))
	case r.In != "":
		return strings.TrimSpace(fmt.Sprintf("◀ %s %s %s %s %s", r.In, sock(r.Sock), sid(r.Stream), r.Addr, r.Err))
	default:
		return strings.TrimSpace(fmt.Sprintf("▶ %s %s %s %s %s", r.Out, sock(r.Sock), sid(r.Stream), r.Addr, r.Err))
	}
}

func sid(s uint64) string {
	if s == 0 {
		return ""
	}
	if spec.Stream(s)&spec.AcceptedStream != 0 {
		return fmt.Sprintf("a%d", uint64(spec.Stream(s)&^spec.AcceptedStream))
	}
	return strconv.FormatUint(s, 10)
}

func sock(s uint32) string {
	if s == 0 {
		return ""
	}
	return fmt.Sprintf("sock %d", s)
}

// Clean makes a trace's string safe to print and to put in XML: invalid
// UTF-8 and the bytes terminals act on (C0 and C1 controls, DEL) become
// \xNN or \u00NN escapes, as do bidirectional overrides, which reorder
// what follows, and the code points XML forbids.
func Clean(s string) string {
	ok := true
	for _, c := range s {
		if unsafeRune(c) {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case c < 0x80 && unsafeRune(c):
			fmt.Fprintf(&b, `\x%02x`, c)
		case unsafeRune(c):
			fmt.Fprintf(&b, `\u%04x`, c)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(c rune) bool {
	switch {
	case c == utf8.RuneError: // also what invalid UTF-8 decodes to
		return true
	case c < 0x20, c >= 0x7f && c <= 0x9f:
		return true
	case c >= 0x202a && c <= 0x202e, c >= 0x2066 && c <= 0x2069:
		return true
	case c == 0xfffe, c == 0xffff:
		return true
	}
	return false
}

// LaneWidth is the width of a lane in the terminal.
const LaneWidth = 14

// Text writes the diagram for a terminal, a row at a time.
func (d Diagram) Text(w io.Writer) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "%11s ", "t (ms)")
	for _, l := range d.Lanes {
		bw.WriteString(pad(clipRunes(Clean(l), LaneWidth-1), LaneWidth))
	}
	bw.WriteString("\n")
	for _, s := range d.Steps {
		fmt.Fprintf(bw, "%11.3f ", float64(s.T)/1e6)
		bw.WriteString(d.row(s))
		if err := bw.WriteByte('\n'); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (d Diagram) row(s Step) string {
	n := len(d.Lanes)
	cells := make([]string, n)
	for i := range cells {
		cells[i] = pad("│", LaneWidth)
	}
	text := Clean(s.Text)
	line, head := "─", "▶"
	if s.Fault {
		line, head = "╌", "✕"
	}
	switch s.Kind {
	case WideStep:
		// Drawn across every lane: the whole network changed.
		return strings.Repeat("═", max(n*LaneWidth, 2)) + " " + text
	case ArrowStep:
		a, b := s.From, s.To
		switch {
		case a >= 0 && b < 0:
			// To the right edge, where the label names the receiver.
			cells[a] = "├" + strings.Repeat(line, LaneWidth-1)
			for i := a + 1; i < n; i++ {
				cells[i] = strings.Repeat(line, LaneWidth)
			}
			return strings.Join(cells, "") + head + " " + text
		case a < 0 && b >= 0:
			// From the right edge, where the label names the sender.
			cells[b] = head2(s.Fault) + strings.Repeat(line, LaneWidth-1)
			for i := b + 1; i < n; i++ {
				cells[i] = strings.Repeat(line, LaneWidth)
			}
			return strings.Join(cells, "") + "┤ " + text
		}
		lo, hi := min(a, b), max(a, b)
		for i := lo; i <= hi; i++ {
			switch {
			case i == a && a == b:
				cells[i] = pad("◉", LaneWidth)
			case i == a && a < b:
				cells[i] = "├" + strings.Repeat(line, LaneWidth-1)
			case i == a:
				cells[i] = "┤" + strings.Repeat(" ", LaneWidth-1)
			case i == b && a < b:
				cells[i] = pad(head, LaneWidth)
			case i == b:
				cells[i] = head2(s.Fault) + strings.Repeat(line, LaneWidth-1)
			default:
				cells[i] = strings.Repeat(line, LaneWidth)
			}
		}
		return strings.TrimRight(strings.Join(cells[:hi+1], ""), " ") + " " + text
	default:
		return strings.Join(cells[:s.Lane], "") + "● " + text
	}
}

func head2(fault bool) string {
	if fault {
		return "✕"
	}
	return "◀"
}

func pad(s string, w int) string {
	n := utf8.RuneCountInString(s)
	if n >= w {
		return s
	}
	return s + strings.Repeat(" ", w-n)
}

func clipRunes(s string, w int) string {
	r := []rune(s)
	if len(r) > w {
		return string(r[:w])
	}
	return s
}
