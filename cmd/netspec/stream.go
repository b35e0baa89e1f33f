package main

import (
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/stream"
	"github.com/olekukonko/tablewriter"
)

// streamDefaultAddr is where 'stream serve' listens and 'stream listen'
// joins without an address: the seed names no port, RTP's is 5004 (RFC
// 3551, section 8).
var streamDefaultAddr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 5004)

func streamGroup() *group {
	return &group{
		name: "stream",
		help: "seed 000's numbered UDP stream, on RTP/RTCP",
		verbs: []verb{
			{"serve", "stream the numbered sequence to every listener", streamServe},
			{"listen", "join a stream, print its packets and its statistics", streamListen},
		},
	}
}

// delayFlag is a duration given as Go duration text or, like the seed's
// first argument, as a number of seconds.
type delayFlag struct{ d time.Duration }

func (f *delayFlag) String() string { return f.d.String() }

func (f *delayFlag) Set(s string) error {
	d, err := parseDelay(s)
	if err != nil {
		return err
	}
	f.d = d
	return nil
}

// maxDelay is the longest delay or report interval a listener accepts
// in a WELCOME (see stream.DecodeWelcome).
const maxDelay = 24 * time.Hour

// minDelay is the shortest: a million packets a second, more than the
// server can send; below it "1e-9" is a typo, not a rate.
const minDelay = time.Microsecond

func parseDelay(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if secs, ferr := strconv.ParseFloat(s, 64); ferr == nil {
		// !(in range) also catches NaN; a delay that rounds to 0ns is
		// as bad as 0.
		if !(secs >= minDelay.Seconds() && secs <= maxDelay.Seconds()) {
			return 0, fmt.Errorf("delay %q out of range (%v to %v)", s, minDelay, maxDelay)
		}
		d, err = time.Duration(secs*float64(time.Second)), nil
	}
	switch {
	case err != nil:
		return 0, fmt.Errorf("bad delay %q (want e.g. 2, 0.5 or 20ms)", s)
	case d < minDelay || d > maxDelay:
		return 0, fmt.Errorf("delay %q out of range (%v to %v)", s, minDelay, maxDelay)
	}
	return d, nil
}

// termSafe returns s fit to print on a terminal: C0 controls but TAB,
// DEL, C1 controls and bytes that are not UTF-8 are escaped (\x1b), so
// text from the network (a CNAME, a chat line) can neither drive the
// terminal nor start a line of its own that looks like ours. Other text,
// emoji sequences with their joiners included, is left as it is.
func termSafe(s string) string {
	bad := func(r rune, n int) bool {
		return (r == utf8.RuneError && n <= 1) || (r < 0x20 && r != '\t') || (r >= 0x7f && r <= 0x9f)
	}
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		if bad(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.WriteString(s[:i])
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, "\\x%02x", s[i])
		case bad(r, n):
			fmt.Fprintf(&b, "\\x%02x", r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// randomUint64 draws from the operating system's generator: a real
// server's secret and SSRC must not be predictable.
func randomUint64() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:])
}

func streamServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("stream serve", "[--addr ADDR] [DELAY] [flags]",
		"Streams packets index 0, 1, 2, ... (data 2*(index+1)) as RTP to every listener that\n"+
			"joins, one every DELAY (seconds, or a duration such as 20ms; as the seed's first\n"+
			"argument, or --delay). Prints a table of the statistics the listeners report on\n"+
			"SIGUSR1 and every --report interval. 'netspec stream serve 2' is the seed's\n"+
			"'server.py 2', on RTP's port 5004 of 127.0.0.1.")
	addr := addrFlag{ap: streamDefaultAddr}
	delay := delayFlag{time.Second}
	fs.Var(&addr, "addr", "serve on `ADDR` (host:port or port)")
	fs.Var(&delay, "delay", "time between packets: `DURATION` or seconds")
	// A table per millisecond is unreadable, and a nanosecond ticker
	// would print without pause.
	const minTableInterval = 100 * time.Millisecond
	report := fs.Duration("report", 0, "print the subscriber table every `INTERVAL` (0: only on SIGUSR1)")
	interval := fs.Duration("interval", time.Second, "listeners' receiver report interval")
	expire := fs.Int("expire", 5, "drop a listener silent for this many report intervals")
	maxSubs := fs.Int("max-subscribers", 1024, "refuse joins beyond this many listeners")
	joinRate := fs.Int("join-rate", 200, "handle at most this many joins per second")
	logPackets := fs.Bool("log-packets", false, "log every packet sent, as the seed's server log does")
	count := fs.Uint64("count", 0, "end the stream after `N` packets (0: never)")
	loss := fs.Float64("loss", 0, "drop this share of outgoing datagrams (seeded fault injection, for experiments)")
	faultSeed := fs.Uint64("fault-seed", 1, "seed of the --loss fault injector")
	asJSON := fs.Bool("json", false, "print subscriber tables as JSON")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		if flagSet(fs, "delay") {
			return usagef("stream serve: the delay is given twice (--delay and the argument %q): give one", pos[0])
		}
		if delay.d, err = parseDelay(pos[0]); err != nil {
			if _, aerr := netip.ParseAddrPort(pos[0]); aerr == nil && !flagSet(fs, "addr") {
				return usagef("stream serve: the argument is the delay; give the address as --addr %s", pos[0])
			}
			return usagef("stream serve: %v", err)
		}
	}
	switch {
	case *interval < stream.MinReportInterval || *interval > maxDelay:
		return usagef("stream serve: --interval must be between %v and %v", stream.MinReportInterval, maxDelay)
	case *expire < 2 || *expire > stream.MaxExpireAfter:
		return usagef("stream serve: --expire must be between 2 and %d", stream.MaxExpireAfter)
	case *maxSubs < 1 || *joinRate < 1:
		return usagef("stream serve: --max-subscribers and --join-rate must be >= 1")
	case *report < 0 || (*report > 0 && *report < minTableInterval):
		return usagef("stream serve: --report must be 0 (only on SIGUSR1) or at least %v", minTableInterval)
	case !(*loss >= 0 && *loss < 1): // NaN too
		return usagef("stream serve: --loss must be in [0, 1)")
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	secret := make([]byte, 32)
	if _, err := crand.Read(secret); err != nil {
		return fmt.Errorf("stream serve: secret: %w", err)
	}
	cfg := stream.ServerConfig{
		Addr: addr.ap, Delay: delay.d, ReportInterval: *interval, ExpireAfter: *expire,
		MaxSubscribers: *maxSubs, JoinRate: *joinRate, Secret: secret, Seed: randomUint64(), LogPackets: *logPackets, Count: *count,
	}
	r := tr.New("stream", "server", cfg, stream.NewServer(cfg), impl.Options{
		Logger: log,
		Faults: impl.FaultConfig{Seed: *faultSeed, Loss: *loss},
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				l := ev.Value.(stream.Listening)
				fmt.Fprintf(e.stdout, "stream: listening on %s (ssrc 0x%08x), a packet every %v\n", l.Addr, l.SSRC, delay.d)
			case "subscribed":
				a := ev.Value.(stream.Arrival)
				fmt.Fprintf(e.stdout, "+ %s joined (ssrc 0x%08x, %s) at index %d\n", a.Addr, a.SSRC, termSafe(a.CNAME), a.FirstIndex)
			case "unsubscribed":
				d := ev.Value.(stream.Departure)
				fmt.Fprintf(e.stdout, "- %s left: %s (%d packets sent)\n", d.Addr, termSafe(d.Reason), d.Sent)
			case "subscribers":
				rows := ev.Value.([]stream.SubscriberInfo)
				if *asJSON {
					_ = writeJSON(e.stdout, rows)
				} else {
					_ = renderSubscribers(e.stdout, now, rows)
				}
			}
		},
	})
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)
	var tick <-chan time.Time
	if *report > 0 {
		t := time.NewTicker(*report)
		defer t.Stop()
		tick = t.C
	}
	go func() {
		for {
			select {
			case <-usr1:
			case <-tick:
			case <-r.Done():
				return
			}
			r.Command(spec.Command{Name: "report"})
		}
	}()
	return exitErr(r.Run(ctx))
}

