package tftp

import (
	"net/netip"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/netspec/netspec/spec"
)

// A server's message is shown as written, quotes and all, with only what
// a terminal must not see escaped, and cut only when long.
func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`access violation: "../x" is not a path inside the root`, `access violation: "../x" is not a path inside the root`},
		{"bell\a and escape\x1b[2J", `bell\a and escape\x1b[2J`},
		{"bad \xff byte", `bad \xff byte`},
		{`back\slash`, `back\\slash`},
		{"文件不存在", "文件不存在"},
		{strings.Repeat("x", 300), strings.Repeat("x", 200) + "..."},
	} {
		if got := printable(tc.in, 200); got != tc.want {
			t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A refusal is never larger than the request it answers (its source is
// not validated): the message gives way to the code's name when it does
// not fit (for code 0, which names nothing, to the message's first whole
// words that fit), and that to nothing; a request too short even for
// the code gets nothing.
func TestRefusalNoLargerThanRequest(t *testing.T) {
	srv := netip.MustParseAddrPort("10.0.0.1:69")
	from := netip.MustParseAddrPort("10.0.0.2:40000")
	for _, tc := range []struct {
		name string
		req  []byte
		want string // the ERROR's message, "-" for no answer
	}{
		{"truncated", []byte{0, 1}, "-"},
		{"short missing file", (&Packet{Op: OpRRQ, Filename: "x", Mode: "octet"}).Append(nil), ""},
		{"long missing file", (&Packet{Op: OpRRQ, Filename: "a/rather/long/name/that/is/missing", Mode: "octet"}).Append(nil), "file not found"},
		// Too short for the full message, long enough for the code's
		// name, which tftp-hpa and atftp print in place of nothing.
		{"escaping name", (&Packet{Op: OpRRQ, Filename: "../secret/s.txt", Mode: "octet"}).Append(nil), "access violation"},
		{"netascii", (&Packet{Op: OpRRQ, Filename: "boot/kernel.img", Mode: "netascii"}).Append(nil), "octet mode only"},
		// Code 0 names nothing: the message's first words that fit.
		{"netascii, short name", (&Packet{Op: OpRRQ, Filename: "a", Mode: "netascii"}).Append(nil), "octet"},
		{"netascii, shorter", (&Packet{Op: OpRRQ, Filename: "a", Mode: "mail"}).Append(nil), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := NewServer(ServerConfig{Addr: srv}, fstest.MapFS{}, nil)
			s.Step(0, spec.Input{Kind: spec.InStart}, nil)
			s.Step(0, spec.Input{Kind: spec.InBound, Sock: 1, Addr: srv}, nil)
			got := "-"
			for _, o := range s.Step(0, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: tc.req}, nil) {
				if o.Kind != spec.OutSend {
					continue
				}
				var p Packet
				if err := Decode(o.Data, &p); err != nil || p.Op != OpERROR || len(o.Data) > len(tc.req) {
					t.Fatalf("answered %d bytes %q to a %d-byte request", len(o.Data), o.Data, len(tc.req))
				}
				got = p.Msg
			}
			if got != tc.want {
				t.Errorf("message %q, want %q", got, tc.want)
			}
		})
	}
}
