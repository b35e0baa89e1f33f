package conformance

import (
	"context"
	"errors"
	"time"
)

// ReplayOptions tunes Replay.
type ReplayOptions struct {
	// Nodes to replay (nil: every node with records).
	Nodes []string
	// SpecOnly replays against the pure machines only.
	SpecOnly bool
	// NodeTimeout bounds each node's replay against impl (default 2m).
	NodeTimeout time.Duration
	// Impl tunes the replays against impl; its OnSkip, if set, is called
	// besides filling NodeReport.Skipped.
	Impl ImplOptions
}

// NodeReport is what replaying one node of a trace found.
type NodeReport struct {
	Node string
	// Spec is nil if the pure machine reproduced the node's records.
	Spec error
	// Impl is nil if the socket runner reproduced them (less Skipped);
	// it wraps ErrSkip if the node cannot be replayed on sockets. ImplRun
	// is false if the replay against impl was not asked for.
	Impl    error
	ImplRun bool
	// Skipped lists the records the replay against impl left out.
	Skipped []Skip
}

// Failed says whether either replay diverged.
func (r NodeReport) Failed() bool {
	return r.Spec != nil || (r.Impl != nil && !errors.Is(r.Impl, ErrSkip))
}

// Replay replays nodes of t against the pure machines and the socket
// runner, one node at a time: what `netspec replay` does.
func Replay(ctx context.Context, t *Trace, lookup Lookup, opt ReplayOptions) []NodeReport {
	nodes := opt.Nodes
	if nodes == nil {
		nodes = t.Nodes()
	}
	if opt.NodeTimeout <= 0 {
		opt.NodeTimeout = 2 * time.Minute
	}
	reports := make([]NodeReport, 0, len(nodes))
	for _, n := range nodes {
		rep := NodeReport{Node: n, Spec: ReplaySpec(t, n, lookup)}
		if !opt.SpecOnly {
			io := opt.Impl
			io.OnSkip = func(s Skip) {
				rep.Skipped = append(rep.Skipped, s)
				if opt.Impl.OnSkip != nil {
					opt.Impl.OnSkip(s)
				}
			}
			rctx, cancel := context.WithTimeout(ctx, opt.NodeTimeout)
			rep.Impl, rep.ImplRun = ReplayImpl(rctx, t, n, lookup, io), true
			cancel()
		}
		reports = append(reports, rep)
	}
	return reports
}
