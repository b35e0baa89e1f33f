package main

import (
	"encoding/json"
	"flag"
	"os"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// traceFile is a socket verb's --trace FILE: the node's inputs and
// outputs as an NDJSON trace, which 'netspec trace show' and 'trace pcap'
// read and 'netspec replay' replays. The file is created when the flag is
// parsed, so a path that cannot be written is a bad command line.
type traceFile struct{ f *os.File }

func (t *traceFile) String() string {
	if t.f == nil {
		return ""
	}
	return t.f.Name()
}

func (t *traceFile) Set(path string) error {
	if t.f != nil {
		t.f.Close()
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	t.f = f
	return nil
}

// traceFlag adds --trace to fs. Close the result when the command ends.
func traceFlag(fs *flag.FlagSet) *traceFile {
	t := &traceFile{}
	fs.Var(t, "trace", "record this node's inputs and outputs as an NDJSON trace in `FILE` (see netspec trace, replay)")
	return t
}

// New is impl.New, recording to the trace file if there is one: the node
// is role of protocol, built from cfg, as 'netspec replay' rebuilds it.
func (t *traceFile) New(protocol, role string, cfg any, m spec.Machine, o impl.Options) *impl.Runner {
	if t.f != nil {
		b, _ := json.Marshal(cfg) // configs are plain data: simulator traces hold them too
		o.Trace, o.TraceNode = t.f, role
		o.TraceHeader = trace.Header{Format: trace.Format, Protocol: protocol, Nodes: []trace.NodeInfo{{Name: role, Role: role, Config: b}}}
	}
	return impl.New(m, o)
}

// Close closes the file, if any.
func (t *traceFile) Close() {
	if t.f != nil {
		t.f.Close()
	}
}
