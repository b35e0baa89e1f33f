package chat_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
	"github.com/netspec/netspec/spec/spectest"
)

// A header parses only in its canonical form, so parsing and appending
// round-trip exactly; anything else is body.
func FuzzParseHeader(f *testing.F) {
	for _, s := range []string{"", "^hb^", "^0000000000000001.0^", "^00000000000000ff.4294967295^x",
		"^00000000000000ff.4294967296^x", "^00000000000000FF.1^", "^0000000000000001.01^", "^0000000000000001.^",
		"^0000000000000001.12345678901^", "^_^ hi", hdr(12345, 7) + "hello\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, ok := chat.ParseHeader(b)
		if !ok {
			if !bytes.Equal(body, b) {
				t.Fatalf("no header, but the body is not the datagram")
			}
			return
		}
		again := append(chat.AppendHeader(nil, h), body...)
		if !bytes.Equal(again, b) {
			t.Fatalf("%q parsed as %+v, which appends as %q", b, h, again)
		}
	})
}

// Line parsing accepts any bytes; CheckText accepts only UTF-8 without
// controls; Classify's arguments come from the line.
func FuzzLines(f *testing.F) {
	for _, s := range []string{"[alice] hi", "* bob waves", "*** x", "^bye^", "[] x", "[a b] c", "/nick alice", "//x",
		"/me", "quit", "^hb^", "caf\xe9", "\x1b[2J", "a\u009bb", "\t"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		l := chat.ParseLine(b)
		if l.Nick != "" && !chat.ValidNick([]byte(l.Nick)) {
			t.Fatalf("ParseLine(%q) gave nick %q", b, l.Nick)
		}
		if chat.CheckText(b, 1<<20) == chat.TextOK {
			if !utf8.Valid(b) {
				t.Fatalf("accepted invalid UTF-8 %q", b)
			}
			for _, r := range string(b) {
				if (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f) {
					t.Fatalf("accepted control %U in %q", r, b)
				}
			}
		}
		k, arg := chat.Classify(b)
		if len(arg) > 0 && !bytes.Contains(b, arg) {
			t.Fatalf("Classify(%q) = %v %q: not from the line", b, k, arg)
		}
	})
}

// Hostile datagrams never panic the server, never grow it past its
// limits, and it never sends anything to an address that is not a member
// except a reply to the datagram's own sender; to a sender that was not
// a member before and is not one after, at most one datagram no larger
// than its own (its source is not validated: no reflection, let alone
// amplification).
func FuzzServer(f *testing.F) {
	f.Add([]byte("hello\n"), []byte("/nick bob\n"), []byte("quit"))
	f.Add([]byte(hdr(9, 1)+"/nick a\n"), []byte(hdr(9, 3)+"x"), []byte(hdr(9, 2)+"quit"))
	f.Add([]byte("\xff\xfe"), []byte(hdr(0, 0)+"x"), []byte("^hb^\n^hb^\n/who\n/me\n//\n/nick\n"))
	f.Add([]byte("a"), []byte("b"), []byte("let me in, it is full\n"))
	f.Add([]byte("*** chat is full (2 members); try again later\n"), []byte(hdr(9, 1)+"quit\n"+strings.Repeat(" ", 80)), []byte(shdr(9, 1, 1)+"[x] y"))
	f.Add([]byte(hdr(9, 0)+"^cookie 0123456789abcdef^\n^hb^\n"+strings.Repeat(" ", 80)), []byte(hdr(9, 1)+"^cookie ^\n^cookie x^"), []byte("^cookie 00^\nhello"))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		cfg := chat.ServerConfig{Addr: srvAddr, MaxMembers: 2, MaxDatagram: 256, MaxLine: 64, Interval: time.Second}
		s := chat.NewServer(cfg)
		now := spec.SimEpoch
		var out []spec.Output
		out = s.Step(now, spec.Input{Kind: spec.InStart}, out[:0])
		out = s.Step(now, spec.Input{Kind: spec.InBound, Sock: 1, Addr: srvAddr}, out[:0])
		from := []netip.AddrPort{addr(1), addr(2), addr(3)}
		members := map[netip.AddrPort]bool{}
		for round := 0; round < 3; round++ {
			for i, d := range [][]byte{a, b, c} {
				now = now.Add(time.Duration(len(d)) * 7 * time.Millisecond)
				src := from[(i+round)%3]
				wasMember := members[src]
				out = s.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: src, Data: d}, out[:0])
				members = map[netip.AddrPort]bool{}
				for _, m := range s.Members() {
					members[m.Addr] = true
				}
				if !wasMember && !members[src] {
					var answers []string
					for _, o := range out {
						if o.Kind == spec.OutSend && o.Addr == src {
							answers = append(answers, string(o.Data))
						}
					}
					if len(answers) > 1 || len(answers) == 1 && len(answers[0]) > len(d) {
						t.Fatalf("a stranger's %d-byte datagram %q drew %q", len(d), d, answers)
					}
				}
				if len(members) > cfg.MaxMembers {
					t.Fatalf("%d members, limit %d", len(members), cfg.MaxMembers)
				}
				for _, o := range out {
					if o.Kind != spec.OutSend {
						continue
					}
					if len(o.Data) > 2048 {
						t.Fatalf("sent %d bytes", len(o.Data))
					}
					if !members[o.Addr] && o.Addr != src {
						t.Fatalf("sent %q to %v, neither a member nor the sender", o.Data, o.Addr)
					}
				}
			}
			now = now.Add(time.Second)
			for _, tm := range []spec.Timer{2, 1} {
				out = s.Step(now, spec.Input{Kind: spec.InTimer, Timer: tm}, out[:0])
				for _, o := range out {
					if o.Kind == spec.OutSend && !slices.ContainsFunc(s.Members(), func(m chat.MemberInfo) bool { return m.Addr == o.Addr }) {
						t.Fatalf("timer %d sent %q to %v, not a member", tm, o.Data, o.Addr)
					}
				}
			}
			members = map[netip.AddrPort]bool{}
			for _, m := range s.Members() {
				members[m.Addr] = true
			}
		}
	})
}

