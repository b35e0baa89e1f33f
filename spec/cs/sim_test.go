package cs_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"pgregory.net/rapid"
)

var server = netip.MustParseAddrPort("10.0.0.1:52000")

// world is what the property observes of one run.
type world struct {
	kept  map[string][]byte
	done  map[string]cs.Done
	exits map[string]string
}

func newWorld() *world {
	return &world{kept: map[string][]byte{}, done: map[string]cs.Done{}, exits: map[string]string{}}
}

// observe points cfg's observers at w.
func (w *world) observe(cfg *sim.Config) {
	cfg.OnEvent = func(n *sim.Node, _ spec.Time, ev spec.Event) {
		switch ev.Name {
		case "file":
			w.kept[n.Name] = ev.Data
		case "done":
			w.done[n.Name] = ev.Value.(cs.Done)
		}
	}
	cfg.OnExit = func(n *sim.Node, _ spec.Time, err string) { w.exits[n.Name] = err }
}

type fataler interface{ Fatalf(string, ...any) }

// run runs s until every client has exited and judges the run as
// TestClientsGetTheExactFile does, for the property and for the runs kept
// under testdata/regressions.
func (w *world) run(t fataler, s *sim.Sim, names []string, data []byte, faults sim.Faults) {
	s.RunUntil(func() bool { return len(w.exits) >= len(names) }, 5*time.Minute)
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("contract violations: %v", v)
	}
	sum := md5.Sum(data)
	for _, name := range names {
		err, exited := w.exits[name]
		if !exited {
			t.Fatalf("%s never finished", name)
		}
		if err != "" {
			if len(faults.Partitions) == 0 && len(faults.Crashes) == 0 {
				t.Fatalf("%s failed (%s) on a network with no partition or crash", name, err)
			}
			continue
		}
		d := w.done[name]
		if !bytes.Equal(w.kept[name], data) || d.MD5 != hex.EncodeToString(sum[:]) || d.Bytes != int64(len(data)) || d.Match == nil || !*d.Match {
			t.Fatalf("%s finished with %d bytes (md5 %s, match %v), the file has %d", name, len(w.kept[name]), d.MD5, d.Match, len(data))
		}
	}
}

// Every client that finishes has exactly the file: the bytes it kept, its
// MD5 and its byte-for-byte comparison all agree with the file, despite
// loss, duplication and reordering; without partitions or crashes every
// client finishes; a client cut off by a partition or a server crash
// reports failure, never a short file as complete.
func TestClientsGetTheExactFile(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		clients := rapid.IntRange(1, 4).Draw(t, "clients")
		size := rapid.IntRange(0, 300_000).Draw(t, "file size")
		f := cs.FileSpec{Seed: rapid.Uint64().Draw(t, "file seed"), Size: int64(size)}
		data, err := cs.Generate(f)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for i := 0; i < clients; i++ {
			names = append(names, fmt.Sprintf("c%d", i))
		}
		faults := sim.DrawFaults(t, sim.FaultBounds{
			MaxLoss: 0.3, MaxDup: 0.2, MaxJitter: 20 * time.Millisecond, Horizon: 3 * time.Second,
			MaxPartitions: 1, Partitionable: append([]string{"server"}, names...),
			MaxCrashes: 1, Crashable: []string{"server"},
		})
		w := newWorld()
		cfg := sim.Config{
			Seed:     rapid.Uint64().Draw(t, "net seed"),
			Link:     sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 3 * time.Millisecond}),
			Faults:   faults,
			Protocol: "cs",
		}
		w.observe(&cfg)
		s := net.New(cfg)
		scfg := cs.ServerConfig{Addr: server, File: f, Piece: rapid.SampledFrom([]int{1000, 64 << 10, 256 << 10}).Draw(t, "piece")}
		s.MustAddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), Protocol: "cs", Role: "server", Config: scfg,
			New: func() spec.Machine { return cs.NewServer(scfg, data) }})
		for _, name := range names {
			ccfg := cs.ClientConfig{Server: server, Keep: true, Expect: &f, Idle: 20 * time.Second}
			s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "cs", Role: "client", Config: ccfg, New: func() spec.Machine { return cs.NewClient(ccfg, data) },
				Start: time.Duration(rapid.IntRange(0, 500).Draw(t, name+" start ms")) * time.Millisecond})
		}
		w.run(t, s, names, data, faults)
	}, nil)
}

// The server never buffers what clients send: it counts and drops it.
func TestServerIgnoresClientBytes(t *testing.T) {
	srv := cs.NewServer(cs.ServerConfig{Addr: server}, make([]byte, 10))
	const st = spec.AcceptedStream | 1
	out := srv.Step(0, spec.Input{Kind: spec.InAccepted, Sock: 1, Stream: st}, nil)
	if !slices.ContainsFunc(out, func(o spec.Output) bool { return o.Kind == spec.OutWrite && o.Stream == st }) {
		t.Fatalf("accept: %v, want the file written", out)
	}
	for i := 0; i < 3; i++ {
		out = srv.Step(0, spec.Input{Kind: spec.InStreamData, Stream: st, Data: make([]byte, 1<<20)}, out[:0])
		for _, o := range out {
			if o.Kind == spec.OutWrite {
				t.Fatalf("client bytes made the server write %d bytes", len(o.Data))
			}
		}
	}
	if c := srv.Counters(); c[4].Name != "ignored_bytes" || c[4].Value != 3<<20 {
		t.Fatalf("counters %v", c)
	}
	// A half-close from the client (nc at the end of its input) does not
	// stop the download.
	out = srv.Step(0, spec.Input{Kind: spec.InStreamClosed, Stream: st}, out[:0])
	out = srv.Step(0, spec.Input{Kind: spec.InStreamWritable, Stream: st}, out[:0])
	if len(out) == 0 || out[0].Kind != spec.OutClose {
		t.Fatalf("after the client's FIN and the last piece: %v, want the server's close", out)
	}
}
