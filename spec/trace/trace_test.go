package trace_test

import (
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Every input survives a trip through a record and back.
func TestInputRoundTrip(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.2:4000")
	inputs := []spec.Input{
		{Kind: spec.InStart},
		{Kind: spec.InStop},
		{Kind: spec.InBound, Sock: 3, Addr: a},
		{Kind: spec.InBound, Sock: 3, Err: "address already in use"},
		{Kind: spec.InDatagram, Sock: 1, Addr: a, Data: []byte("text\n")},
		{Kind: spec.InDatagram, Sock: 1, Addr: a, Data: []byte{0, 1, 2, 0xff}},
		{Kind: spec.InDatagram, Sock: 1, Addr: a, Local: netip.MustParseAddr("10.0.0.9"), Data: []byte("to a second address")},
		{Kind: spec.InDatagram, Sock: 1, Addr: a, Local: netip.MustParseAddr("fe80::1"), Data: []byte("v6")},
		{Kind: spec.InAccepted, Sock: 2, Stream: spec.AcceptedStream | 4, Addr: a},
		{Kind: spec.InConnected, Stream: 9, Addr: a},
		{Kind: spec.InStreamData, Stream: 9, Data: []byte("\x00binary")},
		{Kind: spec.InStreamWritable, Stream: 9},
		{Kind: spec.InStreamClosed, Stream: 9},
		{Kind: spec.InStreamClosed, Stream: 9, Err: "connection reset by peer"},
		{Kind: spec.InTimer, Timer: 77},
		{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"a", "b"}, Data: []byte("x")}},
	}
	var buf bytes.Buffer
	w, err := trace.NewWriter(&buf, trace.Header{Protocol: "p"})
	if err != nil {
		t.Fatal(err)
	}
	for i, in := range inputs {
		if err := w.Write(trace.FromInput(spec.SimEpoch, spec.SimEpoch+spec.Time(i), "n", in)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	_, recs, err := trace.ReadAll(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range recs {
		got, err := r.Input()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(inputs[i], got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
			t.Errorf("input %d changed (-want +got):\n%s", i, diff)
		}
	}
}

func TestOutputRecords(t *testing.T) {
	at := spec.SimEpoch + 5
	tests := []struct {
		out  spec.Output
		want trace.Record
	}{
		{spec.SetTimer(3, at+100), trace.Record{T: 5, Node: "n", Out: "set-timer", Timer: 3, At: 105}},
		{spec.Emit(spec.Event{Name: "stats", Value: struct{ N int }{7}}), trace.Record{T: 5, Node: "n", Out: "event", Name: "stats", Value: []byte(`{"N":7}`)}},
		{spec.Debug("drop", slog.String("why", "short")), trace.Record{T: 5, Node: "n", Out: "log", Level: "DEBUG", Msg: "drop", Attrs: []string{"why=short"}}},
		{spec.Exit("boom"), trace.Record{T: 5, Node: "n", Out: "exit", Err: "boom"}},
		{spec.SendFrom(2, netip.MustParseAddr("127.0.0.2"), netip.MustParseAddrPort("127.0.0.1:9"), []byte("hi")), trace.Record{T: 5, Node: "n", Out: "send", Sock: 2, Addr: "127.0.0.1:9", Local: "127.0.0.2", Text: "hi"}},
		{spec.Send(2, netip.MustParseAddrPort("127.0.0.1:9"), []byte("hi")), trace.Record{T: 5, Node: "n", Out: "send", Sock: 2, Addr: "127.0.0.1:9", Text: "hi"}},
	}
	for _, tc := range tests {
		got := trace.FromOutput(spec.SimEpoch, at, "n", tc.out)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("%v (-want +got):\n%s", tc.out.Kind, diff)
		}
	}
}

func TestReaderRejects(t *testing.T) {
	tests := map[string]string{
		"empty":          "",
		"not json":       "hello\n",
		"future format":  `{"format":2,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n",
		"unknown field":  `{"format":1,"bogus":1}` + "\n",
		"two kinds":      `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n" + `{"t":0,"in":"start","out":"exit"}` + "\n",
		"no kind":        `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n" + `{"t":0}` + "\n",
		"line too long":  `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n" + `{"t":0,"in":"start","text":"` + strings.Repeat("x", trace.MaxLine) + `"}` + "\n",
		"trailing stuff": `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]} {}` + "\n",
	}
	for name, in := range tests {
		_, _, err := trace.ReadAll(strings.NewReader(in))
		if err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	_, _, err := trace.ReadAll(strings.NewReader(""))
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty trace: %v", err)
	}
}

// FuzzReader: any bytes either read as a trace whose records convert, or
// fail cleanly; nothing panics.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"a","role":"server","config":{}}]}
{"t":0,"node":"a","in":"datagram","sock":1,"addr":"10.0.0.1:7","b64":"AAE="}
{"t":1,"node":"a","out":"send","sock":1,"addr":"10.0.0.1:7","text":"hi"}
`))
	f.Add([]byte(`{"format":1}` + "\n" + `{"t":-1,"in":"command","name":"x","args":["a"],"b64":"!!"}`))
	f.Add([]byte(`{"format":1}` + "\n" + `{"t":0,"in":"bound","addr":"[::1]:99999"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, err := trace.ReadAll(bytes.NewReader(b))
		if err != nil {
			return
		}
		_, _ = h.Node("a")
		for _, r := range recs {
			if r.In != "" {
				_, _ = r.Input()
			}
			_, _ = r.Payload()
		}
	})
}
