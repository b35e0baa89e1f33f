package impl_test

import (
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
)

// A manual clock runs what is due in deadline order, timers set for the
// same instant in the order they were set, and never a stopped one: a
// replay's timers fire in the order the trace's did.
func TestManualClockFiresInOrder(t *testing.T) {
	c := impl.NewManualClock(0)
	var got []int
	for i, ms := range []time.Duration{30, 10, 20, 10, 0, 10} {
		s := c.AfterFunc(ms*time.Millisecond, func() { got = append(got, i) })
		if i == 5 && !s.Stop() {
			t.Fatal("Stop of a pending timer reported it was not pending")
		}
	}
	c.Advance(c.Now().Add(15 * time.Millisecond))
	if want := []int{4, 1, 3}; !slices.Equal(got, want) {
		t.Fatalf("by 15 ms the timers ran in the order %v, want %v", got, want)
	}
	c.Advance(c.Now().Add(time.Hour))
	if want := []int{4, 1, 3, 2, 0}; !slices.Equal(got, want) {
		t.Fatalf("the timers ran in the order %v, want %v", got, want)
	}
}

// retimer sets timer 1 for a second after it starts. On the command
// "hold" it stops at its StepGate, so that a test can let the timer
// fire meanwhile, then cancels the timer or sets it again a minute on. It reports its timer inputs on fired.
type retimer struct {
	impl.StepGate
	cancel bool
	fired  chan spec.Time
}

func (m *retimer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.SetTimer(1, now.Add(time.Second)))
	case spec.InCommand:
		if !m.Pass(in) {
			break
		}
		if m.cancel {
			out = append(out, spec.CancelTimer(1))
		} else {
			out = append(out, spec.SetTimer(1, now.Add(time.Minute)))
		}
	case spec.InTimer:
		m.fired <- now
	case spec.InStop:
		out = append(out, spec.Exit(""))
	}
	return out
}

// A timer that fired while the machine was busy, and that the machine
// then cancelled or set again, never reaches it: its input, already
// queued, is stale. A timer set again fires at its new deadline.
func TestStaleTimerNeverFires(t *testing.T) {
	for _, cancel := range []bool{false, true} {
		name := map[bool]string{false: "reset", true: "cancelled"}[cancel]
		t.Run(name, func(t *testing.T) {
			clock := impl.NewManualClock(0)
			m := &retimer{StepGate: impl.NewStepGate(), cancel: cancel, fired: make(chan spec.Time, 4)}
			r, _ := startMachine(t, m, impl.Options{Clock: clock})
			// Handled once InStart's step (and its timer) is done.
			r.Command(spec.Command{Name: "hold"})
			within(t, m.InCmd, "the machine did not take the command")
			// The timer fires while the machine is busy: its input
			// waits in the queue behind the step that cancels it.
			clock.Advance(clock.Now().Add(2 * time.Second))
			close(m.GoOn)
			ping := func() {
				t.Helper()
				r.Command(spec.Command{Name: "ping"}) // queued behind every input before it
				within(t, m.Pong, "the machine did not answer a ping")
			}
			ping()
			select {
			case at := <-m.fired:
				t.Fatalf("timer 1 fired at %v, after the machine %s it", time.Duration(at), name)
			default:
			}
			clock.Advance(clock.Now().Add(2 * time.Minute))
			ping()
			select {
			case at := <-m.fired:
				if cancel {
					t.Fatalf("the cancelled timer fired at %v", time.Duration(at))
				}
			default:
				if !cancel {
					t.Fatal("the timer set again did not fire at its new deadline")
				}
			}
		})
	}
}

// within waits for ch, or fails the test after 5 seconds.
func within[T any](t *testing.T, ch <-chan T, why string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatal(why)
		panic("unreachable")
	}
}
