package p2p

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"pgregory.net/rapid"
)

// parseAll feeds b to a parser in pieces of size step and collects what
// it yields.
func parseAll(side Side, b []byte, step int) ([]Msg, []error) {
	p := NewParser(side, Limits{Line: 256, JSON: 4096, Data: 1 << 16, Hashes: 64})
	var msgs []Msg
	var errs []error
	drain := func() {
		for {
			m, err := p.Next()
			if err == ErrMore {
				return
			}
			if err != nil {
				errs = append(errs, err)
				var pe *ParseError
				if errors.As(err, &pe) && pe.Fatal {
					return
				}
				continue
			}
			m.Data = append([]byte(nil), m.Data...)
			msgs = append(msgs, m)
		}
	}
	for i := 0; i < len(b); i += step {
		p.Feed(b[i:min(i+step, len(b))])
		drain()
	}
	return msgs, errs
}

func TestParseSeedMessages(t *testing.T) {
	peers := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:51000"), netip.MustParseAddrPort("10.0.0.3:51001")}
	tests := []struct {
		name string
		side Side
		in   string
		want []Msg
	}{
		{"CHEL", Requests, "CHEL 51000\r\n", []Msg{{Op: CHEL, Port: 51000}}},
		{"CHEL LF only", Requests, "CHEL 51000\n", []Msg{{Op: CHEL, Port: 51000}}},
		{"CHEL spaces", Requests, "CHEL \t 51000  \r\n", []Msg{{Op: CHEL, Port: 51000}}},
		{"SHEL compact", Responses, `SHEL 10000000 16384` + "\r\n" + `[["10.0.0.2",51000],["10.0.0.3",51001]]` + "\r\n",
			[]Msg{{Op: SHEL, FileSize: 10000000, ChunkSize: 16384, Peers: peers}}},
		{"SHEL python json, no CRLF", Responses, `SHEL 10000000 16384` + "\r\n" + `[["10.0.0.2", 51000], ["10.0.0.3", 51001]]`,
			[]Msg{{Op: SHEL, FileSize: 10000000, ChunkSize: 16384, Peers: peers}}},
		{"SHEL ip:port strings", Responses, "SHEL 5 1\r\n[\"10.0.0.2:51000\"]\r\n",
			[]Msg{{Op: SHEL, FileSize: 5, ChunkSize: 1, Peers: peers[:1]}}},
		{"SHEL bad entries skipped", Responses, "SHEL 5 1\r\n[[\"x\",1],[\"10.0.0.2\",70000],3]\r\n",
			[]Msg{{Op: SHEL, FileSize: 5, ChunkSize: 1, Skipped: 3}}},
		{"PHEL", Responses, "PHEL\r\n", []Msg{{Op: PHEL}}},
		{"CLREQ", Requests, "CLREQ\r\n", []Msg{{Op: CLREQ}}},
		{"CLRSP", Responses, "CLRSP\r\n[0,1, 5]\r\n", []Msg{{Op: CLRSP, Chunks: []int{0, 1, 5}}}},
		{"CLRSP empty", Responses, "CLRSP\r\n[]\r\nPHEL\r\n", []Msg{{Op: CLRSP}, {Op: PHEL}}},
		{"DREQ", Requests, "DREQ 7\r\n", []Msg{{Op: DREQ, Chunk: 7}}},
		{"DREQ 2^53-1, the largest value", Requests, "DREQ 9007199254740991\r\n", []Msg{{Op: DREQ, Chunk: 1<<53 - 1}}},
		{"CLRSP 2^53 skipped", Responses, "CLRSP\r\n[9007199254740991,9007199254740992]\r\n", []Msg{{Op: CLRSP, Chunks: []int{1<<53 - 1}, Skipped: 1}}},
		{"DATA", Responses, "DATA 32 5\r\nhello", []Msg{{Op: DATA, Offset: 32, Size: 5, Data: []byte("hello")}}},
		{"DATA then CRLF then DATA", Responses, "DATA 0 2\r\nab\r\nDATA 2 1\r\nc", []Msg{
			{Op: DATA, Size: 2, Data: []byte("ab")}, {Op: DATA, Offset: 2, Size: 1, Data: []byte("c")}}},
		{"DATA body holding CRLF", Responses, "DATA 0 4\r\n\r\n\r\n", []Msg{{Op: DATA, Size: 4, Data: []byte("\r\n\r\n")}}},
		{"CHECK", Requests, "CHECK 9E107D9D372BB6826BD81D3542A419D6\r\n", []Msg{{Op: CHECK, MD5: [16]byte{0x9e, 0x10, 0x7d, 0x9d, 0x37, 0x2b, 0xb6, 0x82, 0x6b, 0xd8, 0x1d, 0x35, 0x42, 0xa4, 0x19, 0xd6}}}},
		{"ERROR", Responses, "ERROR CHUNK_UNDOWNLOADED\r\n", []Msg{{Op: ERROR, Err: ErrChunkUndownloaded}}},
		{"ERROR with a detail line", Responses, "ERROR OFFSET_OVERFLOW\r\nchunk 900 is past the end\r\nPHEL\r\n",
			[]Msg{{Op: ERROR, Err: ErrOffsetOverflow}, {Op: PHEL}}},
		{"empty lines", Requests, "\r\n\r\nCLREQ\r\n\n", []Msg{{Op: CLREQ}}},
		{"XHEL with root", Responses, "XHEL 1 " + string(bytes.Repeat([]byte("ab"), 32)) + "\r\n",
			[]Msg{{Op: XHEL, Version: 1, Root: bytes.Repeat([]byte{0xab}, 32)}}},
		{"XHEL newer version", Requests, "XHEL 3 future-stuff\r\n", []Msg{{Op: XHEL, Version: 3}}},
		{"HAVE", Responses, "HAVE HASH 3 17\r\n", []Msg{{Op: HAVE, HaveHash: true, Chunks: []int{3, 17}}}},
		{"DANY", Requests, "DANY\r\n", []Msg{{Op: DANY}}},
		{"XHEL push", Requests, "XHEL 1 push\r\n", []Msg{{Op: XHEL, Version: 1, Push: true}}},
		{"PUSH", Responses, "PUSH 32 5\r\nhelloPUSH 0 1\r\nx", []Msg{
			{Op: PUSH, Offset: 32, Size: 5, Data: []byte("hello")}, {Op: PUSH, Size: 1, Data: []byte("x")}}},
		{"HASH", Responses, "HASH 1\r\n" + string(bytes.Repeat([]byte{7}, 32)), []Msg{{Op: HASH, Size: 1, Data: bytes.Repeat([]byte{7}, 32)}}},
	}
	for _, tc := range tests {
		for _, step := range []int{1, 3, 1 << 20} {
			got, errs := parseAll(tc.side, []byte(tc.in), step)
			if len(errs) > 0 {
				t.Errorf("%s (step %d): errors %v", tc.name, step, errs)
				continue
			}
			for i := range got {
				if len(got[i].Data) == 0 {
					got[i].Data = nil
				}
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("%s (step %d):\n got %+v\nwant %+v", tc.name, step, got, tc.want)
			}
		}
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		name  string
		side  Side
		in    string
		fatal bool
	}{
		{"unknown op", Requests, "HELLO\r\n", false},
		{"lower case", Requests, "chel 51000\r\n", false},
		{"response on the request side", Requests, "PHEL\r\n", false},
		{"CHEL port 0", Requests, "CHEL 0\r\n", false},
		{"CHEL port too big", Requests, "CHEL 65536\r\n", false},
		{"CHEL no port", Requests, "CHEL\r\n", false},
		{"CHEL two ports", Requests, "CHEL 1 2\r\n", false},
		{"DREQ negative", Requests, "DREQ -1\r\n", false},
		{"DREQ not a number", Requests, "DREQ x\r\n", false},
		{"DREQ huge", Requests, "DREQ 99999999999999999999\r\n", false},
		{"DREQ 2^53", Requests, "DREQ 9007199254740992\r\n", false},
		{"VOID 2^53", Responses, "VOID 9007199254740992\r\n", false},
		{"CHECK short", Requests, "CHECK abc\r\n", false},
		{"CHECK not hex", Requests, "CHECK " + string(bytes.Repeat([]byte("z"), 32)) + "\r\n", false},
		{"HAVE nothing", Requests, "HAVE\r\n", false},
		{"HAVE junk", Requests, "HAVE 1 x\r\n", false},
		{"line too long", Requests, string(bytes.Repeat([]byte("A"), 300)), true},
		{"DATA too big", Responses, "DATA 0 99999999\r\n", true},
		{"DATA no size", Responses, "DATA 0\r\n", true},
		{"PUSH too big", Responses, "PUSH 0 99999999\r\n", true},
		{"PUSH as a request", Requests, "PUSH 0 1\r\n", false},
		{"SHEL chunk 0", Responses, "SHEL 10 0\r\n[]\r\n", true},
		{"SHEL body not JSON array", Responses, "SHEL 10 1\r\n{}\r\n", true},
		{"CLRSP body broken", Responses, "CLRSP\r\n[1,,2]\r\n", true},
		{"CLRSP body too long", Responses, "CLRSP\r\n[" + string(bytes.Repeat([]byte("1,"), 3000)), true},
		{"HASH too many", Responses, "HASH 65\r\n", true},
	}
	for _, tc := range tests {
		_, errs := parseAll(tc.side, []byte(tc.in), 1<<20)
		if len(errs) == 0 {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		var pe *ParseError
		if !errors.As(errs[0], &pe) || pe.Fatal != tc.fatal {
			t.Errorf("%s: %v (fatal %v), want fatal=%v", tc.name, errs[0], pe != nil && pe.Fatal, tc.fatal)
		}
	}
}

// A non-fatal error skips the line: the messages after it still parse.
func TestParseRecovers(t *testing.T) {
	got, errs := parseAll(Requests, []byte("BOGUS 1 2\r\nDREQ x\r\nDREQ 3\r\n"), 2)
	if len(errs) != 2 || len(got) != 1 || got[0].Op != DREQ || got[0].Chunk != 3 {
		t.Fatalf("got %+v, errors %v", got, errs)
	}
}

// A body-carrying message sent to the side that never takes it (a DATA
// to a server) is one error, and its body is skipped by the length its
// header gives, however the stream is cut: the requests after it are
// understood, and a body that holds header-like bytes is not parsed.
func TestParseSkipsUnexpectedBodies(t *testing.T) {
	hash := string(bytes.Repeat([]byte("DREQ 9\r\n"), 8)) // 64 bytes: two digests' worth
	in := "CHEL 5000\r\nDATA 0 5\r\nhelloCLREQ\r\nPUSH 16384 7\r\nDREQ 1\nDREQ 2\r\nHASH 2\r\n" + hash + "DREQ 3\r\n"
	for _, step := range []int{1, 2, 3, 7, 1 << 20} {
		got, errs := parseAll(Requests, []byte(in), step)
		var ops []string
		for _, m := range got {
			ops = append(ops, m.Op.String())
		}
		if len(errs) != 3 || len(got) != 4 || got[1].Op != CLREQ || got[2].Chunk != 2 || got[3].Chunk != 3 {
			t.Fatalf("step %d: got %v (last chunk %d), errors %v; want CHEL CLREQ DREQ 2 DREQ 3 and three errors", step, ops, got[len(got)-1].Chunk, errs)
		}
		for _, err := range errs {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Fatal {
				t.Fatalf("step %d: %v, want a non-fatal error", step, err)
			}
		}
	}
	// A body too long to skip loses the framing.
	if _, errs := parseAll(Requests, []byte("DATA 0 99999999999\r\n"), 1<<20); len(errs) != 1 || !errs[0].(*ParseError).Fatal {
		t.Fatalf("a 99999999999-byte DATA to a server: %v, want one fatal error", errs)
	}
}

// Flush takes an unterminated line as complete: a seed-style client's
// "CLREQ" with no CRLF.
func TestParseFlush(t *testing.T) {
	p := NewParser(Requests, Limits{})
	p.Feed([]byte("CLREQ"))
	if _, err := p.Next(); err != ErrMore || !p.Partial() {
		t.Fatalf("unterminated line: %v, partial %v", err, p.Partial())
	}
	p.Flush()
	m, err := p.Next()
	if err != nil || m.Op != CLREQ {
		t.Fatalf("after Flush: %+v %v", m, err)
	}
	// A partial DATA body is not a partial line, and Flush cannot cut it.
	q := NewParser(Responses, Limits{})
	q.Feed([]byte("DATA 0 10\r\nabc"))
	if _, err := q.Next(); err != ErrMore || q.Partial() || !q.InBody() {
		t.Fatalf("partial body: %v partial=%v inBody=%v", err, q.Partial(), q.InBody())
	}
}

// Everything the encoders write parses back to what was encoded, however
// the stream is cut.
func TestEncodeParseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var b []byte
		var want []Msg
		n := rapid.IntRange(1, 12).Draw(t, "messages")
		for i := 0; i < n; i++ {
			switch kind := rapid.IntRange(0, 8).Draw(t, "kind"); kind {
			case 8:
				if rapid.Bool().Draw(t, "void list") {
					b = AppendVOID(b, 0, true)
					want = append(want, Msg{Op: VOID, HaveHash: true})
				} else {
					off := rapid.Int64Range(0, 1<<40).Draw(t, "void off")
					b = AppendVOID(b, off, false)
					want = append(want, Msg{Op: VOID, Offset: off})
				}
			case 0:
				ids := rapid.SliceOfN(rapid.IntRange(0, 1<<20), 0, 300).Draw(t, "ids")
				b = AppendCLRSP(b, ids)
				if len(ids) == 0 {
					ids = nil
				}
				want = append(want, Msg{Op: CLRSP, Chunks: ids})
			case 1, 7:
				size := rapid.IntRange(0, 3000).Draw(t, "size")
				data := make([]byte, size)
				for j := range data {
					data[j] = byte(rapid.IntRange(0, 255).Draw(t, "byte"))
				}
				off := rapid.Int64Range(0, 1<<40).Draw(t, "off")
				op, header := DATA, AppendDATAHeader
				if kind == 7 {
					op, header = PUSH, AppendPUSHHeader
				}
				b = append(header(b, off, size), data...)
				if size == 0 {
					data = nil
				}
				want = append(want, Msg{Op: op, Offset: off, Size: size, Data: data})
			case 2:
				ids := rapid.SliceOfN(rapid.IntRange(0, 1<<20), 1, 500).Draw(t, "have")
				hash := rapid.Bool().Draw(t, "hash")
				b = AppendHAVE(b, hash, ids)
				// Long lists split into several HAVE lines.
				// With the default limits: HAVE lines run to maxHaveLine,
				// past parseAll's 256-byte line limit.
				hp := NewParser(Responses, Limits{})
				hp.Feed(AppendHAVE(nil, hash, ids))
				var got []Msg
				for m, err := hp.Next(); err == nil; m, err = hp.Next() {
					got = append(got, m)
				}
				var all []int
				h := false
				for _, m := range got {
					all = append(all, m.Chunks...)
					h = h || m.HaveHash
				}
				if !reflect.DeepEqual(all, ids) || h != hash {
					t.Fatalf("HAVE %v %v came back as %v %v", hash, ids, h, all)
				}
				want = append(want, got...)
			case 3:
				var peers []netip.AddrPort
				for k := rapid.IntRange(0, 5).Draw(t, "peers"); k > 0; k-- {
					a := netip.AddrFrom4([4]byte{10, 0, byte(rapid.IntRange(0, 255).Draw(t, "o3")), byte(rapid.IntRange(1, 254).Draw(t, "o4"))})
					peers = append(peers, netip.AddrPortFrom(a, uint16(rapid.IntRange(1, 65535).Draw(t, "port"))))
				}
				b = AppendSHEL(b, 10_000_000, 16384, peers)
				want = append(want, Msg{Op: SHEL, FileSize: 10_000_000, ChunkSize: 16384, Peers: peers})
			case 4:
				var sum [16]byte
				sum[0] = byte(i)
				b = AppendCHECK(b, sum)
				want = append(want, Msg{Op: CHECK, MD5: sum})
			case 5:
				id := rapid.SampledFrom([]string{ErrUnknownCommand, ErrOffsetOverflow, ErrChunkUndownloaded, ErrChecksumNotFit, ErrBusy}).Draw(t, "err")
				b = AppendERROR(b, id)
				want = append(want, Msg{Op: ERROR, Err: id})
			case 6:
				b = AppendOp(b, PHEL)
				want = append(want, Msg{Op: PHEL})
			}
		}
		step := rapid.IntRange(1, 4096).Draw(t, "step")
		p := NewParser(Responses, Limits{})
		var got []Msg
		for i := 0; i < len(b); i += step {
			p.Feed(b[i:min(i+step, len(b))])
			for {
				m, err := p.Next()
				if err == ErrMore {
					break
				}
				if err != nil {
					t.Fatalf("parse: %v", err)
				}
				if len(m.Data) == 0 {
					m.Data = nil
				} else {
					m.Data = append([]byte(nil), m.Data...)
				}
				got = append(got, m)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("got  %+v\nwant %+v", got, want)
		}
	})
}

