package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/spec/all"
)

func replayGroup() *group {
	return &group{
		name:   "replay",
		args:   "FILE",
		help:   "replay a trace against the pure machines and the socket runner",
		direct: runReplay,
	}
}

func runReplay(ctx context.Context, e *env, args []string) error {
	fs := e.flags("replay", "FILE [flags]", "Replays every node of an NDJSON trace against a fresh pure machine and against\nthe socket runner on loopback, and reports the first divergence.")
	node := fs.String("node", "", "replay only the node called `NAME`")
	specOnly := fs.Bool("spec-only", false, "replay against the pure machines only")
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	t, err := conformance.Load(pos[0])
	if err != nil {
		return err
	}
	nodes := t.Nodes()
	if *node != "" {
		nodes = []string{*node}
	}
	var failures []error
	rows := [][]string{}
	for _, n := range nodes {
		row := []string{n, "ok", "ok"}
		if err := conformance.ReplaySpec(t, n, all.Lookup); err != nil {
			row[1] = "DIVERGES"
			failures = append(failures, err)
		}
		switch {
		case *specOnly:
			row[2] = "not run"
		default:
			rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			err := conformance.ReplayImpl(rctx, t, n, all.Lookup, conformance.ImplOptions{})
			cancel()
			switch {
			case errors.Is(err, conformance.ErrSkip):
				row[2] = "skipped (" + err.Error() + ")"
			case err != nil:
				row[2] = "DIVERGES"
				failures = append(failures, err)
			}
		}
		rows = append(rows, row)
	}
	tbl := tableOf(fmt.Sprintf("%s: %s trace from %s, %d records", pos[0], t.Header.Protocol, t.Header.Source, len(t.Records)), []string{"node", "spec", "impl"}, rows)
	if err := renderTable(e.stdout, tbl); err != nil {
		return err
	}
	for _, f := range failures {
		fmt.Fprintln(e.stdout, f)
	}
	if len(failures) > 0 {
		return fmt.Errorf("replay: %d divergence(s)", len(failures))
	}
	return nil
}
