package scenario

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// ChatServerCrash is one crash of the chat server that happened in a
// run, and what the clients that were members then did afterwards.
type ChatServerCrash struct {
	At time.Duration `json:"at"`
	// Restart is when the server was listening again; zero if it was
	// still down when the run ended.
	Restart time.Duration `json:"restart,omitempty"`
	// Members are the clients that were members when it crashed;
	// Rejoined those of them the server had as members again (before its
	// next crash or the end of the run); Reclaimed those of these the
	// server called by the nick they had before the crash.
	Members   []string `json:"members"`
	Rejoined  []string `json:"rejoined"`
	Reclaimed []string `json:"reclaimed"`
}

// chatTimeline follows what the server reported (joins, nicks, leaves)
// and what the network did (crashes), so the chat scenario's summary
// says only what happened.
type chatTimeline struct {
	names   map[netip.Addr]string     // host -> node name
	member  map[netip.AddrPort]string // the server's members -> nick
	gone    map[netip.Addr]string     // host -> how its last membership ended
	died    map[string]spec.Time      // client processes that crashed
	crashes []ChatServerCrash         // server crashes so far
	before  map[netip.AddrPort]string // members at the last server crash -> nick
	back    map[netip.AddrPort]bool   // of those, members again since
	same    map[netip.AddrPort]bool   // of those, called by their old nick since
	at      spec.Time                 // the end of the run
	leftAt  map[netip.Addr]spec.Time  // host -> when its last membership ended by leaving
	reason  map[netip.Addr]string     // host -> why it left
}

func newChatTimeline() *chatTimeline {
	return &chatTimeline{
		names: map[netip.Addr]string{}, member: map[netip.AddrPort]string{}, gone: map[netip.Addr]string{},
		died: map[string]spec.Time{}, leftAt: map[netip.Addr]spec.Time{}, reason: map[netip.Addr]string{},
	}
}

func secsOf(t spec.Time) float64 { return t.Sub(spec.SimEpoch).Seconds() }

func (tl *chatTimeline) net(ev sim.NetEvent) {
	if ev.Kind != sim.NetCrash {
		return
	}
	if ev.Node != "server" {
		tl.died[ev.Node] = ev.T
		return
	}
	tl.settle()
	tl.crashes = append(tl.crashes, ChatServerCrash{At: ev.T.Sub(spec.SimEpoch)})
	tl.before, tl.back, tl.same = map[netip.AddrPort]string{}, map[netip.AddrPort]bool{}, map[netip.AddrPort]bool{}
	for a, nick := range tl.member {
		tl.before[a] = nick
		tl.gone[a.Addr()] = fmt.Sprintf("membership ended by the server's crash at %.1fs", secsOf(ev.T))
		delete(tl.reason, a.Addr())
	}
	clear(tl.member)
}

func (tl *chatTimeline) event(n *sim.Node, now spec.Time, ev spec.Event) {
	if n.Name != "server" {
		return
	}
	if ev.Name == "listening" {
		if k := len(tl.crashes); k > 0 && tl.crashes[k-1].Restart == 0 {
			tl.crashes[k-1].Restart = now.Sub(spec.SimEpoch)
		}
		return
	}
	m, ok := ev.Value.(chat.MemberEvent)
	if !ok {
		return
	}
	switch ev.Name {
	case "join", "nick":
		tl.member[m.Addr] = m.Nick
		delete(tl.gone, m.Addr.Addr())
		delete(tl.reason, m.Addr.Addr())
		if old, ok := tl.before[m.Addr]; ok {
			tl.back[m.Addr] = true
			if old == m.Nick {
				tl.same[m.Addr] = true
			}
		}
	case "leave":
		delete(tl.member, m.Addr)
		tl.gone[m.Addr.Addr()] = fmt.Sprintf("%s at %.1fs", m.Reason, secsOf(now))
		tl.leftAt[m.Addr.Addr()], tl.reason[m.Addr.Addr()] = now, m.Reason
	}
}

