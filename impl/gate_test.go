package impl

import "github.com/netspec/netspec/spec"

// StepGate lets a test machine stop inside a step, so that a test can
// make things happen to the runner meanwhile. Exported for the machines
// of package impl_test too.
type StepGate struct {
	InCmd chan struct{} // told when a command other than "ping" arrives
	GoOn  chan struct{} // closed by the test to let that step go on
	Pong  chan struct{} // told when "ping" arrives: every input before it is handled
}

// NewStepGate returns a gate ready for one hold.
func NewStepGate() StepGate {
	return StepGate{InCmd: make(chan struct{}, 1), GoOn: make(chan struct{}), Pong: make(chan struct{}, 1)}
}

// Pass handles command in: "ping" is answered on Pong and reports false;
// any other says so on InCmd, blocks until GoOn closes and reports true
// (the machine then acts on it).
func (g StepGate) Pass(in spec.Input) bool {
	if in.Cmd.Name == "ping" {
		g.Pong <- struct{}{}
		return false
	}
	g.InCmd <- struct{}{}
	<-g.GoOn
	return true
}