// Hostile datagrams from the server's address never panic a client, and
// it shows no more lines than they hold.
func FuzzClient(f *testing.F) {
	f.Add([]byte(hdr(5, 1)+"*** welcome x: 1\n^welcome x 30 t0k3n^\n"), []byte(hdr(5, 3)+"[a] b\n"), []byte("^bye^\n"))
	f.Add([]byte("^welcome x 0 t0k3n^\n"), []byte("^nick^\n"), []byte(hdr(1<<63, 4294967295)+"x"))
	f.Add([]byte(hdr(5, 0)+"^cookie 0123456789abcdef^\n"), []byte(hdr(5, 0)+"^cookie "+strings.Repeat("f", 80)+"^\n"), []byte("^cookie x^\n"))
	f.Fuzz(func(t *testing.T, a, b, c []byte) {
		cl := chat.NewClient(chat.ClientConfig{Server: srvAddr, Nick: "me"})
		now := spec.SimEpoch
		var out []spec.Output
		out = cl.Step(now, spec.Input{Kind: spec.InStart}, out[:0])
		out = cl.Step(now, spec.Input{Kind: spec.InBound, Sock: 1, Addr: local}, out[:0])
		shown, held := 0, 0
		for _, d := range [][]byte{a, b, c, a} {
			now = now.Add(time.Millisecond)
			held += bytes.Count(d, []byte("\n")) + 1
			out = cl.Step(now, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: srvAddr, Data: d}, out[:0])
			shown += len(lineTexts(out))
		}
		out = cl.Step(now.Add(time.Second), spec.Input{Kind: spec.InTimer, Timer: 2}, out[:0])
		shown += len(lineTexts(out))
		if shown > held {
			t.Fatalf("showed %d lines of %d received", shown, held)
		}
	})
}

// FuzzTokenAsked: whatever a server sends, the token taken from it is
// nil or 1 to MaxToken bytes of the datagram without a space, never a
// panic; and WithoutTokenHint, which chat join shows lines through, only
// ever removes the instruction: a line it keeps is never longer, and one
// it edits still holds the rest of what was there.
func FuzzTokenAsked(f *testing.F) {
	f.Add([]byte("*** welcome alice: 1 member(s) online; type /ok 1a2b3c4d to hear the chat\n"))
	f.Add([]byte(hdr(5, 1) + "^token x^\n*** type /ok \n"))
	f.Add([]byte("type /ok " + strings.Repeat("z", 80)))
	f.Add([]byte("*** type /ok 1a2b to hear the chat"))
	f.Add([]byte("*** welcome a: 2 member(s) online; type /ok 1a2b to hear the chat; silence for 3s drops you"))
	f.Fuzz(func(t *testing.T, b []byte) {
		line := string(b)
		switch shown, ok := chat.WithoutTokenHint(line); {
		case !ok && (shown != "" || !strings.HasPrefix(line, "*** type /ok ")):
			t.Fatalf("WithoutTokenHint(%q) hid the line, showing %q", line, shown)
		case ok && shown != line && shown != strings.Replace(line, "type /ok "+string(chat.TokenAsked(b))+" to hear the chat; ", "", 1):
			t.Fatalf("WithoutTokenHint(%q) = %q: more than the instruction went", line, shown)
		}
		tok := chat.TokenAsked(b)
		if tok == nil {
			return
		}
		if len(tok) == 0 || len(tok) > chat.MaxToken || bytes.ContainsRune(tok, ' ') || !bytes.Contains(b, tok) {
			t.Fatalf("token %q from %q", tok, b)
		}
	})
}

// FuzzDescribe: Describe takes any datagram (protocol.go: "It accepts
// any bytes") and gives one line for a timeline: the header's numbers and
// the first line clipped to 40 bytes and quoted, so at most 256 bytes,
// valid UTF-8 without control or format characters ("so timelines stay
// safe"); the same every time, with the datagram left as it was; and a
// datagram with a header is described by its session in hex.
func FuzzDescribe(f *testing.F) {
	for _, s := range []string{
		"^0000000000000001.1^hello\n", "^00000000000000ff.0000000000000002.4294967295^welcome guest1\nmembers: 3\n",
		"^0000000000000001.7^/nick 你好世界\n", "plain line without a header", "\n\n\n", "^hb^",
		"^0000000000000001.2^" + strings.Repeat("é", 30) + "\x00\xff\u202e\r\nmore\n",
		strings.Repeat("\xff", 100), "^0000000000000001.3^ \t line with spaces \t\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		d := spectest.CheckDescribe(t, chat.Describe, b, 256)
		if !utf8.ValidString(d) {
			t.Fatalf("Describe(%q) = %q is not UTF-8", b, d)
		}
		for _, r := range d {
			if !unicode.IsPrint(r) {
				t.Fatalf("Describe(%q) = %q holds %U", b, d, r)
			}
		}
		if h, _, ok := chat.ParseHeader(b); ok && !strings.HasPrefix(d, fmt.Sprintf("%016x.", h.Session)) {
			t.Fatalf("Describe(%q) = %q does not start with its session %016x", b, d, h.Session)
		}
	})
}
