package conformance_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/trace"
)

// TestTamperedTracesDiverge changes a recorded socket trace in ways a
// replay must notice, each at a known record, against both the pure
// machine and impl: what the node did must match the trace in every
// field and in length, not just in the bytes it sent.
func TestTamperedTracesDiverge(t *testing.T) {
	const file, node = "testdata/echo-impl-server.ndjson", "server"
	// first returns the index in tr.Records of the node's first record
	// with output out.
	first := func(t *testing.T, tr *conformance.Trace, out string) int {
		for i, r := range tr.Records {
			if r.Node == node && r.Out == out {
				return i
			}
		}
		t.Fatalf("%s: the %s has no %q output", file, node, out)
		return -1
	}
	tests := []struct {
		name string
		// tamper changes tr and returns the changed record.
		tamper func(t *testing.T, tr *conformance.Trace) *trace.Record
		note   string // what the divergence must say
	}{
		{"timer deadline moved", func(t *testing.T, tr *conformance.Trace) *trace.Record {
			r := &tr.Records[first(t, tr, "set-timer")]
			r.At += int64(time.Millisecond)
			return r
		}, ""},
		{"datagram sent elsewhere", func(t *testing.T, tr *conformance.Trace) *trace.Record {
			r := &tr.Records[first(t, tr, "send")]
			r.Addr = "127.0.0.2" + r.Addr[strings.LastIndexByte(r.Addr, ':'):]
			return r
		}, ""},
		{"an output the node never makes", func(t *testing.T, tr *conformance.Trace) *trace.Record {
			last := tr.Records[len(tr.Records)-1]
			if last.Node != node || last.Out != "exit" {
				t.Fatalf("%s does not end with the %s's exit", file, node)
			}
			tr.Records = append(tr.Records, trace.Record{T: last.T, Node: node, Out: "event", Name: "goodbye"})
			return &tr.Records[len(tr.Records)-1]
		}, "the replay stopped short"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := conformance.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			bad := tc.tamper(t, tr)
			want := -1
			for i, r := range tr.NodeRecords(node) {
				if r.T == bad.T && r.Out == bad.Out && r.Name == bad.Name && r.Addr == bad.Addr && r.At == bad.At {
					want = i
					break
				}
			}
			var d *conformance.Divergence
			err = conformance.ReplaySpec(tr, node, all.Lookup)
			if !errors.As(err, &d) || d.Index != want || d.Against != "spec" || !strings.Contains(d.Note, tc.note) {
				t.Fatalf("spec replay: %v\nwant a divergence at record %d noting %q", err, want, tc.note)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err = conformance.ReplayImpl(ctx, tr, node, all.Lookup, conformance.ImplOptions{Timeout: 2 * time.Second})
			if !errors.As(err, &d) || d.Index != want || d.Against != "impl" || !strings.Contains(d.Note, tc.note) {
				t.Fatalf("impl replay: %v\nwant a divergence at record %d noting %q", err, want, tc.note)
			}
		})
	}
}
