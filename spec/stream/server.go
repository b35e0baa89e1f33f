package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
)

// ServerConfig configures a stream server. Zero fields take the defaults
// listed.
type ServerConfig struct {
	// Addr is the UDP address to serve on (RTP and RTCP share it).
	Addr netip.AddrPort `json:"addr"`
	// Delay is the time between data packets: the seed's delay (default
	// 1s).
	Delay time.Duration `json:"delay,omitempty"`
	// ReportInterval is how often subscribers must send a receiver
	// report (default 1s, at least MinReportInterval); ExpireAfter is
	// how many intervals of silence drop a subscriber (default 5, as RFC
	// 3550 §6.3.5 times out participants; 2 to MaxExpireAfter).
	ReportInterval time.Duration `json:"reportInterval,omitempty"`
	ExpireAfter    int           `json:"expireAfter,omitempty"`
	// MaxSubscribers bounds the subscribers (default 1024); JoinRate
	// bounds, per second and with a burst of as many (default 200), the
	// challenges sent (to HELLOs, and ECHOs whose cookie fails) and,
	// apart, the joins whose cookie checks out: a flood of HELLOs from
	// forged addresses cannot keep a receiver that proved its address
	// out.
	MaxSubscribers int `json:"maxSubscribers,omitempty"`
	JoinRate       int `json:"joinRate,omitempty"`
	// CookieLifetime is how long a challenge cookie stays good (default
	// 10s).
	CookieLifetime time.Duration `json:"cookieLifetime,omitempty"`
	// MaxBurst bounds the packets (indices) sent to each subscriber at
	// one timer firing when the server has fallen behind its schedule
	// (default 16); past it the schedule slips rather than bursting, which
	// also bounds one step's outputs to MaxBurst per subscriber.
	MaxBurst int `json:"maxBurst,omitempty"`
	// Secret keys the cookie and token HMACs. Empty: derived from Seed
	// (fine in simulation, predictable on a real network; netspec stream
	// serve draws one from crypto/rand).
	Secret []byte `json:"secret,omitempty"`
	// Seed, with the start time, picks the SSRC and the initial sequence
	// number and timestamp (RFC 3550 §5.1 wants them random).
	Seed uint64 `json:"seed,omitempty"`
	// InitialSeq, if set, fixes the first sequence number (tests use it
	// to cross the 16-bit wrap early).
	InitialSeq *uint16 `json:"initialSeq,omitempty"`
	// LogPackets logs every packet sent, as the seed's server log does.
	LogPackets bool `json:"logPackets,omitempty"`
	// Count, if set, ends the stream after index Count-1: the server
	// says goodbye to every subscriber and exits.
	Count uint64 `json:"count,omitempty"`
}

func (c *ServerConfig) fill() {
	if c.Delay <= 0 {
		c.Delay = time.Second
	}
	if c.ReportInterval <= 0 {
		c.ReportInterval = time.Second
	}
	c.ReportInterval = max(c.ReportInterval, MinReportInterval)
	if c.ExpireAfter <= 0 {
		c.ExpireAfter = 5
	}
	c.ExpireAfter = min(max(c.ExpireAfter, 2), MaxExpireAfter)
	if c.MaxSubscribers <= 0 {
		c.MaxSubscribers = 1024
	}
	if c.JoinRate <= 0 {
		c.JoinRate = 200
	}
	if c.CookieLifetime <= 0 {
		c.CookieLifetime = 10 * time.Second
	}
	if c.MaxBurst <= 0 {
		c.MaxBurst = 16
	}
}

// MaxExpireAfter bounds ServerConfig.ExpireAfter, so that it fits a
// WELCOME's 32-bit field and the expiry, even at the longest report
// interval, fits a time.Duration.
const MaxExpireAfter = 1000

// Expiry is how long a subscriber may stay silent.
func (c ServerConfig) Expiry() time.Duration {
	c.fill()
	return time.Duration(c.ExpireAfter) * c.ReportInterval
}

// Sockets and timers.
const (
	sockServer spec.Sock = 1

	timerTick   spec.Timer = 1
	timerExpire spec.Timer = 2
)