// A JSON body that comes in many small segments is parsed as if it came
// whole: the scan of the body resumes where the last segment left it
// (it used to start again from the body's first byte on every segment,
// quadratic in the body's length), across strings, escapes and nested
// arrays cut at any byte.
func TestParseLongJSONInSegments(t *testing.T) {
	var ids []int
	for i := 0; i < 200_000; i += 3 {
		ids = append(ids, i)
	}
	clrsp := AppendCLRSP(nil, ids)
	// Python's json.dumps: spaces, and a string holding brackets and an
	// escaped quote that must not end the array.
	shel := []byte("SHEL 10 1\r\n  [[\"10.0.0.2\", 51000], \"]\\\"[\", [\"10.0.0.3\", 51001]]")
	peers := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.2:51000"), netip.MustParseAddrPort("10.0.0.3:51001")}
	tests := []struct {
		name string
		in   []byte
		step int
		want Msg
	}{
		{"CLRSP of 66,667 ids in 1460-byte segments", clrsp, 1460, Msg{Op: CLRSP, Chunks: ids}},
		{"CLRSP of 66,667 ids in 7-byte segments", clrsp, 7, Msg{Op: CLRSP, Chunks: ids}},
		{"SHEL with strings byte by byte", shel, 1, Msg{Op: SHEL, FileSize: 10, ChunkSize: 1, Peers: peers, Skipped: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewParser(Responses, Limits{JSON: 12<<20 + 1<<16})
			var got []Msg
			for off := 0; off < len(tc.in); off += tc.step {
				p.Feed(tc.in[off:min(off+tc.step, len(tc.in))])
				for {
					m, err := p.Next()
					if err == ErrMore {
						break
					}
					if err != nil {
						t.Fatalf("at byte %d: %v", off, err)
					}
					got = append(got, m)
				}
			}
			if len(got) != 1 || !reflect.DeepEqual(got[0], tc.want) {
				t.Fatalf("got %d messages (%.200v), want one %s of %d ids, %d peers", len(got), got, tc.want.Op, len(tc.want.Chunks), len(tc.want.Peers))
			}
			if p.Buffered() > 2 {
				t.Errorf("%d bytes left unconsumed", p.Buffered())
			}
		})
	}
}

