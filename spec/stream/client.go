package stream

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
)

// ClientConfig configures a listener.
type ClientConfig struct {
	// Server is the stream server's address.
	Server netip.AddrPort `json:"server"`
	// Port is the first local port to try, moving to the next while one
	// is taken, as the seed's client does, up to PortTries ports
	// (default 100). 0 lets the system pick a free port.
	Port      uint16 `json:"port,omitempty"`
	PortTries int    `json:"portTries,omitempty"`
	// Count ends the session after this many distinct packets; Duration
	// after this long (0: neither; the session ends on stop or when the
	// server says goodbye).
	Count    uint64        `json:"count,omitempty"`
	Duration time.Duration `json:"duration,omitempty"`
	// Seed picks the SSRC, the default CNAME and the report times.
	Seed  uint64 `json:"seed,omitempty"`
	CNAME string `json:"cname,omitempty"`
	// JoinTimeout is the first wait for an answer to a join; it doubles
	// on every retry up to 8 times itself (default 500ms). JoinTries
	// bounds the joins sent before giving up (default 8).
	JoinTimeout time.Duration `json:"joinTimeout,omitempty"`
	JoinTries   int           `json:"joinTries,omitempty"`
	// MinSequential is RFC 3550 A.1's probation (default 0: the SSRC
	// was already validated by the RTCP handshake).
	MinSequential int `json:"minSequential,omitempty"`
}

func (c *ClientConfig) fill() {
	if c.PortTries <= 0 {
		c.PortTries = 100
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = 500 * time.Millisecond
	}
	if c.JoinTries <= 0 {
		c.JoinTries = 8
	}
}

// Client timers.
const (
	sockClient spec.Sock = 1

	timerJoin    spec.Timer = 1
	timerReport  spec.Timer = 2
	timerSilence spec.Timer = 3
	timerEnd     spec.Timer = 4
)

// maxSources bounds the server SSRCs a client keeps statistics for (a
// new one appears each time the server restarts).
const maxSources = 8

type clientState uint8

const (
	stBinding clientState = iota
	stJoining
	stStreaming
	stDone
)

type source struct {
	ssrc uint32
	rx   *Receiver
	// The seed's counts for this source alone, which the REPORT gives
	// the server: a restarted server (a new SSRC) hears what it sent
	// arrive, not what its predecessor did.
	tally Tally
}

// Client is the listener machine: it joins the stream, delivers every
// packet once, reports its reception statistics and says goodbye.
type Client struct {
	cfg   ClientConfig
	rng   spec.Rand
	ssrc  uint32
	cname string
	state clientState
	local netip.AddrPort
	port  uint16
	tries int // ports tried

	cookie    []byte // last challenge's, echoed until welcomed
	lastJoin  spec.Time
	joinTries int
	joinWait  time.Duration
	welcome   *Welcome
	joins     int
	rejoins   int

	sources []source
	lastRx  spec.Time
	packets uint64
	sum     uint64
	dups    uint64
	reorder uint64
	reports uint64
	ended   string

	c clientCounters
}

type clientCounters struct {
	datagrams, strangers, malformed, unknownSSRC, probation, jumps uint64
	data, duplicates, challenges, welcomes, joinsSent, reports     uint64
	rejoins, ignored                                               uint64
}

// NewClient returns a listener for cfg.
func NewClient(cfg ClientConfig) *Client {
	cfg.fill()
	c := &Client{cfg: cfg, rng: spec.NewRand(cfg.Seed ^ 0xc1e47)}
	c.ssrc = c.rng.Uint32()
	c.cname = cfg.CNAME
	if c.cname == "" {
		c.cname = fmt.Sprintf("listener-%016x", c.rng.Uint64())
	}
	if len(c.cname) > 255 {
		c.cname = c.cname[:255]
	}
	return c
}

// SSRC is the client's own SSRC.
func (c *Client) SSRC() uint32 { return c.ssrc }