// renderSubscribers prints the server's per-subscriber table.
func renderSubscribers(w io.Writer, now spec.Time, rows []stream.SubscriberInfo) error {
	fmt.Fprintf(w, "subscribers at %s: %d\n", now.Wall().Format(time.TimeOnly), len(rows))
	if len(rows) == 0 {
		return nil
	}
	t := tablewriter.NewTable(w)
	t.Header("subscriber", "cname", "for", "sent", "reports", "last heard", "ext seq", "lost", "fraction", "jitter", "packets", "dups", "reordered", "sum")
	for _, r := range rows {
		ext, lost, frac, jit := "-", "-", "-", "-"
		if r.HasRR {
			ext, lost = fmt.Sprint(r.ExtMax), fmt.Sprint(r.Lost)
			frac = fmt.Sprintf("%.1f%%", float64(r.FractionLost)*100/256)
			jit = fmt.Sprintf("%.2fms", float64(r.JitterUs)/1000)
		}
		if err := t.Append(r.Addr, termSafe(r.CNAME), r.For.Round(time.Second).String(), fmt.Sprint(r.Sent), fmt.Sprint(r.Reports),
			r.LastHeard.Round(time.Millisecond).String()+" ago", ext, lost, frac, jit,
			fmt.Sprint(r.Packets), fmt.Sprint(r.Duplicates), fmt.Sprint(r.Reordered), fmt.Sprint(r.Sum)); err != nil {
			return err
		}
	}
	return t.Render()
}

func streamListen(ctx context.Context, e *env, args []string) error {
	fs := e.flags("stream listen", "[SERVER] [--duration D | --count N] [flags]",
		"Joins the stream at SERVER (host:port; default 127.0.0.1:5004, where 'stream serve'\n"+
			"serves by default), prints every packet as the seed does (Received: Index - i,\n"+
			"Data - d) and, when it ends (duration, count, Ctrl-C or the server's goodbye),\n"+
			"says goodbye and prints its RFC 3550 statistics.")
	duration := fs.Duration("duration", 0, "leave after `D` (0, and no --count: stay until interrupted)")
	count := fs.Uint64("count", 0, "leave after `N` packets (0, and no --duration: stay until interrupted)")
	port := fs.Uint("port", 0, "first local port to try, moving to the next while taken (0: any free port)")
	quiet := fs.Bool("quiet", false, "do not print every packet")
	asJSON := fs.Bool("json", false, "print the statistics as JSON (implies --quiet)")
	joinTimeout := fs.Duration("join-timeout", 500*time.Millisecond, "first wait for the server's answer (doubles per retry)")
	joinTries := fs.Int("join-tries", 8, "join requests (HELLOs, then ECHOs of the challenge) to send before giving up")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	server := streamDefaultAddr
	if len(pos) == 1 {
		if server, err = parseAddr(pos[0], true); err != nil {
			return usagef("stream listen: %v", err)
		}
	}
	switch {
	case server.Port() == 0:
		return usagef("stream listen: SERVER needs a port")
	case *duration != 0 && *count != 0:
		return usagef("stream listen: give --duration or --count, not both")
	case *duration < 0:
		return usagef("stream listen: --duration must be >= 0 (0: until --count, or interrupted)")
	case *port > 65535:
		return usagef("stream listen: --port must be at most 65535")
	case *joinTimeout <= 0:
		return usagef("stream listen: --join-timeout must be positive")
	case *joinTries < 1:
		return usagef("stream listen: --join-tries must be at least 1")
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg := stream.ClientConfig{Server: server, Port: uint16(*port), Count: *count, Duration: *duration,
		Seed: randomUint64(), JoinTimeout: *joinTimeout, JoinTries: *joinTries}
	var final *stream.Stats
	var out strings.Builder
	flush := func() {
		if out.Len() > 0 {
			io.WriteString(e.stdout, out.String())
			out.Reset()
		}
	}
	r := tr.New("stream", "client", cfg, stream.NewClient(cfg), impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				if !*asJSON {
					a := ev.Text[strings.LastIndex(ev.Text, ":")+1:]
					fmt.Fprintf(&out, "UDP client listening on port: %s\n", a)
				}
			case "packet":
				if !*quiet && !*asJSON {
					p := ev.Value.(stream.Packet)
					fmt.Fprintf(&out, "Received: Index - %d, Data - %d\n", p.Index, p.Data)
				}
			case "bye":
				if !*asJSON {
					fmt.Fprintf(&out, "the server said goodbye: %s\n", termSafe(ev.Text))
				}
			case "stats":
				st := ev.Value.(stream.Stats)
				final = &st
			}
			// Per-packet lines go out in batches, not one write each.
			if out.Len() > 32<<10 || ev.Name != "packet" {
				flush()
			}
		},
		OnStep: func(spec.Time, spec.Input, []spec.Output) { flush() },
	})
	runErr := exitErr(r.Run(ctx))
	flush()
	if final != nil {
		if *asJSON {
			if err := writeJSON(e.stdout, final); err != nil {
				return err
			}
		} else if err := renderStats(e.stdout, final); err != nil {
			return err
		}
	}
	return runErr
}