// FuzzParser: no input makes either side of the parser panic, loop, or
// hold more than its limits allow; and whatever it accepts, it accepts
// the same way however the input is cut: the same messages, the same
// errors (fatal or not, and by their Msg; the text they quote may be cut
// short) in the same order, up to and including the first
// fatal one (after which a node closes the stream), and with no fatal
// error the same state at the end. Between messages the parser buffers
// less than a header line's limit, in a JSON body no more than the JSON
// limit, and in a raw body nothing (the body so far is its own, no longer
// than the header said, and the header within the Data or Hashes limit).
func FuzzParser(f *testing.F) {
	for _, s := range []string{
		"CHEL 51000\r\nXHEL 1\r\nCLREQ\r\nDREQ 3\r\nDANY\r\nHREQ\r\nHAVE HASH 1 2\r\nCHECK 9e107d9d372bb6826bd81d3542a419d6\r\n",
		"SHEL 10000000 16384\r\n[[\"10.0.0.2\", 51000]]\r\nPHEL\r\nCLRSP\r\n[0,1]\r\nDATA 0 3\r\nabcERROR CHUNK_UNDOWNLOADED\r\ndetail\r\n",
		"XHEL 1 " + string(bytes.Repeat([]byte("0f"), 32)) + "\r\nHASH 1\r\n" + string(bytes.Repeat([]byte{1}, 32)),
		"PUSH 0 4\r\nabcdVOID 0\r\nVOID HASH\r\nVOID -1\r\nVOID\r\n",
		"DATA 0 99999999999\r\n", "SHEL 1 0\r\n", "CLRSP\r\n[\"]\\\"\"]\r\n", "\n\n\r\n", "HAVE 1 2 3 x\r\n",
		string(bytes.Repeat([]byte("["), 100)),
		"CLRSP\r\n [" + strings.Repeat("1,", 2100) + "1]\r\n", "CLRSP\r\n " + strings.Repeat("1,", 40),
		"DREQ 1\r\n" + strings.Repeat("x", 300) + "\r\nDREQ 2\r\n",
		"DATA 0 70000\r\nabc", "HASH 65\r\n", "CHEL 1\r\nDATA 0 2\r\nabCLREQ\r\n",
	} {
		f.Add([]byte(s), uint8(7))
	}
	lim := Limits{Line: 256, JSON: 4096, Data: 1 << 16, Hashes: 64}
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		for _, side := range []Side{Requests, Responses} {
			whole := parseCut(t, side, lim, in, len(in)+1)
			cut := parseCut(t, side, lim, in, int(step%64)+1)
			if d := cmp.Diff(whole, cut, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.AddrPort{}), cmp.AllowUnexported(parsed{}), cmpopts.IgnoreFields(parsed{}, "lines")); d != "" {
				t.Fatalf("side %d: whole and in steps of %d differ (-whole +cut):\n%s", side, step%64+1, d)
			}
			// An error's Line is what was buffered of the offending text,
			// and a cut stream may have less of it.
			for i := range whole.lines {
				if w, c := whole.lines[i], cut.lines[i]; !strings.HasPrefix(w, c) && !strings.HasPrefix(c, w) {
					t.Fatalf("side %d: error %q quotes %q whole and %q in steps of %d", side, whole.Errs[i], w, c, step%64+1)
				}
			}
			for _, m := range whole.Msgs {
				if len(m.Data) > 1<<16 || len(m.Chunks) > 4096 {
					t.Fatalf("message beyond the limits: %s with %d bytes, %d chunks", m.Op, len(m.Data), len(m.Chunks))
				}
			}
		}
	})
}

