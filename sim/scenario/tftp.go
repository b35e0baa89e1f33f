package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"net/netip"
	"slices"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
)

// TFTP is the TFTP server on a simulated network: clients download the
// same file at once (and one uploads a copy), over links with loss,
// duplication and jitter. It reports each transfer's goodput, whether
// it is byte-identical, and the server's retransmissions, which show
// that duplicates never draw any (no Sorcerer's Apprentice).
type TFTP struct {
	Clients    int
	Size       int64
	Blksize    int
	Windowsize int
	Put        bool
	Loss       float64
	Dup        float64
	Jitter     time.Duration
	Rate       float64
	Delay      time.Duration

	flagged bool // see Echo.flagged
}

// Name implements Scenario.
func (t *TFTP) Name() string { return "tftp" }

// Describe implements Scenario.
func (t *TFTP) Describe() string {
	return "TFTP (RFC 1350, 2347-2349, 7440): clients get a file, one puts it back, over a lossy network"
}

// Flags implements Scenario.
func (t *TFTP) Flags(fs *flag.FlagSet) {
	t.flagged = true
	fs.IntVar(&t.Clients, "clients", 3, "clients downloading at once")
	fs.Int64Var(&t.Size, "size", 1<<20, "file size in bytes (0: an empty file, one empty DATA block)")
	fs.IntVar(&t.Blksize, "blksize", 1428, "blksize option (0: none, 512-byte blocks)")
	fs.IntVar(&t.Windowsize, "windowsize", 16, "windowsize option (1: lock step)")
	fs.BoolVar(&t.Put, "put", true, "the first client uploads the file back after downloading it")
	fs.Float64Var(&t.Loss, "loss", 0.02, "packet loss probability")
	fs.Float64Var(&t.Dup, "dup", 0.02, "packet duplication probability")
	fs.DurationVar(&t.Jitter, "jitter", 2*time.Millisecond, "maximum jitter (reorders packets)")
	fs.Float64Var(&t.Rate, "rate", 10e6, "access link rate in bit/s")
	fs.DurationVar(&t.Delay, "delay", 5*time.Millisecond, "access link delay")
}

// Defaults fills zero fields with the flag defaults, for callers that do
// not parse flags (a zero Blksize stays: no option). After Flags it does
// nothing, as Echo's.
func (t *TFTP) Defaults() *TFTP {
	if t.flagged {
		return t
	}
	d := &TFTP{}
	d.Flags(flag.NewFlagSet("", flag.ContinueOnError))
	if t.Clients == 0 {
		t.Clients = d.Clients
	}
	if t.Size == 0 {
		t.Size = d.Size
	}
	if t.Windowsize == 0 {
		t.Windowsize = d.Windowsize
	}
	if t.Rate == 0 {
		t.Rate = d.Rate
	}
	return t
}

// Validate implements Validator. Zero fields of a struct built without
// Flags take their defaults; after Flags a zero is checked as typed.
func (t *TFTP) Validate() error {
	d := *t
	return d.Defaults().validate()
}

func (t *TFTP) validate() error {
	switch {
	case t.Clients < 1 || t.Clients > 100:
		return fmt.Errorf("--clients must be between 1 and 100")
	case t.Size < 0 || t.Size > 1<<30:
		return fmt.Errorf("--size must be between 0 and 1 GiB")
	case t.Blksize != 0 && (t.Blksize < tftp.MinBlksize || t.Blksize > tftp.MaxBlksize):
		return fmt.Errorf("--blksize must be 0 or between %d and %d", tftp.MinBlksize, tftp.MaxBlksize)
	case t.Windowsize < 1 || t.Windowsize > 4096:
		return fmt.Errorf("--windowsize must be between 1 and 4096")
	}
	return validLink(t.Loss, t.Dup, t.Rate, t.Jitter, t.Delay, "--delay")
}

var tftpServer = netip.MustParseAddrPort("10.0.0.1:69")

// TFTPTransfer is one transfer's outcome.
type TFTPTransfer struct {
	Client  string        `json:"client"`
	Op      string        `json:"op"`
	Exact   bool          `json:"exact"`
	Error   string        `json:"error,omitempty"`
	Time    time.Duration `json:"time"`
	Goodput float64       `json:"goodputBitsPerSecond"`
	OfLink  float64       `json:"ofLinkRate"`
}

