package main

import (
	"encoding/json"
	"errors"
	"flag"
	"io"
	"io/fs"
	"os"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// traceFile is a socket verb's --trace FILE: the node's inputs and
// outputs as an NDJSON trace, which 'netspec trace show' and 'trace pcap'
// read and 'netspec replay' replays. The file is opened when the flag is
// parsed, so a path that cannot be written is a bad command line, but
// emptied only when the node starts: a command line refused after the
// flag leaves an existing trace as it was (and creates none).
type traceFile struct {
	f       *os.File
	created bool // the flag created the file
	used    bool // a node records into it
}

func (t *traceFile) String() string {
	if t.f == nil {
		return ""
	}
	return t.f.Name()
}

func (t *traceFile) Set(path string) error {
	t.Close()
	if path == "" {
		return errors.New("a file name is needed")
	}
	_, err := os.Stat(path)
	created := errors.Is(err, fs.ErrNotExist)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	t.f, t.created, t.used = f, created, false
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
		if fi, err := t.f.Stat(); err == nil && fi.Mode().IsRegular() {
			_ = t.f.Truncate(0) // the previous trace is replaced, not appended to
			_, _ = t.f.Seek(0, io.SeekStart)
		}
		t.used = true
		b, _ := json.Marshal(cfg) // configs are plain data: simulator traces hold them too
		o.Trace, o.TraceNode = t.f, role
		o.TraceHeader = trace.Header{Format: trace.Format, Protocol: protocol, Nodes: []trace.NodeInfo{{Name: role, Role: role, Config: b}}}
	}
	return impl.New(m, o)
}

// Is reports whether the trace file is the file at path: a trace written
// over the file a command serves or saves would destroy it.
func (t *traceFile) Is(path string) bool {
	if t.f == nil || path == "" {
		return false
	}
	a, err1 := t.f.Stat()
	b, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// Close closes the file, if any, and removes it if the flag created it
// and no node recorded into it.
func (t *traceFile) Close() {
	if t.f == nil {
		return
	}
	t.f.Close()
	if t.created && !t.used {
		os.Remove(t.f.Name())
	}
	t.f = nil
}