// parsed is what a parser made of a stream: its messages and errors in
// order, and (if no error was fatal) its state at the end.
type parsed struct {
	Msgs     []Msg
	Errs     []string // each error's Msg
	lines    []string // and its Line
	Seq      []int    // Msgs as 0, errors as 1, in the order they came
	Fatal    bool
	Buffered int
	InBody   bool
	Partial  bool
	BodyHdr  Msg
	Body     []byte
}

// parseCut feeds in to a parser for side in pieces of step bytes, taking
// every message after each, and stops at a fatal error as a node does. It
// checks the parser's buffering against lim whenever it asks for more.
func parseCut(t *testing.T, side Side, lim Limits, in []byte, step int) parsed {
	t.Helper()
	p := NewParser(side, lim)
	var r parsed
	for i := 0; i < len(in) && !r.Fatal; i += step {
		p.Feed(in[i:min(i+step, len(in))])
		for !r.Fatal {
			m, err := p.Next()
			if err == ErrMore {
				checkBuffered(t, p, lim)
				break
			}
			if err != nil {
				var pe *ParseError
				if !errors.As(err, &pe) {
					t.Fatalf("Next: %T %v, want a *ParseError", err, err)
				}
				r.Errs, r.Seq, r.Fatal = append(r.Errs, pe.Msg), append(r.Seq, 1), pe.Fatal
				r.lines = append(r.lines, string(pe.Line))
				continue
			}
			m.Data = bytes.Clone(m.Data)
			r.Msgs, r.Seq = append(r.Msgs, m), append(r.Seq, 0)
		}
	}
	if !r.Fatal {
		r.Buffered, r.InBody, r.Partial = p.Buffered(), p.InBody(), p.Partial()
		if hdr, body, ok := p.Body(); ok {
			r.BodyHdr, r.Body = hdr, bytes.Clone(body)
		}
	}
	return r
}

