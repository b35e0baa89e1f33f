package file

import (
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// Protocol describes the file service to the generic tools.
var Protocol = spec.NewProtocol("file", Describe,
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) { return NewServer(c, nil), nil }),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) { return NewClient(c), nil }),
)

// Describe summarises a datagram: the session-layer packet and, for a
// segment, the frames its payload starts with.
func Describe(b []byte) string {
	s := rudp.Describe(b)
	var p rudp.Packet
	if rudp.Decode(b, &p) == nil && len(p.Payload) >= FrameHeaderLen {
		s += " " + describeFrames(p.Payload)
	}
	return s
}