// TFTPResult is the scenario's machine-readable result.
type TFTPResult struct {
	Seed      uint64         `json:"seed"`
	Transfers []TFTPTransfer `json:"transfers"`
	// Server counters: DATA sent and resent, ACKs ignored as stale or
	// duplicate, retransmission timeouts.
	DataSent   uint64    `json:"dataSent"`
	DataResent uint64    `json:"dataResent"`
	StaleAcks  uint64    `json:"staleAcks"`
	Timeouts   uint64    `json:"timeouts"`
	MaxPerBlk  int       `json:"maxSendsPerBlock"`
	Net        NetCounts `json:"net"`
	Events     uint64    `json:"events"`
	Virtual    time.Duration
	Corrupt    int `json:"corrupt"`
}

// tftpWatch follows what clients and the server report, and the DATA
// each transfer ID puts on the wire, and judges it: a transfer reported
// done must carry exactly the file (downloads: by bytes; uploads: by
// the SHA-256 the server stored), and no block may be sent more than
// windowsize x (retries+1) times.
type tftpWatch struct {
	want    []byte
	wantSum string
	window  int
	h       map[string]hash.Hash // per client, the download in progress
	// started is when each client's transfer in progress was asked for:
	// the commands are all given at the start, and a client runs them one
	// at a time, each as the one before ends. A transfer's time is from
	// its request, not its first DATA (an empty file's was 0).
	started   map[string]spec.Time
	stored    map[string]string // uploaded name -> SHA-256 the server stored
	sends     map[netip.AddrPort]map[uint16]int
	maxPerBlk int
	safety    string
	onDone    func(client, op string, exact bool, at spec.Time)
	onError   func(client, op, err string)
}

func newTFTPWatch(want []byte, window int) *tftpWatch {
	sum := sha256.Sum256(want)
	return &tftpWatch{want: want, wantSum: hex.EncodeToString(sum[:]), window: window, h: map[string]hash.Hash{},
		started: map[string]spec.Time{}, stored: map[string]string{}, sends: map[netip.AddrPort]map[uint16]int{}}
}

func (w *tftpWatch) unsafe(format string, a ...any) {
	if w.safety == "" {
		w.safety = fmt.Sprintf(format, a...)
	}
}

// since is when client's transfer in progress was asked for.
func (w *tftpWatch) since(client string) spec.Time {
	if t, ok := w.started[client]; ok {
		return t
	}
	return spec.SimEpoch
}

func (w *tftpWatch) event(n *sim.Node, now spec.Time, ev spec.Event) {
	if n.Name == "server" {
		if t, ok := ev.Value.(tftp.Transfer); ok && ev.Name == "transfer-done" && t.Op == "put" {
			w.stored[t.Name] = t.SHA256
			if t.SHA256 != w.wantSum {
				w.unsafe("the server stored upload %s with SHA-256 %s, not the file's", t.Name, t.SHA256)
			}
		}
		return
	}
	switch ev.Name {
	case "file-start":
		w.h[n.Name] = sha256.New()
	case "data":
		if h := w.h[n.Name]; h != nil {
			h.Write(ev.Data)
		}
	case "file-done":
		v := ev.Value.(tftp.FileDone)
		exact := false
		if v.Op == "get" {
			h := w.h[n.Name]
			exact = h != nil && hex.EncodeToString(h.Sum(nil)) == w.wantSum
			if !exact {
				w.unsafe("%s completed a download whose bytes differ from the file", n.Name)
			}
		} else {
			exact = w.stored[v.Name] == w.wantSum
			if !exact {
				w.unsafe("%s saw upload %s acknowledged, but the server did not store the file", n.Name, v.Name)
			}
		}
		delete(w.h, n.Name)
		if w.onDone != nil {
			w.onDone(n.Name, v.Op, exact, now)
		}
		w.started[n.Name] = now
	case "file-error":
		delete(w.h, n.Name)
		if w.onError != nil {
			v := ev.Value.(tftp.FileError)
			w.onError(n.Name, v.Op, ev.Text)
		}
		w.started[n.Name] = now
	}
}

func (w *tftpWatch) net(ev sim.NetEvent) {
	if ev.Kind != sim.NetSend || len(ev.Data) < 4 || ev.Data[0] != 0 || ev.Data[1] != byte(tftp.OpDATA) {
		return
	}
	m := w.sends[ev.From]
	if m == nil {
		m = map[uint16]int{}
		w.sends[ev.From] = m
	}
	blk := uint16(ev.Data[2])<<8 | uint16(ev.Data[3])
	m[blk]++
	w.maxPerBlk = max(w.maxPerBlk, m[blk])
	if limit := w.window * 6; m[blk] > limit {
		w.unsafe("%v sent DATA block %d %d times, more than windowsize %d x 6 tries (Sorcerer's Apprentice?)", ev.From, blk, m[blk], w.window)
	}
}