// renderStats prints a listener's statistics: one column per server
// source (normally one).
func renderStats(w io.Writer, st *stream.Stats) error {
	fmt.Fprintf(w, "\nstatistics of the stream from %s (ended: %s)\n", st.Server, st.Ended)
	header := []any{"statistic"}
	for i := range st.Sources {
		header = append(header, fmt.Sprintf("source %d", i+1))
	}
	if len(st.Sources) == 0 {
		header = append(header, "value")
	}
	rows := []struct {
		name string
		f    func(s stream.SourceStats) string
	}{
		{"server SSRC", func(s stream.SourceStats) string { return fmt.Sprintf("0x%08x", s.SSRC) }},
		{"packets received (RFC 3550, copies included)", func(s stream.SourceStats) string { return fmt.Sprint(s.Received) }},
		{"expected", func(s stream.SourceStats) string { return fmt.Sprint(s.Expected) }},
		{"lost (cumulative)", func(s stream.SourceStats) string { return fmt.Sprint(s.Lost) }},
		{"fraction lost, last interval", func(s stream.SourceStats) string {
			return fmt.Sprintf("%d/256 (%.1f%%)", s.FractionLost, float64(s.FractionLost)*100/256)
		}},
		{"duplicates", func(s stream.SourceStats) string { return fmt.Sprint(s.Duplicates) }},
		{"out of order (RFC 4737)", func(s stream.SourceStats) string { return fmt.Sprint(s.Reordered) }},
		{"interarrival jitter", func(s stream.SourceStats) string {
			return fmt.Sprintf("%.3fms (%d ts units)", float64(s.JitterUs)/1000, s.Jitter)
		}},
		{"first / extended highest seq", func(s stream.SourceStats) string {
			return fmt.Sprintf("%d / %d (%d wraps)", s.BaseSeq, s.ExtMax, s.Cycles)
		}},
	}
	t := tablewriter.NewTable(w)
	t.Header(header...)
	for _, r := range rows {
		line := []any{r.name}
		for _, s := range st.Sources {
			line = append(line, r.f(s))
		}
		if len(st.Sources) == 0 {
			line = append(line, "-")
		}
		if err := t.Append(line...); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	var lost int64
	for _, s := range st.Sources {
		lost += s.Lost
	}
	// The seed's closing lines.
	fmt.Fprintf(w, "Total sum of received data: %d\nTotal packets received: %d\nTotal packets lost: %d\nPackets out of order: %d\n",
		st.Sum, st.Packets, lost, st.Reordered)
	fmt.Fprintf(w, "duplicates %d, joins begun %d (rejoins %d), reports sent %d\n", st.Duplicates, st.Joins, st.Rejoins, st.Reports)
	return nil
}