// subscriber is one validated receiver. About 250 bytes plus its CNAME,
// and an entry in byAddr.
type subscriber struct {
	addr      netip.AddrPort
	local     netip.Addr // the server's address it last sent to
	ssrc      uint32
	cname     string
	token     [TokenSize]byte
	since     spec.Time
	lastHeard spec.Time
	firstIdx  uint64
	sent      uint64
	reports   uint64
	hasRR     bool
	extMax    uint32
	lost      int32
	fraction  uint8
	jitter    uint32
	tally     Tally
}

// Server is the stream server machine: it sends the numbered stream to
// every validated subscriber.
type Server struct {
	cfg   ServerConfig
	jar   *cookieJar
	addr  netip.AddrPort
	ssrc  uint32
	cname string
	seq0  uint16
	ts0   uint32

	running bool
	origin  spec.Time // when index 0 was due
	start   spec.Time // when index 0 would be due on the current schedule (origin + slips)
	next    uint64    // next index to send

	subs   []*subscriber
	byAddr map[netip.AddrPort]int

	challengeBucket, joinBucket bucket
	expireAt                    spec.Time

	warnFull, warnRate, warnJoinRate spec.Throttle // warnings at most once a second
	c                                serverCounters
	// local is the Local of the datagram being handled: a subscriber is
	// sent to from the address its join and reports were sent to.
	local netip.Addr
}

type serverCounters struct {
	datagrams, malformed, notControl, portZero   uint64
	hellos, echoes, challenges, tooSmall         uint64
	cookieBad, cookieExpired, rateLimited        uint64
	joinsRateLimited                             uint64
	subscribed, resubscribed, refused            uint64
	reports, reportsStranger, reportsBadToken    uint64
	byes, expired, ticks, sent, slips, unhandled uint64
}

// NewServer returns a server for cfg.
func NewServer(cfg ServerConfig) *Server {
	cfg.fill()
	key := cfg.Secret
	if len(key) == 0 {
		key = make([]byte, 32)
		spec.NewRand(cfg.Seed ^ 0x5ec2e7).Bytes(key)
	}
	return &Server{
		cfg:    cfg,
		jar:    newCookieJar(key, cfg.CookieLifetime),
		byAddr: map[netip.AddrPort]int{},
	}
}

// SSRC is the server's RTP SSRC (zero before it starts).
func (s *Server) SSRC() uint32 { return s.ssrc }

// Next is the index of the next data packet the server will send.
func (s *Server) Next() uint64 { return s.next }

// Subscribers is how many subscribers the server has.
func (s *Server) Subscribers() int { return len(s.subs) }

// Counters implements spec.Inspector.
func (s *Server) Counters() []spec.Counter {
	c := &s.c
	return []spec.Counter{
		{Name: "datagrams", Value: c.datagrams},
		{Name: "malformed", Value: c.malformed},
		{Name: "not_rtcp", Value: c.notControl},
		{Name: "source_port_zero", Value: c.portZero},
		{Name: "hellos", Value: c.hellos},
		{Name: "echoes", Value: c.echoes},
		{Name: "challenges", Value: c.challenges},
		{Name: "join_too_small", Value: c.tooSmall},
		{Name: "cookie_bad", Value: c.cookieBad},
		{Name: "cookie_expired", Value: c.cookieExpired},
		{Name: "join_rate_limited", Value: c.rateLimited},
		{Name: "validated_join_rate_limited", Value: c.joinsRateLimited},
		{Name: "subscribed", Value: c.subscribed},
		{Name: "resubscribed", Value: c.resubscribed},
		{Name: "refused_full", Value: c.refused},
		{Name: "reports", Value: c.reports},
		{Name: "reports_from_strangers", Value: c.reportsStranger},
		{Name: "reports_bad_token", Value: c.reportsBadToken},
		{Name: "byes", Value: c.byes},
		{Name: "expired", Value: c.expired},
		{Name: "ticks", Value: c.ticks},
		{Name: "packets_sent", Value: c.sent},
		{Name: "schedule_slips", Value: c.slips},
		{Name: "control_ignored", Value: c.unhandled},
	}
}

