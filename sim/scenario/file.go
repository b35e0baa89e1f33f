package scenario

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"hash"
	"net/netip"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
)

// File is seed 002's file service on a simulated network: clients
// download a file from one server at once, over links with loss,
// duplication and jitter. It reports each download's goodput against the
// link rate, the sharing of the server's uplink (Jain's index) and
// whether every file arrived exactly.
type File struct {
	Clients  int
	Size     int64
	Loss     float64
	Dup      float64
	Jitter   time.Duration
	Rate     float64
	Delay    time.Duration
	Queue    int
	Datagram int
	CC       string

	flagged bool // see Echo.flagged
}

// Name implements Scenario.
func (f *File) Name() string { return "file" }

// Describe implements Scenario.
func (f *File) Describe() string {
	return "seed 002's file service: clients download over rudp sessions, verified by SHA-256"
}

// Flags implements Scenario.
func (f *File) Flags(fs *flag.FlagSet) {
	f.flagged = true
	fs.IntVar(&f.Clients, "clients", 1, "clients downloading at once")
	fs.Int64Var(&f.Size, "size", 10<<20, "file size in bytes (0: an empty file)")
	fs.Float64Var(&f.Loss, "loss", 0.01, "packet loss probability")
	fs.Float64Var(&f.Dup, "dup", 0, "packet duplication probability")
	fs.DurationVar(&f.Jitter, "jitter", 0, "maximum jitter (reorders packets)")
	fs.Float64Var(&f.Rate, "rate", 10e6, "access link rate in bit/s")
	fs.DurationVar(&f.Delay, "delay", 5*time.Millisecond, "access link delay")
	fs.IntVar(&f.Queue, "queue", sim.DefaultQueue/1500, "link queue in 1500-byte packets")
	fs.IntVar(&f.Datagram, "datagram", defaultDatagram, "largest datagram in bytes")
	fs.StringVar(&f.CC, "cc", "westwood", "congestion control: westwood or newreno")
}

// Defaults fills zero fields with the flag defaults, for callers that
// do not parse flags (after Flags it does nothing, as Echo's).
func (f *File) Defaults() *File {
	if f.flagged {
		return f
	}
	d := &File{}
	d.Flags(flag.NewFlagSet("", flag.ContinueOnError))
	if f.Clients == 0 {
		f.Clients = d.Clients
	}
	if f.Size == 0 {
		f.Size = d.Size
	}
	if f.Rate == 0 {
		f.Rate = d.Rate
	}
	if f.CC == "" {
		f.CC = d.CC
	}
	if f.Queue == 0 {
		f.Queue = d.Queue
	}
	if f.Datagram == 0 {
		f.Datagram = d.Datagram
	}
	return f
}

// defaultDatagram is rudp's default largest datagram (rudp.Config).
const defaultDatagram = 1452

// minDatagram is the smallest datagram rudp works with: an endpoint
// refuses a SYN announcing less (121 to 127 were accepted here and could
// never connect).
const minDatagram = rudp.MinDatagram

// Validate implements Validator. Zero fields of a struct built without
// Flags take their defaults; after Flags a zero is checked as typed.
func (f *File) Validate() error {
	d := *f
	return d.Defaults().validate()
}

func (f *File) validate() error {
	switch {
	case f.Clients < 1 || f.Clients > 100:
		return fmt.Errorf("--clients must be between 1 and 100")
	case f.Size < 0 || f.Size > 1<<30:
		return fmt.Errorf("--size must be between 0 and 1 GiB")
	case f.Queue < 1 || f.Queue > 1_000_000:
		return fmt.Errorf("--queue must be between 1 and 1000000")
	case f.Datagram < minDatagram || f.Datagram > rudp.MaxPacket:
		return fmt.Errorf("--datagram must be between %d and %d", minDatagram, rudp.MaxPacket)
	case f.CC != "westwood" && f.CC != "newreno":
		return fmt.Errorf("--cc must be westwood or newreno")
	}
	return validLink(f.Loss, f.Dup, f.Rate, f.Jitter, f.Delay, "--delay")
}

// FileClientResult is one download.
type FileClientResult struct {
	Name    string        `json:"name"`
	Exact   bool          `json:"exact"`
	Error   string        `json:"error,omitempty"`
	Time    time.Duration `json:"time"`
	Goodput float64       `json:"goodputBitsPerSecond"`
	OfLink  float64       `json:"ofLinkRate"`
}

