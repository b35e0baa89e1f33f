package timeline

import (
	"bufio"
	"fmt"
	"html"
	"io"
)

// SVG draws the diagram as a picture: lifelines, arrows and labels,
// written a step at a time.
func (d Diagram) SVG(w io.Writer) error {
	const (
		laneW  = 180
		rowH   = 18
		left   = 90
		top    = 40
		labelW = 420
	)
	edge := left + laneW*max(len(d.Lanes), 1) // right of the last lane
	width := edge + labelW
	height := top + rowH*(len(d.Steps)+1)
	bw := bufio.NewWriter(w)
	esc := func(s string) string { return html.EscapeString(Clean(s)) }
	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="11">`+"\n", width, height)
	bw.WriteString(`<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="3" orient="auto"><path d="M0,0 L7,3 L0,6 z" fill="#246"/></marker>` +
		`<marker id="x" markerWidth="8" markerHeight="8" refX="4" refY="4" orient="auto"><path d="M0,0 L8,8 M8,0 L0,8" stroke="#c22" stroke-width="1.5"/></marker></defs>` + "\n")
	bw.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	x := func(lane int) int { return left + laneW*lane + laneW/2 }
	for i, l := range d.Lanes {
		fmt.Fprintf(bw, `<text x="%d" y="20" text-anchor="middle" font-weight="bold">%s</text>`+"\n", x(i), esc(l))
		fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#bbb"/>`+"\n", x(i), top-10, x(i), height)
	}
	labelX := edge + 10
	for k, s := range d.Steps {
		y := top + rowH*k + rowH/2
		fmt.Fprintf(bw, `<text x="4" y="%d" fill="#666">%.3f</text>`+"\n", y+4, float64(s.T)/1e6)
		color, marker, dash := "#246", "a", ""
		if s.Fault {
			color, marker, dash = "#c22", "x", ` stroke-dasharray="4,3"`
		}
		label := esc(s.Text)
		switch {
		case s.Kind == WideStep:
			fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-dasharray="8,3"/>`+"\n", left, y, edge, y, color)
		case s.Kind == ArrowStep && s.From != s.To:
			// An end that is not drawn is the right edge, by the label
			// that names its address.
			x1, x2 := edge, edge
			if s.From >= 0 {
				x1 = x(s.From)
			}
			if s.To >= 0 {
				x2 = x(s.To)
			}
			fmt.Fprintf(bw, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s marker-end="url(#%s)"/>`+"\n", x1, y, x2, y, color, dash, marker)
		default:
			l := s.Lane
			if s.Kind == ArrowStep {
				l = s.From
			}
			if !s.Fault {
				color = "#111"
			}
			fmt.Fprintf(bw, `<circle cx="%d" cy="%d" r="3" fill="%s"/>`+"\n", x(l), y, color)
			label = esc(fmt.Sprintf("[%s] %s", d.Lanes[l], s.Text))
		}
		fmt.Fprintf(bw, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", labelX, y+4, color, label)
	}
	bw.WriteString("</svg>\n")
	return bw.Flush()
}
