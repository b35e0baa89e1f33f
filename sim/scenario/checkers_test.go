package scenario_test

import (
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
	"github.com/netspec/netspec/spec/p2p"
	"github.com/netspec/netspec/spec/stream"
	"github.com/netspec/netspec/spec/tftp"
)

// Swarm testing passes whatever the machines do if a checker cannot
// fail: these tests give every checker runs it must reject, a machine
// broken on purpose (safety) or a node the network never gives back
// (liveness), beside the same run without the defect, which it must
// accept.

// buggy is a machine with a bug put in: every output goes through bug,
// which returns what the machine outputs instead.
type buggy struct {
	spec.Machine
	bug func(spec.Output) []spec.Output
}

func (b *buggy) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	for _, o := range b.Machine.Step(now, in, nil) {
		out = append(out, b.bug(o)...)
	}
	return out
}

func withBug(bug func(spec.Output) []spec.Output) func(spec.Machine) spec.Machine {
	return func(m spec.Machine) spec.Machine { return &buggy{Machine: m, bug: bug} }
}

// flipped is data with its last byte changed, in a copy.
func flipped(data []byte) []byte {
	out := append([]byte(nil), data...)
	if len(out) > 0 {
		out[len(out)-1] ^= 0x20
	}
	return out
}

// sendsFlipped changes the last byte of every datagram or stream write.
func sendsFlipped(o spec.Output) []spec.Output {
	if o.Kind == spec.OutSend || o.Kind == spec.OutWrite {
		o.Data = flipped(o.Data)
	}
	return []spec.Output{o}
}

// onEvent applies edit to the machine's events called name.
func onEvent(name string, edit func(spec.Event) []spec.Event) func(spec.Output) []spec.Output {
	return func(o spec.Output) []spec.Output {
		if o.Kind != spec.OutEvent || o.Event.Name != name {
			return []spec.Output{o}
		}
		var out []spec.Output
		for _, ev := range edit(o.Event) {
			out = append(out, spec.Emit(ev))
		}
		return out
	}
}

func dataFlipped(ev spec.Event) []spec.Event {
	ev.Data = flipped(ev.Data)
	return []spec.Event{ev}
}

func checker(t *testing.T, name string) scenario.Checked {
	t.Helper()
	for _, c := range scenario.Checkers() {
		if c.Name() == name {
			return c
		}
	}
	t.Fatalf("no checker %q", name)
	return nil
}

func TestCheckersCatchBrokenMachines(t *testing.T) {
	const seed = 1
	for _, tc := range []struct {
		checker, node string
		why           string
		wrap          func(spec.Machine) spec.Machine
		safety        string // what the verdict's Safety must say
	}{
		{"echo", "server", "echoes a byte changed, same length", withBug(sendsFlipped), "matching nothing it sent"},
		{"cs", "server", "serves a byte changed", withBug(sendsFlipped), "that are not the file's"},
		{"cs", "client1", "keeps a byte changed", withBug(onEvent("file", dataFlipped)), "client1 finished a download"},
		{"swarm", "h2", "verifies another MD5", withBug(onEvent("verified", func(ev spec.Event) []spec.Event {
			v := ev.Value.(p2p.Verified)
			v.MD5 = strings.Repeat("0", len(v.MD5))
			ev.Value = v
			return []spec.Event{ev}
		})), "h2 verified a file with MD5"},
		{"file", "client1", "delivers a byte changed", withBug(onEvent("data", dataFlipped)), "client1 completed a download whose bytes differ"},
		{"tftp", "client1", "delivers a byte changed", withBug(onEvent("data", dataFlipped)), "client1 completed a download whose bytes differ"},
		{"tftp", "client1", "reports an upload under another name", withBug(onEvent("file-done", func(ev spec.Event) []spec.Event {
			if v := ev.Value.(tftp.FileDone); v.Op == "put" {
				v.Name += ".elsewhere"
				ev.Value = v
			}
			return []spec.Event{ev}
		})), "did not store the file"},
		{"tftp", "server", "stores an upload with another hash", withBug(onEvent("transfer-done", func(ev spec.Event) []spec.Event {
			if v, ok := ev.Value.(tftp.Transfer); ok && v.Op == "put" {
				v.SHA256 = strings.Repeat("0", len(v.SHA256))
				ev.Value = v
			}
			return []spec.Event{ev}
		})), "the server stored upload"},
		// More than windowsize (8) x 6 tries of one block.
		{"tftp", "server", "sends every DATA 49 times", withBug(func(o spec.Output) []spec.Output {
			out := []spec.Output{o}
			if o.Kind == spec.OutSend && len(o.Data) >= 2 && o.Data[1] == byte(tftp.OpDATA) {
				for range 48 {
					out = append(out, o)
				}
			}
			return out
		}), "Sorcerer's Apprentice"},
		{"stream", "client1", "reports another sum", withBug(onEvent("stats", func(ev spec.Event) []spec.Event {
			st := ev.Value.(stream.Stats)
			st.Sum++
			ev.Value = st
			return []spec.Event{ev}
		})), "client1 reports sum"},
		{"stream", "client1", "prints an index never sent", withBug(onEvent("packet", func(ev spec.Event) []spec.Event {
			p := ev.Value.(stream.Packet)
			p.Index += 1 << 40
			ev.Value = p
			return []spec.Event{ev}
		})), "never delivered to it"},
		{"stream", "client1", "prints every packet twice", withBug(onEvent("packet", func(ev spec.Event) []spec.Event {
			return []spec.Event{ev, ev}
		})), "twice"},
		{"stream", "server", "pads what it sends", withBug(func(o spec.Output) []spec.Output {
			if o.Kind == spec.OutSend {
				o.Data = append(append([]byte(nil), o.Data...), make([]byte, 100)...)
			}
			return []spec.Output{o}
		}), "the server sent the victim"},
		{"chat", "server", "sends to a member at its deadline", func(m spec.Machine) spec.Machine {
			return &faulty{Server: m.(*chat.Server), fault: "send at the deadline"}
		}, "silent since"},
	} {
		t.Run(tc.checker+" "+tc.node+" "+tc.why, func(t *testing.T) {
			c := checker(t, tc.checker)
			f := sim.Faults{Until: time.Second}
			if tc.checker == "chat" {
				// A member expires only when silent for the interval
				// (1 s): one is cut off for longer.
				f = sim.Faults{Until: 3 * time.Second, Partitions: []sim.Partition{{Start: 1500 * time.Millisecond, End: 3 * time.Second, Side: []string{"client2"}}}}
			}
			if v := c.Check(seed, f, scenario.Options{Seed: seed}); !v.OK() {
				t.Fatalf("without the bug: safety %q, liveness %q", v.Safety, v.Live)
			}
			wrap := func(node string, m spec.Machine) spec.Machine {
				if node == tc.node {
					return tc.wrap(m)
				}
				return m
			}
			v := c.Check(seed, f, scenario.Options{Seed: seed, Wrap: wrap})
			if v.OK() || !strings.Contains(v.Safety, tc.safety) {
				t.Fatalf("OK() = %v, safety %q, want it to say %q", v.OK(), v.Safety, tc.safety)
			}
		})
	}
}