// FileResult is the scenario's machine-readable result.
type FileResult struct {
	Seed    uint64             `json:"seed"`
	Clients []FileClientResult `json:"clients"`
	// Jain is Jain's fairness index of the bytes each client received
	// from a third of the way to the first finish to the first finish.
	Jain float64 `json:"jain"`
	// Retransmits and RTOs are the server's, over all sessions.
	Retransmits uint64        `json:"retransmits"`
	RTOs        uint64        `json:"rtos"`
	Net         NetCounts     `json:"net"`
	Events      uint64        `json:"events"`
	Virtual     time.Duration `json:"virtual"`
	Corrupt     int           `json:"corrupt"`
}

// Run implements Scenario.
func (f *File) Run(opt Options) (Result, error) {
	f.Defaults()
	if err := f.validate(); err != nil {
		return Result{}, err
	}
	server := netip.MustParseAddrPort("10.0.0.1:6000")
	files := []file.SynthFile{{Name: "seed002.bin", Size: f.Size, Seed: opt.Seed ^ 0xf11e}}
	want := sha256.New()
	buf := make([]byte, 1<<20)
	for off := int64(0); off < f.Size; off += int64(len(buf)) {
		n := min(int64(len(buf)), f.Size-off)
		file.SynthBytes(files[0].Seed, off, buf[:n])
		want.Write(buf[:n])
	}
	wantSum := want.Sum(nil)

	res := FileResult{Seed: opt.Seed}
	type track struct {
		h        hash.Hash
		at       []spec.Time
		n        []int
		done     spec.Time
		finished bool
	}
	tracks := map[string]*track{}
	idx := map[string]int{}
	cfg := sim.Config{
		Seed:     opt.Seed,
		Link:     sim.Symmetric(sim.Dir{Rate: f.Rate, Delay: f.Delay, Queue: f.Queue * 1500}),
		Faults:   sim.Faults{Loss: f.Loss, Dup: f.Dup, Jitter: f.Jitter},
		Protocol: "file",
		OnNet:    res.Net.Count,
	}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		tr := tracks[n.Name]
		if tr == nil {
			return
		}
		c := &res.Clients[idx[n.Name]]
		switch ev.Name {
		case "file-start":
			tr.h = sha256.New()
		case "data":
			tr.h.Write(ev.Data)
			tr.at = append(tr.at, now)
			tr.n = append(tr.n, len(ev.Data))
		case "file-done":
			tr.finished, tr.done = true, now
			c.Time = now.Sub(spec.SimEpoch)
			c.Exact = tr.h != nil && bytes.Equal(tr.h.Sum(nil), wantSum)
			if !c.Exact {
				res.Corrupt++
			}
		case "file-error":
			c.Error = ev.Text
		}
	}
	s := opt.NewSim(cfg)
	scfg := file.ServerConfig{Addr: server, Files: files, Session: rudp.Config{Seed: opt.Seed ^ 0x5e, MaxDatagram: f.Datagram, CC: f.CC}}
	if _, err := s.AddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), Protocol: "file", Role: "server", Config: scfg,
		New: func() spec.Machine { return file.NewServer(scfg, nil) }}); err != nil {
		return Result{}, err
	}
	for i := 0; i < f.Clients; i++ {
		name := fmt.Sprintf("client%d", i+1)
		ccfg := file.ClientConfig{Server: server, Session: rudp.Config{Seed: opt.Seed + uint64(i) + 1, MaxDatagram: f.Datagram, CC: f.CC}}
		if _, err := s.AddNode(sim.NodeSpec{Name: name, Protocol: "file", Role: "client", Config: ccfg,
			New: func() spec.Machine { return file.NewClient(ccfg) }}); err != nil {
			return Result{}, err
		}
		tracks[name] = &track{}
		idx[name] = len(res.Clients)
		res.Clients = append(res.Clients, FileClientResult{Name: name})
		s.Command(0, name, spec.Command{Name: "get", Args: []string{files[0].Name}})
		s.Command(0, name, spec.Command{Name: "exit"})
	}
	clients := s.Nodes()[1:]
	s.RunUntil(func() bool {
		for _, n := range clients {
			if done, _ := n.Exited(); !done {
				return false
			}
		}
		return true
	}, time.Hour)
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	res.Events, res.Virtual, res.Net.InFlight = s.Events(), s.Elapsed(), s.InFlight()

	first, anyDone := spec.Time(1<<62), false
	for _, tr := range tracks {
		if tr.finished {
			first, anyDone = min(first, tr.done), true
		}
	}
	if !anyDone {
		first = spec.SimEpoch.Add(res.Virtual) // no finish: the whole run
	}
	from := spec.SimEpoch + (first-spec.SimEpoch)/3
	var shares []float64
	for i := range res.Clients {
		c := &res.Clients[i]
		tr := tracks[c.Name]
		if c.Time > 0 {
			c.Goodput = float64(f.Size) * 8 / c.Time.Seconds()
			c.OfLink = c.Goodput / f.Rate
		}
		got := 0
		for j, at := range tr.at {
			if at > from && at <= first {
				got += tr.n[j]
			}
		}
		shares = append(shares, float64(got))
		if ok, err := clients[i].Exited(); ok && err != "" && c.Error == "" {
			c.Error = err
		}
	}
	res.Jain = jainIndex(shares)
	if m, ok := s.Nodes()[0].Machine().(*file.Server); ok {
		for _, ctr := range m.Counters() {
			switch ctr.Name {
			case "rudp_retransmits":
				res.Retransmits = ctr.Value
			case "rudp_rto_expirations":
				res.RTOs = ctr.Value
			}
		}
	}

	t := Table{
		Title: fmt.Sprintf("file service: %d client(s) download %d bytes over %.1f Mbit/s, %v links, %.1f%% loss, %.1f%% dup, %v jitter (seed %d)",
			f.Clients, f.Size, f.Rate/1e6, f.Delay, f.Loss*100, f.Dup*100, f.Jitter, opt.Seed),
		Header: []string{"client", "exact file", "finished at", "goodput Mbit/s", "of link rate", "error"},
	}
	failed := ""
	for _, c := range res.Clients {
		exact := "yes"
		if !c.Exact {
			exact = "no"
			if failed == "" {
				failed = fmt.Sprintf("%s did not get the exact file: %s", c.Name, c.Error)
			}
		}
		t.Rows = append(t.Rows, []string{c.Name, exact, c.Time.Round(time.Millisecond).String(), fmt.Sprintf("%.2f", c.Goodput/1e6),
			fmt.Sprintf("%.3f", c.OfLink), c.Error})
	}
	window := "the first finish"
	if !anyDone {
		window = "the end of the run (no client finished)"
	}
	fair := fmt.Sprintf("fair share of the server's uplink: Jain's index %.3f of the bytes received from %v to %s at %v", res.Jain,
		from.Sub(spec.SimEpoch).Round(time.Millisecond), window, first.Sub(spec.SimEpoch).Round(time.Millisecond))
	if total := floatSum(shares); total == 0 {
		fair = fmt.Sprintf("fair share of the server's uplink: not measured, no file bytes arrived from %v to %s at %v",
			from.Sub(spec.SimEpoch).Round(time.Millisecond), window, first.Sub(spec.SimEpoch).Round(time.Millisecond))
	}
	t.Notes = append(t.Notes, fair,
		fmt.Sprintf("server: %d retransmissions, %d retransmission timeouts", res.Retransmits, res.RTOs),
		res.Net.Line(),
		fmt.Sprintf("simulated %v in %d events", res.Virtual.Round(time.Millisecond), res.Events))
	out := Result{Tables: []Table{t}, Value: res}
	if res.Corrupt > 0 {
		out.Failed = fmt.Sprintf("%d client(s) reported a file whose SHA-256 differs from the served one", res.Corrupt)
	} else if failed != "" && f.Loss < 0.5 {
		out.Failed = failed
	}
	if v := s.Violations(); len(v) > 0 {
		out.Failed = fmt.Sprintf("contract violations: %v", v)
	}
	return out, nil
}