// Step implements spec.Machine.
func (s *Server) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		if !s.cfg.Addr.IsValid() {
			return append(out, spec.Exit("stream: no address to serve"))
		}
		out = append(out, spec.Bind(sockServer, spec.UDP, s.cfg.Addr))
	case spec.InBound:
		if in.Err != "" {
			return append(out, spec.Exit("stream: bind "+s.cfg.Addr.String()+": "+in.Err))
		}
		out = s.begin(now, in.Addr, out)
	case spec.InDatagram:
		out = s.expireDue(now, out)
		s.local = in.Local
		out = s.datagram(now, in, out)
		s.local = netip.Addr{}
	case spec.InTimer:
		switch in.Timer {
		case timerTick:
			out = s.expireDue(now, out)
			out = s.tick(now, out)
		case timerExpire:
			out = s.expire(now, out)
		}
	case spec.InCommand:
		switch in.Cmd.Name {
		case "report":
			out = s.expireDue(now, out)
			out = append(out, spec.Emit(spec.Event{Name: "subscribers", Value: s.Report(now)}))
		default:
			out = append(out, spec.Debug("stream: unknown command", slog.String("name", in.Cmd.Name)))
		}
	case spec.InStop:
		out = s.expireDue(now, out)
		out = s.finish(now, "server stopped", out)
	}
	return out
}

// finish says goodbye to every subscriber and exits.
func (s *Server) finish(now spec.Time, why string, out []spec.Output) []spec.Output {
	if s.running {
		bye := EncodeBye(s.ssrc, s.cname, why)
		for _, sub := range s.subs {
			out = append(out, spec.SendFrom(sockServer, sub.local, sub.addr, bye))
		}
	}
	s.running = false
	return append(out, spec.Info("stream server stopped", slog.String("why", why), slog.Int("subscribers", len(s.subs)), slog.Uint64("packets", s.next)),
		spec.Emit(spec.Event{Name: "stopped", Value: s.Report(now)}), spec.Exit(""))
}

// begin starts the stream once the socket is bound. The SSRC and the
// initial sequence number and timestamp are drawn from the seed and the
// start time, so a restarted server is a new RTP source.
func (s *Server) begin(now spec.Time, addr netip.AddrPort, out []spec.Output) []spec.Output {
	r := spec.NewRand(s.cfg.Seed ^ uint64(now) ^ 0x57a11)
	s.ssrc = r.Uint32()
	s.seq0 = uint16(r.Uint32())
	if s.cfg.InitialSeq != nil {
		s.seq0 = *s.cfg.InitialSeq
	}
	s.ts0 = r.Uint32()
	s.cname = fmt.Sprintf("stream-%08x", s.ssrc)
	s.addr = addr
	s.running = true
	s.origin, s.start, s.next = now, now, 0
	s.challengeBucket = newBucket(s.cfg.JoinRate, now)
	s.joinBucket = newBucket(s.cfg.JoinRate, now)
	return append(out,
		spec.Info("UDP server up and streaming", slog.String("addr", addr.String()), slog.Duration("delay", s.cfg.Delay),
			slog.String("ssrc", fmt.Sprintf("%08x", s.ssrc)), slog.Uint64("seq0", uint64(s.seq0))),
		spec.Emit(spec.Event{Name: "listening", Text: addr.String(), Value: Listening{Addr: addr.String(), SSRC: s.ssrc}}),
		spec.SetTimer(timerTick, now))
}

// Listening is the value of the server's "listening" event.
type Listening struct {
	Addr string `json:"addr"`
	SSRC uint32 `json:"ssrc"`
}

// due is when packet i is due on the current schedule.
func (s *Server) due(i uint64) spec.Time { return s.start.Add(time.Duration(i) * s.cfg.Delay) }

// timestamp is the RTP timestamp of a packet due at t: its sampling
// instant, in ClockRate units since the origin, exactly.
func (s *Server) timestamp(t spec.Time) uint32 {
	hi, lo := bits.Mul64(uint64(t-s.origin), uint64(ClockRate))
	q, _ := bits.Div64(hi%uint64(time.Second), lo, uint64(time.Second))
	return s.ts0 + uint32(q)
}

