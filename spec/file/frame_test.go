package file

import (
	"bytes"
	"errors"
	"io/fs"
	"strings"
	"testing"
)

// recorder collects what a parser finds.
type recorder struct {
	frames [][]byte // type byte + body
	bytes  []byte
	begins []int
}

func (r *recorder) frame(typ byte, body []byte) error {
	r.frames = append(r.frames, append([]byte{typ}, body...))
	return nil
}
func (r *recorder) dataBegin(n int) error { r.begins = append(r.begins, n); return nil }
func (r *recorder) data(b []byte) error   { r.bytes = append(r.bytes, b...); return nil }

func parseAll(stream []byte, cuts []int, accept func(byte) bool) (*recorder, error) {
	p := parser{accept: accept}
	r := &recorder{}
	prev := 0
	for _, c := range append(cuts, len(stream)) {
		c = min(max(c, prev), len(stream))
		if err := p.feed(stream[prev:c], r); err != nil {
			return r, err
		}
		prev = c
	}
	return r, nil
}

func TestParserSplits(t *testing.T) {
	var stream []byte
	stream = appendFrame(stream, FrameReply, []byte{StatusOK}, []byte("hello"))
	stream = appendFrame(stream, FrameFile, u64(10), u64(0), []byte("x"))
	stream = appendFrame(stream, FrameData, []byte("0123456"))
	stream = appendFrame(stream, FrameData, []byte("789"))
	stream = appendFrame(stream, FrameEnd, make([]byte, 32))
	whole, err := parseAll(stream, nil, serverSends)
	if err != nil {
		t.Fatal(err)
	}
	if len(whole.frames) != 3 || string(whole.bytes) != "0123456789" {
		t.Fatalf("frames %d data %q", len(whole.frames), whole.bytes)
	}
	for cut := 0; cut <= len(stream); cut++ {
		for cut2 := cut; cut2 <= len(stream); cut2 += 3 {
			got, err := parseAll(stream, []int{cut, cut2}, serverSends)
			if err != nil || !same(got, whole) {
				t.Fatalf("split at %d,%d changed the result (%v)", cut, cut2, err)
			}
		}
	}
}

func same(a, b *recorder) bool {
	if len(a.frames) != len(b.frames) || !bytes.Equal(a.bytes, b.bytes) {
		return false
	}
	for i := range a.frames {
		if !bytes.Equal(a.frames[i], b.frames[i]) {
			return false
		}
	}
	return true
}

func TestParserRejects(t *testing.T) {
	for name, stream := range map[string][]byte{
		"client type from server": appendFrame(nil, FrameCmd, []byte("help")),
		"unknown type":            appendFrame(nil, 0x7f, nil),
		"huge control frame":      {FrameReply, 0, 1, 0, 1},
		"huge data frame":         {FrameData, 0, 0x10, 0, 1},
	} {
		if _, err := parseAll(stream, nil, serverSends); !errors.Is(err, ErrFrame) {
			t.Errorf("%s: %v, want ErrFrame", name, err)
		}
	}
}

// FuzzFrames: any stream, split anywhere, parses to the same frames or
// fails, never panics, and never buffers more than a control frame.
func FuzzFrames(f *testing.F) {
	var seed []byte
	seed = appendFrame(seed, FrameReply, []byte{StatusOK}, []byte("ok"))
	seed = appendFrame(seed, FrameData, []byte("abc"))
	f.Add(seed, uint16(3), true)
	f.Add(appendFrame(nil, FrameGet, u64(0), make([]byte, 32), []byte("a/b")), uint16(1), false)
	f.Fuzz(func(t *testing.T, stream []byte, cut uint16, fromServer bool) {
		accept := clientSends
		if fromServer {
			accept = serverSends
		}
		whole, err1 := parseAll(stream, nil, accept)
		split, err2 := parseAll(stream, []int{int(cut)}, accept)
		if (err1 == nil) != (err2 == nil) {
			t.Fatalf("splitting changed the outcome: %v vs %v", err1, err2)
		}
		if err1 == nil && !same(whole, split) {
			t.Fatal("splitting changed the frames")
		}
		for _, fr := range whole.frames {
			if len(fr)-1 > MaxControl {
				t.Fatalf("a %d-byte control frame got through", len(fr)-1)
			}
			switch fr[0] {
			case FrameGet:
				_, _ = decodeGet(fr[1:])
			case FrameFile:
				if h, err := decodeFile(fr[1:]); err == nil && h.offset > h.size {
					t.Fatal("decodeFile accepted an offset past the end")
				}
			}
		}
	})
}

// FuzzValidName: whatever ValidName accepts is a path io/fs accepts, with
// no parent element, no control character and no backslash.
func FuzzValidName(f *testing.F) {
	for _, s := range []string{"a", "a/b", "../x", "/etc", "a\x00", "a\\b", "", ".", "a//b", "é/ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		if ValidName(name) != nil {
			return
		}
		if !fs.ValidPath(name) || name == "." || len(name) > MaxName || strings.Contains(name, "\\") || strings.ContainsAny(name, "\x00\n\r") {
			t.Fatalf("ValidName accepted %q", name)
		}
		for _, el := range strings.Split(name, "/") {
			if el == ".." || el == "." || el == "" {
				t.Fatalf("ValidName accepted %q with element %q", name, el)
			}
		}
	})
}

// doc.go: a name is "at most 1024 bytes": bytes, not runes, and 1024
// itself is allowed.
func TestValidNameLength(t *testing.T) {
	for _, tc := range []struct {
		what string
		name string
		ok   bool
	}{
		{"MaxName bytes", strings.Repeat("a", MaxName), true},
		{"MaxName bytes in two-byte runes", strings.Repeat("é", MaxName/2), true},
		{"MaxName bytes in elements", strings.Repeat("d/", MaxName/2-1) + "ab", true},
		{"one byte more", strings.Repeat("a", MaxName+1), false},
		{"one rune more", strings.Repeat("é", MaxName/2) + "a", false},
	} {
		if err := ValidName(tc.name); (err == nil) != tc.ok {
			t.Errorf("%s (%d bytes): ValidName = %v, want valid %v", tc.what, len(tc.name), err, tc.ok)
		}
	}
}

func TestSyntheticFS(t *testing.T) {
	fsys := Synthetic([]SynthFile{{Name: "a.bin", Size: 21, Seed: 3}, {Name: "d/e/f.bin", Size: 9, Seed: 4}, {Name: "../bad", Size: 1}})
	want := make([]byte, 21)
	SynthBytes(3, 0, want)
	got, err := fs.ReadFile(fsys, "a.bin")
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadFile: %v %x vs %x", err, got, want)
	}
	part := make([]byte, 7)
	SynthBytes(3, 5, part)
	if !bytes.Equal(part, want[5:12]) {
		t.Fatalf("SynthBytes at an offset disagrees with the whole")
	}
	for dir, names := range map[string][]string{".": {"a.bin", "d"}, "d": {"e"}, "d/e": {"f.bin"}} {
		es, err := fs.ReadDir(fsys, dir)
		var got []string
		for _, e := range es {
			got = append(got, e.Name())
		}
		if err != nil || strings.Join(got, ",") != strings.Join(names, ",") {
			t.Errorf("ReadDir(%s) = %v, %v; want %v", dir, got, err, names)
		}
	}
	if _, err := fsys.Open("../bad"); err == nil {
		t.Error("an invalid name was served")
	}
	if _, err := fs.Stat(fsys, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Stat(nope) = %v", err)
	}
}