// Counters implements spec.Inspector.
func (c *Client) Counters() []spec.Counter {
	k := &c.c
	return []spec.Counter{
		{Name: "datagrams", Value: k.datagrams},
		{Name: "from_strangers", Value: k.strangers},
		{Name: "malformed", Value: k.malformed},
		{Name: "unknown_ssrc", Value: k.unknownSSRC},
		{Name: "probation", Value: k.probation},
		{Name: "sequence_jumps", Value: k.jumps},
		{Name: "data", Value: k.data},
		{Name: "duplicates", Value: k.duplicates},
		{Name: "challenges", Value: k.challenges},
		{Name: "welcomes", Value: k.welcomes},
		{Name: "joins_sent", Value: k.joinsSent},
		{Name: "reports_sent", Value: k.reports},
		{Name: "rejoins", Value: k.rejoins},
		{Name: "control_ignored", Value: k.ignored},
	}
}

// Packet is the value of a client's "packet" event: one packet delivered
// to the application, once.
type Packet struct {
	Index uint64 `json:"index"`
	Data  uint64 `json:"data"`
	Seq   uint16 `json:"seq"`
	SSRC  uint32 `json:"ssrc"`
}

// Stats is the value of a client's "stats" event, emitted when the
// session ends: the seed's counts and each server source's RFC 3550
// statistics.
type Stats struct {
	Server string `json:"server"`
	Local  string `json:"local"`
	SSRC   uint32 `json:"ssrc"`
	// Packets is how many distinct packets were delivered; Sum the sum of
	// their data (mod 2^64); Duplicates and Reordered over all sources.
	Packets    uint64 `json:"packets"`
	Sum        uint64 `json:"sum"`
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
	// Joins counts joins begun (answered or not), Rejoins those after
	// the stream went silent.
	Joins   int    `json:"joins"`
	Rejoins int    `json:"rejoins"`
	Reports uint64 `json:"reports"`
	// Sources has one entry per server SSRC heard, oldest first.
	Sources []SourceStats `json:"sources"`
	// Ended says why the session ended: count, duration, stop, server bye,
	// refused or no answer.
	Ended string `json:"ended"`
}

// Stats returns the statistics so far.
func (c *Client) Stats() Stats {
	s := Stats{
		Server: c.cfg.Server.String(), SSRC: c.ssrc,
		Packets: c.packets, Sum: c.sum, Duplicates: c.dups, Reordered: c.reorder,
		Joins: c.joins, Rejoins: c.rejoins, Reports: c.reports, Ended: c.ended,
		Sources: make([]SourceStats, 0, len(c.sources)),
	}
	if c.local.IsValid() {
		s.Local = c.local.String()
	}
	for _, src := range c.sources {
		st := src.rx.Stats()
		st.SSRC = src.ssrc
		s.Sources = append(s.Sources, st)
	}
	return s
}

// Step implements spec.Machine.
func (c *Client) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if c.state == stDone {
		return out
	}
	switch in.Kind {
	case spec.InStart:
		if !c.cfg.Server.IsValid() {
			return c.finish(now, "no server", "stream: no server address", out)
		}
		c.port = c.cfg.Port
		out = append(out, c.bind())
		if c.cfg.Duration > 0 {
			out = append(out, spec.SetTimer(timerEnd, now.Add(c.cfg.Duration)))
		}
	case spec.InBound:
		if in.Err != "" {
			c.tries++
			if c.cfg.Port != 0 && c.tries < c.cfg.PortTries && c.port < 65535 {
				out = append(out, spec.Info("port taken, trying the next", slog.Uint64("port", uint64(c.port)), slog.String("err", in.Err)))
				c.port++
				return append(out, c.bind())
			}
			return c.finish(now, "no port", "stream: bind: "+in.Err, out)
		}
		c.local = in.Addr
		out = append(out,
			spec.Info("UDP client listening", slog.Uint64("port", uint64(in.Addr.Port())), slog.String("server", c.cfg.Server.String())),
			spec.Emit(spec.Event{Name: "listening", Text: in.Addr.String()}))
		out = c.join(now, false, out)
	case spec.InDatagram:
		out = c.datagram(now, in, out)
	case spec.InTimer:
		out = c.timer(now, in.Timer, out)
	case spec.InStop:
		return c.leave(now, "stop", out)
	case spec.InCommand:
		switch in.Cmd.Name {
		case "stats":
			out = append(out, spec.Emit(spec.Event{Name: "stats", Value: c.Stats()}))
		case "leave":
			return c.leave(now, "stop", out)
		default:
			out = append(out, spec.Debug("stream: unknown command", slog.String("name", in.Cmd.Name)))
		}
	}
	return out
}