// tick sends every packet that is due, up to MaxBurst, to every
// subscriber: one marshalled packet shared by all sends.
func (s *Server) tick(now spec.Time, out []spec.Output) []spec.Output {
	s.c.ticks++
	for n := 0; n < s.cfg.MaxBurst && !now.Before(s.due(s.next)) && (s.cfg.Count == 0 || s.next < s.cfg.Count); n++ {
		i := s.next
		s.next++
		if len(s.subs) == 0 {
			continue
		}
		pkt := EncodeData(Data{
			Seq:       s.seq0 + uint16(i),
			Timestamp: s.timestamp(s.due(i)),
			SSRC:      s.ssrc,
			Index:     i,
			Value:     DataValue(i),
		})
		for _, sub := range s.subs {
			sub.sent++
			out = append(out, spec.SendFrom(sockServer, sub.local, sub.addr, pkt))
			if s.cfg.LogPackets {
				out = append(out, spec.Info("sent", slog.String("client", sub.addr.String()), slog.Uint64("index", i), slog.Uint64("data", DataValue(i))))
			}
		}
		s.c.sent += uint64(len(s.subs))
	}
	if s.cfg.Count > 0 && s.next >= s.cfg.Count {
		return s.finish(now, "stream complete", out)
	}
	if !now.Before(s.due(s.next)) {
		// Still behind after a full burst: slip the schedule so the next
		// packet is due one delay from now, instead of bursting on.
		s.c.slips++
		s.start = now.Add(s.cfg.Delay).Add(-time.Duration(s.next) * s.cfg.Delay)
		out = append(out, spec.Debug("stream: behind schedule, slipping", slog.Uint64("index", s.next)))
	}
	return append(out, spec.SetTimer(timerTick, s.due(s.next)))
}

// bucket is a token bucket of rate tokens a second and as many deep.
type bucket struct {
	rate   int64
	tokens int64 // in 1e-9 tokens
	last   spec.Time
}

func newBucket(rate int, now spec.Time) bucket {
	return bucket{rate: int64(rate), tokens: int64(rate) * int64(time.Second), last: now}
}

// take takes a token if there is one.
func (b *bucket) take(now spec.Time) bool {
	if el := now.Sub(b.last); el > 0 {
		b.tokens = min(b.rate*int64(time.Second), b.tokens+int64(min(el, time.Second))*b.rate)
	}
	b.last = now
	if b.tokens < int64(time.Second) {
		return false
	}
	b.tokens -= int64(time.Second)
	return true
}

var errNoApp = errors.New("no " + AppName + " APP packet")

func (s *Server) drop(out []spec.Output, why string, from netip.AddrPort, err error) []spec.Output {
	attrs := []slog.Attr{slog.String("from", from.String())}
	if err != nil {
		attrs = append(attrs, slog.String("err", err.Error()))
	}
	return append(out, spec.Debug("stream: dropped "+why, attrs...))
}

func (s *Server) datagram(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	s.c.datagrams++
	if !s.running {
		return out
	}
	from := in.Addr
	if from.Port() == 0 {
		s.c.portZero++
		return s.drop(out, "datagram from port 0", from, nil)
	}
	if !IsControl(in.Data) {
		s.c.notControl++
		return s.drop(out, "datagram that is not RTCP", from, nil)
	}
	ctl, err := DecodeControl(in.Data)
	if err == nil && ctl.App == nil {
		err = errNoApp
	}
	if err == nil && ctl.App.SSRC != ctl.SSRC {
		err = errors.New("APP SSRC differs from the report's")
	}
	if err != nil {
		s.c.malformed++
		return s.drop(out, "malformed control packet", from, err)
	}
	switch ctl.App.Subtype {
	case AppHello:
		s.c.hellos++
		return s.join(now, from, len(in.Data), ctl, nil, out)
	case AppEcho:
		s.c.echoes++
		return s.join(now, from, len(in.Data), ctl, ctl.App.Data, out)
	case AppReport:
		return s.report(now, from, ctl, out)
	}
	s.c.unhandled++
	return s.drop(out, "control packet a server does not take: "+AppString(ctl.App.Subtype), from, nil)
}