// settle fills in the last crash's lists.
func (tl *chatTimeline) settle() {
	k := len(tl.crashes)
	if k == 0 {
		return
	}
	cr := &tl.crashes[k-1]
	cr.Members, cr.Rejoined, cr.Reclaimed = tl.named(tl.before, nil), tl.named(tl.before, tl.back), tl.named(tl.before, tl.same)
}

// named lists the names of the hosts of addrs (those in only, if set).
func (tl *chatTimeline) named(addrs map[netip.AddrPort]string, only map[netip.AddrPort]bool) []string {
	out := []string{}
	for a := range addrs {
		if only == nil || only[a] {
			out = append(out, tl.names[a.Addr()])
		}
	}
	slices.Sort(out)
	return out
}

func (tl *chatTimeline) finish(now spec.Time) {
	tl.at = now
	tl.settle()
}

// end says how a client's run ended, as the server and the network saw
// it.
func (tl *chatTimeline) end(cl ChatClient, interval time.Duration) string {
	var host netip.Addr
	for a, name := range tl.names {
		if name == cl.Name {
			host = a
		}
	}
	prefix := ""
	if t, ok := tl.died[cl.Name]; ok {
		prefix = fmt.Sprintf("process died at %.1fs; ", secsOf(t))
	}
	for a := range tl.member {
		if a.Addr() == host {
			if prefix != "" {
				return prefix + "still a member when the run ended"
			}
			return "still in"
		}
	}
	g, ok := tl.gone[host]
	if !ok {
		return prefix + "never a member"
	}
	if cl.Plain && prefix == "" && tl.reason[host] == chat.ReasonExpired {
		// Expired after its last typed line: it had stopped typing ^hb^.
		last := time.Duration(-1)
		for _, l := range cl.Lines {
			last = max(last, l.At)
		}
		if tl.leftAt[host].Sub(spec.SimEpoch) >= last+interval {
			prefix = "stopped typing ^hb^; "
		}
	}
	return prefix + g
}

// notes are the summary's sentences about how long the run lasted and
// what the server's crashes did, from what was observed.
func (tl *chatTimeline) notes(c *Chat, virtual time.Duration) []string {
	out := []string{fmt.Sprintf("the run lasted %v: clients talked for %v (--duration), then %v more (3 x --interval) for silent members to expire",
		virtual.Round(time.Millisecond), c.Duration, 3*c.Interval)}
	if len(tl.crashes) == 0 && c.ServerCrash > 0 {
		why := "it was not running then"
		if c.ServerCrash >= virtual {
			why = "that is not before the end of the run"
		}
		out = append(out, fmt.Sprintf("the server did not crash at --server-crash %v: %s", c.ServerCrash, why))
	}
	for i, cr := range tl.crashes {
		var b strings.Builder
		fmt.Fprintf(&b, "the server crashed at %v", cr.At.Round(time.Millisecond))
		if cr.Restart > 0 {
			fmt.Fprintf(&b, " and was listening again at %v", cr.Restart.Round(time.Millisecond))
		} else {
			b.WriteString(" and was still down when the run ended")
		}
		until := "by the end of the run"
		if i+1 < len(tl.crashes) {
			until = "before its next crash"
		}
		switch {
		case len(cr.Members) == 0:
			b.WriteString("; no client was a member then")
		case cr.Restart == 0:
			fmt.Fprintf(&b, "; %d client(s) were members then", len(cr.Members))
		default:
			fmt.Fprintf(&b, "; of the %d client(s) that were members then, %d were members again %s, %d of them under their old nick",
				len(cr.Members), len(cr.Rejoined), until, len(cr.Reclaimed))
			var missing []string
			for _, m := range cr.Members {
				if !slices.Contains(cr.Rejoined, m) {
					missing = append(missing, m)
				}
			}
			if len(missing) > 0 {
				fmt.Fprintf(&b, " (not back: %s)", strings.Join(missing, ", "))
			}
		}
		out = append(out, b.String())
	}
	return out
}
