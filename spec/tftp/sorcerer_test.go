package tftp_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
)

// apprentice is a server with the Sorcerer's Apprentice bug on purpose:
// an ACK it ignores (a duplicate) makes it send its latest DATA again.
type apprentice struct {
	*tftp.Server
	last map[spec.Sock]spec.Output
}

func (a *apprentice) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	start := len(out)
	out = a.Server.Step(now, in, out)
	sent := false
	for _, o := range out[start:] {
		if o.Kind == spec.OutSend && len(o.Data) >= 2 && o.Data[1] == byte(tftp.OpDATA) {
			a.last[o.Sock] = o
			sent = true
		}
	}
	if in.Kind == spec.InDatagram && !sent && len(in.Data) == 4 && in.Data[1] == byte(tftp.OpACK) {
		if o, ok := a.last[in.Sock]; ok {
			out = append(out, o)
		}
	}
	return out
}

type recorder struct{ err error }

func (r *recorder) Fatalf(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

// runDupOnly downloads a file over a network that duplicates a third of
// the datagrams and loses none, from the server newServer builds (nil:
// the real one), and returns the property's verdict.
func runDupOnly(window int, newServer func(tftp.ServerConfig) spec.Machine) error {
	f := file.SynthFile{Name: "boot.img", Size: 40_000, Seed: 5}
	sc := scenario{
		files:     []file.SynthFile{f},
		clients:   []tftp.ClientConfig{{Server: serverAddr, Blksize: 512, Windowsize: window}},
		jobs:      [][]job{{{name: f.Name, want: synth(f)}}},
		faults:    sim.Faults{Dup: 0.3},
		seed:      42,
		newServer: newServer,
	}
	w := newWorld()
	s := sc.build(nil, w)
	s.RunUntil(w.allExited, 10*time.Minute)
	r := &recorder{}
	w.check(r)
	return r.err
}

// The bounded-packets-per-block property catches the Sorcerer's
// Apprentice: with duplication alone, the broken server sends blocks
// many times over; the real one sends each exactly once.
func TestSorcerersApprenticeIsCaught(t *testing.T) {
	for _, window := range []int{1, 4} {
		if err := runDupOnly(window, nil); err != nil {
			t.Errorf("window %d: the real server fails the property: %v", window, err)
		}
		err := runDupOnly(window, func(c tftp.ServerConfig) spec.Machine {
			return &apprentice{Server: tftp.NewServer(c, nil, nil), last: map[spec.Sock]spec.Output{}}
		})
		if err == nil || !strings.Contains(err.Error(), "times") {
			t.Errorf("window %d: the property did not catch a server that answers duplicate ACKs: %v", window, err)
		} else {
			t.Logf("window %d: caught: %v", window, err)
		}
	}
}
