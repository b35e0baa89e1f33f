package chat

import (
	"bytes"
	"log/slog"
	"net/netip"

	"github.com/netspec/netspec/spec"
)

// PlainConfig configures a plain client.
type PlainConfig struct {
	Server netip.AddrPort `json:"server"`
	// AnswerWelcome plays the user who does what the welcome asks: types
	// "/ok TOKEN" when it comes, and again before each line until the
	// server confirms it ("*** ok"), as one who notices the silence would.
	AnswerWelcome bool `json:"answerWelcome,omitempty"`
}

// Plain is what `nc -u SERVER` does, as a machine: each "line" command's
// bytes go out as one datagram with a LF appended, unnumbered; every line
// of every datagram from the server is reported as a "line" event, with
// no deduplication and in arrival order; "close" exits. Simulations use
// it to mix nc users with sequenced clients.
type Plain struct {
	cfg   PlainConfig
	bound bool
	queue [][]byte
	token []byte // the last welcome's, until "*** ok" (AnswerWelcome)
}

// NewPlain returns a plain client for cfg.
func NewPlain(cfg PlainConfig) *Plain { return &Plain{cfg: cfg} }

// Step implements spec.Machine.
func (p *Plain) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		local := netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		if p.cfg.Server.Addr().Is6() {
			local = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
		out = append(out, spec.Bind(sock, spec.UDP, local))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("chat: bind: "+in.Err))
		}
		p.bound = true
		for _, b := range p.queue {
			out = append(out, spec.Send(sock, p.cfg.Server, b))
		}
		p.queue = nil
	case spec.InCommand:
		switch in.Cmd.Name {
		case "line":
			b := make([]byte, 0, len(in.Cmd.Data)+len(p.token)+6)
			if p.token != nil {
				b = append(append(append(b, "/ok "...), p.token...), '\n')
			}
			b = append(append(b, in.Cmd.Data...), '\n')
			if !p.bound {
				p.queue = append(p.queue, b)
				break
			}
			out = append(out, spec.Send(sock, p.cfg.Server, b))
		case "close":
			out = append(out, spec.Exit(""))
		}
	case spec.InDatagram:
		if in.Addr != p.cfg.Server {
			return append(out, spec.Debug("chat: dropped datagram from a stranger", slog.String("from", in.Addr.String())))
		}
		for body := in.Data; len(body) > 0; {
			var raw []byte
			raw, body = nextLine(body)
			if len(raw) > 0 {
				out = append(out, spec.Emit(spec.Event{Name: "line", Text: string(raw), Value: ParseLine(raw)}))
				out = p.answer(raw, out)
			}
		}
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// answer is the user reading a line, with AnswerWelcome: a welcome's
// token is typed back at once, and kept until the server confirms it.
func (p *Plain) answer(line []byte, out []spec.Output) []spec.Output {
	if !p.cfg.AnswerWelcome {
		return out
	}
	switch {
	case bytes.HasPrefix(line, []byte("*** welcome ")), bytes.HasPrefix(line, []byte("*** type /ok ")):
		tok := TokenAsked(line)
		if tok == nil {
			return out
		}
		p.token = append([]byte(nil), tok...)
		out = append(out, spec.Send(sock, p.cfg.Server, append(append([]byte("/ok "), p.token...), '\n')))
	case bytes.HasPrefix(line, []byte("*** ok ")):
		p.token = nil
	}
	return out
}
