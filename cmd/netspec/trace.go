package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"

	"github.com/netspec/netspec/cmd/netspec/timeline"
	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/pcap"
	"github.com/netspec/netspec/spec/all"
)

func traceGroup() *group {
	return &group{
		name: "trace",
		help: "look at a recorded trace: a sequence diagram, or a pcapng for Wireshark",
		verbs: []verb{
			{"show", "print a per-node sequence diagram (or draw it as SVG)", traceShow},
			{"pcap", "write the packets of a trace as pcapng", tracePcap},
		},
	}
}

func describe(protocol string, payload []byte) string {
	p, ok := all.Lookup(protocol)
	if !ok || p.Describe == nil {
		return ""
	}
	return p.Describe(payload)
}

func traceShow(ctx context.Context, e *env, args []string) (err error) {
	fs := e.flags("trace show", "FILE [flags]", "Prints a trace as a sequence diagram: a lifeline per node, a line per input\nor output, an arrow per packet the network delivered, a broken arrow per loss.")
	nodes := fs.String("node", "", "only these nodes (`LIST`, comma-separated)")
	match := fs.String("match", "", "only lines matching `REGEXP` (e.g. a protocol message name)")
	only := fs.String("only", "all", "what to draw: all, net (packet arrows) or io (inputs and outputs)")
	logs := fs.Bool("logs", false, "include log records")
	from := fs.Duration("from", 0, "start at this time since the trace began")
	to := fs.Duration("to", 0, "stop at this time (0: the end)")
	limit := fs.Int("limit", 0, "at most `N` lines (0: all)")
	svg := fs.String("svg", "", "also draw the diagram as SVG into `FILE`")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch {
	case *limit < 0:
		return usagef("trace show: --limit %d: want 0 (all) or more", *limit)
	case *from < 0:
		return usagef("trace show: --from %v: want a time since the trace began, 0 or more", *from)
	case *to < 0:
		return usagef("trace show: --to %v: want a time since the trace began, 0 or more", *to)
	case *to > 0 && *to < *from:
		return usagef("trace show: --to %v is before --from %v", *to, *from)
	}
	// Unset, the window is unbounded, so records before the epoch show too.
	f := timeline.Filter{Logs: *logs, Limit: *limit,
		From: int64(*from), HasFrom: set["from"],
		To: int64(*to), HasTo: *to > 0}
	switch *only {
	case "all":
		f.Net, f.IO = true, true
	case "net":
		f.Net = true
	case "io":
		f.IO = true
	default:
		return usagef("trace show: --only is all, net or io, not %q", *only)
	}
	if set["node"] {
		for _, n := range strings.Split(*nodes, ",") {
			n = strings.TrimSpace(n)
			if n == "" {
				return usagef("trace show: --node %q has an empty name", *nodes)
			}
			f.Nodes = append(f.Nodes, n)
		}
	}
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			return usagef("trace show: --match: %v", err)
		}
		f.Match = re
	}
	if err := checkOutFiles("trace show", []string{"--svg", *svg}, pos[0]); err != nil {
		return err
	}
	t, cut := conformance.LoadPartial(pos[0])
	if t == nil {
		return fmt.Errorf("trace show: %w", cut)
	}
	// A name the trace does not have would draw nothing and read as a
	// node that did nothing.
	if len(f.Nodes) > 0 {
		have := traceNodes(t)
		known := make(map[string]bool, len(have))
		for _, n := range have {
			known[n] = true
		}
		for _, n := range f.Nodes {
			if !known[n] {
				return usagef("trace show: %s has no node %q (it has %s)", pos[0], timeline.Clean(n), timeline.Clean(listNames(have)))
			}
		}
	}
	d := timeline.Build(t.Header, t.Records, f, describe)
	if len(d.Lanes) > timeline.MaxLanes {
		return usagef("trace show: %d nodes to draw, more than the %d a diagram holds: pick some with --node", len(d.Lanes), timeline.MaxLanes)
	}
	// Open the SVG first: a path that cannot be written fails before
	// anything is printed.
	var out *os.File
	if *svg != "" {
		if out, err = os.Create(*svg); err != nil {
			return fmt.Errorf("trace show: %w", err)
		}
		// Leave no half-written picture behind.
		defer func() {
			if err != nil {
				out.Close()
				os.Remove(*svg)
			}
		}()
	}
	if err := d.Text(e.stdout); err != nil {
		return err
	}
	if len(d.Steps) == 0 {
		// As grep finds nothing: an exit a script can test, and no
		// empty picture.
		return fmt.Errorf("trace show: nothing to draw: none of the %d records passed the filters", len(t.Records))
	}
	if out != nil {
		if err := d.SVG(out); err != nil {
			return fmt.Errorf("trace show: %s: %w", *svg, err)
		}
		if err := out.Close(); err != nil {
			return fmt.Errorf("trace show: %w", err)
		}
		fmt.Fprintf(e.stderr, "wrote %s (%d steps)\n", *svg, len(d.Steps))
	}
	if cut != nil {
		// Shown as far as it goes; the failure is still reported.
		return fmt.Errorf("trace show: %w (the %d records before it are shown)", cut, len(t.Records))
	}
	return nil
}

// traceNodes lists the nodes a trace names: its header's, then any that
// only records name (socket runs), in order.
func traceNodes(t *conformance.Trace) []string {
	var names []string
	seen := map[string]bool{}
	add := func(n string) {
		if n != "" && !seen[n] {
			seen[n] = true
			names = append(names, n)
		}
	}
	for _, n := range t.Header.Nodes {
		add(n.Name)
	}
	for _, r := range t.Records {
		add(r.Node)
	}
	return names
}

// listNames is names for a message, cut short if there are many.
func listNames(names []string) string {
	const most = 10
	if len(names) == 0 {
		return "none"
	}
	if len(names) > most {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:most], ", "), len(names)-most)
	}
	return strings.Join(names, ", ")
}

func tracePcap(ctx context.Context, e *env, args []string) error {
	fs := e.flags("trace pcap", "TRACE OUT.pcapng", "Writes the packets a trace carried as pcapng. A simulator trace gives every packet\nand its fate (interface 1 holds the dropped ones); a socket run's trace gives the\ndatagrams and stream bytes that crossed its node's sockets.")
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if err := checkOutFiles("trace pcap", []string{"OUT", pos[1]}, pos[0]); err != nil {
		return err
	}
	t, err := conformance.Load(pos[0])
	if err != nil {
		return fmt.Errorf("trace pcap: %w", err)
	}
	return writePcapAs("trace pcap", pos[1], func(w *pcap.Writer) error {
		if err := pcap.FromTrace(w, t.Header, t.Records); err != nil {
			return err
		}
		// Say what was left out rather than hand over a capture that
		// looks complete.
		if n := w.Skipped(); n > 0 {
			fmt.Fprintf(e.stderr, "netspec: trace pcap: left out %d packet(s) with an end without an address, or between an IPv4 and an IPv6 address\n", n)
		}
		return nil
	})
}

// writePcapAs creates path and fills it with fill; errors name verb.
func writePcapAs(verb, path string, fill func(*pcap.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("%s: %w", verb, err)
	}
	w, err := pcap.NewWriter(f)
	if err != nil {
		f.Close()
		return err
	}
	ferr := fill(w)
	cerr := w.Close()
	if err := f.Close(); err != nil && cerr == nil {
		cerr = err
	}
	if ferr != nil {
		return ferr
	}
	return cerr
}
