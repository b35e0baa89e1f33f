package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/netspec/netspec/sim/scenario"
	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// env is what a command may touch: its streams.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
}

// flags returns a flag set for "netspec NAME", with usage text.
func (e *env) flags(name, synopsis, help string) *flag.FlagSet {
	fs := flag.NewFlagSet("netspec "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: netspec %s %s\n\n%s\n", name, synopsis, help)
		any := false
		fs.VisitAll(func(*flag.Flag) { any = true })
		if any {
			fmt.Fprint(fs.Output(), "\nflags:\n")
			fs.PrintDefaults()
		}
	}
	return fs
}

// parse parses args, allowing flags after positional arguments (netspec
// stream listen SERVER --count 5), and checks the number of positional
// arguments is between min and max (max < 0: any).
func (e *env) parse(fs *flag.FlagSet, args []string, min, max int) ([]string, error) {
	var pos []string
	// The flag package would print the whole usage on a bad flag; one
	// line and a pointer to -h reads better.
	fs.SetOutput(io.Discard)
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				fs.SetOutput(e.stdout)
				fs.Usage()
				return nil, errHelp
			}
			return nil, usagef("%s: %v (see '%s -h')", strings.TrimPrefix(fs.Name(), "netspec "), err, fs.Name())
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		want := fmt.Sprintf("%d", min)
		if max != min {
			if max < 0 {
				want = fmt.Sprintf("at least %d", min)
			} else {
				want = fmt.Sprintf("%d to %d", min, max)
			}
		}
		return nil, usagef("%s: want %s argument(s), got %d (see -h)", strings.TrimPrefix(fs.Name(), "netspec "), want, len(pos))
	}
	return pos, nil
}

// logFlags adds --log FILE and -v to fs and returns a function that opens
// the logger once flags are parsed (and a closer).
func logFlags(fs *flag.FlagSet) func(e *env) (*slog.Logger, func(), error) {
	return logFlagsAt(fs, false)
}

// logFlagsAt is logFlags; with virtual, records carry no wall-clock time
// (the simulator's carry their virtual time, t=), so a seed's log is the
// same on every run.
func logFlagsAt(fs *flag.FlagSet, virtual bool) func(e *env) (*slog.Logger, func(), error) {
	file := fs.String("log", "", "append the log to `FILE` (default: stderr)")
	verbose := fs.Bool("v", false, "log at debug level (every dropped packet)")
	return func(e *env) (*slog.Logger, func(), error) {
		level := slog.LevelInfo
		if *verbose {
			level = slog.LevelDebug
		}
		var w io.Writer = e.stderr
		closer := func() {}
		if *file != "" {
			f, err := os.OpenFile(*file, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return nil, nil, usagef("%s: --log: %v", strings.TrimPrefix(fs.Name(), "netspec "), err)
			}
			w, closer = f, func() { f.Close() }
		}
		opts := &slog.HandlerOptions{Level: level}
		if virtual {
			opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
				if len(groups) == 0 && a.Key == slog.TimeKey {
					return slog.Attr{}
				}
				return a
			}
		}
		return slog.New(slog.NewTextHandler(w, opts)), closer, nil
	}
}

// addrFlag is a flag holding a host:port to bind, "" meaning unset.
type addrFlag struct{ ap netip.AddrPort }

func (a *addrFlag) String() string {
	if !a.ap.IsValid() {
		return ""
	}
	return a.ap.String()
}

func (a *addrFlag) Set(s string) error {
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("empty address (want HOST:PORT, :PORT or PORT)")
	}
	ap, err := parseAddr(s, false)
	if err != nil {
		return err
	}
	a.ap = ap
	return nil
}

// parseAddr parses HOST:PORT, ":PORT" or PORT; hosts are resolved, which
// is why this lives in cmd and not in spec. With remote, the host must not
// be empty.
func parseAddr(s string, remote bool) (netip.AddrPort, error) {
	if strings.TrimSpace(s) == "" {
		return netip.AddrPort{}, errors.New("an address is needed (HOST:PORT, or PORT)")
	}
	bare := !strings.Contains(s, ":")
	if bare {
		s = ":" + s
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad address %q: %w", s, err)
	}
	if host == "" {
		if remote {
			host = "127.0.0.1"
		} else {
			host = "0.0.0.0"
		}
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		ips, lerr := net.LookupHost(host)
		if lerr != nil || len(ips) == 0 {
			return netip.AddrPort{}, fmt.Errorf("bad host %q: %v", host, lerr)
		}
		ip, err = netip.ParseAddr(ips[0])
		if err != nil {
			return netip.AddrPort{}, err
		}
	}
	p, err := net.LookupPort("udp", port)
	if err != nil {
		if bare {
			// "127.0.0.1" or "host": a host without its port.
			return netip.AddrPort{}, fmt.Errorf("bad address %q: want HOST:PORT (or a bare PORT)", port)
		}
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	if remote && p == 0 {
		return netip.AddrPort{}, fmt.Errorf("bad address %q: port 0 cannot be sent to", s)
	}
	return netip.AddrPortFrom(ip.Unmap(), uint16(p)), nil
}

// renderTable prints a scenario table with tablewriter.
func renderTable(w io.Writer, t scenario.Table) error {
	if t.Title != "" {
		fmt.Fprintln(w, t.Title)
	}
	// Headers are printed as written: auto-formatting would upper-case
	// them and split "P2P" into "P 2 P".
	table := tablewriter.NewTable(w, tablewriter.WithHeaderAutoFormat(tw.Off))
	table.Header(toAny(t.Header)...)
	for _, r := range t.Rows {
		if err := table.Append(toAny(r)...); err != nil {
			return err
		}
	}
	if err := table.Render(); err != nil {
		return err
	}
	for _, n := range t.Notes {
		fmt.Fprintln(w, n)
	}
	return nil
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func tableOf(title string, header []string, rows [][]string) scenario.Table {
	return scenario.Table{Title: title, Header: header, Rows: rows}
}

// quietServer warns once on stderr if a client hears nothing from its
// server for a few seconds: clients retry for a long time, and a user
// should not have to guess whether anything is happening.
type quietServer struct {
	heard atomic.Bool
	t     *time.Timer
	done  chan struct{} // closed when the timer's function has run
}

// warnIfQuiet starts the watch; call heard when the server answers and
// stop when the command ends. plan says what the client does meanwhile.
func warnIfQuiet(e *env, cmd string, server netip.AddrPort, plan string) *quietServer {
	q := &quietServer{done: make(chan struct{})}
	q.t = time.AfterFunc(3*time.Second, func() {
		defer close(q.done)
		if !q.heard.Load() {
			fmt.Fprintf(e.stderr, "netspec: %s: no answer from %s yet; %s\n", cmd, server, plan)
		}
	})
	return q
}

func (q *quietServer) hear() { q.heard.Store(true) }

// stop cancels the warning, or waits for it if it is being written, so
// that nothing is written to stderr after the command has returned.
func (q *quietServer) stop() {
	if !q.t.Stop() {
		<-q.done
	}
}
