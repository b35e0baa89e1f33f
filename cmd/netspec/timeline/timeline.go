// Package timeline draws a trace as a sequence diagram: one lifeline per
// node, a line per input or output, and an arrow per packet the network
// carried, in the terminal or as SVG.
package timeline

import (
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Filter selects what to draw.
type Filter struct {
	Nodes []string       // only these nodes (empty: all)
	Match *regexp.Regexp // only lines whose text matches
	Net   bool           // draw the network's packet arrows
	IO    bool           // draw the nodes' inputs and outputs
	Logs  bool           // include log records
	From  int64          // ns since the trace's epoch
	To    int64          // 0: no end
	Limit int            // at most this many lines (0: all)
}

// Describe decodes a payload for a protocol (spec.Protocol.Describe).
type Describe func(protocol string, payload []byte) string

// Step is one drawn line.
type Step struct {
	T     int64
	Lane  int    // the node's lane, for node records
	From  int    // arrow start lane (-1: none)
	To    int    // arrow end lane
	Text  string // what happened
	Fault bool   // a drop: drawn as a lost arrow
}

// Diagram is a trace laid out as lanes and steps.
type Diagram struct {
	Lanes []string
	Steps []Step
}

// Build lays out a trace.
func Build(h trace.Header, recs []trace.Record, f Filter, describe Describe) Diagram {
	var d Diagram
	lane := map[string]int{}
	byAddr := map[netip.Addr]int{}
	proto := map[string]string{}
	for _, n := range h.Nodes {
		if len(f.Nodes) > 0 && !slices.Contains(f.Nodes, n.Name) {
			continue
		}
		lane[n.Name] = len(d.Lanes)
		d.Lanes = append(d.Lanes, n.Name)
		if a, err := netip.ParseAddr(n.Addr); err == nil {
			byAddr[a] = lane[n.Name]
		}
		proto[n.Name] = n.Protocol
		if proto[n.Name] == "" {
			proto[n.Name] = h.Protocol
		}
	}
	// Traces without a header entry per node (socket runs) still draw.
	for _, r := range recs {
		if r.Node != "" && r.Net == "" {
			if _, ok := lane[r.Node]; !ok && (len(f.Nodes) == 0 || slices.Contains(f.Nodes, r.Node)) {
				lane[r.Node] = len(d.Lanes)
				d.Lanes = append(d.Lanes, r.Node)
				proto[r.Node] = h.Protocol
			}
		}
	}
	sent := map[uint64][]byte{}
	copyOf := map[uint64]uint64{} // a duplicate's id -> the packet it copies
	for _, r := range recs {
		if r.T < f.From || (f.To > 0 && r.T > f.To) {
			continue
		}
		st := Step{T: r.T, From: -1, To: -1, Lane: -1}
		switch {
		case r.Net != "":
			if r.Net == "send" {
				if p, err := r.Payload(); err == nil {
					sent[r.ID] = p
				}
				continue
			}
			if !f.Net {
				continue
			}
			from, to := laneOf(byAddr, r.From), laneOf(byAddr, r.Addr)
			switch r.Net {
			case "deliver":
				st.From, st.To = from, to
				st.Text = fmt.Sprintf("#%d %s", r.ID, decode(describe, h.Protocol, r.Proto, sent[r.ID], r.Msg))
				if orig, ok := copyOf[r.ID]; ok {
					st.Text += fmt.Sprintf(" (copy of #%d)", orig)
					delete(copyOf, r.ID)
				}
				if r.Delay > 1e6 {
					st.Text += fmt.Sprintf(" (+%.1fms)", float64(r.Delay)/1e6)
				}
				delete(sent, r.ID)
			case "crash", "partition", "heal":
				st.Lane = lane[r.Node]
				if r.Node == "" || !hasLane(lane, r.Node) {
					st.Lane = 0
				}
				st.Text = "✖ " + r.Err
				st.Fault = true
			case "dup":
				// The copy carries the original's bytes under its own id.
				var orig uint64
				if _, err := fmt.Sscanf(r.Name, "copy of %d", &orig); err == nil {
					if p, ok := sent[orig]; ok {
						sent[r.ID] = p
					}
					copyOf[r.ID] = orig
				}
				continue
			default:
				st.From, st.To, st.Fault = from, to, true
				st.Text = fmt.Sprintf("#%d LOST: %s", r.ID, r.Err)
				delete(sent, r.ID)
			}
			if st.Lane < 0 && st.From < 0 && st.To < 0 {
				continue
			}
		default:
			l, ok := lane[r.Node]
			if !ok || !f.IO || (r.Out == "log" && !f.Logs) {
				continue
			}
			st.Lane = l
			st.Text = describeRecord(r, describe, proto[r.Node])
		}
		if f.Match != nil && !f.Match.MatchString(st.Text) {
			continue
		}
		d.Steps = append(d.Steps, st)
		if f.Limit > 0 && len(d.Steps) >= f.Limit {
			break
		}
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
	const max = 32
	q := strconv.QuoteToASCII(string(b[:min(len(b), max)]))
	if len(b) > max {
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

// LaneWidth is the width of a lane in the terminal.
const LaneWidth = 14

// Text writes the diagram for a terminal.
func (d Diagram) Text(w io.Writer) error {
	var b strings.Builder
	b.WriteString(fmt.Sprintf("%11s ", "t (ms)"))
	for _, l := range d.Lanes {
		b.WriteString(pad(clipRunes(l, LaneWidth-1), LaneWidth))
	}
	b.WriteString("\n")
	for _, s := range d.Steps {
		b.WriteString(fmt.Sprintf("%11.3f ", float64(s.T)/1e6))
		b.WriteString(d.row(s))
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func (d Diagram) row(s Step) string {
	n := len(d.Lanes)
	cells := make([]string, n)
	for i := range cells {
		cells[i] = pad("│", LaneWidth)
	}
	switch {
	case s.From >= 0 || s.To >= 0:
		a, b := s.From, s.To
		if a < 0 {
			a = b
		}
		if b < 0 {
			b = a
		}
		lo, hi := min(a, b), max(a, b)
		line, head := "─", "▶"
		if s.Fault {
			line, head = "╌", "✕"
		}
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
		return strings.TrimRight(strings.Join(cells[:hi+1], ""), " ") + " " + s.Text
	default:
		l := max(s.Lane, 0)
		cells[l] = "●"
		return strings.Join(cells[:l], "") + "● " + s.Text
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
