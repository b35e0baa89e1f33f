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
		c.fill()
		content, err := NewContent(data, c.ChunkSize)
		if err != nil {
			return nil, err
		}
		return NewServer(c, content), nil
	}),
	spec.JSONRole("peer", func(c PeerConfig) (spec.Machine, error) { return NewPeer(c, &MemStore{}), nil }),
)

// Describe summarises stream bytes for timelines: the header lines it
// finds, and how many raw bytes follow.
func Describe(b []byte) string {
	var parts []string
	rest := b
	for len(rest) > 0 && len(parts) < 4 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 || i > 96 {
			break
		}
		line := bytes.TrimRight(rest[:i], "\r")
		if len(line) == 0 || !printable(line) {
			break
		}
		parts = append(parts, strconv.QuoteToASCII(string(line)))
		rest = rest[i+1:]
	}
	s := fmt.Sprintf("%d bytes", len(b))
	for _, p := range parts {
		s += " " + p
	}
	if len(parts) > 0 && len(rest) > 0 {
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
