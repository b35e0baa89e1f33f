package file

import (
	"fmt"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// Protocol describes the file service to the generic tools.
var Protocol = spec.Protocol{
	Name:  "file",
	Roles: []string{"server", "client"},
	New: func(role string, config []byte) (spec.Machine, error) {
		switch role {
		case "server":
			return newServerFromJSON(config)
		case "client":
			return newClientFromJSON(config)
		}
		return nil, fmt.Errorf("file: unknown role %q", role)
	},
	Describe: Describe,
}

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
