// Package all lists every protocol netspec implements, for the tools that
// work with any of them (replay, conformance, the timeline viewer).
package all

import (
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/echo"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/p2p"
	"github.com/netspec/netspec/spec/stream"
	"github.com/netspec/netspec/spec/tftp"
)

// Protocols returns every protocol, in a fixed order.
func Protocols() []spec.Protocol {
	return []spec.Protocol{
		echo.Protocol,
		stream.Protocol,
		chat.Protocol,
		file.Protocol,
		cs.Protocol, p2p.Protocol,
		tftp.Protocol,
	}
}

// Lookup returns the protocol called name.
func Lookup(name string) (spec.Protocol, bool) {
	for _, p := range Protocols() {
		if p.Name == name {
			return p, true
		}
	}
	return spec.Protocol{}, false
}
