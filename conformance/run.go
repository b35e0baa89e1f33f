package conformance

import (
	"context"
	"errors"
	"fmt"
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

// ErrNoNodes reports a trace with no node to replay: replaying it would
// check nothing, which must not read as a pass.
var ErrNoNodes = errors.New("conformance: the trace has no node with records to replay")

// ErrUnknownNode reports records of a node the trace header does not
// describe, so no machine can be built to replay them.
var ErrUnknownNode = errors.New("conformance: node has records but no entry in the trace header")

// Replay replays nodes of t against the pure machines and the socket
// runner, one node at a time: what `netspec replay` does. Without
// opt.Nodes it replays every node with records, including those the
// header lacks (they fail: nothing says how to rebuild them); a trace
// with none gives one failed report whose Spec is ErrNoNodes.
func Replay(ctx context.Context, t *Trace, lookup Lookup, opt ReplayOptions) []NodeReport {
	nodes := opt.Nodes
	if nodes == nil {
		nodes = append(t.Nodes(), t.unknownNodes()...)
	}
	if len(nodes) == 0 {
		return []NodeReport{{Spec: ErrNoNodes}}
	}
	if opt.NodeTimeout <= 0 {
		opt.NodeTimeout = 2 * time.Minute
	}
	reports := make([]NodeReport, 0, len(nodes))
	for _, n := range nodes {
		if _, ok := t.Header.Node(n); !ok {
			reports = append(reports, NodeReport{Node: n, Spec: fmt.Errorf("%w: %q", ErrUnknownNode, n)})
			continue
		}
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

// unknownNodes lists, in order of appearance, the nodes that have input
// or output records but no entry in the header.
func (t *Trace) unknownNodes() []string {
	var names []string
	seen := map[string]bool{}
	for _, r := range t.Records {
		if (r.In == "" && r.Out == "") || seen[r.Node] {
			continue
		}
		seen[r.Node] = true
		if _, ok := t.Header.Node(r.Node); !ok {
			names = append(names, r.Node)
		}
	}
	return names
}
