package tftp_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/simtest"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
	"pgregory.net/rapid"
)

var serverAddr = netip.MustParseAddrPort("10.0.0.1:69")

// job is one transfer a client was asked to make.
type job struct {
	put  bool
	name string
	want []byte // the file's bytes (served, or uploaded)
}

// outcome is what a client reported about one transfer.
type outcome struct {
	started bool
	got     bytes.Buffer
	done    bool
	err     string
	code    int
}

type clientView struct {
	jobs    []job
	results []*outcome // one per file-start/done/error sequence, in order
	cur     *outcome
	exited  bool
	exitErr string
	cfg     tftp.ClientConfig
}

// world is what a property observes of one run: the machines' events and
// the network's ground truth.
type world struct {
	clients map[string]*clientView
	names   map[netip.Addr]string
	files   map[string][]byte
	// serverDone maps an uploaded name to the server's report of it.
	serverDone map[string]tftp.Transfer
	// sends[transfer][block] counts DATA datagrams one transfer (the
	// sender's TID and the receiver's: a server that restarts hands out
	// its ports again) put on the wire; windows[server TID, client host]
	// is the window a download used.
	sends   map[transferID]map[uint16]int
	windows map[transferID]int
	dropped int
	faults  sim.Faults
	srvCfg  tftp.ServerConfig
}

// transferID is a transfer's pair of TIDs, from the DATA sender's side.
// For windows, the receiver's port is left 0: the client reports its
// window without its own TID.
type transferID struct{ from, to netip.AddrPort }

func newWorld() *world {
	return &world{clients: map[string]*clientView{}, names: map[netip.Addr]string{}, files: map[string][]byte{},
		serverDone: map[string]tftp.Transfer{}, sends: map[transferID]map[uint16]int{}, windows: map[transferID]int{}}
}

func (w *world) observe(cfg *sim.Config) {
	w.faults = cfg.Faults
	cfg.OnEvent = func(n *sim.Node, _ spec.Time, ev spec.Event) {
		client := netip.AddrPortFrom(n.Addr, 0)
		if n.Name == "server" {
			if t, ok := ev.Value.(tftp.Transfer); ok && ev.Name == "transfer-done" && t.Op == "put" {
				w.serverDone[t.Name] = t
			}
			return
		}
		cv := w.clients[n.Name]
		if cv == nil {
			return
		}
		switch ev.Name {
		case "file-start":
			if cv.cur == nil {
				cv.cur = &outcome{}
				cv.results = append(cv.results, cv.cur)
			}
			cv.cur.started = true
			fs := ev.Value.(tftp.FileStart)
			if fs.Op == "get" {
				w.windows[transferID{netip.MustParseAddrPort(fs.Server), client}] = fs.Windowsize
			}
		case "data":
			cv.cur.got.Write(ev.Data)
		case "file-done", "file-error":
			if cv.cur == nil {
				cv.cur = &outcome{}
				cv.results = append(cv.results, cv.cur)
			}
			if ev.Name == "file-done" {
				cv.cur.done = true
			} else {
				fe := ev.Value.(tftp.FileError)
				cv.cur.err, cv.cur.code = ev.Text, fe.Code // Err, the server's text, may be empty
			}
			cv.cur = nil
		}
	}
	cfg.OnExit = func(n *sim.Node, _ spec.Time, err string) {
		if cv := w.clients[n.Name]; cv != nil {
			cv.exited, cv.exitErr = true, err
		}
	}
	cfg.OnNet = func(ev sim.NetEvent) {
		switch {
		case ev.Kind == sim.NetLoss || ev.Kind == sim.NetQueueDrop || ev.Kind == sim.NetCut || ev.Kind == sim.NetNoRoute:
			// Lost on the way; datagrams to a closed port (a transfer
			// that ended) are not the network's doing.
			w.dropped++
		case ev.Kind == sim.NetSend && ev.Proto == spec.UDP && len(ev.Data) >= 4 && ev.Data[0] == 0 && ev.Data[1] == byte(tftp.OpDATA):
			id := transferID{ev.From, ev.To}
			m := w.sends[id]
			if m == nil {
				m = map[uint16]int{}
				w.sends[id] = m
			}
			m[uint16(ev.Data[2])<<8|uint16(ev.Data[3])]++
		}
	}
}

type fataler interface{ Fatalf(string, ...any) }