// build adds the server and the clients.
func (t *TFTP) build(s *sim.Sim, files []file.SynthFile, opt Options) []string {
	scfg := tftp.ServerConfig{Addr: tftpServer, Files: files, AllowWrite: true}
	s.MustAddNode(sim.NodeSpec{Name: "server", Addr: tftpServer.Addr(), Protocol: "tftp", Role: "server", Config: scfg,
		New: func() spec.Machine { return opt.machine("server", tftp.NewServer(scfg, nil, nil)) }})
	var names []string
	for i := 0; i < t.Clients; i++ {
		name := fmt.Sprintf("client%d", i+1)
		ccfg := tftp.ClientConfig{Server: tftpServer, Blksize: t.Blksize, Windowsize: t.Windowsize, Files: files}
		s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "tftp", Role: "client", Config: ccfg,
			New: func() spec.Machine { return opt.machine(name, tftp.NewClient(ccfg, nil)) }})
		names = append(names, name)
	}
	return names
}

// Run implements Scenario.
func (t *TFTP) Run(opt Options) (Result, error) {
	t.Defaults()
	if err := t.validate(); err != nil {
		return Result{}, fmt.Errorf("tftp: %w", err)
	}
	files := []file.SynthFile{{Name: "boot/kernel.img", Size: t.Size, Seed: opt.Seed ^ 0x7f7f}}
	want := make([]byte, t.Size)
	file.SynthBytes(files[0].Seed, 0, want)
	res := TFTPResult{Seed: opt.Seed}
	w := newTFTPWatch(want, t.Windowsize)
	w.onDone = func(client, op string, exact bool, at spec.Time) {
		d := at.Sub(w.since(client))
		tr := TFTPTransfer{Client: client, Op: op, Exact: exact, Time: d}
		if d > 0 {
			tr.Goodput = float64(t.Size) * 8 / d.Seconds()
			tr.OfLink = tr.Goodput / t.Rate
		}
		if !exact {
			res.Corrupt++
		}
		res.Transfers = append(res.Transfers, tr)
	}
	w.onError = func(client, op, err string) {
		res.Transfers = append(res.Transfers, TFTPTransfer{Client: client, Op: op, Error: err})
	}
	cfg := sim.Config{
		Seed:     opt.Seed,
		Link:     sim.Symmetric(sim.Dir{Rate: t.Rate, Delay: t.Delay}),
		Faults:   sim.Faults{Loss: t.Loss, Dup: t.Dup, Jitter: t.Jitter},
		Protocol: "tftp",
		OnEvent:  w.event,
		OnNet:    func(ev sim.NetEvent) { res.Net.Count(ev); w.net(ev) },
	}
	s := opt.NewSim(cfg)
	names := t.build(s, files, Options{}) // Wrap is for checkers
	for i, name := range names {
		s.Command(0, name, spec.Command{Name: "get", Args: []string{files[0].Name}})
		if i == 0 && t.Put {
			s.Command(0, name, spec.Command{Name: "put", Args: []string{"upload/copy.img", files[0].Name}})
		}
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
	if srv, ok := s.Nodes()[0].Machine().(*tftp.Server); ok {
		for _, c := range srv.Counters() {
			switch c.Name {
			case "data_sent":
				res.DataSent = c.Value
			case "data_resent":
				res.DataResent = c.Value
			case "stale_acks_ignored":
				res.StaleAcks = c.Value
			case "timeouts":
				res.Timeouts = c.Value
			}
		}
	}
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	res.Events, res.Virtual, res.MaxPerBlk, res.Net.InFlight = s.Events(), s.Elapsed(), w.maxPerBlk, s.InFlight()
	slices.SortStableFunc(res.Transfers, func(a, b TFTPTransfer) int {
		if a.Client != b.Client {
			return cmpString(a.Client, b.Client)
		}
		return cmpString(a.Op, b.Op)
	})

	blk := fmt.Sprintf("blksize %d", t.Blksize)
	if t.Blksize == 0 {
		blk = "RFC 1350's 512-byte blocks, no blksize option"
	}
	tb := Table{
		Title: fmt.Sprintf("tftp: %d client(s) get %d bytes (%s, windowsize %d) over %.1f Mbit/s, %v links, %.1f%% loss, %.1f%% dup, %v jitter (seed %d)",
			t.Clients, t.Size, blk, t.Windowsize, t.Rate/1e6, t.Delay, t.Loss*100, t.Dup*100, t.Jitter, opt.Seed),
		Header: []string{"client", "op", "exact", "time", "goodput Mbit/s", "of link rate", "error"},
	}
	for _, tr := range res.Transfers {
		exact := "yes"
		if !tr.Exact {
			exact = "no"
		}
		tb.Rows = append(tb.Rows, []string{tr.Client, tr.Op, exact, tr.Time.Round(time.Millisecond).String(),
			fmt.Sprintf("%.2f", tr.Goodput/1e6), fmt.Sprintf("%.3f", tr.OfLink), tr.Error})
	}
	tb.Notes = append(tb.Notes,
		fmt.Sprintf("server: %d DATA sent, %d of them resent after a timeout or a gap; %d duplicate or stale ACKs ignored (never answered); %d timeouts",
			res.DataSent, res.DataResent, res.StaleAcks, res.Timeouts),
		fmt.Sprintf("most sends of one block by one transfer: %d (bound: windowsize x 6 = %d)", res.MaxPerBlk, t.Windowsize*6),
		res.Net.Line()+fmt.Sprintf("; simulated %v in %d events", res.Virtual.Round(time.Millisecond), res.Events))
	out := Result{Tables: []Table{tb}, Value: res, Failed: w.safety}
	if out.Failed == "" && t.Loss < 0.2 {
		for _, tr := range res.Transfers {
			if tr.Error != "" {
				out.Failed = fmt.Sprintf("%s's %s failed at %.0f%% loss: %s", tr.Client, tr.Op, t.Loss*100, tr.Error)
				break
			}
		}
	}
	if v := s.Violations(); len(v) > 0 {
		out.Failed = fmt.Sprintf("contract violations: %v", v)
	}
	return out, nil
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Targets implements Checked.
func (t *TFTP) Targets() (partitionable, crashable []string) {
	nodes := []string{"server", "client1", "client2", "client3"}
	return nodes, nodes
}

// Check implements Checked with three clients getting a 100 kB file in
// windows of 8 (the first also uploading it back) while the faults
// last. Safety, throughout: no transfer is reported done with other
// bytes than the file's (by SHA-256, on the server's side for uploads),
// and no transfer ID sends a block more than windowsize x 6 times.
// Liveness: once the network has healed, every client gets the exact
// file within 60 s (each is asked again then: a crash loses a client's
// commands, and a transfer that failed is retried, as a user would).
func (t *TFTP) Check(seed uint64, faults sim.Faults, opt Options) Verdict {
	const size, window = 100_000, 8
	files := []file.SynthFile{{Name: "check.bin", Size: size, Seed: seed}}
	want := make([]byte, size)
	file.SynthBytes(seed, 0, want)
	heal := faults.Until
	w := newTFTPWatch(want, window)
	exact := map[string]bool{}
	var s *sim.Sim
	w.onDone = func(client, op string, ok bool, at spec.Time) {
		if op == "get" && ok && at.Sub(spec.SimEpoch) >= heal {
			exact[client] = true
		}
	}
	w.onError = func(client, op, _ string) {
		if now := s.Elapsed(); now >= heal && !exact[client] {
			s.Command(now, client, spec.Command{Name: "get", Args: []string{"check.bin"}})
		}
	}
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 5 * time.Millisecond}), Faults: faults,
		Protocol: "tftp", OnEvent: w.event, OnNet: w.net}
	s = opt.NewSim(cfg)
	tc := &TFTP{Clients: 3, Blksize: 1428, Windowsize: window}
	names := tc.build(s, files, opt)
	for i, name := range names {
		s.Command(0, name, spec.Command{Name: "get", Args: []string{"check.bin"}})
		if i == 0 {
			s.Command(0, name, spec.Command{Name: "put", Args: []string{"up/check.bin", "check.bin"}})
		}
		// At the heal, once the client is up, and again whenever it
		// restarts without the file: a crash drawn at the heal itself,
		// restarting just after it, would otherwise swallow the command.
		asked := -1
		var ask func()
		ask = func() {
			n := s.Node(name)
			if exact[name] {
				return
			}
			if n.Up() && n.Starts() != asked {
				asked = n.Starts()
				s.Command(s.Elapsed(), name, spec.Command{Name: "get", Args: []string{"check.bin"}})
			}
			if s.Elapsed() < heal+time.Second {
				s.At(s.Elapsed()+10*time.Millisecond, ask)
			}
		}
		s.At(heal, ask)
	}
	bound := heal + 60*time.Second
	s.RunUntil(func() bool { return len(exact) == len(names) }, bound)
	v := Verdict{Virtual: s.Elapsed(), Events: s.Events(), Safety: w.safety}
	if len(exact) < len(names) {
		var missing []string
		for _, n := range names {
			if !exact[n] {
				missing = append(missing, n)
			}
		}
		v.Live = fmt.Sprintf("%v did not get the exact file within 60s of healing at %v", missing, heal)
	}
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	_ = s.Close()
	return v
}
