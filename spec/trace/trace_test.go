package trace_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
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
	const hdr = `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n"
	tests := []struct {
		name, in string
		want     error  // errors.Is target, if any
		msg      string // the error must say this
	}{
		{name: "empty", in: "", want: io.ErrUnexpectedEOF},
		{name: "not json", in: "hello\n"},
		{name: "future format", in: `{"format":3,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n", want: trace.ErrFormat},
		// A later format's new field must not hide that the format is new.
		{name: "future format, new field", in: `{"format":3,"protocol":"p","source":"sim","epoch":0,"nodes":[],"clock":"tai"}` + "\n", want: trace.ErrFormat},
		{name: "no format", in: `{"protocol":"p"}` + "\n", want: trace.ErrFormat},
		{name: "unknown field", in: `{"format":1,"bogus":1}` + "\n", msg: "bogus"},
		{name: "two kinds", in: hdr + `{"t":0,"in":"start","out":"exit"}` + "\n"},
		{name: "no kind", in: hdr + `{"t":0}` + "\n"},
		{name: "line too long", in: hdr + `{"t":0,"in":"start","text":"` + strings.Repeat("x", trace.MaxLine) + `"}` + "\n"},
		{name: "trailing stuff", in: `{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]} {}` + "\n"},
		{name: "bad b64", in: hdr + `{"t":0,"in":"start"}` + "\n\n" + `{"t":1,"node":"s","in":"datagram","b64":"AAEx%%%"}` + "\n", msg: "line 4: bad b64 payload"},
		{name: "jitter in format 1", in: hdr + `{"t":0,"net":"deliver","jitter":5}` + "\n", msg: "line 2"},
	}
	for _, tc := range tests {
		_, _, err := trace.ReadAll(strings.NewReader(tc.in))
		switch {
		case err == nil:
			t.Errorf("%s: read without error", tc.name)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		case !strings.Contains(err.Error(), tc.msg):
			t.Errorf("%s: %q does not say %q", tc.name, err, tc.msg)
		}
	}
}

