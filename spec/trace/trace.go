package trace

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"unicode/utf8"
)

// Format is the trace format version this package writes. Format 2 added
// Record.Jitter; the reader is strict about unknown fields, so a reader of
// format 1 must refuse such a trace by its version rather than trip over
// the field.
const Format = 2

// MinFormat is the oldest format this package still reads.
const MinFormat = 1

// MaxLine bounds one line of a trace, so a hostile file cannot make a
// reader allocate without limit.
const MaxLine = 16 << 20

// Header is the first line of a trace.
type Header struct {
	Format   int    `json:"format"`
	Protocol string `json:"protocol"`
	// Source says who recorded the trace: "sim" or "impl".
	Source string `json:"source"`
	// Seed is the simulator's seed (zero for socket runs).
	Seed uint64 `json:"seed,omitempty"`
	// Epoch is the spec.Time that record time 0 stands for.
	Epoch int64      `json:"epoch"`
	Nodes []NodeInfo `json:"nodes"`
	// Sim is the simulator's configuration, when Source is "sim".
	Sim json.RawMessage `json:"sim,omitempty"`
}

// NodeInfo describes one node of a trace: enough to rebuild its machine.
type NodeInfo struct {
	Name     string          `json:"name"`
	Protocol string          `json:"protocol,omitempty"` // defaults to the header's
	Role     string          `json:"role"`
	Addr     string          `json:"addr,omitempty"` // the node's IP, if it has one
	Config   json.RawMessage `json:"config"`
	// Sim is the simulator's settings for this node (its own link, a
	// delayed start), when they differ from the network's.
	Sim json.RawMessage `json:"sim,omitempty"`
}

// Node returns the node called name.
func (h *Header) Node(name string) (NodeInfo, bool) {
	for _, n := range h.Nodes {
		if n.Name == name {
			if n.Protocol == "" {
				n.Protocol = h.Protocol
			}
			return n, true
		}
	}
	return NodeInfo{}, false
}

// Record is one line after the header: an input to a node (In set), an
// output of a node (Out set) or, in simulator traces, the fate of a packet
// on the network (Net set). Which other fields are used depends on the
// kind, mirroring spec.Input and spec.Output.
type Record struct {
	// T is nanoseconds since the header's Epoch.
	T      int64  `json:"t"`
	Node   string `json:"node,omitempty"`
	In     string `json:"in,omitempty"`
	Out    string `json:"out,omitempty"`
	Net    string `json:"net,omitempty"`
	Proto  string `json:"proto,omitempty"`
	Sock   uint32 `json:"sock,omitempty"`
	Stream uint64 `json:"stream,omitempty"`
	Timer  uint64 `json:"timer,omitempty"`
	// From is the source of a packet in Net records.
	From string `json:"from,omitempty"`
	Addr string `json:"addr,omitempty"`
	// Local is a datagram's local address (spec.Input.Local,
	// spec.Output.Local), if it has one.
	Local string `json:"local,omitempty"`
	// At is a timer deadline, in nanoseconds since Epoch.
	At int64 `json:"at,omitempty"`
	// ID numbers packets in Net records.
	ID uint64 `json:"id,omitempty"`
	// Len is the size of a packet in Net records.
	Len int `json:"len,omitempty"`
	// Delay is extra queueing or jitter delay in Net records, in ns.
	Delay int64 `json:"delay,omitempty"`
	// Jitter is the part of Delay the fault model added at random, in ns
	// (format 2 on).
	Jitter int64 `json:"jitter,omitempty"`
	// Payload: Text if it is printable UTF-8, else B64.
	Text  string          `json:"text,omitempty"`
	B64   string          `json:"b64,omitempty"`
	Err   string          `json:"err,omitempty"`
	Name  string          `json:"name,omitempty"`
	Args  []string        `json:"args,omitempty"`
	Value json.RawMessage `json:"value,omitempty"`
	Level string          `json:"level,omitempty"`
	Msg   string          `json:"msg,omitempty"`
	Attrs []string        `json:"attrs,omitempty"`
}

// SetPayload stores b as Text when it reads as text, else as B64.
func (r *Record) SetPayload(b []byte) {
	r.Text, r.B64 = "", ""
	if len(b) == 0 {
		return
	}
	if printable(b) {
		r.Text = string(b)
		return
	}
	r.B64 = base64.StdEncoding.EncodeToString(b)
}