// checkBuffered: a parser waiting for more holds less than a header line
// between messages, at most a JSON body's limit in one, and in a raw body
// nothing but the body so far, which its header bounds.
func checkBuffered(t *testing.T, p *Parser, lim Limits) {
	t.Helper()
	n := p.Buffered()
	hdr, body, raw := p.Body()
	switch {
	case raw:
		want := hdr.Size
		if hdr.Op == HASH {
			want *= 32
			if hdr.Size > lim.Hashes {
				t.Fatalf("HASH of %d digests taken, limit %d", hdr.Size, lim.Hashes)
			}
		} else if hdr.Size > lim.Data {
			t.Fatalf("%s of %d bytes taken, limit %d", hdr.Op, hdr.Size, lim.Data)
		}
		if n != 0 || len(body) >= want {
			t.Fatalf("in a %s body of %d: %d bytes buffered, %d of the body held", hdr.Op, want, n, len(body))
		}
	case p.InBody():
		if n > lim.JSON {
			t.Fatalf("%d bytes buffered in a JSON body, limit %d", n, lim.JSON)
		}
	case n >= lim.Line:
		t.Fatalf("%d bytes buffered between messages, line limit %d", n, lim.Line)
	}
}

// BenchmarkParse measures the parser on the stream a downloading peer
// reads (16 KiB DATA answers with HAVE lines between them, cut into
// 8960-byte segments), next to a plain copy of the same bytes as the
// baseline: the ratio of the two is what framing costs.
func BenchmarkParse(b *testing.B) {
	var stream []byte
	chunk := bytes.Repeat([]byte{0xa5}, 16384)
	for i := 0; i < 64; i++ {
		stream = AppendHAVE(stream, false, []int{i, i + 1, i + 2})
		stream = append(AppendDATAHeader(stream, int64(i)*16384, len(chunk)), chunk...)
	}
	const seg = 8960
	b.Run("parser", func(b *testing.B) {
		b.SetBytes(int64(len(stream)))
		for i := 0; i < b.N; i++ {
			p := NewParser(Responses, Limits{})
			n := 0
			for off := 0; off < len(stream); off += seg {
				p.Feed(stream[off:min(off+seg, len(stream))])
				for {
					m, err := p.Next()
					if err != nil {
						break
					}
					n += len(m.Data)
				}
			}
			if n != 64*16384 {
				b.Fatalf("parsed %d data bytes", n)
			}
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(int64(len(stream)))
		dst := make([]byte, 16384)
		for i := 0; i < b.N; i++ {
			for off := 0; off < len(stream); off += seg {
				copy(dst, stream[off:min(off+seg, len(stream))])
			}
		}
	})
}
