// Command netspec runs the netspec protocols on real sockets, runs
// simulated experiments, and replays traces.
//
//	netspec sim [SCENARIO] [flags]      run a simulated experiment
//	netspec replay FILE                 replay a trace against spec and impl
//	netspec <protocol> <verb> [flags]   run a protocol node on real sockets
//
// Every command takes -h.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	if code == 1 && ctx.Err() != nil {
		// A command cut short by Ctrl-C or SIGTERM (a download, a
		// simulation) exits as a shell reports an interrupted one, so a
		// script tells it from a failure; one that stops cleanly, as a
		// server does, exits 0.
		code = 130
	}
	stop()
	os.Exit(code)
}

// groups lists the command groups; each lives in its own file.
func groups() []*group {
	return []*group{
		simGroup(),
		replayGroup(),
		traceGroup(),
		labGroup(),
		echoGroup(),
		chatGroup(),
		streamGroup(),
		fileGroup(),
		csGroup(), p2pGroup(),
		tftpGroup(),
	}
}

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := &env{stdin: stdin, stdout: stdout, stderr: stderr}
	if len(args) == 0 {
		topUsage(e.stderr) // a usage error, like a group without its verb
		return 2
	}
	if args[0] == "help" && len(args) > 1 {
		// help CMD [VERB] is CMD [VERB] -h.
		args = append(args[1:], "-h")
	} else if isHelp(args[0]) {
		topUsage(e.stdout)
		return 0
	}
	for _, g := range groups() {
		if g.name != args[0] {
			continue
		}
		return g.run(ctx, e, args[1:])
	}
	fmt.Fprintf(stderr, "netspec: unknown command %q\n\n", args[0])
	topUsage(stderr)
	return 2
}

func topUsage(w io.Writer) {
	fmt.Fprintln(w, "netspec: executable, property-tested specifications of classic socket protocols")
	fmt.Fprintln(w, "\nusage: netspec <command> [arguments]")
	fmt.Fprintln(w)
	for _, g := range groups() {
		fmt.Fprintf(w, "  %-22s %s\n", g.synopsis(), g.help)
	}
	fmt.Fprintln(w, "\nRun 'netspec <command> -h' for details.")
}

// group is a command, or a protocol with verbs.
type group struct {
	name  string
	help  string
	verbs []verb
	// run, if set, is the command itself (no verbs).
	direct func(ctx context.Context, e *env, args []string) error
	args   string
}

type verb struct {
	name, help string
	run        func(ctx context.Context, e *env, args []string) error
}

func (g *group) synopsis() string {
	if g.direct != nil {
		return strings.TrimSpace(g.name + " " + g.args)
	}
	names := make([]string, len(g.verbs))
	for i, v := range g.verbs {
		names[i] = v.name
	}
	return g.name + " " + strings.Join(names, "|")
}

func (g *group) run(ctx context.Context, e *env, args []string) int {
	if g.direct != nil {
		return exitCode(e, g.direct(ctx, e, args))
	}
	if len(args) == 0 || isHelp(args[0]) {
		w := e.stdout
		if len(args) == 0 {
			w = e.stderr
		}
		fmt.Fprintf(w, "usage: netspec %s <verb> [flags]\n\n%s\n\n", g.name, g.help)
		verbs := append([]verb(nil), g.verbs...)
		sort.Slice(verbs, func(i, j int) bool { return verbs[i].name < verbs[j].name })
		for _, v := range verbs {
			fmt.Fprintf(w, "  %-10s %s\n", v.name, v.help)
		}
		fmt.Fprintf(w, "\nRun 'netspec %s <verb> -h' for the verb's flags.\n", g.name)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, v := range g.verbs {
		if v.name == args[0] {
			return exitCode(e, v.run(ctx, e, args[1:]))
		}
	}
	names := make([]string, len(g.verbs))
	for i, v := range g.verbs {
		names[i] = v.name
	}
	sort.Strings(names)
	fmt.Fprintf(e.stderr, "netspec %s: unknown verb %q: want one of %s (try 'netspec %s -h')\n", g.name, args[0], strings.Join(names, ", "), g.name)
	return 2
}

// isHelp reports an argument asking for help, as the flag package
// accepts it at the verb level too.
func isHelp(a string) bool {
	switch a {
	case "-h", "-help", "--help", "help":
		return true
	}
	return false
}

// usageError is a bad command line: exit status 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Sprintf(format, args...)}
}

// errHelp is -h: the usage was printed, exit 0.
var errHelp = errors.New("help requested")

func exitCode(e *env, err error) int {
	var u *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errHelp):
		return 0
	case errors.As(err, &u):
		fmt.Fprintf(e.stderr, "netspec: %s\n", u.msg)
		return 2
	default:
		fmt.Fprintf(e.stderr, "netspec: %v\n", err)
		return 1
	}
}
