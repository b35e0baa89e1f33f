package sim_test

import (
	"fmt"
	"net/netip"

	"github.com/netspec/netspec/spec"
)

// probe is a scriptable machine for testing the simulator itself: it binds
// UDP and TCP port 9, does what commands say, and records its inputs.
type probe struct {
	log []got
	// echoStreams makes it close a stream once the peer has finished.
	closeOnEOF bool
	// accepted is the last stream accepted, which "pause" and "resume"
	// name.
	accepted spec.Stream
}

type got struct {
	at spec.Time
	in spec.Input
}

func (p *probe) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	p.log = append(p.log, got{now, in})
	switch in.Kind {
	case spec.InStart:
		out = append(out,
			spec.Bind(1, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)),
			spec.Bind(2, spec.TCP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)))
	case spec.InCommand:
		c := in.Cmd
		switch c.Name {
		case "send":
			out = append(out, spec.Send(1, netip.MustParseAddrPort(c.Args[0]), c.Data))
		case "sendfrom":
			out = append(out, spec.SendFrom(1, netip.MustParseAddr(c.Args[1]), netip.MustParseAddrPort(c.Args[0]), c.Data))
		case "dial":
			out = append(out, spec.Dial(1, netip.MustParseAddrPort(c.Args[0])))
		case "write":
			out = append(out, spec.Write(1, c.Data))
		case "close":
			out = append(out, spec.Close(1))
		case "abort":
			out = append(out, spec.Abort(1))
		case "unbind":
			out = append(out, spec.Unbind(1))
		case "pause":
			if p.accepted != 0 {
				out = append(out, spec.Pause(p.accepted))
			}
		case "resume":
			if p.accepted != 0 {
				out = append(out, spec.Resume(p.accepted))
			}
		}
	case spec.InAccepted:
		p.accepted = in.Stream
	case spec.InStreamClosed:
		if in.Stream == p.accepted {
			p.accepted = 0 // pausing it now could name a released stream
		}
		if p.closeOnEOF && in.Err == "" {
			out = append(out, spec.Close(in.Stream))
		}
	}
	return out
}

func (p *probe) inputs(kind spec.InKind) []got {
	var out []got
	for _, g := range p.log {
		if g.in.Kind == kind {
			out = append(out, g)
		}
	}
	return out
}

func (p *probe) streamBytes() []byte {
	var b []byte
	for _, g := range p.inputs(spec.InStreamData) {
		b = append(b, g.in.Data...)
	}
	return b
}

// probeConfig is a probe's config in trace headers.
type probeConfig struct {
	CloseOnEOF bool `json:"closeOnEOF,omitempty"`
}

// probeProtocol rebuilds probes from a trace, so that a simulator test's
// failing run can be re-simulated (conformance.Resimulate).
var probeProtocol = spec.NewProtocol("probe", func(b []byte) string { return fmt.Sprintf("%d bytes", len(b)) },
	spec.JSONRole("probe", func(c probeConfig) (spec.Machine, error) { return &probe{closeOnEOF: c.CloseOnEOF}, nil }),
)