// A node cut off from at until just after the checker's liveness bound
// (as its doc gives it, from the heal at 2 s) never completes in time
// what liveness asks of it; cut off only until the heal, it does.
func TestCheckersCatchNoRecovery(t *testing.T) {
	const seed = 1
	for _, tc := range []struct {
		checker, node string
		at, bound     time.Duration
	}{
		{"echo", "client2", 0, 10 * time.Second},
		// After its first downloads: those were before the heal.
		{"cs", "client2", time.Second, 15 * time.Second},
		{"swarm", "h3", 0, 120 * time.Second},
		{"file", "client2", 0, 120 * time.Second},
		{"tftp", "client2", 0, 60 * time.Second},
		// After it has received the stream: that was before the heal.
		{"stream", "client2", time.Second, 15 * time.Second},
		// Every client's last line is said an interval (1 s) after the
		// heal, and shown within 10 s.
		{"chat", "client2", time.Second, 11 * time.Second},
	} {
		t.Run(tc.checker, func(t *testing.T) {
			c := checker(t, tc.checker)
			const heal = 2 * time.Second
			cut := func(end time.Duration) sim.Faults {
				return sim.Faults{Until: heal, Partitions: []sim.Partition{{Start: tc.at, End: end, Side: []string{tc.node}}}}
			}
			if v := c.Check(seed, cut(heal), scenario.Options{Seed: seed}); !v.OK() {
				t.Fatalf("%s cut off until the heal: safety %q, liveness %q", tc.node, v.Safety, v.Live)
			}
			v := c.Check(seed, cut(heal+tc.bound+time.Second), scenario.Options{Seed: seed})
			if v.OK() || v.Live == "" {
				t.Fatalf("%s cut off until after the bound: OK() = %v, liveness %q", tc.node, v.OK(), v.Live)
			}
		})
	}
}

// late is a machine whose datagrams leave only after a delay, held back
// on a timer of its own.
type late struct {
	spec.Machine
	after time.Duration
	held  []heldSend
}

type heldSend struct {
	at spec.Time
	o  spec.Output
}

// lateTimer is late's own timer, beyond any the machines use.
const lateTimer spec.Timer = 1 << 30

func (l *late) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	start := len(out)
	if in.Kind == spec.InTimer && in.Timer == lateTimer {
		for len(l.held) > 0 && l.held[0].at <= now {
			out = append(out, l.held[0].o)
			l.held = l.held[1:]
		}
	} else {
		out = l.Machine.Step(now, in, out)
		kept := out[:start]
		for _, o := range out[start:] {
			if o.Kind == spec.OutSend {
				o.Data = append([]byte(nil), o.Data...)
				l.held = append(l.held, heldSend{now.Add(l.after), o})
				continue
			}
			kept = append(kept, o)
		}
		out = kept
	}
	if len(l.held) > 0 {
		out = append(out, spec.SetTimer(lateTimer, l.held[0].at))
	}
	return out
}

// An echo server whose answers take longer than the checker's bound
// (10 s after the heal) fails liveness, though every answer comes; one
// whose answers take less passes. (The other download checkers' clients
// retry after a silence, and an outage past the bound tests them:
// TestCheckersCatchNoRecovery.)
func TestEchoCheckerBound(t *testing.T) {
	const seed = 1
	c := checker(t, "echo")
	for _, tc := range []struct {
		after time.Duration
		live  bool
	}{{5 * time.Second, true}, {11 * time.Second, false}} {
		wrap := func(node string, m spec.Machine) spec.Machine {
			if node == "server" {
				return &late{Machine: m, after: tc.after}
			}
			return m
		}
		v := c.Check(seed, sim.Faults{Until: time.Second}, scenario.Options{Seed: seed, Wrap: wrap})
		if v.Safety != "" || (v.Live == "") != tc.live || v.OK() != tc.live {
			t.Errorf("echoes %v late: safety %q, liveness %q, OK() = %v; want live %v", tc.after, v.Safety, v.Live, v.OK(), tc.live)
		}
	}
}
