package main

import (
	"context"
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

func traceShow(ctx context.Context, e *env, args []string) error {
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
	f := timeline.Filter{Logs: *logs, From: int64(*from), To: int64(*to), Limit: *limit}
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
	if *nodes != "" {
		f.Nodes = strings.Split(*nodes, ",")
	}
	if *match != "" {
		re, err := regexp.Compile(*match)
		if err != nil {
			return usagef("trace show: --match: %v", err)
		}
		f.Match = re
	}
	t, err := conformance.Load(pos[0])
	if err != nil {
		return err
	}
	d := timeline.Build(t.Header, t.Records, f, describe)
	if err := d.Text(e.stdout); err != nil {
		return err
	}
	if *svg != "" {
		out, err := os.Create(*svg)
		if err != nil {
			return err
		}
		defer out.Close()
		if err := d.SVG(out); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "wrote %s (%d steps)\n", *svg, len(d.Steps))
	}
	return nil
}

func tracePcap(ctx context.Context, e *env, args []string) error {
	fs := e.flags("trace pcap", "TRACE OUT.pcapng", "Writes the packets a trace carried as pcapng. A simulator trace gives every packet\nand its fate (interface 1 holds the dropped ones); a socket run's trace gives the\ndatagrams and stream bytes that crossed its node's sockets.")
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	t, err := conformance.Load(pos[0])
	if err != nil {
		return err
	}
	return writePcap(pos[1], func(w *pcap.Writer) error {
		if err := pcap.FromTrace(w, t.Header, t.Records); err != nil {
			return err
		}
		// Only packets whose ends are of different IP families are left
		// out; say so rather than hand over a capture that looks complete.
		if n := w.Skipped(); n > 0 {
			fmt.Fprintf(e.stderr, "netspec: trace pcap: left out %d packet(s) between an IPv4 and an IPv6 address\n", n)
		}
		return nil
	})
}

// writePcap creates path and fills it with fill.
func writePcap(path string, fill func(*pcap.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
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