// Payload returns the bytes SetPayload stored.
func (r *Record) Payload() ([]byte, error) {
	if r.B64 != "" {
		b, err := base64.StdEncoding.DecodeString(r.B64)
		if err != nil {
			return nil, fmt.Errorf("trace: bad b64 payload: %w", err)
		}
		return b, nil
	}
	if r.Text != "" {
		return []byte(r.Text), nil
	}
	return nil, nil
}

func printable(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// Writer writes a trace as NDJSON.
type Writer struct {
	w   *bufio.Writer
	enc *json.Encoder
	err error
}

// NewWriter writes h as the first line of a trace on w.
func NewWriter(w io.Writer, h Header) (*Writer, error) {
	h.Format = Format
	if h.Nodes == nil {
		h.Nodes = []NodeInfo{}
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	tw := &Writer{w: bw, enc: json.NewEncoder(bw)}
	tw.enc.SetEscapeHTML(false)
	if err := tw.enc.Encode(h); err != nil {
		return nil, fmt.Errorf("trace: write header: %w", err)
	}
	return tw, nil
}

// Write appends one record. Errors are sticky and reported by Flush too.
func (w *Writer) Write(r Record) error {
	if w.err != nil {
		return w.err
	}
	if err := w.enc.Encode(r); err != nil {
		w.err = fmt.Errorf("trace: write record: %w", err)
	}
	return w.err
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if err := w.w.Flush(); err != nil {
		w.err = fmt.Errorf("trace: flush: %w", err)
	}
	return w.err
}

// Reader reads a trace.
type Reader struct {
	Header Header
	s      *bufio.Scanner
	line   int
}

// ErrFormat reports a trace this package cannot read.
var ErrFormat = errors.New("trace: unsupported format")

// NewReader reads the header of the trace on r.
func NewReader(r io.Reader) (*Reader, error) {
	s := bufio.NewScanner(r)
	s.Buffer(make([]byte, 0, 64<<10), MaxLine)
	tr := &Reader{s: s}
	line, err := tr.next()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("trace: empty: %w", io.ErrUnexpectedEOF)
		}
		return nil, err
	}
	// The version first: a later format may add fields the strict decode
	// below would report as unknown, hiding the real reason.
	var v struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, fmt.Errorf("trace: header: %w", err)
	}
	if v.Format < MinFormat || v.Format > Format {
		return nil, fmt.Errorf("%w: version %d, want %d to %d", ErrFormat, v.Format, MinFormat, Format)
	}
	if err := strictUnmarshal(line, &tr.Header); err != nil {
		return nil, fmt.Errorf("trace: header: %w", err)
	}
	return tr, nil
}

func (r *Reader) next() ([]byte, error) {
	for r.s.Scan() {
		r.line++
		line := bytes.TrimSpace(r.s.Bytes())
		if len(line) == 0 {
			continue
		}
		return line, nil
	}
	if err := r.s.Err(); err != nil {
		return nil, fmt.Errorf("trace: line %d: %w", r.line+1, err)
	}
	return nil, io.EOF
}

// Next returns the next record, or io.EOF at the end.
func (r *Reader) Next() (Record, error) {
	line, err := r.next()
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := strictUnmarshal(line, &rec); err != nil {
		return Record{}, fmt.Errorf("trace: line %d: %w", r.line, err)
	}
	if n := btoi(rec.In != "") + btoi(rec.Out != "") + btoi(rec.Net != ""); n != 1 {
		return Record{}, fmt.Errorf("trace: line %d: record needs exactly one of in, out, net", r.line)
	}
	if rec.Jitter != 0 && r.Header.Format < 2 {
		return Record{}, fmt.Errorf("trace: line %d: unknown field \"jitter\" in a format %d trace", r.line, r.Header.Format)
	}
	// A payload that does not decode would otherwise read as empty to
	// every tool, with no hint where the trace is broken.
	if rec.B64 != "" {
		if _, err := base64.StdEncoding.DecodeString(rec.B64); err != nil {
			return Record{}, fmt.Errorf("trace: line %d: bad b64 payload: %w", r.line, err)
		}
	}
	return rec, nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}

// ReadAll reads a whole trace.
func ReadAll(r io.Reader) (Header, []Record, error) {
	tr, err := NewReader(r)
	if err != nil {
		return Header{}, nil, err
	}
	var recs []Record
	for {
		rec, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tr.Header, recs, nil
		}
		if err != nil {
			return tr.Header, recs, err
		}
		recs = append(recs, rec)
	}
}