func (c *Client) bind() spec.Output {
	ip := netip.IPv4Unspecified()
	if c.cfg.Server.Addr().Is6() && !c.cfg.Server.Addr().Is4In6() {
		ip = netip.IPv6Unspecified()
	}
	return spec.Bind(sockClient, spec.UDP, netip.AddrPortFrom(ip, c.port))
}

// join starts (or restarts) the handshake with a HELLO.
func (c *Client) join(now spec.Time, rejoin bool, out []spec.Output) []spec.Output {
	c.state = stJoining
	c.cookie = nil
	c.joinTries = 0
	c.joinWait = c.cfg.JoinTimeout
	if rejoin {
		c.rejoins++
		c.c.rejoins++
		out = append(out, spec.Info("no data from the server, joining again", slog.String("server", c.cfg.Server.String())),
			spec.Emit(spec.Event{Name: "rejoining"}))
	}
	c.joins++
	return c.sendJoin(now, out)
}

func (c *Client) sendJoin(now spec.Time, out []spec.Output) []spec.Output {
	c.lastJoin = now
	c.joinTries++
	c.c.joinsSent++
	out = append(out, spec.Send(sockClient, c.cfg.Server, EncodeJoin(c.ssrc, c.cname, c.cookie)),
		spec.SetTimer(timerJoin, now.Add(c.joinWait)))
	c.joinWait = min(2*c.joinWait, 8*c.cfg.JoinTimeout)
	return out
}

func (c *Client) current() *source {
	if len(c.sources) == 0 {
		return nil
	}
	return &c.sources[len(c.sources)-1]
}

// learn makes ssrc the server source data is accepted from. A source
// that never sent a packet is forgotten (it may have been a forged
// challenge's).
func (c *Client) learn(ssrc uint32) {
	cur := c.current()
	if cur != nil && cur.ssrc == ssrc {
		return
	}
	if cur != nil && !cur.rx.Started() {
		c.sources = c.sources[:len(c.sources)-1]
	}
	if len(c.sources) == maxSources {
		c.sources = append(c.sources[:0], c.sources[1:]...)
	}
	c.sources = append(c.sources, source{ssrc: ssrc, rx: NewReceiver(ClockRate, c.cfg.MinSequential)})
}

func (c *Client) datagram(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	c.c.datagrams++
	if in.Addr != c.cfg.Server {
		c.c.strangers++
		return append(out, spec.Debug("stream: datagram from a stranger", slog.String("from", in.Addr.String())))
	}
	if IsControl(in.Data) {
		return c.control(now, in.Data, out)
	}
	d, err := DecodeData(in.Data)
	if err != nil {
		c.c.malformed++
		return append(out, spec.Debug("stream: malformed data packet", slog.String("err", err.Error())))
	}
	cur := c.current()
	if cur == nil || d.SSRC != cur.ssrc {
		c.c.unknownSSRC++
		return append(out, spec.Debug("stream: data from an SSRC the server has not announced", slog.String("ssrc", fmt.Sprintf("%08x", d.SSRC))))
	}
	c.c.data++
	c.lastRx = now
	switch cur.rx.Update(now, d.Seq, d.Timestamp) {
	case Duplicate:
		c.c.duplicates++
		c.dups++
		cur.tally.Duplicates++
		return out
	case Probation:
		c.c.probation++
		return out
	case Jump:
		c.c.jumps++
		return append(out, spec.Debug("stream: sequence number jump", slog.Uint64("seq", uint64(d.Seq))))
	case Reordered:
		c.reorder++
		cur.tally.Reordered++
	}
	c.packets++
	c.sum += d.Value
	cur.tally.Packets++
	cur.tally.Sum += d.Value
	out = append(out, spec.Emit(spec.Event{Name: "packet", Value: Packet{Index: d.Index, Data: d.Value, Seq: d.Seq, SSRC: d.SSRC}}))
	if c.state == stJoining && c.cookie != nil && now.Sub(c.lastJoin) >= c.cfg.JoinTimeout {
		// Data flows, so we are subscribed, but the WELCOME (and with it
		// the token our reports need) was lost: echo again now rather
		// than after a backed-off timeout, which could outlast the
		// server's patience.
		c.joinTries = 0
		c.joinWait = c.cfg.JoinTimeout
		out = c.sendJoin(now, out)
	}
	if c.cfg.Count > 0 && c.packets >= c.cfg.Count {
		return c.leave(now, "count", out)
	}
	return out
}

