package chat

import (
	"bytes"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Header is the optional sequencing header at the start of a datagram.
// A client's is "^" SESSION "." SEQ "^"; the server's is "^" SESSION "."
// MEMBERSHIP "." SEQ "^", echoing the session of the client it is for.
// SESSION and MEMBERSHIP are 16 lowercase hex digits; SEQ is 0
// (unsequenced) or 1..4294967295 in decimal without leading zeros.
type Header struct {
	Session    uint64
	Membership uint64
	Seq        uint32
	// Server says the header has the server's three-field form.
	Server bool
}

// headerMax is the longest header: the server's, with a 10-digit SEQ.
const headerMax = 1 + 16 + 1 + 16 + 1 + 10 + 1

// ParseHeader splits a datagram into its header and body. ok is false
// when b does not start with a well-formed header of either form; the
// whole datagram is then the body. It never allocates.
func ParseHeader(b []byte) (h Header, body []byte, ok bool) {
	if len(b) < 20 || b[0] != '^' {
		return Header{}, b, false
	}
	id, ok1 := parseHex(b[1:17])
	if !ok1 || b[17] != '.' {
		return Header{}, b, false
	}
	i := 18
	if len(b) >= 36 && b[34] == '.' {
		if mid, ok2 := parseHex(b[18:34]); ok2 {
			h.Membership, h.Server = mid, true
			i = 35
		}
	}
	var seq uint64
	start := i
	for ; i < len(b) && i < start+10 && b[i] != '^'; i++ {
		c := b[i]
		if c < '0' || c > '9' || (i == start+1 && b[start] == '0') {
			return Header{}, b, false
		}
		seq = seq*10 + uint64(c-'0')
	}
	if i == start || i >= len(b) || b[i] != '^' || seq > 1<<32-1 {
		return Header{}, b, false
	}
	h.Session, h.Seq = id, uint32(seq)
	return h, b[i+1:], true
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// AppendHeader appends h in wire form: the server's form if h.Server.
func AppendHeader(dst []byte, h Header) []byte {
	dst = append(dst, '^')
	dst = appendHex(dst, h.Session)
	dst = append(dst, '.')
	if h.Server {
		dst = append(appendHex(dst, h.Membership), '.')
	}
	dst = strconv.AppendUint(dst, uint64(h.Seq), 10)
	return append(dst, '^')
}

func appendHex(dst []byte, v uint64) []byte {
	const hex = "0123456789abcdef"
	for s := 60; s >= 0; s -= 4 {
		dst = append(dst, hex[v>>uint(s)&0xf])
	}
	return dst
}

// nextLine returns the first line of b and the rest. Lines end at LF; a
// CR before the LF and spaces and tabs around the text are trimmed.
func nextLine(b []byte) (line, rest []byte) {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		line, rest = b[:i], b[i+1:]
	} else {
		line = b
	}
	return trim(line), rest
}

func trim(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// Kind classifies a line a client sends.
type Kind uint8

// Line kinds, client to server.
const (
	KindEmpty     Kind = iota // nothing after trimming: ignored
	KindHeartbeat             // ^hb^
	KindQuit                  // quit or /quit
	KindNick                  // /nick [NAME]
	KindWho                   // /who
	KindMe                    // /me ACTION
	KindHelp                  // /help
	KindOK                    // /ok TOKEN
	KindUnknown               // another /command
	KindText                  // a message (a leading "//" stands for "/")
)

var kindNames = [...]string{"empty", "heartbeat", "quit", "nick", "who", "me", "help", "ok", "unknown", "text"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Classify says what a trimmed line is and returns its argument: the
// name for /nick, the action for /me, the command word for an unknown
// command, the text for a message.
func Classify(line []byte) (Kind, []byte) {
	switch {
	case len(line) == 0:
		return KindEmpty, nil
	case string(line) == "^hb^":
		return KindHeartbeat, nil
	case string(line) == "quit" || string(line) == "/quit":
		return KindQuit, nil
	case line[0] != '/':
		return KindText, line
	case len(line) > 1 && line[1] == '/':
		return KindText, line[1:]
	}
	cmd, arg := line, []byte(nil)
	if i := bytes.IndexAny(line, " \t"); i >= 0 {
		cmd, arg = line[:i], trim(line[i+1:])
	}
	switch string(cmd) {
	case "/nick":
		return KindNick, arg
	case "/who":
		return KindWho, arg
	case "/me":
		return KindMe, arg
	case "/help":
		return KindHelp, arg
	case "/ok":
		return KindOK, arg
	}
	return KindUnknown, cmd
}

// cookieLine returns the cookie of a line "^cookie COOKIE^", the control
// line a sequenced client puts first to join past the join limit (see
// "Joining under a flood" in the package documentation). Only datagrams
// with a header are read so: from nc the line is a message.
func cookieLine(line []byte) (string, bool) {
	c, ok := bytes.CutPrefix(line, []byte("^cookie "))
	if !ok || len(c) < 2 || c[len(c)-1] != '^' {
		return "", false
	}
	return string(c[:len(c)-1]), true
}

// MaxNick is the longest nick, in bytes.
const MaxNick = 16

// ValidNick reports whether n is a nick: 1 to 16 ASCII letters, digits,
// '_' or '-', starting with a letter. ASCII only, so no two nicks look
// alike and a nick never contains "] ".
func ValidNick(n []byte) bool {
	if len(n) == 0 || len(n) > MaxNick || !isLetter(n[0]) {
		return false
	}
	for _, c := range n {
		if !isLetter(c) && (c < '0' || c > '9') && c != '_' && c != '-' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// foldNick is n in lower case: nicks are unique regardless of case.
func foldNick(n string) string {
	for i := 0; i < len(n); i++ {
		if c := n[i]; c >= 'A' && c <= 'Z' {
			b := []byte(n)
			for j := i; j < len(b); j++ {
				if b[j] >= 'A' && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return n
}

// TextError says why a line cannot be broadcast.
type TextError uint8

// Reasons a text is refused.
const (
	TextOK TextError = iota
	TextInvalidUTF8
	TextControl
	TextTooLong
)

// CheckText validates a message: at most max bytes of UTF-8 with no
// control characters other than TAB (C0, DEL and C1 controls would let
// one member rewrite another's terminal).
func CheckText(b []byte, max int) TextError {
	if len(b) > max {
		return TextTooLong
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return TextControl
			}
			i++
			continue
		}
		r, n := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && n <= 1 {
			return TextInvalidUTF8
		}
		if r >= 0x80 && r <= 0x9f {
			return TextControl
		}
		i += n
	}
	return TextOK
}

// LineKind classifies a line a server sends.
type LineKind uint8

// Line kinds, server to client.
const (
	LineOther   LineKind = iota // anything else (shown as is)
	LineMessage                 // [NICK] TEXT
	LineAction                  // * NICK TEXT
	LineNotice                  // *** TEXT
	LineControl                 // ^WORD ARGS^ (sequenced clients only)
)

var lineKindNames = [...]string{"other", "message", "action", "notice", "control"}

func (k LineKind) String() string {
	if int(k) < len(lineKindNames) {
		return lineKindNames[k]
	}
	return "linekind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText makes LineKind readable in events and traces.
func (k LineKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText is the inverse of MarshalText.
func (k *LineKind) UnmarshalText(b []byte) error {
	for i, n := range lineKindNames {
		if n == string(b) {
			*k = LineKind(i)
			return nil
		}
	}
	*k = LineOther
	return nil
}

// Line is a server line as a client sees it.
type Line struct {
	Kind LineKind `json:"kind"`
	Nick string   `json:"nick,omitempty"` // sender of a message or action
	Text string   `json:"text"`           // the text after the nick; the whole notice
	// Seq is the number of the datagram that carried the line in its
	// membership, 0 if it came unsequenced (a reply to a non-member, or
	// from a plain server). Only numbered lines are shown in order.
	Seq uint32 `json:"seq,omitempty"`
}

// ParseLine parses one line a server sent (without its LF). Nicks never
// contain spaces or ']', so the split is unambiguous.
func ParseLine(b []byte) Line {
	switch {
	case len(b) >= 2 && b[0] == '^' && b[len(b)-1] == '^':
		return Line{Kind: LineControl, Text: string(b[1 : len(b)-1])}
	case bytes.HasPrefix(b, []byte("*** ")):
		return Line{Kind: LineNotice, Text: string(b[4:])}
	case bytes.HasPrefix(b, []byte("* ")):
		rest := b[2:]
		if i := bytes.IndexByte(rest, ' '); i > 0 && ValidNick(rest[:i]) {
			return Line{Kind: LineAction, Nick: string(rest[:i]), Text: string(rest[i+1:])}
		}
	case len(b) > 0 && b[0] == '[':
		if i := bytes.Index(b, []byte("] ")); i > 1 && ValidNick(b[1:i]) {
			return Line{Kind: LineMessage, Nick: string(b[1:i]), Text: string(b[i+2:])}
		}
	}
	return Line{Kind: LineOther, Text: string(b)}
}

// MaxToken bounds the token a client takes from a welcome or reminder.
const MaxToken = 64

// TokenAsked returns the token that b (a welcome or a reminder, behind a
// header or not) asks its member to send back with "/ok TOKEN", or nil.
func TokenAsked(b []byte) []byte {
	_, after, ok := bytes.Cut(b, []byte("type /ok "))
	if !ok {
		return nil
	}
	tok, _, _ := bytes.Cut(after, []byte(" "))
	if len(tok) == 0 || len(tok) > MaxToken {
		return nil
	}
	return tok
}

// WithoutTokenHint is a server line as a client that sends the token
// itself shows it: without the instruction to type "/ok TOKEN", which is
// for nc users. A reminder that is nothing but the instruction is not
// shown (ok false).
func WithoutTokenHint(line string) (shown string, ok bool) {
	if !strings.HasPrefix(line, "*** ") {
		return line, true
	}
	tok := TokenAsked([]byte(line))
	if tok == nil {
		return line, true
	}
	hint := "type /ok " + string(tok) + " to hear the chat"
	if line == "*** "+hint {
		return "", false
	}
	return strings.Replace(line, hint+"; ", "", 1), true
}