// join handles a HELLO (cookie nil) or an ECHO. Before the cookie checks
// out the only answer is a CHALLENGE no larger than the join itself.
func (s *Server) join(now spec.Time, from netip.AddrPort, size int, ctl Control, cookie []byte, out []spec.Output) []spec.Output {
	if cookie != nil {
		switch s.jar.check(now, from, ctl.SSRC, cookie) {
		case cookieOK:
			if !s.joinBucket.take(now) {
				s.c.joinsRateLimited++
				if n, ok := s.warnJoinRate.Hit(now, time.Second); ok {
					out = append(out, spec.Warn("stream: join rate limit hit, dropping validated joins", slog.Int("joinsPerSecond", s.cfg.JoinRate), slog.Uint64("dropped", n)))
				}
				return s.drop(out, "validated join over the rate limit", from, nil)
			}
			return s.subscribe(now, from, ctl, out)
		case cookieExpired:
			s.c.cookieExpired++
			out = append(out, spec.Debug("stream: expired cookie, challenging again", slog.String("from", from.String())))
		default:
			s.c.cookieBad++
			out = append(out, spec.Debug("stream: bad cookie, challenging again", slog.String("from", from.String())))
		}
	}
	if !s.challengeBucket.take(now) {
		s.c.rateLimited++
		if n, ok := s.warnRate.Hit(now, time.Second); ok {
			out = append(out, spec.Warn("stream: challenge rate limit hit, dropping HELLOs", slog.Int("challengesPerSecond", s.cfg.JoinRate), slog.Uint64("dropped", n)))
		}
		return s.drop(out, "join over the challenge rate limit", from, nil)
	}
	ch := EncodeChallenge(s.ssrc, s.cname, s.jar.cookie(now, from, ctl.SSRC))
	if len(ch) > size {
		s.c.tooSmall++
		return s.drop(out, fmt.Sprintf("join of %d bytes, smaller than the %d-byte challenge", size, len(ch)), from, nil)
	}
	s.c.challenges++
	return append(out, spec.SendFrom(sockServer, s.local, from, ch))
}

func (s *Server) subscribe(now spec.Time, from netip.AddrPort, ctl Control, out []spec.Output) []spec.Output {
	if i, ok := s.byAddr[from]; ok {
		sub := s.subs[i]
		if sub.ssrc == ctl.SSRC {
			// A repeated ECHO (our WELCOME was lost): welcome again.
			sub.lastHeard, sub.local = now, s.local
			return append(out, spec.SendFrom(sockServer, s.local, from, s.welcome(sub)))
		}
		// A new receiver at the same address (the client restarted).
		s.c.resubscribed++
		s.remove(i)
		out = append(out, spec.Info("subscriber replaced by a new SSRC at its address", slog.String("client", from.String()),
			slog.String("old", fmt.Sprintf("%08x", sub.ssrc)), slog.String("new", fmt.Sprintf("%08x", ctl.SSRC))),
			spec.Emit(spec.Event{Name: "unsubscribed", Value: Departure{Addr: from.String(), SSRC: sub.ssrc, Reason: "replaced"}}))
	}
	if len(s.subs) >= s.cfg.MaxSubscribers {
		s.c.refused++
		if n, ok := s.warnFull.Hit(now, time.Second); ok {
			out = append(out, spec.Warn("stream: subscriber limit reached, refusing joins", slog.Int("max", s.cfg.MaxSubscribers), slog.Uint64("refused", n)))
		}
		return append(out, spec.SendFrom(sockServer, s.local, from, EncodeRefuse(s.ssrc, s.cname, RefuseFull)))
	}
	sub := &subscriber{addr: from, local: s.local, ssrc: ctl.SSRC, cname: ctl.CNAME, since: now, lastHeard: now, firstIdx: s.next}
	sub.token = s.jar.token(from, ctl.SSRC, now)
	s.byAddr[from] = len(s.subs)
	s.subs = append(s.subs, sub)
	s.c.subscribed++
	out = append(out,
		spec.Info("subscriber joined", slog.String("client", from.String()), slog.String("ssrc", fmt.Sprintf("%08x", ctl.SSRC)),
			slog.String("cname", ctl.CNAME), slog.Int("subscribers", len(s.subs))),
		spec.Emit(spec.Event{Name: "subscribed", Value: Arrival{Addr: from.String(), SSRC: ctl.SSRC, CNAME: ctl.CNAME, FirstIndex: s.next}}),
		spec.SendFrom(sockServer, s.local, from, s.welcome(sub)))
	return s.armExpiry(out)
}

