package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

func chatGroup() *group {
	return &group{
		name: "chat",
		help: "UDP group chat with heartbeats (seed 003); nc -u is a client",
		verbs: []verb{
			{"serve", "run a chat server", chatServe},
			{"join", "join a chat from the terminal", chatJoin},
		},
	}
}

// chatSeedAddr is where seed 003's chat server listened.
var chatSeedAddr = netip.MustParseAddrPort("127.0.0.1:9999")

// The range of chat serve --rate: a line in some 17 minutes at the
// least, and at most what still leaves a nanosecond between lines.
const (
	minChatRate = 0.001
	maxChatRate = 1e9
)

func chatServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("chat serve", "[--addr ADDR] [flags]",
		"Runs a UDP group chat. Every line a member sends is broadcast as [nick] line;\n"+
			"^hb^ keeps a member alive, quit leaves, /nick /who /me /help are commands.\n"+
			"Typing quit on the server's console stops it (members are told). Try: nc -u 127.0.0.1 9999")
	addr := addrFlag{ap: chatSeedAddr}
	fs.Var(&addr, "addr", "serve on `ADDR` (host:port or port; by default seed 003's)")
	interval := fs.Duration("interval", chat.DefaultInterval, "expire members silent this long")
	maxMembers := fs.Int("max-members", chat.DefaultMaxMembers, "refuse joins beyond `N` members")
	maxLine := fs.Int("max-line", chat.DefaultMaxLine, "longest message in bytes (a datagram may hold up to max(2048, this+1024) bytes of lines)")
	rate := fs.Float64("rate", chat.DefaultRate, "lines per second per member (0: no limit)")
	burst := fs.Int("burst", chat.DefaultBurst, "lines a member may send at once")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case *interval < chat.MinInterval:
		return usagef("chat serve: --interval must be at least %v", chat.MinInterval)
	case *maxMembers < 1:
		return usagef("chat serve: --max-members must be at least 1")
	case *maxLine < 1 || *maxLine > 8192:
		return usagef("chat serve: --max-line must be between 1 and 8192")
	case *rate != 0 && !(*rate >= minChatRate && *rate <= maxChatRate):
		// Also NaN, which refused every line, and rates so low that the
		// time between lines overflowed, which did too.
		return usagef("chat serve: --rate must be 0 (no limit) or between %g and %g", minChatRate, maxChatRate)
	case *burst < 1:
		return usagef("chat serve: --burst must be at least 1")
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	// The tokens that validate members' addresses must not be computable.
	secret := make([]byte, 32)
	if _, err := crand.Read(secret); err != nil {
		return fmt.Errorf("chat serve: secret: %w", err)
	}
	cfg := chat.ServerConfig{Addr: addr.ap, Interval: *interval, MaxMembers: *maxMembers, MaxLine: *maxLine,
		MaxDatagram: max(2048, *maxLine+1024), Rate: *rate, Burst: *burst, Secret: secret}
	if *rate == 0 {
		cfg.Rate = -1
	}
	r := tr.New("chat", "server", cfg, chat.NewServer(cfg), impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				fmt.Fprintf(e.stdout, "chat: listening on %s\n", ev.Text)
			case "message":
				// The seed's server logged every datagram; this logs
				// every line it broadcasts, at debug level (-v).
				if m, ok := ev.Value.(chat.MessageEvent); ok {
					log.Debug("chat: message", "from", m.Addr, "nick", m.Nick, "action", m.Action, "text", m.Text)
				}
			}
		},
	})
	// The seed's server stopped when its console read "quit".
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go console(ctx, e, func(b []byte) {
		if strings.TrimSpace(string(b)) == "quit" {
			stop()
		}
	}, func(int) {})
	return exitErr(r.Run(ctx))
}

func chatJoin(ctx context.Context, e *env, args []string) error {
	fs := e.flags("chat join", "[SERVER] [--nick NAME]",
		"Joins the chat at SERVER (default the seed's, 127.0.0.1:9999): each line you type\n"+
			"is sent, what arrives is printed, heartbeats keep you in while you are quiet;\n"+
			"quit or end of input leaves.")
	nick := fs.String("nick", "", "join as `NAME` (1-16 letters, digits, _ or -, starting with a letter)")
	interval := fs.Duration("interval", chat.DefaultInterval, "the server's silence limit until it says (heartbeats go every third of it)")
	logger := logFlags(fs)
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	server := chatSeedAddr
	if len(pos) == 1 {
		if server, err = parseAddr(pos[0], true); err != nil {
			return usagef("chat join: %v", err)
		}
	}
	if *nick != "" && !chat.ValidNick([]byte(*nick)) {
		return usagef("chat join: bad nick %q: 1-16 letters, digits, _ or -, starting with a letter", *nick)
	}
	if *interval < chat.MinInterval {
		return usagef("chat join: --interval must be at least %v", chat.MinInterval)
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	quiet := warnIfQuiet(e, "chat join", server, "still trying")
	defer quiet.stop()
	r := impl.New(chat.NewClient(chat.ClientConfig{Server: server, Nick: *nick, Interval: *interval}), impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "line":
				// The client sends the token back itself: the server's
				// "type /ok" is for nc users.
				if text, ok := chat.WithoutTokenHint(ev.Text); ok {
					// A server checks what members send, but what arrives
					// from its address may be forged, or a plain server's.
					fmt.Fprintln(e.stdout, termSafe(text))
				}
			case "joined":
				quiet.hear()
			}
		},
	})
	// The terminal: every line is a command; the end of input leaves.
	go func() {
		err := readLines(e.stdin, maxInputLine, func(line []byte) {
			r.Command(spec.Command{Name: "line", Data: line})
		}, func(n int) {
			fmt.Fprintf(e.stderr, "netspec: chat join: skipped a line of %d bytes (the limit is %d)\n", n, maxInputLine-1)
		})
		if err != nil {
			fmt.Fprintf(e.stderr, "netspec: chat join: reading input: %v\n", err)
		}
		r.Command(spec.Command{Name: "quit"})
	}()
	return exitErr(r.Run(ctx))
}

// maxInputLine bounds a line typed to chat join; a server refuses much
// shorter ones (--max-line is at most 8192) with a notice.
const maxInputLine = 64 << 10

// readLines calls line with each line of r (without its LF or CRLF, in a
// buffer of its own) until the end of input, which it does not report
// as an error. A line of max bytes or more is skipped, reported to long
// with its length, so one oversized line (a paste, a binary file) does
// not end the session.
func readLines(r io.Reader, max int, line func([]byte), long func(n int)) error {
	br := bufio.NewReaderSize(r, max)
	for {
		b, more, err := br.ReadLine()
		if more {
			n := len(b)
			for more && err == nil {
				b, more, err = br.ReadLine()
				n += len(b)
			}
			long(n)
		} else if err == nil {
			line(append([]byte(nil), b...))
		}
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return err
		}
	}
}
