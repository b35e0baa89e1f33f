package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/netspec/netspec/cmd/netspec/lab"
	"github.com/netspec/netspec/sim/scenario"
)

func labGroup() *group {
	return &group{
		name: "lab",
		help: "run experiments on real sockets across namespaced hosts (Linux, root)",
		verbs: []verb{
			{"swarm", "seed 001's C/S vs P2P experiment on namespaced hosts, beside the simulator", labSwarmCmd},
		},
	}
}

// labSwarm is one lab experiment's settings.
type labSwarm struct {
	binary    []string // the command that runs netspec
	ns        []int
	size      int64
	chunk     int
	trees     int // P2P distribution trees (0: pull every chunk)
	rate      float64
	mtu       int
	modes     []string
	timeout   time.Duration
	sim       bool
	seed      uint64
	say       func(string, ...any)
	simDelay  time.Duration
	serverPor int
	config    string   // an empty config.ini, so no stray one in the working directory counts
	logs      string   // where to keep every process's output ("": nowhere)
	made      []string // the IDs of the networks it built, for tests
}

// labTiming is one measured distribution.
type labTiming struct {
	Seconds  float64   `json:"seconds"`
	Sim      float64   `json:"sim,omitempty"`
	SimRatio float64   `json:"simOverLab,omitempty"`
	Bound    float64   `json:"bound"`
	Seed     float64   `json:"seed,omitempty"`
	Clients  []float64 `json:"clients"`
	Failed   string    `json:"failed,omitempty"`
}

type labRow struct {
	N   int        `json:"n"`
	CS  *labTiming `json:"cs,omitempty"`
	P2P *labTiming `json:"p2p,omitempty"`
}

// The seed's measured table (its section 3.4), N = 1..5, in seconds.
var (
	labSeedCS  = []float64{8.8, 15.6, 23.2, 30.8, 38.2}
	labSeedP2P = []float64{10.3, 10.9, 11.5, 11.4, 11.6}
)