func (c *Client) control(now spec.Time, b []byte, out []spec.Output) []spec.Output {
	ctl, err := DecodeControl(b)
	if err != nil {
		c.c.malformed++
		return append(out, spec.Debug("stream: malformed control packet", slog.String("err", err.Error())))
	}
	if ctl.Bye {
		if cur := c.current(); cur != nil && cur.ssrc == ctl.SSRC {
			out = append(out, spec.Info("the server said goodbye", slog.String("reason", ctl.ByeReason)),
				spec.Emit(spec.Event{Name: "bye", Text: ctl.ByeReason}))
			return c.finish(now, "server bye", "", out)
		}
		c.c.ignored++
		return append(out, spec.Debug("stream: BYE from an SSRC that is not the stream's"))
	}
	if ctl.App == nil || ctl.App.SSRC != ctl.SSRC {
		c.c.ignored++
		return append(out, spec.Debug("stream: control packet without an APP"))
	}
	switch ctl.App.Subtype {
	case AppChallenge:
		if c.state != stJoining || len(ctl.App.Data) != CookieSize {
			// Only a client that is joining echoes: a challenge aimed at
			// us by someone else's forged HELLO goes no further.
			c.c.ignored++
			return append(out, spec.Debug("stream: unsolicited challenge"))
		}
		c.c.challenges++
		c.learn(ctl.SSRC)
		c.cookie = append(c.cookie[:0], ctl.App.Data...)
		return c.sendJoin(now, out)
	case AppWelcome:
		w, err := DecodeWelcome(ctl.App.Data)
		if err != nil || c.state != stJoining || c.cookie == nil {
			c.c.ignored++
			return append(out, spec.Debug("stream: unexpected welcome"))
		}
		c.c.welcomes++
		c.learn(ctl.SSRC)
		c.welcome = &w
		c.state = stStreaming
		c.lastRx = now
		out = append(out, spec.CancelTimer(timerJoin),
			spec.Info("joined the stream", slog.String("server", c.cfg.Server.String()), slog.String("ssrc", fmt.Sprintf("%08x", ctl.SSRC)),
				slog.Duration("delay", time.Duration(w.Interval)), slog.Duration("reportInterval", time.Duration(w.Report))),
			spec.Emit(spec.Event{Name: "joined", Text: fmt.Sprintf("%08x", ctl.SSRC)}),
			spec.SetTimer(timerReport, now.Add(c.reportDelay())))
		return c.armSilence(out)
	case AppRefuse:
		if c.state != stJoining || c.cookie == nil {
			c.c.ignored++
			return out
		}
		reason := "refused"
		if be32(ctl.App.Data) == RefuseFull {
			reason = "subscriber limit reached"
		}
		out = append(out, spec.Warn("the server refused the join", slog.String("reason", reason)))
		return c.finish(now, "refused", "stream: the server refused the join: "+reason, out)
	}
	c.c.ignored++
	return append(out, spec.Debug("stream: control packet a client does not take", slog.String("app", AppString(ctl.App.Subtype))))
}

// MinReportInterval is the shortest report interval: a server asks for
// no less, and a listener takes a WELCOME's shorter interval as this, so
// a hostile or forged WELCOME cannot make it send reports without pause.
const MinReportInterval = 10 * time.Millisecond

// reportDelay is the report interval randomised over [0.5, 1.5) of its
// nominal value, as RFC 3550 §6.3.1 does, so receivers do not report in
// lockstep.
func (c *Client) reportDelay() time.Duration {
	iv := max(time.Duration(c.welcome.Report), MinReportInterval)
	return iv/2 + time.Duration(c.rng.Int64N(int64(iv)))
}

