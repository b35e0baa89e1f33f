package p2p

import (
	"bytes"
	"fmt"
	"strconv"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

// Protocol describes P2P file distribution to the generic tools. A
// server rebuilt from a trace serves the file its config's File names; a
// peer keeps its chunks in a MemStore.
var Protocol = spec.NewProtocol("p2p", Describe,
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) {
		data, err := cs.Generate(c.File)
		if err != nil {
			return nil, err
		}
		return NewServerOf(c, data)
	}),
	spec.JSONRole("peer", func(c PeerConfig) (spec.Machine, error) { return NewPeer(c, &MemStore{}), nil }),
)

// NewServerOf returns a server of data, cut in c's chunk size (the
// default if unset): what a trace's server config rebuilds, given the
// file.
func NewServerOf(c ServerConfig, data []byte) (*Server, error) {
	c.fill()
	content, err := NewContent(data, c.ChunkSize)
	if err != nil {
		return nil, err
	}
	return NewServer(c, content), nil
}

// Describe summarises stream bytes for timelines: the header lines it
// finds, and how many raw bytes follow. Repeats of an op collapse
// (DANY×13), the first few groups are shown in full and the rest by op and
// count, so the line stays short but every op is there for --match.
func Describe(b []byte) string {
	type group struct {
		line string
		op   Op
		n    int
	}
	const full = 4
	var lines []group
	rest := b
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || i > 96 {
			break
		}
		line := bytes.TrimRight(rest[:i], "\r")
		if len(line) == 0 || !printable(line) {
			break
		}
		rest = rest[i+1:]
		tok, _, _ := bytes.Cut(line, []byte(" "))
		lines = append(lines, group{string(line), lookupOp(tok), 1})
	}
	// A few lines are shown whole (DREQ 9 stays findable); more collapse.
	groups := lines
	if len(lines) > full {
		groups = nil
		for _, l := range lines {
			if k := len(groups) - 1; k >= 0 && l.op != 0 && groups[k].op == l.op {
				groups[k].n++
				continue
			}
			groups = append(groups, l)
		}
	}
	s := fmt.Sprintf("%d bytes", len(b))
	for _, g := range groups[:min(len(groups), full)] {
		if g.n == 1 {
			s += " " + strconv.Quote(g.line)
		} else {
			s += fmt.Sprintf(" %s×%d", g.op, g.n)
		}
	}
	if len(groups) > full {
		var order []Op
		count := map[Op]int{}
		more := 0
		for _, g := range groups[full:] {
			more += g.n
			if g.op == 0 {
				continue
			}
			if count[g.op] == 0 {
				order = append(order, g.op)
			}
			count[g.op] += g.n
		}
		s += fmt.Sprintf(" …%d more", more)
		if len(order) > 0 {
			s += ":"
		}
		for _, op := range order {
			if count[op] == 1 {
				s += " " + op.String()
			} else {
				s += fmt.Sprintf(" %s×%d", op, count[op])
			}
		}
	}
	if len(groups) > 0 && len(rest) > 0 {
		s += fmt.Sprintf(" +%d", len(rest))
	}
	return s
}

func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
