package conformance_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/conformance"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec/all"
	"github.com/netspec/netspec/spec/trace"
)

// recordSimTrace runs sc as `netspec sim NAME --seed SEED --trace FILE
// ARGS...` does, the scenario's flags parsed from args, and returns the
// file.
func recordSimTrace(t *testing.T, sc scenario.Scenario, seed uint64, args ...string) string {
	t.Helper()
	fs := flag.NewFlagSet(sc.Name(), flag.ContinueOnError)
	sc.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), sc.Name()+".ndjson")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Run(scenario.Options{Seed: seed, Trace: f})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil || res.Failed != "" {
		t.Fatalf("%s seed %d: %v %s", sc.Name(), seed, err, res.Failed)
	}
	return path
}

// replaySimTrace records sc (recordSimTrace) and replays the file as
// `netspec replay FILE` does. It returns the records left out of the
// replay against impl.
func replaySimTrace(t *testing.T, sc scenario.Scenario, seed uint64, args ...string) []conformance.Skip {
	t.Helper()
	tr, err := conformance.Load(recordSimTrace(t, sc, seed, args...))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var skipped []conformance.Skip
	for _, rep := range conformance.Replay(ctx, tr, all.Lookup, conformance.ReplayOptions{}) {
		if rep.Spec != nil {
			t.Errorf("%s seed %d: spec: %v", sc.Name(), seed, rep.Spec)
		}
		if rep.Impl != nil {
			t.Errorf("%s seed %d: impl: %v", sc.Name(), seed, rep.Impl)
		}
		for _, s := range rep.Skipped {
			t.Logf("%s seed %d: %v", sc.Name(), seed, s)
		}
		skipped = append(skipped, rep.Skipped...)
	}
	return skipped
}

// TestReplaySimEchoTrace: `netspec sim echo --seed N --trace FILE` with
// its four clients (two on TCP) replays, every record of it: a TCP client
// exits as soon as it reads the server's FIN, and the simulator, like a
// kernel, then ends the stream without a reset.
func TestReplaySimEchoTrace(t *testing.T) {
	for seed := uint64(1); seed <= 4; seed++ {
		for _, s := range replaySimTrace(t, &scenario.Echo{}, seed) {
			t.Errorf("seed %d: skipped %v", seed, s)
		}
	}
}

// TestReplaySimFileTrace: `netspec sim file --seed 1 --trace FILE` (a
// 10 MB download) replays: the harness must not lose any of the server's
// ~7,400 datagrams on loopback however fast the runner sends them. The
// race detector makes the simulation and parsing ten times slower, so
// there the file is smaller.
func TestReplaySimFileTrace(t *testing.T) {
	var args []string
	if raceEnabled {
		args = []string{"--size", "2000000"}
	}
	if skipped := replaySimTrace(t, &scenario.File{}, 1, args...); len(skipped) != 0 {
		t.Errorf("skipped %d records of a UDP-only trace", len(skipped))
	}
}

// TestReplaySkipKeepsIndices: a divergence after a record the impl replay
// skips is still reported at its index among the node's records, and
// says what was skipped before it.
func TestReplaySkipKeepsIndices(t *testing.T) {
	tr, err := conformance.Load(recordSimTrace(t, &scenario.Echo{}, 1))
	if err != nil {
		t.Fatal(err)
	}
	// A reset after EOF, as the simulator used to record when a client
	// exited with its last ACK in flight: put one just after the server's
	// own close of a stream whose EOF it read, so that records follow it.
	eof, closed := -1, -1
	for i, r := range tr.Records {
		if eof < 0 && r.Node == "server" && r.In == "closed" && r.Err == "" {
			eof = i
		}
	}
	if eof < 0 {
		t.Fatal("the server never read an EOF")
	}
	for i, r := range tr.Records {
		if i > eof && r.Node == "server" && r.Out == "close" && r.Stream == tr.Records[eof].Stream {
			closed = i
			break
		}
	}
	if closed < 0 {
		t.Fatal("the server never closed the stream it read EOF on")
	}
	rst := tr.Records[eof]
	rst.T, rst.Err = tr.Records[closed].T, "connection reset by peer"
	recs := append([]trace.Record(nil), tr.Records[:closed+1]...)
	recs = append(recs, rst)
	tr.Records = append(recs, tr.Records[closed+1:]...)

	// Change the server's last datagram.
	target := -1
	for i, r := range tr.Records {
		if r.Node == "server" && r.Out == "send" {
			target = i
		}
	}
	if target <= closed {
		t.Fatal("no server datagram after the moved reset")
	}
	p, _ := tr.Records[target].Payload()
	bad := append([]byte{}, p...)
	bad[0] ^= 0xff
	tr.Records[target].SetPayload(bad)
	wantIdx, skipIdx := -1, -1
	for i, r := range tr.NodeRecords("server") {
		pp, _ := r.Payload()
		switch {
		case r.Out == "send" && bytes.Equal(pp, bad):
			wantIdx = i
		case r.In == "closed" && r.Err != "":
			skipIdx = i
		}
	}

	var skips []conformance.Skip
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err = conformance.ReplayImpl(ctx, tr, "server", all.Lookup, conformance.ImplOptions{
		Timeout: 2 * time.Second,
		OnSkip:  func(s conformance.Skip) { skips = append(skips, s) },
	})
	if len(skips) != 1 || skips[0].Index != skipIdx {
		t.Fatalf("skipped %v, want record %d", skips, skipIdx)
	}
	t.Logf("skipped record %d, tampered record %d: %v", skipIdx, wantIdx, err)
	var d *conformance.Divergence
	if !errors.As(err, &d) || d.Index != wantIdx || !strings.Contains(d.Note, "not replayed on sockets") {
		t.Fatalf("impl replay of a tampered trace: %v; want a divergence at record %d noting the skip", err, wantIdx)
	}
}
