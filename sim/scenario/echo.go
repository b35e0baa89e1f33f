package scenario

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"net/netip"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/echo"
)

// Echo is the foundation's scenario: UDP and TCP echo clients talk to one
// server over a lossy, duplicating, reordering network.
type Echo struct {
	Clients  int
	Messages int
	MaxSize  int
	Loss     float64
	Dup      float64
	Jitter   time.Duration
	Rate     float64
	Delay    time.Duration

	// flagged: Flags filled every field with its real default, so a
	// zero is what the user typed, not "take the default".
	flagged bool
}

// Name implements Scenario.
func (e *Echo) Name() string { return "echo" }

// Describe implements Scenario.
func (e *Echo) Describe() string {
	return "RFC 862 echo, UDP and TCP clients, over a lossy network"
}

// Flags implements Scenario.
func (e *Echo) Flags(fs *flag.FlagSet) {
	e.flagged = true
	fs.IntVar(&e.Clients, "clients", 4, "number of clients (half UDP, half TCP)")
	fs.IntVar(&e.Messages, "messages", 20, "messages per client")
	fs.IntVar(&e.MaxSize, "max-size", 1400, "largest message in bytes")
	fs.Float64Var(&e.Loss, "loss", 0.05, "packet loss probability")
	fs.Float64Var(&e.Dup, "dup", 0.01, "packet duplication probability")
	fs.DurationVar(&e.Jitter, "jitter", 2*time.Millisecond, "maximum jitter (reorders packets)")
	fs.Float64Var(&e.Rate, "rate", 10e6, "access link rate in bit/s")
	fs.DurationVar(&e.Delay, "delay", 5*time.Millisecond, "access link delay")
}

// Defaults fills zero fields with the flag defaults, for callers that do
// not parse flags. After Flags it does nothing: every field then holds
// the flag's default or what the user typed, zero included.
func (e *Echo) Defaults() *Echo {
	if e.flagged {
		return e
	}
	fs := flag.NewFlagSet("", flag.ContinueOnError)
	d := &Echo{}
	d.Flags(fs)
	if e.Clients == 0 {
		e.Clients = d.Clients
	}
	if e.Messages == 0 {
		e.Messages = d.Messages
	}
	if e.MaxSize == 0 {
		e.MaxSize = d.MaxSize
	}
	if e.Rate == 0 {
		e.Rate = d.Rate
	}
	return e
}

// Validate implements Validator. Zero fields of a struct built without
// Flags take their defaults; after Flags a zero is checked as typed.
func (e *Echo) Validate() error {
	d := *e
	return d.Defaults().validate()
}

func (e *Echo) validate() error {
	switch {
	case e.Clients < 1 || e.Clients > 1000:
		return fmt.Errorf("--clients must be between 1 and 1000")
	case e.Messages < 1 || e.Messages > 100_000:
		return fmt.Errorf("--messages must be between 1 and 100000")
	case e.MaxSize < 1 || e.MaxSize > 65507:
		return fmt.Errorf("--max-size must be between 1 and 65507 (UDP's limit)")
	case e.Clients*e.Messages > 100_000:
		// Every message is drawn before the run: 100 clients of 100,000
		// took 24 GB before the first event.
		return fmt.Errorf("--clients x --messages must be at most 100000 (here %d)", e.Clients*e.Messages)
	case int64(e.Clients)*int64(e.Messages)*int64(e.MaxSize) > 1<<30:
		return fmt.Errorf("--clients x --messages x --max-size must be at most 1 GiB")
	}
	return validLink(e.Loss, e.Dup, e.Rate, e.Jitter, e.Delay, "--delay")
}

// validLink checks the link flags every scenario shares.
func validLink(loss, dup, rate float64, jitter, delay time.Duration, delayFlag string) error {
	switch {
	case !(loss >= 0 && loss < 1):
		return fmt.Errorf("--loss must be in [0, 1)")
	case !(dup >= 0 && dup <= 1):
		return fmt.Errorf("--dup must be in [0, 1]")
	case !(rate > 0) || math.IsInf(rate, 1):
		return fmt.Errorf("--rate must be a finite number > 0")
	case jitter < 0:
		return fmt.Errorf("--jitter must be >= 0")
	case delay < 0:
		return fmt.Errorf("%s must be >= 0", delayFlag)
	}
	return nil
}

// EchoClientResult is one client's outcome.
type EchoClientResult struct {
	Name     string `json:"name"`
	TCP      bool   `json:"tcp"`
	Sent     int    `json:"sent"`
	Echoed   int    `json:"echoed"`
	Stray    int    `json:"stray"`
	Timeouts int    `json:"timeouts"`
	Bytes    int    `json:"bytes"`
	Done     string `json:"done"`
}

