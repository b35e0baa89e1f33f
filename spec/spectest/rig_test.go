package spectest

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/netspec/netspec/spec"
)

// fatalTB records the first Fatalf and stops the step, as t.Fatalf would.
type fatalTB struct {
	testing.TB
	msg string
}

type stop struct{}

func (f *fatalTB) Helper() {}
func (f *fatalTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(stop{})
}

// machine answers every input with the outputs it is given.
type machine []spec.Output

func (m machine) Step(_ spec.Time, _ spec.Input, out []spec.Output) []spec.Output {
	return append(out, m...)
}

// The rig catches each breach of the contract it promises to check, and
// lets a well-behaved step through.
func TestRigCatchesBreaches(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.2:9")
	for _, tc := range []struct {
		name string
		outs []spec.Output
		want string // "" for none
	}{
		{"bind and send", []spec.Output{spec.Bind(1, spec.UDP, a), spec.Send(1, a, []byte("x"))}, ""},
		{"send unbound", []spec.Output{spec.Send(1, a, []byte("x"))}, "not a bound UDP socket"},
		{"send on TCP", []spec.Output{spec.Bind(1, spec.TCP, a), spec.Send(1, a, nil)}, "not a bound UDP socket"},
		{"bind twice", []spec.Output{spec.Bind(1, spec.UDP, a), spec.Bind(1, spec.UDP, a)}, "already bound"},
		{"dial accepted id", []spec.Output{spec.Dial(spec.AcceptedStream|1, a)}, "dial with stream id"},
		{"write unheld", []spec.Output{spec.Write(5, []byte("x"))}, "does not hold"},
		{"write after close", []spec.Output{spec.Dial(5, a), spec.Close(5), spec.Write(5, []byte("x"))}, "write after close"},
		{"event that does not marshal", []spec.Output{spec.Emit(spec.Event{Name: "e", Value: func() {}})}, "does not marshal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			r := NewRig(tb, machine(tc.outs))
			untilFatal(func() { r.Step(spec.Input{Kind: spec.InStart}) })
			if (tc.want == "") != (tb.msg == "") || !strings.Contains(tb.msg, tc.want) {
				t.Fatalf("rig said %q, want %q", tb.msg, tc.want)
			}
		})
	}
}

// Accept fails the test unless the machine refuses the connection
// exactly when the model says it is full.
func TestAcceptChecksRefusal(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.2:9")
	id := spec.AcceptedStream | 1
	for _, tc := range []struct {
		name   string
		outs   []spec.Output
		full   bool
		failed bool
	}{
		{"taken", nil, false, false},
		{"refused when full", []spec.Output{spec.Abort(id)}, true, false},
		{"refused below the limit", []spec.Output{spec.Abort(id)}, false, true},
		{"taken at the limit", nil, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tb := &fatalTB{TB: t}
			r := NewRig(tb, machine(tc.outs))
			untilFatal(func() {
				if got := r.Accept(7, 1, a, tc.full); got != id {
					t.Errorf("Accept returned stream %#x, want %#x", uint64(got), uint64(id))
				}
			})
			if failed := tb.msg != ""; failed != tc.failed {
				t.Fatalf("rig said %q; want a failure: %v", tb.msg, tc.failed)
			}
		})
	}
}

// untilFatal runs f, which stops where the rig calls Fatalf on a
// fatalTB.
func untilFatal(f func()) {
	defer func() {
		if p := recover(); p != nil {
			if _, ok := p.(stop); !ok {
				panic(p)
			}
		}
	}()
	f()
}
