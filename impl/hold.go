package impl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/netspec/netspec/spec"
)

type releaseReq struct {
	ctx   context.Context
	want  spec.Input
	reply chan releaseResult
}

type releaseResult struct {
	err error
}

// ErrStopped is returned by Release when the runner has stopped.
var ErrStopped = errors.New("impl: runner stopped")

// ErrBindFailed is returned by Release, wrapping the socket's error, when
// want is a successful bind and the runner's failed.
var ErrBindFailed = errors.New("impl: a bind failed that the trace says succeeded")

// Release, for a runner in Hold mode, waits until the runner holds an
// input equivalent to want (same kind and identifiers, same bytes, an
// error where want has one), then steps the machine with want. Stream
// bytes are matched across reads, since TCP keeps no boundaries; a
// writable input is given once everything written has been sent.
// Timers fire into the hold queue when the clock passes them.
func (r *Runner) Release(ctx context.Context, want spec.Input) error {
	req := &releaseReq{ctx: ctx, want: want, reply: make(chan releaseResult, 1)}
	select {
	case r.release <- req:
	case <-r.done:
		return ErrStopped
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case res := <-req.reply:
		return res.err
	case <-r.done:
		select {
		case res := <-req.reply:
			return res.err
		default:
			return ErrStopped
		}
	}
}

// tryRelease serves the pending release request if the hold queue can.
func (r *Runner) tryRelease() {
	req := r.req
	if req == nil {
		return
	}
	w := req.want
	done := func(it item) {
		r.req = nil
		it.in = w
		r.deliver(it)
		req.reply <- releaseResult{}
	}
	switch w.Kind {
	case spec.InStreamWritable:
		st := r.streams[w.Stream]
		if st == nil {
			st = r.finished[w.Stream]
		}
		if st != nil && st.drained() {
			done(item{kind: itWritable, st: st})
		}
		return
	case spec.InStreamData:
		var idx []int
		var got []byte
		for i, it := range r.held {
			if it.kind == itData && it.in.Stream == w.Stream {
				idx = append(idx, i)
				got = append(got, it.in.Data...)
				if len(got) >= len(w.Data) {
					break
				}
			}
		}
		if len(got) < len(w.Data) {
			if !bytes.HasPrefix(w.Data, got) {
				r.fail(fmt.Errorf("impl: stream %d got %q, want a prefix of %q", w.Stream, clip(got), clip(w.Data)))
			}
			return
		}
		if !bytes.Equal(got[:len(w.Data)], w.Data) {
			r.fail(fmt.Errorf("impl: stream %d got %q, want %q", w.Stream, clip(got), clip(w.Data)))
			return
		}
		last := r.held[idx[len(idx)-1]]
		st := last.st
		if extra := len(got) - len(w.Data); extra > 0 {
			rest := last.in.Data[len(last.in.Data)-extra:]
			r.held[idx[len(idx)-1]].in.Data = rest
			idx = idx[:len(idx)-1]
		}
		for k := len(idx) - 1; k >= 0; k-- {
			r.held = slices.Delete(r.held, idx[k], idx[k]+1)
		}
		done(item{kind: itData, st: st})
		return
	}
	if w.Kind == spec.InBound && w.Err == "" {
		// A bind the trace saw succeed failed here (a port taken on this
		// host): no later input can match, so say why now, with the
		// cause, for a caller that can try another way.
		for _, it := range r.held {
			if it.in.Kind == spec.InBound && it.in.Sock == w.Sock && it.cause != nil {
				r.fail(fmt.Errorf("%w: sock %d: %w", ErrBindFailed, w.Sock, it.cause))
				return
			}
		}
	}
	r.held = slices.DeleteFunc(r.held, func(it item) bool {
		ts, ok := r.timers[it.in.Timer]
		return it.kind == itTimer && (!ok || ts.token != it.token)
	})
	for i, it := range r.held {
		if equivalent(it, w) {
			r.held = slices.Delete(r.held, i, i+1)
			if it.kind == itAccepted {
				// Accepted ids are assigned as the machine learns of them.
				r.accepts++
				it.st.id = spec.AcceptedStream | spec.Stream(r.accepts)
				if it.st.id != w.Stream {
					r.fail(fmt.Errorf("impl: accepted stream would be %d, trace says %d", it.st.id, w.Stream))
					return
				}
			}
			done(it)
			return
		}
	}
}

func (r *Runner) fail(err error) {
	req := r.req
	r.req = nil
	req.reply <- releaseResult{err: err}
}

func equivalent(it item, w spec.Input) bool {
	g := it.in
	if g.Kind != w.Kind || g.Sock != w.Sock || g.Timer != w.Timer {
		return false
	}
	if it.kind != itAccepted && g.Stream != w.Stream {
		return false
	}
	if g.Addr != w.Addr || !bytes.Equal(g.Data, w.Data) || (g.Err == "") != (w.Err == "") {
		return false
	}
	if w.Local.IsValid() && g.Local != w.Local {
		// The trace saw where the datagram was sent; so must the runner
		// (traces from before Local was recorded have none to check).
		return false
	}
	if it.kind == itTimer {
		return true
	}
	return g.Cmd.Name == w.Cmd.Name && slices.Equal(g.Cmd.Args, w.Cmd.Args) && bytes.Equal(g.Cmd.Data, w.Cmd.Data)
}

// describeHeld lists the inputs waiting in Hold mode, for error messages.
func describeHeld(held []item) string {
	var b strings.Builder
	for i, it := range held {
		if i == 8 {
			fmt.Fprintf(&b, " ... (%d more)", len(held)-i)
			break
		}
		fmt.Fprintf(&b, " [%s stream=%d sock=%d addr=%v", it.in.Kind, it.in.Stream, it.in.Sock, it.in.Addr)
		if it.in.Local.IsValid() {
			fmt.Fprintf(&b, " local=%v", it.in.Local)
		}
		fmt.Fprintf(&b, " %d bytes err=%q]", len(it.in.Data), it.in.Err)
	}
	if b.Len() == 0 {
		return " (nothing)"
	}
	return b.String()
}

func clip(b []byte) []byte {
	if len(b) > 64 {
		return b[:64]
	}
	return b
}
