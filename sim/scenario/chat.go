package scenario

import (
	"flag"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// ChatServerAddr is where the chat scenarios' server listens.
var ChatServerAddr = netip.MustParseAddrPort("10.0.0.1:9999")

// ServerAlias is a second address of the property checks' servers,
// which listen on the unspecified address and whose clients send here:
// a server that answers without naming the address it was asked on
// answers from its first address, and its clients drop that. (Near the
// nodes' own addresses: the simulator's dense routing table grows to
// cover it.)
var ServerAlias = netip.MustParseAddr("10.0.1.254")

// ChatScript is what happens in a simulated chat: the server's
// configuration and, per client, when it starts and what it types.
type ChatScript struct {
	Server  chat.ServerConfig
	Clients []ChatClient
}

// ChatClient is one client of a script.
type ChatClient struct {
	Name string
	// Plain clients are nc users (chat.Plain): no numbering, no
	// automatic heartbeats; they type "^hb^" to stay.
	Plain bool
	Nick  string
	Start time.Duration
	Lines []ChatLine
}

// ChatLine is a line typed at a time ("quit" leaves).
type ChatLine struct {
	At   time.Duration
	Text string
}

// Build adds the script's nodes and commands to s and registers them
// with w (if not nil). The server is node "server".
func (sc ChatScript) Build(s *sim.Sim, w *ChatWorld) error {
	return sc.BuildWith(s, w, func(c chat.ServerConfig) spec.Machine { return chat.NewServer(c) })
}

// BuildWith is Build with the server's machine made by newServer (a
// property test may put a bug back on purpose); the trace still records
// the real protocol, role and config.
func (sc ChatScript) BuildWith(s *sim.Sim, w *ChatWorld, newServer func(chat.ServerConfig) spec.Machine) error {
	scfg := sc.Server
	if !scfg.Addr.IsValid() {
		scfg.Addr = ChatServerAddr
	}
	// A server listening on the unspecified address is on
	// ChatServerAddr's host, which also has ServerAlias, where its
	// clients send: answers from the host's first address are dropped.
	server, host := scfg.Addr, scfg.Addr.Addr()
	var aliases []netip.Addr
	if server.Addr().IsUnspecified() {
		server, host = netip.AddrPortFrom(ServerAlias, server.Port()), ChatServerAddr.Addr()
		aliases = []netip.Addr{ServerAlias}
	}
	if _, err := s.AddNode(sim.NodeSpec{Name: "server", Addr: host, Aliases: aliases, Protocol: "chat", Role: "server", Config: scfg,
		New: func() spec.Machine { return newServer(scfg) }}); err != nil {
		return err
	}
	for _, c := range sc.Clients {
		ns := sim.NodeSpec{Name: c.Name, Protocol: "chat", Start: c.Start}
		if c.Plain {
			pcfg := chat.PlainConfig{Server: server, AnswerWelcome: true}
			ns.Role, ns.Config, ns.New = "plain", pcfg, func() spec.Machine { return chat.NewPlain(pcfg) }
		} else {
			ccfg := chat.ClientConfig{Server: server, Nick: c.Nick, Interval: scfg.Interval}
			ns.Role, ns.Config, ns.New = "client", ccfg, func() spec.Machine { return chat.NewClient(ccfg) }
		}
		n, err := s.AddNode(ns)
		if err != nil {
			return err
		}
		if w != nil {
			w.Register(n, ns.Role)
		}
		for _, l := range c.Lines {
			s.Command(l.At, c.Name, spec.Command{Name: "line", Data: []byte(l.Text)})
		}
	}
	return nil
}

// Heartbeats returns a plain client's "^hb^" lines every period from
// start to end: what a script (or a patient nc user) does to stay.
func Heartbeats(start, end, period time.Duration) []ChatLine {
	var out []ChatLine
	for t := start; t < end; t += period {
		out = append(out, ChatLine{At: t, Text: "^hb^"})
	}
	return out
}

// sortLines orders a client's lines by time, stably.
func sortLines(ls []ChatLine) {
	slices.SortStableFunc(ls, func(a, b ChatLine) int { return int(a.At - b.At) })
}

// Chat is issue 4's experiment: netspec and nc clients in a UDP group
// chat over a lossy, duplicating, reordering network; some go silent
// (their process dies), some quit, and the server crashes and restarts.
// Every run checks the membership, no-message-after-leaving, at-most-once
// and ordering properties against the network's ground truth.
type Chat struct {
	Clients     int
	Plain       int
	Messages    int
	Interval    time.Duration
	Duration    time.Duration
	Silent      int
	Quitters    int
	ServerCrash time.Duration
	Loss, Dup   float64
	Jitter      time.Duration
	Rate        float64
	Delay       time.Duration

	flagged bool // see Echo.flagged
}

// Name implements Scenario.
func (c *Chat) Name() string { return "chat" }

// Describe implements Scenario.
func (c *Chat) Describe() string {
	return "UDP group chat (seed 003): netspec and nc clients, expiry, quits, a server crash"
}

// Flags implements Scenario.
func (c *Chat) Flags(fs *flag.FlagSet) {
	c.flagged = true
	fs.IntVar(&c.Clients, "clients", 4, "netspec clients (numbered, deduplicated, ordered)")
	fs.IntVar(&c.Plain, "plain", 2, "nc-style clients (plain lines, ^hb^ by hand)")
	fs.IntVar(&c.Messages, "messages", 10, "lines each client types (0: none; clients still join and heartbeat)")
	fs.DurationVar(&c.Interval, "interval", 2*time.Second, "server's silence limit")
	fs.DurationVar(&c.Duration, "duration", 20*time.Second, "how long clients talk; the run lasts 3 --interval longer (so with the defaults 26s), for silent members to expire")
	fs.IntVar(&c.Silent, "silent", 1, "clients whose process dies between 1/3 and 2/3 of --duration (they expire); the ones after the quitters")
	fs.IntVar(&c.Quitters, "quitters", 1, "clients that quit at half --duration: the first ones, netspec before nc")
	fs.DurationVar(&c.ServerCrash, "server-crash", 12*time.Second, "crash the server at this time, restart it 500ms later (0, or a time not before the run ends: never)")
	fs.Float64Var(&c.Loss, "loss", 0.05, "packet loss probability")
	fs.Float64Var(&c.Dup, "dup", 0.05, "packet duplication probability")
	fs.DurationVar(&c.Jitter, "jitter", 20*time.Millisecond, "maximum jitter (reorders packets)")
	fs.Float64Var(&c.Rate, "rate", 10e6, "access link rate in bit/s")
	fs.DurationVar(&c.Delay, "delay", 5*time.Millisecond, "access link delay")
}

// Defaults fills zero fields with the flag defaults, for callers that
// do not parse flags (after Flags it does nothing, as Echo's).
func (c *Chat) Defaults() *Chat {
	if c.flagged {
		return c
	}
	d := &Chat{}
	d.Flags(flag.NewFlagSet("", flag.ContinueOnError))
	if c.Clients == 0 && c.Plain == 0 {
		c.Clients, c.Plain = d.Clients, d.Plain
	}
	if c.Messages == 0 {
		c.Messages = d.Messages
	}
	if c.Interval <= 0 {
		c.Interval = d.Interval
	}
	if c.Duration <= 0 {
		c.Duration = d.Duration
	}
	if c.Rate == 0 {
		c.Rate = d.Rate
	}
	return c
}

// script draws the workload from rng: clients start in the first second
// and type Messages lines (now and then a /me, a /who, a repeated line)
// until talk; plain ones heartbeat until hbEnd; quitters quit at talk/2.
func (c *Chat) script(rng spec.Rand, talk, hbEnd time.Duration) ChatScript {
	sc := ChatScript{Server: chat.ServerConfig{Addr: ChatServerAddr, Interval: c.Interval}}
	// Every client joins in the first second, and the expired ones
	// rejoin, every interval when jitter is about the interval: beyond
	// the default strangers' budget (20 a second, 50 in a burst) some
	// would wait for it, which the membership check (the datagrams the
	// server received) does not model. The budget has its own tests;
	// here it admits the crowd and its churn (the defaults are kept
	// where they suffice, so such runs are unchanged).
	m := c.Clients + c.Plain
	if rate := 2 * float64(m) / c.Interval.Seconds(); rate > chat.DefaultJoinRate || 2*m > chat.DefaultJoinBurst {
		sc.Server.JoinRate, sc.Server.JoinBurst = max(rate, chat.DefaultJoinRate), max(2*m, chat.DefaultJoinBurst)
	}
	for i := 0; i < c.Clients+c.Plain; i++ {
		plain := i >= c.Clients
		cl := ChatClient{Plain: plain, Start: time.Duration(rng.IntN(1000)) * time.Millisecond}
		if plain {
			cl.Name = fmt.Sprintf("nc%d", i-c.Clients+1)
		} else {
			cl.Name = fmt.Sprintf("client%d", i+1)
			cl.Nick = fmt.Sprintf("user%d", i+1)
		}
		stop, beat := talk, hbEnd
		if i < c.Quitters {
			stop, beat = talk/2, talk/2
		}
		if plain {
			cl.Lines = append(cl.Lines, ChatLine{At: cl.Start, Text: fmt.Sprintf("/nick %s", strings.ToUpper(cl.Name))})
			cl.Lines = append(cl.Lines, Heartbeats(cl.Start, beat, c.Interval/3)...)
		}
		last := ""
		for j := 0; j < c.Messages; j++ {
			at := cl.Start + time.Duration(rng.Int64N(int64(max(stop-cl.Start, time.Millisecond))))
			text := fmt.Sprintf("%s says %d", cl.Name, j)
			switch rng.IntN(10) {
			case 0:
				text = "/me waves"
			case 1:
				text = "/who"
			case 2:
				if last != "" {
					text = last // the same line typed twice: shown twice
				}
			}
			last = text
			cl.Lines = append(cl.Lines, ChatLine{At: at, Text: text})
		}
		if i < c.Quitters {
			cl.Lines = append(cl.Lines, ChatLine{At: stop, Text: "quit"})
		}
		sortLines(cl.Lines)
		sc.Clients = append(sc.Clients, cl)
	}
	return sc
}

// ChatClientResult is one client's outcome.
type ChatClientResult struct {
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	Nick      string `json:"nick"`
	Said      int    `json:"said"`
	Broadcast int    `json:"broadcast"`
	Shown     int    `json:"shown"`
	Dropped   uint64 `json:"duplicatesDropped"`
	Reordered uint64 `json:"reordered"`
	Lost      uint64 `json:"lost"`
	End       string `json:"end"`
}

// ChatResult is the scenario's machine-readable result.
type ChatResult struct {
	Seed    uint64              `json:"seed"`
	Clients []ChatClientResult  `json:"clients"`
	Server  chat.ServerCounters `json:"server"`
	Net     NetCounts           `json:"net"`
	Checks  map[string]string   `json:"checks"`
	Events  uint64              `json:"events"`
	Virtual time.Duration       `json:"virtual"`
	Faults  sim.Faults          `json:"faults"`
	// ServerCrashes are the server's crashes that happened, and what its
	// members did after each.
	ServerCrashes []ChatServerCrash    `json:"serverCrashes,omitempty"`
	Members       []chat.MemberInfo    `json:"-"`
	Shown         map[string][]string  `json:"-"`
	Stats         map[string]chatStats `json:"-"`
}

type chatStats struct {
	c    chat.ClientCounters
	nick string
	end  string
}

// Validate implements Validator. Zero fields of a struct built without
// Flags take their defaults; after Flags a zero is checked as typed.
func (c *Chat) Validate() error {
	d := *c
	return d.Defaults().validate()
}

func (c *Chat) validate() error {
	switch {
	case c.Clients < 0 || c.Plain < 0 || c.Messages < 0 || c.Silent < 0 || c.Quitters < 0:
		return fmt.Errorf("--clients, --plain, --messages, --silent and --quitters must be >= 0")
	case c.Clients+c.Plain < 1 || c.Clients+c.Plain > 200:
		return fmt.Errorf("--clients + --plain must be between 1 and 200")
	case c.Quitters+c.Silent > c.Clients+c.Plain:
		return fmt.Errorf("--quitters + --silent must be at most --clients + --plain (%d)", c.Clients+c.Plain)
	case c.Messages > 100_000 || c.Duration > 24*time.Hour:
		return fmt.Errorf("--messages must be at most 100000 and --duration at most 24h")
	case (c.Clients+c.Plain)*c.Messages*(c.Clients+c.Plain) > 1_000_000:
		// Each message goes to every member, and the ground truth keeps
		// every delivery (about 750 bytes each): 200 members sending 100,000 each ran out of
		// memory.
		return fmt.Errorf("members x messages x members (deliveries) must be at most 1,000,000 (here %d)", (c.Clients+c.Plain)*c.Messages*(c.Clients+c.Plain))
	case c.Interval < 10*time.Millisecond || c.Interval > time.Hour:
		return fmt.Errorf("--interval must be between 10ms and 1h")
	case c.Duration < time.Second:
		return fmt.Errorf("--duration must be at least 1s")
	case !(c.Loss >= 0 && c.Loss <= 1):
		return fmt.Errorf("--loss must be in [0, 1]")
	case !(c.Dup >= 0 && c.Dup <= 1):
		return fmt.Errorf("--dup must be in [0, 1]")
	case !(c.Rate > 0) || math.IsInf(c.Rate, 1):
		return fmt.Errorf("--rate must be a finite number > 0")
	case c.Jitter < 0:
		return fmt.Errorf("--jitter must be >= 0")
	case c.Delay < 0:
		return fmt.Errorf("--delay must be >= 0")
	case c.ServerCrash < 0:
		return fmt.Errorf("--server-crash must be >= 0")
	}
	return nil
}

// Run implements Scenario.
func (c *Chat) Run(opt Options) (Result, error) {
	c.Defaults()
	if err := c.validate(); err != nil {
		return Result{}, fmt.Errorf("chat: %w", err)
	}
	rng := spec.NewRand(opt.Seed)
	end := c.Duration + 3*c.Interval
	sc := c.script(rng, c.Duration, c.Duration)
	f := sim.Faults{Loss: c.Loss, Dup: c.Dup, Jitter: c.Jitter}
	for i := 0; i < c.Silent && c.Quitters+i < len(sc.Clients); i++ {
		// A process that dies mid-conversation and never comes back.
		cl := sc.Clients[c.Quitters+i]
		f.Crashes = append(f.Crashes, sim.Crash{Node: cl.Name, At: c.Duration/3 + time.Duration(rng.IntN(int(c.Duration/time.Millisecond/3)))*time.Millisecond})
	}
	if c.ServerCrash > 0 {
		f.Crashes = append(f.Crashes, sim.Crash{Node: "server", At: c.ServerCrash, Restart: c.ServerCrash + 500*time.Millisecond})
	}
	res := ChatResult{Seed: opt.Seed, Checks: map[string]string{}, Faults: f, Stats: map[string]chatStats{}}
	w := NewChatWorld("server", sc.Server)
	tl := newChatTimeline()
	cfg := sim.Config{Seed: opt.Seed, Link: sim.Symmetric(sim.Dir{Rate: c.Rate, Delay: c.Delay}), Faults: f, Protocol: "chat",
		OnNet: func(ev sim.NetEvent) { res.Net.Count(ev); tl.net(ev) }, OnEvent: tl.event}
	cfg.OnExit = func(n *sim.Node, now spec.Time, err string) {
		st := res.Stats[n.Name]
		if cl, ok := n.Machine().(*chat.Client); ok {
			st.c, st.nick = cl.Stats(), cl.Nick()
		}
		st.end = fmt.Sprintf("left at %.1fs", now.Sub(spec.SimEpoch).Seconds())
		res.Stats[n.Name] = st
	}
	w.Observe(&cfg)
	s := opt.NewSim(cfg)
	if err := sc.Build(s, w); err != nil {
		return Result{}, err
	}
	for _, n := range s.Nodes() {
		tl.names[n.Addr] = n.Name
	}
	s.Run(end)
	w.Finish(s.Now())
	tl.finish(s.Now())
	if err := s.Close(); err != nil {
		return Result{}, err
	}
	res.Events, res.Virtual, res.Net.InFlight = s.Events(), s.Elapsed(), s.InFlight()
	for _, n := range s.Nodes() {
		if cl, ok := n.Machine().(*chat.Client); ok {
			res.Stats[n.Name] = chatStats{c: cl.Stats(), nick: cl.Nick(), end: "still in"}
		}
		if srv, ok := n.Machine().(*chat.Server); ok {
			res.Server, res.Members = srv.Stats(), srv.Members()
		}
	}
	for _, cl := range sc.Clients {
		r := ChatClientResult{Name: cl.Name, Kind: "netspec", Nick: w.Nick(cl.Name), Shown: len(w.Shown(cl.Name))}
		if cl.Plain {
			r.Kind = "nc"
		}
		diedAt, died := tl.died[cl.Name]
		for _, l := range cl.Lines {
			if died && spec.SimEpoch.Add(l.At) >= diedAt {
				break // a dead process types nothing
			}
			if _, ok := saidOf(l.Text); ok {
				r.Said++
			}
		}
		for _, a := range w.addrsOf(cl.Name) {
			r.Broadcast += len(w.messages[a])
		}
		st := res.Stats[cl.Name]
		r.Dropped, r.Reordered, r.Lost = st.c.Duplicate+st.c.Stale, st.c.Reordered, st.c.Lost
		r.End = tl.end(cl, c.Interval)
		res.Clients = append(res.Clients, r)
	}
	res.ServerCrashes = tl.crashes
	checks := []struct {
		name string
		f    func() string
	}{
		{"membership = heard within the interval", w.CheckMembership},
		{"nothing sent after quit or expiry", w.CheckNoStraySends},
		{"shown at most once, in server order", w.CheckShown},
		{"broadcast only what was said, once per send", w.CheckBroadcasts},
	}
	failed := ""
	for _, ch := range checks {
		v := ch.f()
		res.Checks[ch.name] = "ok"
		if v != "" {
			res.Checks[ch.name] = v
			if failed == "" {
				failed = v
			}
		}
	}
	if vs := s.Violations(); len(vs) > 0 && failed == "" {
		failed = fmt.Sprintf("contract violations: %v", vs)
	}

	t := Table{
		Title: fmt.Sprintf("chat over a network with %.1f%% loss, %.1f%% duplication, %v jitter; interval %v (seed %d)",
			c.Loss*100, c.Dup*100, c.Jitter, c.Interval, opt.Seed),
		Header: []string{"client", "kind", "nick", "said", "broadcast", "lines shown", "dups dropped", "reordered", "lost", "end"},
	}
	for _, r := range res.Clients {
		dropped, reordered, lost := fmt.Sprint(r.Dropped), fmt.Sprint(r.Reordered), fmt.Sprint(r.Lost)
		if _, died := tl.died[r.Name]; died || r.Kind == "nc" {
			// A dead process's counters died with it; nc keeps none.
			dropped, reordered, lost = "-", "-", "-"
		}
		t.Rows = append(t.Rows, []string{r.Name, r.Kind, r.Nick, fmt.Sprint(r.Said), fmt.Sprint(r.Broadcast), fmt.Sprint(r.Shown),
			dropped, reordered, lost, r.End})
	}
	sv := res.Server
	t.Notes = append(t.Notes, tl.notes(c, res.Virtual)...)
	t.Notes = append(t.Notes,
		fmt.Sprintf("server (since its last start): %d joins, %d quits, %d expired, %d broadcasts, %d datagrams in, %d out; dropped %d duplicate and %d late numbered datagrams",
			sv.Joins, sv.Quits, sv.Expired, sv.Messages, sv.Datagrams, sv.Sent, sv.Duplicate, sv.Stale),
		res.Net.Line()+fmt.Sprintf("; simulated %v in %d events", res.Virtual.Round(time.Millisecond), res.Events))
	ct := Table{Title: "properties checked against the network's ground truth", Header: []string{"property", "result"}}
	for _, ch := range checks {
		ct.Rows = append(ct.Rows, []string{ch.name, res.Checks[ch.name]})
	}
	return Result{Tables: []Table{t, ct}, Value: res, Failed: failed}, nil
}

// Targets implements Checked.
func (c *Chat) Targets() (partitionable, crashable []string) {
	c.Defaults()
	names := []string{"server"}
	for i := 0; i < c.Clients; i++ {
		names = append(names, fmt.Sprintf("client%d", i+1))
	}
	for i := 0; i < c.Plain; i++ {
		names = append(names, fmt.Sprintf("nc%d", i+1))
	}
	return names, names
}

// Check implements Checked: the scenario's workload until the faults
// heal, then every client still running says one more line; it must be
// safe throughout and, after healing, every running client must be a
// member again and see every other's last line.
func (c *Chat) Check(seed uint64, f sim.Faults, opt Options) Verdict {
	c.Defaults()
	interval := time.Second
	cc := *c
	cc.Interval, cc.Quitters = interval, min(1, c.Quitters)
	heal := max(f.Until, 2*time.Second)
	final := heal + interval
	bound := final + 10*time.Second
	rng := spec.NewRand(seed)
	sc := cc.script(rng, heal, bound)
	// On 0.0.0.0 of a two-address host, clients at the second (see
	// ChatScript), so an answer that names no source is dropped.
	sc.Server.Addr = netip.AddrPortFrom(netip.IPv4Unspecified(), ChatServerAddr.Port())
	for i := range sc.Clients {
		cl := &sc.Clients[i]
		cl.Lines = append(cl.Lines, ChatLine{At: final, Text: "last words of " + cl.Name})
		sortLines(cl.Lines)
	}
	w := NewChatWorld("server", sc.Server)
	var v Verdict
	// live[x] is whether x runs at the final line; seen counts, per pair
	// of live clients, whether the receiver showed the sender's line.
	live := map[string]bool{}
	seen := map[[2]string]bool{}
	cfg := sim.Config{Seed: seed, Link: sim.Symmetric(sim.Dir{Rate: c.Rate, Delay: c.Delay}), Faults: f, Protocol: "chat"}
	cfg.OnEvent = func(n *sim.Node, _ spec.Time, ev spec.Event) {
		if ev.Name != "line" || !live[n.Name] {
			return
		}
		if i := strings.Index(ev.Text, "] last words of "); i >= 0 {
			seen[[2]string{n.Name, ev.Text[i+len("] last words of "):]}] = true
		}
	}
	w.Observe(&cfg)
	s := opt.NewSim(cfg)
	if err := sc.BuildWith(s, w, func(cfg chat.ServerConfig) spec.Machine { return opt.machine("server", chat.NewServer(cfg)) }); err != nil {
		v.Safety = err.Error()
		return v
	}
	s.At(final, func() {
		for _, n := range s.Nodes()[1:] {
			live[n.Name] = n.Up()
		}
	})
	done := func() bool {
		if s.Elapsed() <= final {
			return false
		}
		n := 0
		for _, ok := range live {
			if ok {
				n++
			}
		}
		return len(seen) == n*n
	}
	ok := s.RunUntil(done, bound)
	w.Finish(s.Now())
	v.Virtual, v.Events = s.Elapsed(), s.Events()
	v.Safety = w.Safety()
	if vs := s.Violations(); len(vs) > 0 && v.Safety == "" {
		v.Safety = fmt.Sprintf("contract violations: %v", vs)
	}
	if !ok {
		var missing []string
		for _, r := range sortedNames(live) {
			for _, snd := range sortedNames(live) {
				if live[r] && live[snd] && !seen[[2]string{r, snd}] {
					missing = append(missing, r+" never showed "+snd+"'s")
				}
			}
		}
		v.Live = fmt.Sprintf("%d s after healing: %s", int((bound - heal).Seconds()), strings.Join(missing, "; "))
	}
	_ = s.Close()
	return v
}

func sortedNames(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