// silence is how long without data means the server has dropped us.
func (c *Client) silence() time.Duration {
	w := c.welcome
	// A server asks for at most MaxExpireAfter intervals of at most 24h:
	// more would overflow.
	expire := time.Duration(min(w.Expire, MaxExpireAfter))
	return max(4*time.Duration(w.Interval), expire*max(time.Duration(w.Report), MinReportInterval))
}

// armSilence sets the silence timer. Data does not move it: when it
// fires early it is set again from the last packet, so there is no timer
// output per packet.
func (c *Client) armSilence(out []spec.Output) []spec.Output {
	return append(out, spec.SetTimer(timerSilence, c.lastRx.Add(c.silence())))
}

func (c *Client) timer(now spec.Time, t spec.Timer, out []spec.Output) []spec.Output {
	switch t {
	case timerJoin:
		if c.state != stJoining {
			return out
		}
		if c.joinTries >= c.cfg.JoinTries {
			return c.finish(now, "no answer", fmt.Sprintf("stream: no answer from %v to %d join requests", c.cfg.Server, c.joinTries), out)
		}
		return c.sendJoin(now, out)
	case timerReport:
		if c.state != stStreaming && (c.state != stJoining || c.welcome == nil) {
			return out
		}
		out = append(out, spec.Send(sockClient, c.cfg.Server, c.reportPacket(false, "")))
		return append(out, spec.SetTimer(timerReport, now.Add(c.reportDelay())))
	case timerSilence:
		if c.state != stStreaming {
			return out
		}
		if at := c.lastRx.Add(c.silence()); now.Before(at) {
			return append(out, spec.SetTimer(timerSilence, at))
		}
		// Reports go on while it joins again: silence may be only loss
		// on the way here (40% of it left a client without data for
		// 100 ms), and a server that still has the subscriber must
		// hear from it, or it expires a listener that never left. A
		// server that dropped it ignores them.
		return c.join(now, true, out)
	case timerEnd:
		return c.leave(now, "duration", out)
	}
	return out
}

// reportPacket builds RR + SDES + REPORT (+ BYE) and closes the report
// interval.
func (c *Client) reportPacket(bye bool, reason string) []byte {
	c.reports++
	c.c.reports++
	t := Tally{Token: c.welcome.Token}
	if cur := c.current(); cur != nil {
		t.Packets, t.Duplicates, t.Reordered, t.Sum = cur.tally.Packets, cur.tally.Duplicates, cur.tally.Reordered, cur.tally.Sum
		return EncodeReport(c.ssrc, c.cname, cur.rx.Report(cur.ssrc), t, bye, reason)
	}
	return EncodeReport(c.ssrc, c.cname, nil, t, bye, reason)
}

// leave says goodbye (a last report and a BYE) if subscribed, and ends.
func (c *Client) leave(now spec.Time, why string, out []spec.Output) []spec.Output {
	if c.welcome != nil && c.state != stBinding {
		out = append(out, spec.Send(sockClient, c.cfg.Server, c.reportPacket(true, "listener leaving: "+why)))
	}
	return c.finish(now, why, "", out)
}

// finish emits the final statistics and exits.
func (c *Client) finish(now spec.Time, why, err string, out []spec.Output) []spec.Output {
	c.state = stDone
	c.ended = why
	st := c.Stats()
	attrs := []slog.Attr{slog.String("ended", why), slog.Uint64("received", st.Packets), slog.Uint64("sum", st.Sum),
		slog.Uint64("duplicates", st.Duplicates), slog.Uint64("reordered", st.Reordered)}
	// Expected and lost over every source heard (a restarted server is a
	// new one), as received counts them.
	var expected, lost int64
	for _, src := range st.Sources {
		expected, lost = expected+src.Expected, lost+src.Lost
	}
	attrs = append(attrs, slog.Int64("expected", expected), slog.Int64("lost", lost))
	if len(st.Sources) > 1 {
		attrs = append(attrs, slog.Int("sources", len(st.Sources)))
	}
	if cur := c.current(); cur != nil {
		attrs = append(attrs, slog.Uint64("jitterUs", cur.rx.Stats().JitterUs))
	}
	return append(out, spec.Info("stream session ended", attrs...),
		spec.Emit(spec.Event{Name: "stats", Value: st}), spec.Exit(err))
}