// EchoResult is the scenario's machine-readable result.
type EchoResult struct {
	Seed    uint64             `json:"seed"`
	Clients []EchoClientResult `json:"clients"`
	Net     NetCounts          `json:"net"`
	Events  uint64             `json:"events"`
	Virtual time.Duration      `json:"virtual"`
	Corrupt int                `json:"corrupt"`
}

// NetCounts tallies the network's ground truth.
type NetCounts struct {
	Sent      int `json:"sent"`
	Delivered int `json:"delivered"`
	Lost      int `json:"lost"`
	Dup       int `json:"duplicated"`
	// InFlight is what was still on the network when the run stopped:
	// Sent+Dup = Delivered+Lost+InFlight.
	InFlight int `json:"inFlight"`
}

// Line is the summary's network line.
func (c NetCounts) Line() string {
	return fmt.Sprintf("network: %d packets sent, %d delivered, %d lost, %d duplicated, %d in flight at the end", c.Sent, c.Delivered, c.Lost, c.Dup, c.InFlight)
}

// Count adds one network event.
func (c *NetCounts) Count(ev sim.NetEvent) {
	switch {
	case ev.Kind == sim.NetSend:
		c.Sent++
	case ev.Kind == sim.NetDeliver:
		c.Delivered++
	case ev.Kind == sim.NetDup:
		c.Dup++
	case ev.Kind.Dropped():
		c.Lost++
	}
}

// Run implements Scenario.
func (e *Echo) Run(opt Options) (Result, error) {
	e.Defaults()
	if err := e.validate(); err != nil {
		return Result{}, err
	}
	server := netip.MustParseAddrPort("10.0.0.1:7007")
	res := EchoResult{Seed: opt.Seed}
	sent := map[string][][]byte{}
	idx := map[string]int{}
	cfg := sim.Config{
		Seed:     opt.Seed,
		Link:     sim.Symmetric(sim.Dir{Rate: e.Rate, Delay: e.Delay}),
		Faults:   sim.Faults{Loss: e.Loss, Dup: e.Dup, Jitter: e.Jitter},
		Protocol: "echo",
		OnNet:    res.Net.Count,
	}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		i, ok := idx[n.Name]
		if !ok {
			return
		}
		c := &res.Clients[i]
		switch ev.Name {
		case "reply":
			if ev.Value.(echo.Reply).Matched {
				c.Echoed++
			} else {
				c.Stray++
			}
			known := false
			for _, m := range sent[n.Name] {
				known = known || bytes.Equal(m, ev.Data)
			}
			if !known {
				res.Corrupt++
			}
		case "timeout", "error":
			c.Timeouts++
		}
	}
	cfg.OnExit = func(n *sim.Node, now spec.Time, err string) {
		if i, ok := idx[n.Name]; ok {
			res.Clients[i].Done = fmt.Sprintf("%.3fs", now.Sub(spec.SimEpoch).Seconds())
			if err != "" {
				res.Clients[i].Done += " (" + err + ")"
			}
		}
	}
	s := opt.NewSim(cfg)
	scfg := echo.ServerConfig{UDP: server, TCP: server}
	if _, err := s.AddNode(sim.NodeSpec{Name: "server", Protocol: "echo", Role: "server", Config: scfg, New: func() spec.Machine { return echo.NewServer(scfg) }}); err != nil {
		return Result{}, err
	}
	rng := spec.NewRand(opt.Seed)
	for i := 0; i < e.Clients; i++ {
		tcp := i%2 == 1
		name := fmt.Sprintf("client%d", i+1)
		ccfg := echo.ClientConfig{Server: server, TCP: tcp, Timeout: 200 * time.Millisecond, Retries: 5}
		if _, err := s.AddNode(sim.NodeSpec{Name: name, Protocol: "echo", Role: "client", Config: ccfg, New: func() spec.Machine { return echo.NewClient(ccfg) }}); err != nil {
			return Result{}, err
		}
		idx[name] = len(res.Clients)
		res.Clients = append(res.Clients, EchoClientResult{Name: name, TCP: tcp, Sent: e.Messages})
		for j := 0; j < e.Messages; j++ {
			size := rng.IntN(e.MaxSize + 1)
			if tcp {
				size *= 8
			}
			msg := make([]byte, size)
			rng.Bytes(msg)
			sent[name] = append(sent[name], msg)
			res.Clients[len(res.Clients)-1].Bytes += size
			s.Command(time.Duration(j)*20*time.Millisecond, name, spec.Command{Name: "send", Data: msg})
		}
		s.Command(time.Duration(e.Messages)*20*time.Millisecond, name, spec.Command{Name: "close"})
	}
	s.RunUntil(func() bool {
		for _, n := range s.Nodes()[1:] {
			if done, _ := n.Exited(); !done {
				return false
			}
		}
		return true
	}, 10*time.Minute)
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	res.Events, res.Virtual, res.Net.InFlight = s.Events(), s.Elapsed(), s.InFlight()

	t := Table{
		Title:  fmt.Sprintf("echo over a network with %.1f%% loss, %.1f%% duplication, %v jitter (seed %d)", e.Loss*100, e.Dup*100, e.Jitter, opt.Seed),
		Header: []string{"client", "transport", "sent", "echoed", "stray", "timeouts", "bytes", "finished at"},
	}
	for _, c := range res.Clients {
		tr := "udp"
		if c.TCP {
			tr = "tcp"
		}
		t.Rows = append(t.Rows, []string{c.Name, tr, fmt.Sprint(c.Sent), fmt.Sprint(c.Echoed), fmt.Sprint(c.Stray), fmt.Sprint(c.Timeouts), fmt.Sprint(c.Bytes), c.Done})
	}
	t.Notes = append(t.Notes,
		res.Net.Line(),
		fmt.Sprintf("simulated %v in %d events; corrupted echoes: %d", res.Virtual.Round(time.Millisecond), res.Events, res.Corrupt))
	out := Result{Tables: []Table{t}, Value: res}
	if res.Corrupt > 0 {
		out.Failed = fmt.Sprintf("%d echoes differ from every message sent", res.Corrupt)
	}
	if v := s.Violations(); len(v) > 0 {
		out.Failed = fmt.Sprintf("contract violations: %v", v)
	}
	return out, nil
}