// Arrival is the value of the server's "subscribed" event.
type Arrival struct {
	Addr       string `json:"addr"`
	SSRC       uint32 `json:"ssrc"`
	CNAME      string `json:"cname"`
	FirstIndex uint64 `json:"firstIndex"`
}

// Departure is the value of the server's "unsubscribed" event; Reason is
// "bye", "expired" or "replaced".
type Departure struct {
	Addr   string `json:"addr"`
	SSRC   uint32 `json:"ssrc"`
	Reason string `json:"reason"`
	Sent   uint64 `json:"sent,omitempty"`
}

func (s *Server) welcome(sub *subscriber) []byte {
	return EncodeWelcome(s.ssrc, s.cname, Welcome{
		Token:    sub.token,
		Interval: uint64(s.cfg.Delay),
		Report:   uint64(s.cfg.ReportInterval),
		Expire:   uint32(s.cfg.ExpireAfter),
	})
}

// remove deletes subscriber i, keeping the others in join order.
func (s *Server) remove(i int) {
	delete(s.byAddr, s.subs[i].addr)
	copy(s.subs[i:], s.subs[i+1:])
	s.subs[len(s.subs)-1] = nil
	s.subs = s.subs[:len(s.subs)-1]
	for j := i; j < len(s.subs); j++ {
		s.byAddr[s.subs[j].addr] = j
	}
}

// report takes a subscriber's RR + REPORT (+ BYE). Only the subscriber's
// own address, SSRC and token refresh its consent or end it.
func (s *Server) report(now spec.Time, from netip.AddrPort, ctl Control, out []spec.Output) []spec.Output {
	i, ok := s.byAddr[from]
	if !ok {
		s.c.reportsStranger++
		return s.drop(out, "report from an address that is not subscribed", from, nil)
	}
	sub := s.subs[i]
	t, err := DecodeTally(ctl.App.Data)
	if err != nil || ctl.SSRC != sub.ssrc || t.Token != sub.token {
		s.c.reportsBadToken++
		return s.drop(out, "report with a wrong SSRC or token", from, err)
	}
	s.c.reports++
	sub.reports++
	sub.lastHeard, sub.local = now, s.local
	sub.tally = t
	for _, rr := range ctl.Reports {
		if rr.SSRC == s.ssrc {
			sub.hasRR = true
			sub.extMax, sub.lost, sub.fraction, sub.jitter = rr.LastSequenceNumber, lost24(rr.TotalLost), rr.FractionLost, rr.Jitter
		}
	}
	if !ctl.Bye {
		return out
	}
	s.c.byes++
	s.remove(i)
	return append(out,
		spec.Info("subscriber left", slog.String("client", from.String()), slog.String("reason", ctl.ByeReason), slog.Uint64("sent", sub.sent),
			slog.Uint64("received", sub.tally.Packets), slog.Uint64("sum", sub.tally.Sum)),
		spec.Emit(spec.Event{Name: "unsubscribed", Value: Departure{Addr: from.String(), SSRC: sub.ssrc, Reason: "bye", Sent: sub.sent}}))
}