func labSwarmCmd(ctx context.Context, e *env, args []string) error {
	fs := e.flags("lab swarm", "[flags]", "Reproduces seed 001's mininet experiment with the real netspec binaries on real\n"+
		"kernel networking: N+1 hosts in network namespaces on a bridge, every host's link\n"+
		"shaped by tc tbf in both directions, the server on h1 (10.0.0.1). All downloaders\n"+
		"start together; the time is until the last one has verified the file. Needs root.")
	nList := fs.String("n", "1-5", "downloader counts: a `list` of N and A-B ranges (run once each, in increasing order)")
	size := fs.Int64("size", 10_000_000, "file size F in `bytes`")
	chunk := fs.Int("chunk-size", 16384, "P2P chunk size in `bytes`")
	trees := fs.Int("trees", 2, "P2P: distribution trees the server arranges the peers in (0: none, every chunk is pulled)")
	rate := fs.Float64("rate", 10e6, "every link's rate in `bit/s`, each direction")
	mtu := fs.Int("mtu", 9000, "link MTU (the simulator's default; at 1500 headers are 4.6% of the bytes on these links, Ethernet, IP and TCP with timestamps, against 0.7% at 9000; the simulator counts 40 bytes a segment, 2.7% and 0.45%)")
	mode := fs.String("mode", "both", "what to run: cs, p2p or both")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up on one run after this long")
	noSim := fs.Bool("no-sim", false, "do not run the simulator's prediction")
	binary := fs.String("binary", "", "the netspec binary to run in the hosts (default: this one)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	logs := fs.String("logs", "", "keep what every server and downloader printed in `DIR` (MODE-nN-hI.log)")
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	ns, err := scenario.ParseCounts(*nList)
	if err != nil {
		return usagef("lab swarm: --n: %v", err)
	}
	for _, n := range ns {
		if n > 200 {
			return usagef("lab swarm: --n: at most 200 downloaders on one machine")
		}
	}
	var modes []string
	switch *mode {
	case "both":
		modes = []string{"cs", "p2p"}
	case "cs", "p2p":
		modes = []string{*mode}
	default:
		return usagef("lab swarm: --mode is cs, p2p or both, not %q", *mode)
	}
	// The simulator and the servers would refuse some of these, later.
	switch {
	case *size < 1 || *size > 1<<30:
		return usagef("lab swarm: --size must be between 1 and 1 GiB")
	case !(*rate > 0 && *rate <= 1e12): // NaN and infinity too
		return usagef("lab swarm: --rate must be a finite number of bit/s > 0")
	case *mtu < 576 || *mtu > 65535:
		return usagef("lab swarm: --mtu must be in [576, 65535]")
	case *chunk < 1 || *chunk > 16<<20:
		return usagef("lab swarm: --chunk-size must be between 1 and 16 MiB")
	case *trees < 0 || *trees > 16:
		return usagef("lab swarm: --trees must be in [0, 16]")
	case *timeout <= 0:
		return usagef("lab swarm: --timeout must be positive")
	}
	if *rate < scenario.MinP2PRate && slices.Contains(modes, "p2p") {
		return usagef("lab swarm: --rate below %g bit/s: the P2P peers' timers are set for links of 1 Mbit/s and more (--mode cs takes any rate)", scenario.MinP2PRate)
	}
	if *logs != "" {
		if err := os.MkdirAll(*logs, 0o755); err != nil {
			return fmt.Errorf("lab swarm: --logs: %w", err)
		}
	}
	if err := lab.Available(); err != nil {
		return err
	}
	if *binary == "" {
		if *binary, err = os.Executable(); err != nil {
			return err
		}
	}
	ls := &labSwarm{binary: []string{*binary}, ns: ns, size: *size, chunk: *chunk, trees: *trees, rate: *rate, mtu: *mtu, modes: modes,
		timeout: *timeout, sim: !*noSim, seed: 1, serverPor: 52000, logs: *logs,
		say: func(f string, a ...any) {
			if !*asJSON {
				fmt.Fprintf(e.stderr, f, a...)
			}
		}}
	cfg, err := os.CreateTemp("", "netspec-lab-*.ini")
	if err != nil {
		return err
	}
	cfg.Close()
	defer os.Remove(cfg.Name())
	ls.config = cfg.Name()
	rows, err := ls.run(ctx)
	interrupted := errors.Is(err, errLabInterrupted)
	if err != nil && (!interrupted || len(rows) == 0) {
		return err
	}
	if interrupted {
		ls.say("lab: interrupted; the table holds the runs that finished\n")
	}
	if *asJSON {
		if err := writeJSON(e.stdout, map[string]any{"fileSize": ls.size, "rate": ls.rate, "mtu": ls.mtu, "delay": "none (no netem)", "rows": rows}); err != nil {
			return err
		}
	} else if err := renderTable(e.stdout, ls.table(rows)); err != nil {
		return err
	}
	if interrupted {
		return err
	}
	// A failed run fails the command, in JSON as in text.
	for _, r := range rows {
		for _, t := range []*labTiming{r.CS, r.P2P} {
			if t != nil && t.Failed != "" {
				return fmt.Errorf("lab swarm: N=%d: %s", r.N, t.Failed)
			}
		}
	}
	return nil
}

// errLabInterrupted ends a lab run that was interrupted (Ctrl-C); the
// rows run returns with it are the measurements that finished.
var errLabInterrupted = errors.New("lab swarm: interrupted")

// run measures every N and mode, and the simulator's predictions.
func (ls *labSwarm) run(ctx context.Context) ([]labRow, error) {
	// Leftovers of a killed run would collide with nothing (names are
	// unique) but would waste the machine: sweep them first.
	_ = lab.Sweep()
	var preds map[string]map[int]float64
	if ls.sim {
		var err error
		if preds, err = ls.predict(); err != nil {
			return nil, err
		}
	}
	var rows []labRow
	for _, n := range ls.ns {
		row := labRow{N: n}
		// The seed's figures belong to its parameters only.
		seedParams := ls.size == 10_000_000 && ls.rate == 10e6
		for _, m := range ls.modes {
			ls.say("lab: N=%d %s ...\n", n, m)
			var t *labTiming
			if ctx.Err() == nil {
				t = ls.measure(ctx, m, n)
			}
			if ctx.Err() != nil {
				// Cut short: not a measurement. What finished is kept.
				if row.CS != nil || row.P2P != nil {
					rows = append(rows, row)
				}
				return rows, errLabInterrupted
			}
			dmin := ls.rate
			if m == "cs" {
				t.Bound = scenario.CSBound(n, ls.size, ls.rate, dmin)
				if seedParams && n <= len(labSeedCS) {
					t.Seed = labSeedCS[n-1]
				}
				row.CS = t
			} else {
				t.Bound = scenario.P2PBound(n, ls.size, ls.rate, dmin, ls.rate)
				if seedParams && n <= len(labSeedP2P) {
					t.Seed = labSeedP2P[n-1]
				}
				row.P2P = t
			}
			if p, ok := preds[m][n]; ok && t.Seconds > 0 {
				t.Sim, t.SimRatio = p, p/t.Seconds
			}
			if t.Failed != "" {
				ls.say("lab: N=%d %s: FAILED: %s\n", n, m, t.Failed)
			} else {
				ls.say("lab: N=%d %s: %.2f s (bound %.2f s)\n", n, m, t.Seconds, t.Bound)
			}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// predict runs the same scenario in the simulator: same file, rates, MTU
// and chunk size, and no added delay, since the lab has none.
func (ls *labSwarm) predict() (map[string]map[int]float64, error) {
	var ns []string
	for _, n := range ls.ns {
		ns = append(ns, strconv.Itoa(n))
	}
	mode := "both"
	if len(ls.modes) == 1 {
		mode = ls.modes[0]
	}
	sw := &scenario.Swarm{FileSize: ls.size, ChunkSize: ls.chunk, Rate: ls.rate, Delay: ls.simDelay, N: strings.Join(ns, ","), MTU: ls.mtu, Mode: mode, Trees: ls.trees}
	sw.Defaults()
	sw.Delay, sw.Plot = ls.simDelay, ""
	res, err := sw.Run(scenario.Options{Seed: ls.seed})
	if err != nil {
		return nil, fmt.Errorf("lab swarm: simulator: %w", err)
	}
	r, ok := res.Value.(scenario.SwarmResult)
	if !ok {
		return nil, errors.New("lab swarm: simulator gave no swarm result")
	}
	out := map[string]map[int]float64{"cs": {}, "p2p": {}}
	for _, row := range r.Rows {
		if row.CS != nil {
			out["cs"][row.N] = row.CS.Seconds
		}
		if row.P2P != nil {
			out["p2p"][row.N] = row.P2P.Seconds
		}
	}
	return out, nil
}

var (
	timeUsed  = regexp.MustCompile(`time used: ([0-9.]+) sec`)
	serverMD5 = regexp.MustCompile(`md5 ([0-9a-f]{32})`)
)

// measure builds a fresh network, runs the server and n downloaders, and
// returns the distribution time. Everything is torn down before it
// returns, whatever happened.
func (ls *labSwarm) measure(parent context.Context, mode string, n int) *labTiming {
	t := &labTiming{}
	ctx, cancel := context.WithTimeout(parent, ls.timeout)
	defer cancel()
	net, err := lab.Create(ctx, lab.Options{Hosts: n + 1, Rate: ls.rate, MTU: ls.mtu})
	if err != nil {
		t.Failed = err.Error()
		return t
	}
	ls.made = append(ls.made, net.ID())
	defer net.Close()
	server := net.Hosts[0]
	port := strconv.Itoa(ls.serverPor)
	size := strconv.FormatInt(ls.size, 10)
	rate := fmt.Sprintf("%dbit", int64(ls.rate))
	var srvArgs []string
	if mode == "cs" {
		srvArgs = append(ls.cmd(), "cs", "serve", "-p", port, "--size", size, "--seed", "1")
	} else {
		srvArgs = append(ls.cmd(), "p2p", "serve", "-p", port, "--size", size, "--seed", "1", "--chunk-size", strconv.Itoa(ls.chunk), "--rate", rate, "--config", ls.config)
		if ls.trees > 0 {
			srvArgs = append(srvArgs, "--expect", strconv.Itoa(n), "--trees", strconv.Itoa(ls.trees))
		}
	}
	srv, err := net.Start(ctx, &server, srvArgs...)
	if err != nil {
		t.Failed = err.Error()
		return t
	}
	var md5 string
	for md5 == "" {
		if m := serverMD5.FindStringSubmatch(srv.Output()); m != nil {
			md5 = m[1]
			break
		}
		select {
		case <-srv.Done():
			t.Failed = "server exited: " + lastLines(srv.Output())
			return t
		case <-ctx.Done():
			t.Failed = "server did not start: " + lastLines(srv.Output())
			return t
		case <-time.After(10 * time.Millisecond):
		}
	}
	// Start every downloader at once; each reports its own time, from
	// which the distribution time follows with its start offset.
	t0 := time.Now()
	procs := make([]*lab.Proc, n)
	defer func() { ls.keep(mode, n, append([]*lab.Proc{srv}, procs...)) }()
	starts := make([]time.Duration, n)
	for i := 0; i < n; i++ {
		h := &net.Hosts[i+1]
		var args []string
		if mode == "cs" {
			args = append(ls.cmd(), "cs", "get", "-s", server.Addr.String(), "-p", port, "-q")
		} else {
			args = append(ls.cmd(), "p2p", "get", "-s", server.Addr.String(), "-sp", port, "-p", "51000", "-q",
				"--linger", "-1s", "--seed", strconv.Itoa(i+1), "--rate", rate, "--config", ls.config)
		}
		starts[i] = time.Since(t0)
		if procs[i], err = net.Start(ctx, h, args...); err != nil {
			t.Failed = err.Error()
			return t
		}
	}
	t.Clients = make([]float64, n)
	for done := 0; done < n; {
		done = 0
		for i, p := range procs {
			out := p.Output()
			if m := timeUsed.FindStringSubmatch(out); m != nil {
				used, _ := strconv.ParseFloat(m[1], 64)
				if !strings.Contains(out, md5) {
					t.Failed = fmt.Sprintf("h%d's file differs from the server's (md5 %s): %s", i+2, md5, lastLines(out))
					return t
				}
				t.Clients[i] = starts[i].Seconds() + used
				done++
				continue
			}
			select {
			case <-p.Done():
				t.Failed = fmt.Sprintf("h%d exited before verifying the file: %s", i+2, lastLines(p.Output()))
				return t
			default:
			}
		}
		if done == n {
			break
		}
		select {
		case <-ctx.Done():
			t.Failed = fmt.Sprintf("timed out after %v with %d of %d verified (--timeout)", ls.timeout, done, n)
			if parent.Err() != nil {
				t.Failed = fmt.Sprintf("interrupted with %d of %d verified", done, n)
			}
			return t
		case <-time.After(20 * time.Millisecond):
		}
	}
	for _, c := range t.Clients {
		t.Seconds = max(t.Seconds, c)
	}
	return t
}

// keep writes what each process printed under ls.logs, h1 being the
// server; the processes are still running, so it is what they printed by
// the time the run ended.
func (ls *labSwarm) keep(mode string, n int, procs []*lab.Proc) {
	if ls.logs == "" {
		return
	}
	for i, p := range procs {
		if p == nil {
			continue
		}
		name := filepath.Join(ls.logs, fmt.Sprintf("%s-n%d-h%d.log", mode, n, i+1))
		if err := os.WriteFile(name, []byte(p.Output()), 0o644); err != nil {
			ls.say("lab: %v\n", err)
		}
	}
}

func (ls *labSwarm) cmd() []string { return append([]string(nil), ls.binary...) }

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, " / ")
}

func (ls *labSwarm) table(rows []labRow) scenario.Table {
	t := scenario.Table{
		Title: fmt.Sprintf("seed 001 on real sockets: %d-byte file, every link %.0f Mbit/s each way (tc tbf), MTU %d, no added delay",
			ls.size, ls.rate/1e6, ls.mtu),
		Header: []string{"N", "C/S lab", "C/S sim", "sim/lab", "C/S bound", "lab/bound", "C/S seed", "P2P lab", "P2P sim", "sim/lab", "P2P bound", "lab/bound", "P2P seed"},
	}
	cell := func(v float64, f string) string {
		if v == 0 {
			return "-"
		}
		return fmt.Sprintf(f, v)
	}
	part := func(x *labTiming) []string {
		if x == nil {
			return []string{"-", "-", "-", "-", "-", "-"}
		}
		if x.Failed != "" {
			return []string{"FAILED", cell(x.Sim, "%.2f s"), "-", cell(x.Bound, "%.2f s"), "-", cell(x.Seed, "%.1f s")}
		}
		return []string{cell(x.Seconds, "%.2f s"), cell(x.Sim, "%.2f s"), cell(x.SimRatio, "%.3f"), cell(x.Bound, "%.2f s"), cell(x.Seconds/x.Bound, "%.3f"), cell(x.Seed, "%.1f s")}
	}
	for _, r := range rows {
		t.Rows = append(t.Rows, append(append([]string{strconv.Itoa(r.N)}, part(r.CS)...), part(r.P2P)...))
	}
	t.Notes = []string{
		"lab: real netspec processes in network namespaces; time = until the last downloader verified the file (all start together).",
		"sim: netspec sim swarm with the same file, rates, MTU and chunk size and no link delay, since the lab cannot add one:",
		"     this kernel has no netem, so the seed's 5 ms per link is left out of both columns.",
		"bound: Kurose-Ross, C/S max(N*F/u_s, F/d_min), P2P max(F/u_s, F/d_min, N*F/(u_s+N*u)), on file bytes only.",
		"seed: the seed's mininet table. Its clients were started by hand seconds apart and their times averaged, so its",
		"      C/S figure for N=5 (38.2 s) sits below the 40 s bound that all-start-together distribution time cannot beat.",
	}
	return t
}