func (w *world) sortedClients() []string {
	var names []string
	for n := range w.clients {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// check states the properties: every transfer ends with the exact bytes
// or an error, never other bytes; an upload the client saw acknowledged
// is the server's, byte for byte (by SHA-256); every client finishes; on
// a network that loses nothing, everything succeeds; and no transfer ID
// sends any block more than windowsize x (retries+1) times, nor, with
// nothing lost and nothing reordered, more than once: duplicates never
// draw retransmissions (no Sorcerer's Apprentice).
func (w *world) check(t fataler) {
	lossless := w.dropped == 0 && len(w.faults.Partitions) == 0 && len(w.faults.Crashes) == 0
	for _, name := range w.sortedClients() {
		cv := w.clients[name]
		if !cv.exited {
			t.Fatalf("%s never finished", name)
		}
		if len(cv.results) != len(cv.jobs) {
			t.Fatalf("%s reported %d outcomes for %d transfers", name, len(cv.results), len(cv.jobs))
		}
		for i, j := range cv.jobs {
			r := cv.results[i]
			switch {
			case r.done && !j.put && !bytes.Equal(r.got.Bytes(), j.want):
				t.Fatalf("%s: get %s reported done with %d bytes that differ from the %d served", name, j.name, r.got.Len(), len(j.want))
			case r.done && j.put:
				sum := sha256.Sum256(j.want)
				st, ok := w.serverDone[j.name]
				if !ok || st.SHA256 != hex.EncodeToString(sum[:]) || st.Bytes != int64(len(j.want)) {
					t.Fatalf("%s: put %s acknowledged, but the server stored %+v (ok=%v), want %d bytes", name, j.name, st, ok, len(j.want))
				}
			case !r.done && r.err == "":
				t.Fatalf("%s: %s %s neither done nor failed", name, map[bool]string{true: "put", false: "get"}[j.put], j.name)
			case !r.done && lossless && w.faults.Jitter < 200*time.Millisecond:
				t.Fatalf("%s: %s failed on a network that lost nothing: %s", name, j.name, r.err)
			}
		}
		if j := cv.jobs; j != nil {
			for _, jb := range j {
				if st, ok := w.serverDone[jb.name]; ok && jb.put {
					sum := sha256.Sum256(jb.want)
					if st.SHA256 != hex.EncodeToString(sum[:]) {
						t.Fatalf("server stored %s with SHA-256 %s, the client sent %x", jb.name, st.SHA256, sum)
					}
				}
			}
		}
	}
	retries := max(w.srvCfg.Retries, 5)
	ids := make([]transferID, 0, len(w.sends))
	for id := range w.sends {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b transferID) int {
		if c := a.from.Compare(b.from); c != 0 {
			return c
		}
		return a.to.Compare(b.to)
	})
	for _, id := range ids {
		tid := id.from
		win := max(w.windows[transferID{tid, netip.AddrPortFrom(id.to.Addr(), 0)}], 1)
		if tid.Addr() != serverAddr.Addr() {
			win = 16 // an upload: the client's window is at most the drawn maximum
		}
		blocks := w.sends[id]
		keys := make([]int, 0, len(blocks))
		for b := range blocks {
			keys = append(keys, int(b))
		}
		slices.Sort(keys)
		for _, b := range keys {
			n := blocks[uint16(b)]
			if n > win*(retries+1) {
				t.Fatalf("%v sent DATA block %d %d times, more than windowsize %d x %d tries", tid, b, n, win, retries+1)
			}
			if lossless && (w.faults.Jitter == 0 || win == 1) && n > 1 {
				t.Fatalf("%v sent DATA block %d %d times on a network that lost and reordered nothing (window %d)", tid, b, n, win)
			}
		}
	}
}

// scenario is one drawn run: a server with a few files, clients getting
// and putting them.
type scenario struct {
	files   []file.SynthFile
	clients []tftp.ClientConfig
	jobs    [][]job
	faults  sim.Faults
	seed    uint64
	// newServer, if set, builds the server instead of tftp.NewServer.
	newServer func(tftp.ServerConfig) spec.Machine
}

func drawScenario(t *rapid.T) scenario {
	nClients := 3
	var nodes []string
	for i := 0; i < nClients; i++ {
		nodes = append(nodes, fmt.Sprintf("c%d", i))
	}
	f := sim.DrawFaults(t, sim.FaultBounds{
		MaxLoss: 0.3, MaxDup: 0.3, MaxJitter: 20 * time.Millisecond,
		Horizon:       4 * time.Second,
		MaxPartitions: 1, Partitionable: append([]string{"server"}, nodes...),
		MaxCrashes: 1, Crashable: []string{"server"},
	})
	sc := scenario{faults: f}
	nFiles := rapid.IntRange(1, 3).Draw(t, "files")
	for i := 0; i < nFiles; i++ {
		size := rapid.OneOf(rapid.Just(int64(0)), rapid.Int64Range(0, 2000), rapid.Int64Range(0, 30000)).Draw(t, "size")
		sc.files = append(sc.files, file.SynthFile{Name: fmt.Sprintf("dir/f%d.bin", i), Size: size, Seed: uint64(i) + 7})
	}
	n := rapid.IntRange(1, nClients).Draw(t, "clients")
	for i := 0; i < n; i++ {
		cfg := tftp.ClientConfig{Server: serverAddr}
		if rapid.Bool().Draw(t, "blksize option") {
			cfg.Blksize = rapid.IntRange(tftp.MinBlksize, 1468).Draw(t, "blksize")
		}
		cfg.Windowsize = rapid.IntRange(1, 16).Draw(t, "windowsize")
		cfg.NoTSize = rapid.Bool().Draw(t, "no tsize")
		sc.clients = append(sc.clients, cfg)
		var jobs []job
		for k := rapid.IntRange(1, 3).Draw(t, "transfers"); k > 0; k-- {
			if rapid.IntRange(0, 3).Draw(t, "put") == 0 {
				data := rapid.SliceOfN(rapid.Byte(), 0, 5000).Draw(t, "upload")
				jobs = append(jobs, job{put: true, name: fmt.Sprintf("up/c%d-%d", i, k), want: data})
				continue
			}
			fi := rapid.IntRange(0, nFiles-1).Draw(t, "file")
			jobs = append(jobs, job{name: sc.files[fi].Name, want: synth(sc.files[fi])})
		}
		sc.jobs = append(sc.jobs, jobs)
	}
	// Clients that do not exist leave partitions.
	for i := range sc.faults.Partitions {
		sc.faults.Partitions[i].Side = slices.DeleteFunc(sc.faults.Partitions[i].Side, func(s string) bool {
			var k int
			_, err := fmt.Sscanf(s, "c%d", &k)
			return err == nil && k >= n
		})
	}
	sc.seed = rapid.Uint64().Draw(t, "seed")
	return sc
}

func synth(f file.SynthFile) []byte {
	b := make([]byte, f.Size)
	file.SynthBytes(f.Seed, 0, b)
	return b
}

func (sc scenario) build(net *simtest.Net, w *world) *sim.Sim {
	cfg := sim.Config{Seed: sc.seed, Link: sim.Symmetric(sim.Dir{Rate: 20e6, Delay: 2 * time.Millisecond}), Faults: sc.faults, Protocol: "tftp"}
	w.observe(&cfg)
	var s *sim.Sim
	if net != nil {
		s = net.New(cfg)
	} else {
		s = sim.New(cfg)
	}
	w.srvCfg = tftp.ServerConfig{Addr: serverAddr, Files: sc.files, AllowWrite: true, MaxWindowsize: 16}
	scfg := w.srvCfg
	newServer := sc.newServer
	if newServer == nil {
		newServer = func(c tftp.ServerConfig) spec.Machine { return tftp.NewServer(c, nil, nil) }
	}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: serverAddr.Addr(), Role: "server", Config: scfg,
		New: func() spec.Machine { return newServer(scfg) }})
	for i, ccfg := range sc.clients {
		name := fmt.Sprintf("c%d", i)
		n := s.MustAddNode(sim.NodeSpec{Name: name, Role: "client", Config: ccfg, New: func() spec.Machine { return tftp.NewClient(ccfg, nil) }})
		w.names[n.Addr] = name
		w.clients[name] = &clientView{jobs: sc.jobs[i], cfg: ccfg}
		for _, j := range sc.jobs[i] {
			if j.put {
				s.Command(0, name, spec.Command{Name: "put", Args: []string{j.name}, Data: j.want})
			} else {
				s.Command(0, name, spec.Command{Name: "get", Args: []string{j.name}})
			}
		}
		s.Command(0, name, spec.Command{Name: "exit"})
	}
	return s
}

func (w *world) allExited() bool {
	for _, cv := range w.clients {
		if !cv.exited {
			return false
		}
	}
	return true
}

// TestTransfersExactOrError: under loss, duplication, reordering, a
// partition and a server crash, every download is byte-identical to the
// served file or ends in a TFTP error, every acknowledged upload is what
// the client sent, and no block is sent more than windowsize x
// (retries+1) times.
func TestTransfersExactOrError(t *testing.T) {
	simtest.Check(t, "testdata/failures", func(t *rapid.T, net *simtest.Net) {
		sc := drawScenario(t)
		w := newWorld()
		s := sc.build(net, w)
		s.RunUntil(w.allExited, time.Hour)
		if v := s.Violations(); len(v) > 0 {
			t.Fatalf("contract violations: %v", v)
		}
		w.check(t)
		// Dallying and failing transfers end within the retry budget.
		s.Run(s.Elapsed() + 30*time.Second)
		if srv, ok := s.Node("server").Machine().(*tftp.Server); ok && srv.Transfers() > 0 {
			t.Fatalf("server still holds %d transfers 30s after the clients finished", srv.Transfers())
		}
	}, nil)
}