// armExpiry points the expiry timer at the earliest moment a subscriber
// can expire.
func (s *Server) armExpiry(out []spec.Output) []spec.Output {
	if len(s.subs) == 0 {
		if s.expireAt != 0 {
			s.expireAt = 0
			out = append(out, spec.CancelTimer(timerExpire))
		}
		return out
	}
	first := s.subs[0].lastHeard
	for _, sub := range s.subs[1:] {
		first = min(first, sub.lastHeard)
	}
	at := first.Add(s.cfg.Expiry())
	if at != s.expireAt {
		s.expireAt = at
		out = append(out, spec.SetTimer(timerExpire, at))
	}
	return out
}

// expire drops every subscriber silent for ExpireAfter intervals: exactly
// at lastHeard + ExpireAfter*ReportInterval.
func (s *Server) expire(now spec.Time, out []spec.Output) []spec.Output {
	s.expireAt = 0
	limit := s.cfg.Expiry()
	for i := 0; i < len(s.subs); {
		sub := s.subs[i]
		if silent := now.Sub(sub.lastHeard); silent >= limit {
			s.c.expired++
			s.remove(i)
			out = append(out,
				spec.Info("dropping silent subscriber", slog.String("client", sub.addr.String()),
					slog.Duration("silent", silent), slog.Int("intervals", s.cfg.ExpireAfter), slog.Duration("interval", s.cfg.ReportInterval)),
				spec.Emit(spec.Event{Name: "unsubscribed", Value: Departure{Addr: sub.addr.String(), SSRC: sub.ssrc, Reason: "expired", Sent: sub.sent}}))
			continue
		}
		i++
	}
	return s.armExpiry(out)
}

// expireDue expires subscribers whose time has come before a step does
// anything else: when the tick and the expiry timer fall due at the same
// instant, in whatever order the runner delivers them, a subscriber
// silent for exactly the limit gets no more data. expireAt is never later
// than the earliest deadline (hearing from a subscriber only moves its
// deadline later), so nobody is due before it.
func (s *Server) expireDue(now spec.Time, out []spec.Output) []spec.Output {
	if s.expireAt == 0 || now.Before(s.expireAt) {
		return out
	}
	return s.expire(now, out)
}

// SubscriberInfo is one row of the server's per-subscriber report: what
// the server knows and the statistics the subscriber last reported.
type SubscriberInfo struct {
	Addr      string        `json:"addr"`
	SSRC      uint32        `json:"ssrc"`
	CNAME     string        `json:"cname"`
	For       time.Duration `json:"for"`
	LastHeard time.Duration `json:"lastHeard"`
	Sent      uint64        `json:"sent"`
	Reports   uint64        `json:"reports"`
	// From the last RR block (valid if HasRR).
	HasRR        bool   `json:"hasRR"`
	ExtMax       uint32 `json:"extMax"`
	Lost         int32  `json:"lost"`
	FractionLost uint8  `json:"fractionLost"`
	Jitter       uint32 `json:"jitter"`
	JitterUs     uint64 `json:"jitterUs"`
	// From the last REPORT.
	Packets    uint64 `json:"packets"`
	Duplicates uint64 `json:"duplicates"`
	Reordered  uint64 `json:"reordered"`
	Sum        uint64 `json:"sum"`
}

// Report lists the subscribers in the order they joined.
func (s *Server) Report(now spec.Time) []SubscriberInfo {
	rows := make([]SubscriberInfo, 0, len(s.subs))
	for _, sub := range s.subs {
		rows = append(rows, SubscriberInfo{
			Addr: sub.addr.String(), SSRC: sub.ssrc, CNAME: sub.cname,
			For: now.Sub(sub.since), LastHeard: now.Sub(sub.lastHeard),
			Sent: sub.sent, Reports: sub.reports,
			HasRR: sub.hasRR, ExtMax: sub.extMax, Lost: sub.lost, FractionLost: sub.fraction,
			Jitter: sub.jitter, JitterUs: uint64(sub.jitter) * 1_000_000 / uint64(ClockRate),
			Packets: sub.tally.Packets, Duplicates: sub.tally.Duplicates, Reordered: sub.tally.Reordered, Sum: sub.tally.Sum,
		})
	}
	return rows
}

// be32 reads a big-endian uint32 from b, zero if b is short.
func be32(b []byte) uint32 {
	if len(b) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(b)
}