// Traces of every format from MinFormat on still read; format 2 carries
// a packet's jitter.
func TestReaderFormats(t *testing.T) {
	tests := []struct {
		in         string
		jitter     int64
		wantFormat int
	}{
		{`{"format":1,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n" + `{"t":1,"net":"deliver","delay":9}` + "\n", 0, 1},
		{`{"format":2,"protocol":"p","source":"sim","epoch":0,"nodes":[]}` + "\n" + `{"t":1,"net":"deliver","delay":9,"jitter":7}` + "\n", 7, 2},
	}
	for _, tc := range tests {
		h, recs, err := trace.ReadAll(strings.NewReader(tc.in))
		if err != nil {
			t.Fatalf("format %d: %v", tc.wantFormat, err)
		}
		if h.Format != tc.wantFormat || len(recs) != 1 || recs[0].Delay != 9 || recs[0].Jitter != tc.jitter {
			t.Errorf("format %d: read %+v %+v", tc.wantFormat, h, recs)
		}
	}
	var buf bytes.Buffer
	w, err := trace.NewWriter(&buf, trace.Header{Protocol: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(trace.Record{Net: "deliver", Delay: 9, Jitter: 7}); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	h, recs, err := trace.ReadAll(&buf)
	if err != nil || h.Format != trace.Format || recs[0].Jitter != 7 {
		t.Fatalf("written trace reads back as %+v %+v: %v", h, recs, err)
	}
}

// FuzzReader: any bytes either read as a trace or fail cleanly, and what
// reads is exactly what the Writer writes back: the header and records,
// written and read again, are equal to those first read (JSON values
// compared as JSON, and the header at the Format the Writer writes). A
// record that read carries a payload that decodes, and the records read
// are no larger than a small multiple of the input, the bound MaxLine
// exists to keep.
func FuzzReader(f *testing.F) {
	f.Add([]byte(`{"format":1,"protocol":"echo","source":"sim","epoch":0,"nodes":[{"name":"a","role":"server","config":{}}]}
{"t":0,"node":"a","in":"datagram","sock":1,"addr":"10.0.0.1:7","b64":"AAE="}
{"t":1,"node":"a","out":"send","sock":1,"addr":"10.0.0.1:7","text":"hi"}
`))
	f.Add([]byte(`{"format":1}` + "\n" + `{"t":-1,"in":"command","name":"x","args":["a"],"b64":"!!"}`))
	f.Add([]byte(`{"format":1}` + "\n" + `{"t":0,"in":"bound","addr":"[::1]:99999"}`))
	f.Add([]byte(`{"format":2,"protocol":"chat","source":"sim","seed":7,"epoch":5,"nodes":[{"name":"s","role":"server","addr":"10.0.0.1","config":{ "port" : 7 },"sim":null}],"sim":{"loss":0.1}}` + "\n\n" +
		`{"t":3,"net":"deliver","from":"10.0.0.2:9","addr":"10.0.0.1:7","id":4,"len":2,"delay":9,"jitter":7,"text":"\u00e9\n"}` + "\n" +
		`{"t":4,"node":"s","out":"event","name":"joined","value":{"n": [1, 2]},"msg":"\ud800"}` + "\n" +
		`{"t":5,"node":"s","out":"log","level":"INFO","msg":"x","attrs":[],"args":null}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, err := trace.ReadAll(bytes.NewReader(b))
		if err != nil {
			return
		}
		_, _ = h.Node("a")
		for i, r := range recs {
			if r.In != "" {
				_, _ = r.Input()
			}
			if _, err := r.Payload(); err != nil {
				t.Fatalf("record %d read without error but its payload does not decode: %v", i, err)
			}
		}

		var buf bytes.Buffer
		w, err := trace.NewWriter(&buf, h)
		if err != nil {
			t.Fatalf("header that read does not write: %v", err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		headerLen := buf.Len()
		for i, r := range recs {
			if err := w.Write(r); err != nil {
				t.Fatalf("record %d that read does not write: %v", i, err)
			}
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		// A decoded string holds at most 3 bytes (U+FFFD) per input byte
		// and a record's encoding adds only `"t":0,` and a newline to
		// the shortest record that reads, so 3x bounds the records.
		if n := buf.Len() - headerLen; n > 3*len(b) {
			t.Fatalf("%d records read from %d bytes write back as %d bytes", len(recs), len(b), n)
		}
		written := buf.String()
		h2, recs2, err := trace.ReadAll(&buf)
		if err != nil {
			t.Fatalf("written trace does not read: %v\n%s", err, written)
		}
		h.Format = trace.Format
		if d := cmp.Diff(h, h2, jsonEqual, equateEmpty); d != "" {
			t.Fatalf("header changed on a write and read (-read +reread):\n%s", d)
		}
		if d := cmp.Diff(recs, recs2, jsonEqual, equateEmpty); d != "" {
			t.Fatalf("records changed on a write and read (-read +reread):\n%s", d)
		}
	})
}

// jsonEqual compares raw JSON as values: the Writer compacts it, and an
// absent value writes as null.
var jsonEqual = cmp.Comparer(func(a, b json.RawMessage) bool {
	return bytes.Equal(compactJSON(a), compactJSON(b))
})

// equateEmpty takes a nil slice for an empty one (the Writer leaves out
// an empty "args" and writes "nodes":[] for none), but not for raw JSON,
// which jsonEqual compares.
var equateEmpty = cmp.FilterPath(func(p cmp.Path) bool {
	return p.Last().Type() != reflect.TypeFor[json.RawMessage]()
}, cmpopts.EquateEmpty())

func compactJSON(m json.RawMessage) []byte {
	if len(m) == 0 {
		return []byte("null")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, m); err != nil {
		return m
	}
	return buf.Bytes()
}
