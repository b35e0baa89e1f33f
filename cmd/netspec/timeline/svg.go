package timeline

import (
	"fmt"
	"html"
	"io"
	"strings"
)

// SVG draws the diagram as a picture: lifelines, arrows and labels.
func (d Diagram) SVG(w io.Writer) error {
	const (
		laneW  = 180
		rowH   = 18
		left   = 90
		top    = 40
		labelW = 420
	)
	width := left + laneW*max(len(d.Lanes), 1) + labelW
	height := top + rowH*(len(d.Steps)+1)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="monospace" font-size="11">`+"\n", width, height)
	b.WriteString(`<defs><marker id="a" markerWidth="8" markerHeight="8" refX="7" refY="3" orient="auto"><path d="M0,0 L7,3 L0,6 z" fill="#246"/></marker>` +
		`<marker id="x" markerWidth="8" markerHeight="8" refX="4" refY="4" orient="auto"><path d="M0,0 L8,8 M8,0 L0,8" stroke="#c22" stroke-width="1.5"/></marker></defs>` + "\n")
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	x := func(lane int) int { return left + laneW*lane + laneW/2 }
	for i, l := range d.Lanes {
		fmt.Fprintf(&b, `<text x="%d" y="20" text-anchor="middle" font-weight="bold">%s</text>`+"\n", x(i), html.EscapeString(l))
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#bbb"/>`+"\n", x(i), top-10, x(i), height)
	}
	for k, s := range d.Steps {
		y := top + rowH*k + rowH/2
		fmt.Fprintf(&b, `<text x="4" y="%d" fill="#666">%.3f</text>`+"\n", y+4, float64(s.T)/1e6)
		labelX := left + laneW*len(d.Lanes) + 10
		switch {
		case s.From >= 0 && s.To >= 0 && s.From != s.To:
			color, marker, dash := "#246", "a", ""
			if s.Fault {
				color, marker, dash = "#c22", "x", ` stroke-dasharray="4,3"`
			}
			fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s"%s marker-end="url(#%s)"/>`+"\n", x(s.From), y, x(s.To), y, color, dash, marker)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", labelX, y+4, color, html.EscapeString(s.Text))
		default:
			l := s.Lane
			if l < 0 {
				l = max(s.From, s.To, 0)
			}
			color := "#111"
			if s.Fault {
				color = "#c22"
			}
			fmt.Fprintf(&b, `<circle cx="%d" cy="%d" r="3" fill="%s"/>`+"\n", x(l), y, color)
			fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", labelX, y+4, color, html.EscapeString(fmt.Sprintf("[%s] %s", d.Lanes[l], s.Text)))
		}
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}