// Targets implements Checked.
func (e *Echo) Targets() (partitionable, crashable []string) {
	e.Defaults()
	nodes := []string{"server"}
	for i := 0; i < e.Clients; i++ {
		nodes = append(nodes, fmt.Sprintf("client%d", i+1))
	}
	return nodes, []string{"server"}
}

// Check implements Checked: safety is that no echo ever differs from
// every message its client sent; liveness is that once the network has
// healed, one more message from every client is echoed within 10 s.
func (e *Echo) Check(seed uint64, f sim.Faults, opt Options) Verdict {
	e.Defaults()
	server := netip.MustParseAddrPort("10.0.0.1:7007")
	sent := map[string][][]byte{}
	last := map[string][]byte{}
	done := map[string]bool{}
	var v Verdict
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: e.Rate, Delay: e.Delay}), Faults: f, Protocol: "echo"}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		if ev.Name != "reply" {
			return
		}
		ok := false
		for _, m := range sent[n.Name] {
			ok = ok || bytes.Equal(m, ev.Data)
		}
		if !ok && v.Safety == "" {
			v.Safety = fmt.Sprintf("%s got a %d-byte echo matching nothing it sent", n.Name, len(ev.Data))
		}
		if bytes.Equal(ev.Data, last[n.Name]) && now.Sub(spec.SimEpoch) >= f.Until {
			done[n.Name] = true
		}
	}
	s := opt.NewSim(cfg)
	scfg := echo.ServerConfig{UDP: server, TCP: server}
	s.MustAddNode(sim.NodeSpec{Name: "server", Protocol: "echo", Role: "server", Config: scfg, New: func() spec.Machine { return opt.machine("server", echo.NewServer(scfg)) }})
	rng := spec.NewRand(seed)
	heal := f.Until
	for i := 0; i < e.Clients; i++ {
		name := fmt.Sprintf("client%d", i+1)
		ccfg := echo.ClientConfig{Server: server, TCP: i%2 == 1, Timeout: 200 * time.Millisecond, Retries: 5}
		s.MustAddNode(sim.NodeSpec{Name: name, Protocol: "echo", Role: "client", Config: ccfg, New: func() spec.Machine { return opt.machine(name, echo.NewClient(ccfg)) }})
		gap := heal / time.Duration(e.Messages+1)
		for j := 0; j < e.Messages; j++ {
			m := make([]byte, rng.IntN(e.MaxSize+1))
			rng.Bytes(m)
			sent[name] = append(sent[name], m)
			s.Command(time.Duration(j)*gap, name, spec.Command{Name: "send", Data: m})
		}
		final := []byte(fmt.Sprintf("after healing, from %s", name))
		sent[name] = append(sent[name], final)
		last[name] = final
		s.Command(heal, name, spec.Command{Name: "send", Data: final})
	}
	bound := heal + 10*time.Second
	s.RunUntil(func() bool { return len(done) == e.Clients }, bound)
	v.Virtual, v.Events = s.Elapsed(), s.Events()
	if len(done) < e.Clients {
		v.Live = fmt.Sprintf("%d of %d clients had their post-healing message echoed within 10s", len(done), e.Clients)
	}
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	_ = s.Close()
	return v
}