func floatSum(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum
}

// jainIndex is Jain's fairness index: (sum x)^2 / (n sum x^2).
func jainIndex(xs []float64) float64 {
	sum, sq := 0.0, 0.0
	for _, x := range xs {
		sum += x
		sq += x * x
	}
	if sq == 0 {
		return 1
	}
	return sum * sum / (float64(len(xs)) * sq)
}

// Targets implements Checked.
func (f *File) Targets() (partitionable, crashable []string) {
	nodes := []string{"server", "client1", "client2", "client3"}
	return nodes, nodes
}

// Check implements Checked with three clients downloading a 200 kB file.
// Safety: no download ever completes with the wrong SHA-256 (the client
// verifies, so a "file-done" with other bytes would be a silent
// corruption). Liveness: once the network has healed, every client has
// the exact file within 120 s; a client whose session gave up, or whose
// host crashed (losing its commands), starts over when the network heals,
// and one that fails after that tries again at once, as a user would.
func (f *File) Check(seed uint64, faults sim.Faults, opt Options) Verdict {
	const size, clients = 200_000, 3
	server := netip.MustParseAddrPort("10.0.0.1:6000")
	files := []file.SynthFile{{Name: "check.bin", Size: size, Seed: seed}}
	whole := make([]byte, size)
	file.SynthBytes(seed, 0, whole)
	wantSum := sha256.Sum256(whole)
	var v Verdict
	hashes := map[string]hash.Hash{}
	exact := map[string]bool{}
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}), Faults: faults, Protocol: "file"}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		switch ev.Name {
		case "file-start":
			hashes[n.Name] = sha256.New()
		case "data":
			if h := hashes[n.Name]; h != nil {
				h.Write(ev.Data)
			}
		case "file-done":
			h := hashes[n.Name]
			if h == nil || !bytes.Equal(h.Sum(nil), wantSum[:]) {
				if v.Safety == "" {
					v.Safety = fmt.Sprintf("%s completed a download whose bytes differ from the file", n.Name)
				}
				return
			}
			exact[n.Name] = true
		}
	}
	heal := faults.Until
	var s *sim.Sim
	retry := func(name string, at time.Duration) {
		s.Restart(at, name)
		s.Command(at+time.Millisecond, name, spec.Command{Name: "get", Args: []string{files[0].Name}})
		s.Command(at+time.Millisecond, name, spec.Command{Name: "exit"})
	}
	// A user whose download failed after the network healed tries again.
	cfg.OnExit = func(n *sim.Node, now spec.Time, _ string) {
		if n.Name != "server" && !exact[n.Name] && now.Sub(spec.SimEpoch) >= heal {
			retry(n.Name, now.Sub(spec.SimEpoch)+time.Millisecond)
		}
	}
	s = opt.NewSim(cfg)
	// Listening on the unspecified address, with clients that dial its
	// second address (ServerAlias): a datagram that does not name its
	// source leaves from the first, and the client drops it.
	scfg := file.ServerConfig{Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), server.Port()), Files: files, Session: rudp.Config{Seed: seed ^ 0x5e}}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: server.Addr(), Aliases: []netip.Addr{ServerAlias}, Protocol: "file", Role: "server", Config: scfg,
		New: func() spec.Machine { return opt.machine("server", file.NewServer(scfg, nil)) }})
	var nodes []*sim.Node
	for i := 0; i < clients; i++ {
		name := fmt.Sprintf("client%d", i+1)
		ccfg := file.ClientConfig{Server: netip.AddrPortFrom(ServerAlias, server.Port()), Session: rudp.Config{Seed: seed + uint64(i) + 1}}
		nodes = append(nodes, s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "file", Role: "client", Config: ccfg,
			New: func() spec.Machine { return opt.machine(name, file.NewClient(ccfg)) }}))
		s.Command(0, name, spec.Command{Name: "get", Args: []string{files[0].Name}})
		s.Command(0, name, spec.Command{Name: "exit"})
	}
	s.At(heal, func() {
		for _, n := range nodes {
			done, _ := n.Exited()
			if !exact[n.Name] && (done || n.Starts() > 1 || !n.Up()) {
				retry(n.Name, heal)
			}
		}
	})
	s.RunUntil(func() bool { return len(exact) == clients }, heal+120*time.Second)
	v.Virtual, v.Events = s.Elapsed(), s.Events()
	if len(exact) < clients {
		v.Live = fmt.Sprintf("%d of %d clients had the exact file 120 s after the network healed", len(exact), clients)
	}
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	_ = s.Close()
	return v
}
