package scenario

import (
	"errors"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Swarm is seed 001's experiment: one server and N downloaders of a 10 MB
// file on a single switch, every access link 10 Mbit/s with 5 ms of
// delay, first with the C/S download (package cs), then with the P2P
// distribution (package p2p), against the Kurose–Ross lower bounds.
type Swarm struct {
	FileSize   int64
	ChunkSize  int
	Rate       float64
	ServerRate float64
	Delay      time.Duration
	Loss       float64
	N          string
	MTU        int
	Mode       string
	Plot       string
	Trees      int

	flagged bool // see Echo.flagged
}

// Name implements Scenario.
func (w *Swarm) Name() string { return "swarm" }

// OneRunCheck implements OneRun: a trace records one simulation, so one
// N and one mode.
func (w *Swarm) OneRunCheck() error {
	if counts, _ := ParseCounts(w.N); len(counts) > 1 || w.Mode == "both" {
		return errors.New("--trace records one run: give one --n and --mode cs or p2p")
	}
	return nil
}

// Describe implements Scenario.
func (w *Swarm) Describe() string {
	return "seed 001: C/S vs P2P distribution of a 10 MB file to N peers, against the Kurose-Ross bounds"
}

// Flags implements Scenario.
func (w *Swarm) Flags(fs *flag.FlagSet) {
	w.flagged = true
	fs.Int64Var(&w.FileSize, "file-size", cs.DefaultFileSize, "file size F in `bytes`")
	fs.IntVar(&w.ChunkSize, "chunk-size", p2p.DefaultChunkSize, "P2P chunk size in `bytes`")
	fs.Float64Var(&w.Rate, "rate", 10e6, "every access link's rate in `bit/s`, each direction")
	fs.Float64Var(&w.ServerRate, "server-rate", 0, "the server's link rate in `bit/s` (0: --rate)")
	fs.DurationVar(&w.Delay, "delay", 5*time.Millisecond, "every access link's one-way delay")
	fs.Float64Var(&w.Loss, "loss", 0, "probability that a packet is lost on its way (drawn once per packet)")
	fs.StringVar(&w.N, "n", "1-5", "downloader counts: a `list` of N, A-B ranges and A-B/STEP ranges (which end at B even off the step), e.g. 1-5,10,100-1000/100; run once each, in increasing order (repeats are dropped)")
	fs.IntVar(&w.MTU, "mtu", 9000, "link MTU in `bytes`: TCP segments carry MTU-40 bytes of payload")
	fs.StringVar(&w.Mode, "mode", "both", "what to run: cs, p2p or both")
	fs.IntVar(&w.Trees, "trees", 2, "P2P: distribution trees the server arranges the N peers in (0: none, every chunk is pulled)")
	fs.StringVar(&w.Plot, "plot", DefaultPlot(), "write the plot of time against N to `FILE`, its format from its extension (.png, .svg, .pdf, .eps, .jpg, .tif, .tex; empty: none)")
}

// Defaults fills zero fields with the flag defaults, except Delay: zero
// delay is a setting of its own (the lab's links have none), so only the
// flag defaults it to 5 ms. After Flags it does nothing, as Echo's.
func (w *Swarm) Defaults() *Swarm {
	if w.flagged {
		return w
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	d := &Swarm{}
	d.Flags(fs)
	if w.FileSize == 0 {
		w.FileSize = d.FileSize
	}
	if w.ChunkSize == 0 {
		w.ChunkSize = d.ChunkSize
	}
	if w.Rate == 0 {
		w.Rate = d.Rate
	}
	if w.N == "" {
		w.N = d.N
	}
	if w.MTU == 0 {
		w.MTU = d.MTU
	}
	if w.Mode == "" {
		w.Mode = d.Mode
	}
	return w
}

// MaxCount is the most downloaders --n takes. A simulated peer costs
// about 0.4 MB (N = 1000: 405 MiB), so this is some 4 GiB; the 100000
// allowed before took every byte of a 24 GB machine and froze it.
const MaxCount = 10000

// ParseCounts parses the --n list: the counts in increasing order, each
// once, however often the list names it.
func ParseCounts(s string) ([]int, error) {
	var ns []int
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		step := 1
		if i := strings.IndexByte(item, '/'); i >= 0 {
			v, err := strconv.Atoi(item[i+1:])
			if err != nil || v < 1 {
				return nil, fmt.Errorf("bad step in %q", item)
			}
			step, item = v, item[:i]
		}
		lo, hi := item, item
		if i := strings.IndexByte(item, '-'); i >= 0 {
			lo, hi = item[:i], item[i+1:]
		}
		a, err1 := strconv.Atoi(lo)
		b, err2 := strconv.Atoi(hi)
		if err1 != nil || err2 != nil || a < 1 || b < a || b > MaxCount {
			return nil, fmt.Errorf("bad count or range %q (want N, A-B or A-B/STEP with 1 <= A <= B <= %d)", item, MaxCount)
		}
		for n := a; n <= b; n += step {
			ns = append(ns, n)
		}
		if (b-a)%step != 0 {
			ns = append(ns, b)
		}
	}
	if len(ns) == 0 {
		return nil, errors.New("no downloader count")
	}
	slices.Sort(ns)
	return slices.Compact(ns), nil
}

// SwarmTiming is one run's outcome.
type SwarmTiming struct {
	// Seconds is the distribution time: from the start until the last
	// downloader has the whole file, verified.
	Seconds float64 `json:"seconds"`
	// Bound is the Kurose–Ross lower bound; Ratio is Seconds/Bound.
	Bound float64 `json:"bound"`
	Ratio float64 `json:"ratio"`
	// Done counts the downloaders that finished with the exact file.
	Done   int    `json:"done"`
	Events uint64 `json:"events"`
	// ServerBytes is what the server sent, file bytes only.
	ServerBytes int64  `json:"serverBytes"`
	Failed      string `json:"failed,omitempty"`
}

// SwarmRow is one N.
type SwarmRow struct {
	N   int          `json:"n"`
	CS  *SwarmTiming `json:"cs,omitempty"`
	P2P *SwarmTiming `json:"p2p,omitempty"`
}

// SwarmResult is the scenario's machine-readable result.
type SwarmResult struct {
	Seed       uint64        `json:"seed"`
	FileSize   int64         `json:"fileSize"`
	ChunkSize  int           `json:"chunkSize"`
	Rate       float64       `json:"rate"`
	ServerRate float64       `json:"serverRate"`
	Delay      time.Duration `json:"delay"`
	Loss       float64       `json:"loss"`
	MTU        int           `json:"mtu"`
	Trees      int           `json:"trees"` // P2P distribution trees (0: every chunk pulled)
	Rows       []SwarmRow    `json:"rows"`
	WorstCS    float64       `json:"worstCSRatio,omitempty"`
	WorstP2P   float64       `json:"worstP2PRatio,omitempty"`
	Plot       string        `json:"plot,omitempty"`
}

// The seed's measured table (3.4), N = 1..5, in seconds.
var (
	seedCS  = []float64{8.8, 15.6, 23.2, 30.8, 38.2}
	seedP2P = []float64{10.3, 10.9, 11.5, 11.4, 11.6}
)

// CSBound is the Kurose–Ross lower bound for client-server distribution:
// max(N·F/u_s, F/d_min), F in bits, rates in bit/s.
func CSBound(n int, fileBytes int64, us, dmin float64) float64 {
	f := float64(fileBytes) * 8
	return math.Max(float64(n)*f/us, f/dmin)
}

// P2PBound is the Kurose–Ross lower bound for P2P distribution:
// max(F/u_s, F/d_min, N·F/(u_s+Σu_i)), with every peer uploading u.
func P2PBound(n int, fileBytes int64, us, dmin, u float64) float64 {
	f := float64(fileBytes) * 8
	return math.Max(math.Max(f/us, f/dmin), float64(n)*f/(us+float64(n)*u))
}

// Validate implements Validator. Zero fields of a struct built without
// Flags take their defaults; after Flags a zero is checked as typed.
func (w *Swarm) Validate() error {
	d := *w
	return d.Defaults().validate()
}

func (w *Swarm) validate() error {
	if _, err := ParseCounts(w.N); err != nil {
		return fmt.Errorf("--n: %w", err)
	}
	switch {
	case w.FileSize < 1 || w.FileSize > 1<<30:
		return fmt.Errorf("--file-size %d out of range [1, 1 GiB]", w.FileSize)
	case w.ChunkSize < 1 || w.ChunkSize > 64<<20:
		return fmt.Errorf("--chunk-size %d out of range [1, 64 MiB]", w.ChunkSize)
	case (w.FileSize+int64(w.ChunkSize)-1)/int64(w.ChunkSize) > maxSimChunks && w.Mode != "cs":
		return fmt.Errorf("--file-size / --chunk-size: at most %d chunks (here %d): take larger chunks", maxSimChunks, (w.FileSize+int64(w.ChunkSize)-1)/int64(w.ChunkSize))
	case !(w.Rate > 0) || math.IsInf(w.Rate, 1):
		return errors.New("--rate must be a finite number > 0")
	case !(w.ServerRate >= 0) || math.IsInf(w.ServerRate, 1):
		return errors.New("--server-rate must be a finite number >= 0 (0: --rate)")
	case w.Mode != "cs" && (w.Rate < MinP2PRate || w.ServerRate > 0 && w.ServerRate < MinP2PRate):
		// Below it a full segment to each peer takes longer than the
		// peers' 10 s request timeout: they drop the server and redial
		// for ever (and a run at 1 bit/s grew without bound).
		return fmt.Errorf("--rate and --server-rate below %g bit/s: the P2P peers' timers (a 10 s request timeout, the trees' stall windows) are set for links of 1 Mbit/s and more, and fail below this; --mode cs takes any rate", MinP2PRate)
	case w.MTU < 576 || w.MTU > 65535:
		return fmt.Errorf("--mtu %d out of range [576, 65535]", w.MTU)
	case !(w.Loss >= 0 && w.Loss < 1):
		return fmt.Errorf("--loss %v out of range [0, 1)", w.Loss)
	case w.Delay < 0:
		return errors.New("--delay must not be negative")
	case w.Mode != "both" && w.Mode != "cs" && w.Mode != "p2p":
		return fmt.Errorf("--mode %q: want cs, p2p or both", w.Mode)
	case w.Trees < 0 || w.Trees > 16:
		return fmt.Errorf("--trees %d out of range [0, 16]", w.Trees)
	case w.Plot != "" && !slices.Contains(draw.Formats(), plotFormat(w.Plot)):
		return fmt.Errorf("--plot %q: want a file ending in .png, .svg or another plot format (%s; empty: no plot)", w.Plot, strings.Join(draw.Formats(), ", "))
	case w.Plot != "" && !isDir(filepath.Dir(w.Plot)):
		// Found now, not after the whole run (17 s at --n 1000).
		return fmt.Errorf("--plot %q: no directory %s to write it in", w.Plot, filepath.Dir(w.Plot))
	}
	return nil
}

// MinP2PRate is the slowest link, in bit/s, P2P is simulated over. P2P
// slows down below 1 Mbit/s (at 64 kbit/s a 10 MB file to five peers
// takes 2.1 times the bound in the trees, 1.2 times pulling) and fails
// outright at 16 kbit/s.
const MinP2PRate = 64e3

// DefaultPlot is where the swarm experiment draws its plot unless told.
func DefaultPlot() string { return filepath.Join(os.TempDir(), "netspec-swarm.png") }

// plotFormat is the image format a plot file's name asks for.
func plotFormat(path string) string {
	return strings.ToLower(strings.TrimPrefix(filepath.Ext(path), "."))
}

// Run implements Scenario.
func (w *Swarm) Run(opt Options) (Result, error) {
	w.Defaults()
	if err := w.validate(); err != nil {
		return Result{}, fmt.Errorf("swarm: %w", err)
	}
	if err := w.OneRunCheck(); opt.Trace != nil && err != nil {
		return Result{}, fmt.Errorf("swarm: %w", err)
	}
	counts, _ := ParseCounts(w.N)
	// Create the plot's file before the runs: a path that cannot be
	// written must not cost a long experiment its result.
	var plotFile *os.File
	if w.Plot != "" {
		flags := os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		if w.Plot == DefaultPlot() {
			// A fixed name in a world-writable directory: never follow
			// a symlink someone else left there.
			flags |= syscall.O_NOFOLLOW
		}
		f, err := os.OpenFile(w.Plot, flags, 0o644)
		if err != nil {
			return Result{}, fmt.Errorf("swarm: plot: %w", err)
		}
		plotFile = f
		defer f.Close()
	}
	us := w.ServerRate
	if us == 0 {
		us = w.Rate
	}
	data, err := cs.Generate(cs.FileSpec{Seed: opt.Seed, Size: w.FileSize})
	if err != nil {
		return Result{}, err
	}
	content, err := p2p.NewContent(data, w.ChunkSize)
	if err != nil {
		return Result{}, err
	}
	res := SwarmResult{Seed: opt.Seed, FileSize: w.FileSize, ChunkSize: w.ChunkSize, Rate: w.Rate, ServerRate: us, Trees: w.Trees,
		Delay: w.Delay, Loss: w.Loss, MTU: w.MTU}
	out := Result{}
	for _, n := range counts {
		row := SwarmRow{N: n}
		if w.Mode != "p2p" {
			t := w.runCS(opt, n, us, content)
			t.Bound = CSBound(n, w.FileSize, us, w.Rate)
			t.Ratio = t.Seconds / t.Bound
			res.WorstCS = math.Max(res.WorstCS, t.Ratio)
			row.CS = &t
			if t.Failed != "" && out.Failed == "" {
				out.Failed = fmt.Sprintf("C/S, N=%d: %s", n, t.Failed)
			}
		}
		if w.Mode != "cs" {
			t := w.runP2P(opt, n, us, content)
			t.Bound = P2PBound(n, w.FileSize, us, w.Rate, w.Rate)
			t.Ratio = t.Seconds / t.Bound
			res.WorstP2P = math.Max(res.WorstP2P, t.Ratio)
			row.P2P = &t
			if t.Failed != "" && out.Failed == "" {
				out.Failed = fmt.Sprintf("P2P, N=%d: %s", n, t.Failed)
			}
		}
		res.Rows = append(res.Rows, row)
	}
	if plotFile != nil {
		if err := w.plot(res, plotFile); err != nil {
			plotFile.Close()
			os.Remove(w.Plot)
			return Result{}, err
		}
		res.Plot = w.Plot
	}
	out.Value = res
	out.Tables = []Table{w.table(res)}
	return out, nil
}

// maxSimChunks bounds the chunks a simulated P2P file is cut into. Each
// chunk costs messages and 32 bytes of hash list (sent to a root twice):
// 100,000 one-byte chunks took 55 s to distribute, and from about
// 130,000 the run passed the simulation's 60 s horizon and was reported
// as failed, though nothing had stalled.
const maxSimChunks = 100_000

// isDir reports whether dir is a directory.
func isDir(dir string) bool {
	fi, err := os.Stat(dir)
	return err == nil && fi.IsDir()
}

// roomFor is a server's connection limit for n connections at once: the
// default (0, which is 4096) unless n is more.
func roomFor(n int) int {
	if n <= 4096 {
		return 0
	}
	return n
}

// mss is the payload of one TCP segment.
func (w *Swarm) mss() int { return w.MTU - 40 }

// goodput is the payload rate of a link of rate bit/s, headers taken off.
func (w *Swarm) goodput(rate float64) float64 {
	return rate * float64(w.mss()) / float64(w.MTU)
}

func (w *Swarm) net(opt Options, protocol string, onEvent func(*sim.Node, spec.Time, spec.Event), onExit func(*sim.Node, spec.Time, string), onNet func(sim.NetEvent)) *sim.Sim {
	return opt.NewSim(sim.Config{
		Seed:     opt.Seed,
		Link:     sim.Symmetric(sim.Dir{Rate: w.Rate, Delay: w.Delay}),
		Faults:   sim.Faults{Loss: w.Loss},
		MSS:      w.mss(),
		Protocol: protocol,
		OnEvent:  onEvent,
		OnExit:   onExit,
		OnNet:    onNet,
	})
}

func (w *Swarm) serverLink(us float64) *sim.Link {
	l := sim.Symmetric(sim.Dir{Rate: us, Delay: w.Delay})
	return &l
}

// limit bounds a run's virtual time generously: ten times the C/S bound.
func (w *Swarm) limit(n int, us float64) time.Duration {
	b := CSBound(n, w.FileSize, us, w.Rate)
	return time.Duration(math.Max(10*b, 60) * float64(time.Second))
}

func (w *Swarm) runCS(opt Options, n int, us float64, content *p2p.Content) SwarmTiming {
	var t SwarmTiming
	server := netip.MustParseAddrPort("10.0.0.1:52000")
	var last time.Duration
	finished := 0
	var bad []string
	fail := func(why string) {
		finished++
		if len(bad) < 3 {
			bad = append(bad, why)
		}
	}
	s := w.net(opt, "cs", func(nd *sim.Node, now spec.Time, ev spec.Event) {
		if ev.Name != "done" {
			return
		}
		d := ev.Value.(cs.Done)
		if d.Match == nil || !*d.Match {
			fail(nd.Name + ": the bytes differ from the file")
			return
		}
		finished++
		t.Done++
		last = max(last, now.Sub(spec.SimEpoch))
	}, func(nd *sim.Node, now spec.Time, err string) {
		if nd.Name != "server" && err != "" {
			fail(nd.Name + ": " + err)
		}
	}, func(ev sim.NetEvent) {
		if ev.Kind == sim.NetSend && ev.From == server {
			t.ServerBytes += int64(len(ev.Data))
		}
	})
	// Every downloader connects at once: room for all of them (the
	// server's default, 4096, reset the rest at --n 4097).
	scfg := cs.ServerConfig{Addr: server, File: cs.FileSpec{Seed: opt.Seed, Size: w.FileSize}, MaxStreams: roomFor(n)}
	s.MustAddNode(sim.NodeSpec{Name: "server", Protocol: "cs", Role: "server", Config: scfg, Link: w.serverLink(us),
		New: func() spec.Machine { return cs.NewServer(scfg, content.Bytes()) }})
	// Idle: the simulator's uplink is one FIFO, so with many clients the
	// last one's first byte waits behind everyone's window.
	ccfg := cs.ClientConfig{Server: server, Expect: &scfg.File, NoMD5: true, Linger: time.Second, Idle: w.limit(n, us)}
	for i := 0; i < n; i++ {
		s.MustAddNode(sim.NodeSpec{Name: fmt.Sprintf("h%d", i+2), Protocol: "cs", Role: "client", Config: ccfg,
			New: func() spec.Machine { return cs.NewClient(ccfg, content.Bytes()) }})
	}
	s.RunUntil(func() bool { return finished >= n }, w.limit(n, us))
	_ = s.Close()
	t.Seconds, t.Events = last.Seconds(), s.Events()
	switch {
	case len(s.Violations()) > 0:
		t.Failed = fmt.Sprintf("contract violations: %v", s.Violations())
	case t.Done < n:
		t.Failed = fmt.Sprintf("%d of %d clients got the file %v", t.Done, n, bad)
		t.Seconds = s.Elapsed().Seconds()
	}
	return t
}

func (w *Swarm) runP2P(opt Options, n int, us float64, content *p2p.Content) SwarmTiming {
	var t SwarmTiming
	server := netip.MustParseAddrPort("10.0.0.1:52000")
	var last time.Duration
	want := content.MD5()
	wantHex := fmt.Sprintf("%x", want[:])
	var bad []string
	s := w.net(opt, "p2p", func(nd *sim.Node, now spec.Time, ev spec.Event) {
		if ev.Name != "verified" {
			return
		}
		v := ev.Value.(p2p.Verified)
		if v.MD5 != wantHex {
			if len(bad) < 3 {
				bad = append(bad, nd.Name+": wrong MD5 "+v.MD5)
			}
			return
		}
		t.Done++
		last = max(last, now.Sub(spec.SimEpoch))
	}, nil, func(ev sim.NetEvent) {
		if ev.Kind == sim.NetSend && ev.From == server {
			t.ServerBytes += int64(len(ev.Data))
		}
	})
	scfg := p2p.ServerConfig{Addr: server, File: cs.FileSpec{Seed: opt.Seed, Size: w.FileSize}, ChunkSize: w.ChunkSize,
		Seed: opt.Seed, UploadRate: w.goodput(us), Trees: w.Trees, MaxConns: roomFor(2 * n)}
	if w.Trees > 0 {
		scfg.Expect = n
	}
	s.MustAddNode(sim.NodeSpec{Name: "server", Protocol: "p2p", Role: "server", Config: scfg, Link: w.serverLink(us),
		New: func() spec.Machine { return p2p.NewServer(scfg, content) }})
	for i := 0; i < n; i++ {
		pcfg := p2p.PeerConfig{Server: server, Seed: opt.Seed + uint64(i) + 1, Linger: -1, UploadRate: w.goodput(w.Rate)}
		s.MustAddNode(sim.NodeSpec{Name: fmt.Sprintf("h%d", i+2), Protocol: "p2p", Role: "peer", Config: pcfg,
			New: func() spec.Machine { return p2p.NewPeer(pcfg, p2p.LightStore{C: content}) }})
	}
	s.RunUntil(func() bool { return t.Done+len(bad) >= n }, w.limit(n, us))
	_ = s.Close()
	t.Seconds, t.Events = last.Seconds(), s.Events()
	switch {
	case len(s.Violations()) > 0:
		t.Failed = fmt.Sprintf("contract violations: %v", s.Violations())
	case t.Done < n:
		t.Failed = fmt.Sprintf("%d of %d peers verified the file %v", t.Done, n, bad)
		t.Seconds = s.Elapsed().Seconds()
	}
	return t
}

func secs(t *SwarmTiming, field func(*SwarmTiming) float64) string {
	if t == nil {
		return "-"
	}
	return fmt.Sprintf("%.2f", field(t))
}

func (w *Swarm) table(r SwarmResult) Table {
	t := Table{
		Title: fmt.Sprintf("seed 001: %s file, %.4g Mbit/s links (server %.4g), %v delay, %.3g%% loss, MTU %d, %d-byte chunks (seed %d)",
			humanBytes(r.FileSize), r.Rate/1e6, r.ServerRate/1e6, r.Delay, r.Loss*100, r.MTU, r.ChunkSize, r.Seed),
		Header: []string{"N", "C/S time", "C/S bound", "C/S ratio", "P2P time", "P2P bound", "P2P ratio", "seed C/S", "seed P2P"},
	}
	seedSetup := r.FileSize == cs.DefaultFileSize && r.Rate == 10e6 && r.ServerRate == 10e6 && r.Delay == 5*time.Millisecond
	for _, row := range r.Rows {
		sc, sp := "-", "-"
		// The seed's figures beside the runs they compare with only.
		if seedSetup && row.N <= len(seedCS) && row.CS != nil {
			sc = fmt.Sprintf("%.1f", seedCS[row.N-1])
		}
		if seedSetup && row.N <= len(seedP2P) && row.P2P != nil {
			sp = fmt.Sprintf("%.1f", seedP2P[row.N-1])
		}
		t.Rows = append(t.Rows, []string{
			strconv.Itoa(row.N),
			secs(row.CS, func(t *SwarmTiming) float64 { return t.Seconds }),
			secs(row.CS, func(t *SwarmTiming) float64 { return t.Bound }),
			ratio(row.CS),
			secs(row.P2P, func(t *SwarmTiming) float64 { return t.Seconds }),
			secs(row.P2P, func(t *SwarmTiming) float64 { return t.Bound }),
			ratio(row.P2P),
			sc, sp,
		})
	}
	var worst []string
	if r.WorstCS > 0 {
		worst = append(worst, fmt.Sprintf("C/S %.4fx", r.WorstCS))
	}
	if r.WorstP2P > 0 {
		worst = append(worst, fmt.Sprintf("P2P %.4fx", r.WorstP2P))
	}
	if len(worst) > 0 {
		t.Notes = append(t.Notes, "worst ratio to the bound: "+strings.Join(worst, ", "))
	}
	ranP2P := false
	for _, row := range r.Rows {
		ranP2P = ranP2P || row.P2P != nil
	}
	t.Notes = append(t.Notes, "C/S: client/server (netspec cs); P2P: netspec p2p; seed: the seed's measured table; times in seconds.")
	if ranP2P {
		t.Notes = append(t.Notes, trees(r.Trees))
	}
	t.Notes = append(t.Notes,
		"bounds (Kurose-Ross, F in bits): C/S max(N*F/u_s, F/d_min); P2P max(F/u_s, F/d_min, N*F/(u_s+N*u)); they count file bytes only.",
		fmt.Sprintf("headers: every TCP segment carries %d payload bytes and 40 header bytes counted against the link (MTU %d), %.2f%% on top of the file;", r.MTU-40, r.MTU, 4000/float64(r.MTU-40)),
		"  (netspec lab swarm --mtu sets its veth links' MTU likewise.) ACKs take no link time in the simulator. --mtu 1500 shows standard Ethernet.",
		"time: all downloaders start together; a C/S client is done at the server's FIN with every byte equal to the file,",
		"  a P2P peer when the server answers its CHECK (MD5) with the same sum. The seed started clients by hand and averaged them.",
	)
	if r.Plot != "" {
		t.Notes = append(t.Notes, "plot: "+r.Plot)
	}
	return t
}

func trees(d int) string {
	if d == 0 {
		return "P2P pulls every chunk (--trees 0)."
	}
	return fmt.Sprintf("P2P peers are placed in %d distribution trees and push each chunk down them (--trees; 0: every chunk pulled).", d)
}

func ratio(t *SwarmTiming) string {
	if t == nil {
		return "-"
	}
	s := fmt.Sprintf("%.4fx", t.Ratio)
	if t.Failed != "" {
		s += " FAILED"
	}
	return s
}

func humanBytes(b int64) string {
	switch {
	case b >= 1e6 && b%1e5 == 0:
		return fmt.Sprintf("%g MB", float64(b)/1e6)
	case b >= 1e3 && b%100 == 0:
		return fmt.Sprintf("%g kB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d-byte", b)
}

// plot draws time against N, with the bounds, into f, named w.Plot.
func (w *Swarm) plot(r SwarmResult, f *os.File) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Distribution of %s to N peers (%.4g Mbit/s links)", humanBytes(r.FileSize), r.Rate/1e6)
	p.X.Label.Text = "N (downloaders)"
	p.Y.Label.Text = "time (s)"
	series := func(pick func(SwarmRow) *SwarmTiming, val func(*SwarmTiming) float64) plotter.XYs {
		var xy plotter.XYs
		for _, row := range r.Rows {
			if t := pick(row); t != nil {
				xy = append(xy, plotter.XY{X: float64(row.N), Y: val(t)})
			}
		}
		return xy
	}
	csOf := func(r SwarmRow) *SwarmTiming { return r.CS }
	p2pOf := func(r SwarmRow) *SwarmTiming { return r.P2P }
	took := func(t *SwarmTiming) float64 { return t.Seconds }
	bound := func(t *SwarmTiming) float64 { return t.Bound }
	var args []any
	if s := series(csOf, took); len(s) > 0 {
		args = append(args, "C/S (sim)", s, "C/S bound", series(csOf, bound))
	}
	if s := series(p2pOf, took); len(s) > 0 {
		args = append(args, "P2P (sim)", s, "P2P bound", series(p2pOf, bound))
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("swarm: plot: %w", err)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	// A wide range of N (or of times, C/S grows with N) reads better on
	// logarithmic axes.
	if first, last := r.Rows[0].N, r.Rows[len(r.Rows)-1].N; last >= 20*first {
		p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
		p.Y.Scale, p.Y.Tick.Marker = plot.LogScale{}, plot.LogTicks{Prec: -1}
	}
	c, err := p.WriterTo(16*vg.Centimeter, 10*vg.Centimeter, plotFormat(w.Plot))
	if err != nil {
		return fmt.Errorf("swarm: plot: %w", err)
	}
	if _, err := c.WriteTo(f); err != nil {
		return fmt.Errorf("swarm: plot: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("swarm: plot: %w", err)
	}
	return nil
}
