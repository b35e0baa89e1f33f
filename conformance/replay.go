package conformance

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Lookup finds a protocol by name (spec/all.Lookup).
type Lookup func(name string) (spec.Protocol, bool)

// Trace is a parsed trace.
type Trace struct {
	Header  trace.Header
	Records []trace.Record
}

// Parse reads a trace.
func Parse(r io.Reader) (*Trace, error) {
	h, recs, err := trace.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return &Trace{Header: h, Records: recs}, nil
}

// LoadPartial reads the trace in file path as far as it is readable: a
// trace cut short (its process killed mid-write) still shows what it
// recorded. It returns a nil Trace only if there is no header; with a
// non-nil Trace and an error, the records are those before the error.
func LoadPartial(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	h, recs, err := trace.ReadAll(f)
	if err != nil && h.Format == 0 {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	t := &Trace{Header: h, Records: recs}
	if err != nil {
		return t, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Load reads the trace in file path.
func Load(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	t, err := Parse(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// NodeRecords returns the input and output records of node, in order.
func (t *Trace) NodeRecords(node string) []trace.Record {
	var out []trace.Record
	for _, r := range t.Records {
		if r.Node == node && (r.In != "" || r.Out != "") {
			out = append(out, r)
		}
	}
	return out
}

func (t *Trace) machine(node string, lookup Lookup) (spec.Machine, error) {
	ni, ok := t.Header.Node(node)
	if !ok {
		return nil, fmt.Errorf("conformance: no node %q in the trace header", node)
	}
	p, ok := lookup(ni.Protocol)
	if !ok {
		return nil, fmt.Errorf("conformance: unknown protocol %q", ni.Protocol)
	}
	cfg := []byte(ni.Config)
	if len(cfg) == 0 {
		cfg = []byte("{}")
	}
	m, err := p.New(ni.Role, cfg)
	if err != nil {
		return nil, fmt.Errorf("conformance: node %s: %w", node, err)
	}
	return m, nil
}

// Divergence is the first difference between a trace and a replay.
type Divergence struct {
	Node    string
	Against string // "spec" or "impl"
	Index   int    // position among the node's records
	Context []trace.Record
	Want    *trace.Record // nil: the replay did more than the trace
	Got     *trace.Record // nil: the replay stopped short
	Note    string
}

func (d *Divergence) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "conformance: node %s diverges against %s at record %d", d.Node, d.Against, d.Index)
	if d.Note != "" {
		fmt.Fprintf(&b, ": %s", d.Note)
	}
	for _, r := range d.Context {
		fmt.Fprintf(&b, "\n    ok    %s", line(&r))
	}
	fmt.Fprintf(&b, "\n    want  %s\n    got   %s", line(d.Want), line(d.Got))
	if d.Want != nil && d.Got != nil {
		fmt.Fprintf(&b, "\n    diff (-want +got):\n%s", cmp.Diff(*d.Want, *d.Got))
	}
	return b.String()
}

func line(r *trace.Record) string {
	if r == nil {
		return "(nothing)"
	}
	b, _ := json.Marshal(r)
	s := string(b)
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return s
}

// compare reports the first difference between want and got.
func compare(node, against string, want, got []trace.Record) error {
	n := min(len(want), len(got))
	for i := 0; i < n; i++ {
		if !cmp.Equal(want[i], got[i]) {
			return divergence(node, against, want, i, &want[i], &got[i], "")
		}
	}
	switch {
	case len(got) < len(want):
		return divergence(node, against, want, n, &want[n], nil, "the replay stopped short")
	case len(got) > len(want):
		return divergence(node, against, want, n, nil, &got[n], "the replay did more than the trace")
	}
	return nil
}

func divergence(node, against string, want []trace.Record, i int, w, g *trace.Record, note string) *Divergence {
	return &Divergence{Node: node, Against: against, Index: i, Context: want[max(0, i-3):i], Want: w, Got: g, Note: note}
}

// ReplaySpec replays node's inputs against a fresh pure machine and
// compares what it does with the trace. A "start" input builds a new
// machine, so crashes and restarts replay too.
func ReplaySpec(t *Trace, node string, lookup Lookup) error {
	want := t.NodeRecords(node)
	epoch := spec.Time(t.Header.Epoch)
	var got []trace.Record
	var m spec.Machine
	var out []spec.Output
	for _, r := range want {
		if r.In == "" {
			continue
		}
		in, err := r.Input()
		if err != nil {
			return fmt.Errorf("conformance: node %s: %w", node, err)
		}
		if in.Kind == spec.InStart || m == nil {
			if m, err = t.machine(node, lookup); err != nil {
				return err
			}
		}
		now := epoch + spec.Time(r.T)
		got = append(got, trace.FromInput(epoch, now, node, in))
		out = m.Step(now, in, out[:0])
		for _, o := range out {
			got = append(got, trace.FromOutput(epoch, now, node, o))
			if o.Kind == spec.OutExit {
				m = nil
				break
			}
		}
	}
	return compare(node, "spec", want, got)
}

// Nodes lists the nodes of the trace that have records.
func (t *Trace) Nodes() []string {
	var names []string
	for _, n := range t.Header.Nodes {
		if len(t.NodeRecords(n.Name)) > 0 {
			names = append(names, n.Name)
		}
	}
	return names
}
