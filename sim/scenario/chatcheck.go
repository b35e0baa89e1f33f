package scenario

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// ChatWorld observes a simulated chat (package spec/chat) and checks it
// against the simulator's ground truth. Attach it to a network with
// Observe, name the nodes with Register, and call the checks after the
// run. The same checks serve `netspec sim chat`, swarm testing, the rapid
// properties and re-simulated regression traces.
type ChatWorld struct {
	cfg   chat.ServerConfig
	srv   netip.AddrPort // where clients send
	first netip.AddrPort // the server host's other address, if it has two
	name  string         // the server node's name
	nodes map[netip.Addr]chatNode

	stream []chatItem // the server's events and sends, and its crashes, in order
	model  []chatItem // datagrams delivered to the server, and its crashes, in order

	shown    map[string][]chat.Line       // lines each client reported, in order
	toHost   map[netip.Addr][]chatPkt     // the server's datagrams, by destination host
	fromAddr map[netip.AddrPort][]chatPkt // clients' datagrams, by source
	orig     map[uint64]uint64            // duplicate packet id -> original
	arrived  map[uint64]bool              // original ids delivered at least once
	messages map[netip.AddrPort][]chat.MessageEvent
	// life[a][i] is the server incarnation (crashes so far) that
	// broadcast messages[a][i]; crashes counts them.
	life    map[netip.AddrPort][]int
	crashes int
	nicks   map[netip.Addr]string // the last nick the server gave each host
	left    map[netip.Addr]string // why each host's last membership ended
	end     spec.Time
}

type chatNode struct{ name, role string }

type chatPkt struct {
	id   uint64
	t    spec.Time
	addr netip.AddrPort // destination of a server datagram, source of a client's
	data []byte
}

type chatItemKind uint8

const (
	itemJoin chatItemKind = iota + 1
	itemLeave
	itemMessage
	itemSend
	itemDeliver
	itemCrash
)

type chatItem struct {
	kind chatItemKind
	t    spec.Time
	addr netip.AddrPort
	msg  chat.MessageEvent
	pkt  chatPkt
}

// NewChatWorld returns an observer for a chat whose server, the node
// called serverName, runs cfg.
func NewChatWorld(serverName string, cfg chat.ServerConfig) *ChatWorld {
	cfg = chat.NewServer(cfg).Config() // the defaults, as the server sees them
	var first netip.AddrPort
	if cfg.Addr.Addr().IsUnspecified() {
		// As ChatScript places such a server: its clients send to its
		// alias; what it sends from its first address is its too.
		first = netip.AddrPortFrom(ChatServerAddr.Addr(), cfg.Addr.Port())
		cfg.Addr = netip.AddrPortFrom(ServerAlias, cfg.Addr.Port())
	}
	return &ChatWorld{
		cfg: cfg, srv: cfg.Addr, first: first, name: serverName,
		nodes:    map[netip.Addr]chatNode{},
		shown:    map[string][]chat.Line{},
		toHost:   map[netip.Addr][]chatPkt{},
		fromAddr: map[netip.AddrPort][]chatPkt{},
		orig:     map[uint64]uint64{},
		arrived:  map[uint64]bool{},
		messages: map[netip.AddrPort][]chat.MessageEvent{},
		life:     map[netip.AddrPort][]int{},
		nicks:    map[netip.Addr]string{},
		left:     map[netip.Addr]string{},
	}
}

// Register names a client node and its role ("client" or "plain").
func (w *ChatWorld) Register(n *sim.Node, role string) {
	w.nodes[n.Addr] = chatNode{name: n.Name, role: role}
}

// Observe chains the world's observers after cfg's own.
func (w *ChatWorld) Observe(cfg *sim.Config) {
	onNet, onEvent := cfg.OnNet, cfg.OnEvent
	cfg.OnNet = func(ev sim.NetEvent) {
		if onNet != nil {
			onNet(ev)
		}
		w.net(ev)
	}
	cfg.OnEvent = func(n *sim.Node, now spec.Time, ev spec.Event) {
		if onEvent != nil {
			onEvent(n, now, ev)
		}
		w.event(n, now, ev)
	}
}

// Finish records the end of the run.
func (w *ChatWorld) Finish(now spec.Time) { w.end = now }

func (w *ChatWorld) net(ev sim.NetEvent) {
	w.end = max(w.end, ev.T)
	switch ev.Kind {
	case sim.NetCrash:
		if ev.Node == w.name {
			w.crashes++
			w.stream = append(w.stream, chatItem{kind: itemCrash, t: ev.T})
			w.model = append(w.model, chatItem{kind: itemCrash, t: ev.T})
		}
		return
	case sim.NetDup:
		w.orig[ev.ID] = ev.Orig
		return
	}
	if ev.Proto != spec.UDP {
		return
	}
	switch ev.Kind {
	case sim.NetSend:
		p := chatPkt{id: ev.ID, t: ev.T, data: ev.Data}
		if ev.From == w.srv || (w.first.IsValid() && ev.From == w.first) {
			p.addr = ev.To
			w.stream = append(w.stream, chatItem{kind: itemSend, t: ev.T, addr: ev.To, pkt: p})
			if ev.From == w.srv {
				// From the first address it is the server's send (the
				// stray-send checks see it), but clients drop it: a
				// client that shows it made it up.
				w.toHost[ev.To.Addr()] = append(w.toHost[ev.To.Addr()], p)
			}
		} else {
			p.addr = ev.From
			w.fromAddr[ev.From] = append(w.fromAddr[ev.From], p)
		}
	case sim.NetDeliver:
		id := ev.ID
		if o, ok := w.orig[id]; ok {
			id = o
		}
		w.arrived[id] = true
		if ev.To == w.srv {
			w.model = append(w.model, chatItem{kind: itemDeliver, t: ev.T, addr: ev.From, pkt: chatPkt{id: id, t: ev.T, addr: ev.From, data: ev.Data}})
		}
	}
}

func (w *ChatWorld) event(n *sim.Node, now spec.Time, ev spec.Event) {
	w.end = max(w.end, now)
	if n.Name == w.name {
		switch v := ev.Value.(type) {
		case chat.MemberEvent:
			w.nicks[v.Addr.Addr()] = v.Nick
			switch ev.Name {
			case "join":
				w.stream = append(w.stream, chatItem{kind: itemJoin, t: now, addr: v.Addr})
				delete(w.left, v.Addr.Addr())
			case "leave":
				w.stream = append(w.stream, chatItem{kind: itemLeave, t: now, addr: v.Addr})
				w.left[v.Addr.Addr()] = fmt.Sprintf("%s at %.1fs", v.Reason, now.Sub(spec.SimEpoch).Seconds())
			}
		case chat.MessageEvent:
			w.stream = append(w.stream, chatItem{kind: itemMessage, t: now, addr: v.Addr, msg: v})
			w.messages[v.Addr] = append(w.messages[v.Addr], v)
			w.life[v.Addr] = append(w.life[v.Addr], w.crashes)
		}
		return
	}
	if ev.Name == "line" {
		l, _ := ev.Value.(chat.Line)
		l.Text = ev.Text // the whole line, as the server sent it
		w.shown[n.Name] = append(w.shown[n.Name], l)
	}
}

// span is a membership, [from, to).
type span struct{ from, to spec.Time }

func (s span) String() string {
	return fmt.Sprintf("[%v, %v)", s.from.Sub(spec.SimEpoch), s.to.Sub(spec.SimEpoch))
}

// merge joins spans that touch: leaving and rejoining at the same instant
// (a replaced session, or expiring as a datagram arrives) is staying.
func merge(ss []span) []span {
	var out []span
	for _, s := range ss {
		if s.to == s.from {
			continue
		}
		if n := len(out); n > 0 && out[n-1].to == s.from {
			out[n-1].to = s.to
			continue
		}
		out = append(out, s)
	}
	return out
}

// serverSpans is the membership the server reported (join and leave
// events; a crash ends every membership).
func (w *ChatWorld) serverSpans() map[netip.AddrPort][]span {
	open := map[netip.AddrPort]spec.Time{}
	spans := map[netip.AddrPort][]span{}
	closeAll := func(t spec.Time) {
		for _, a := range sortedAddrs(open) {
			spans[a] = append(spans[a], span{open[a], t})
		}
		clear(open)
	}
	for _, it := range w.stream {
		switch it.kind {
		case itemJoin:
			open[it.addr] = it.t
		case itemLeave:
			if from, ok := open[it.addr]; ok {
				spans[it.addr] = append(spans[it.addr], span{from, it.t})
				delete(open, it.addr)
			}
		case itemCrash:
			closeAll(it.t)
		}
	}
	closeAll(w.end)
	return spans
}

// lines splits a datagram body as the protocol does: LF-separated,
// trimmed, empty lines skipped.
func lines(b []byte) []string {
	var out []string
	for _, l := range bytes.Split(b, []byte("\n")) {
		if l = bytes.Trim(l, " \t\r"); len(l) > 0 {
			out = append(out, string(l))
		}
	}
	return out
}

type tombKey struct {
	a netip.AddrPort
	s uint64
}

// modelSpans is the membership issue 4 specifies, computed from the
// datagrams the network delivered to the server: an address is a member
// from the first datagram that has a line, does not start with a notice
// ("*** ", as servers send) and is not a quit, for as long
// as datagrams keep arriving less than Interval apart, until its quit, or
// until a crash of the server. A session that quit (or was replaced by a
// newer one) is closed for Interval: its datagrams count for nothing.
func (w *ChatWorld) modelSpans() map[netip.AddrPort][]span {
	type state struct {
		member       bool
		session      uint64
		heard, since spec.Time
	}
	iv := w.cfg.Interval
	st := map[netip.AddrPort]*state{}
	tombs := map[tombKey]spec.Time{}
	spans := map[netip.AddrPort][]span{}
	members := 0
	end := func(a netip.AddrPort, t spec.Time) {
		s := st[a]
		spans[a] = append(spans[a], span{s.since, t})
		s.member = false
		members--
	}
	expire := func(t spec.Time) {
		for _, a := range sortedAddrs(st) {
			if s := st[a]; s.member && s.heard.Add(iv) <= t {
				end(a, s.heard.Add(iv))
			}
		}
		for k, until := range tombs {
			if until <= t {
				delete(tombs, k)
			}
		}
	}
	for _, it := range w.model {
		expire(it.t)
		if it.kind == itemCrash {
			for _, a := range sortedAddrs(st) {
				if st[a].member {
					end(a, it.t)
				}
			}
			clear(tombs)
			continue
		}
		a, t := it.addr, it.t
		s := st[a]
		if s == nil {
			s = &state{}
			st[a] = s
		}
		data := it.pkt.data
		if len(data) > w.cfg.MaxDatagram {
			if s.member {
				s.heard = t
			}
			continue
		}
		h, body, seq := chat.ParseHeader(data)
		if seq && (h.Session == 0 || h.Server) {
			continue
		}
		ls := lines(body)
		quit := slices.ContainsFunc(ls, func(l string) bool { return l == "quit" || l == "/quit" })
		if _, dead := tombs[tombKey{a, h.Session}]; seq && dead {
			continue
		}
		if s.member && s.session != h.Session {
			if h.Session < s.session {
				continue
			}
			end(a, t)
			if s.session != 0 {
				tombs[tombKey{a, s.session}] = t.Add(iv)
			}
		}
		if !s.member {
			switch {
			case len(ls) == 0, strings.HasPrefix(ls[0], "*** "):
				continue
			case quit:
				if h.Session != 0 {
					tombs[tombKey{a, h.Session}] = t.Add(iv)
				}
				continue
			case members >= w.cfg.MaxMembers:
				continue
			}
			*s = state{member: true, session: h.Session, since: t}
			members++
		}
		s.heard = t
		if quit {
			end(a, t)
			if h.Session != 0 {
				tombs[tombKey{a, h.Session}] = t.Add(iv)
			}
		}
	}
	expire(w.end)
	for _, a := range sortedAddrs(st) {
		if st[a].member {
			end(a, w.end)
		}
	}
	return spans
}

func sortedAddrs[V any](m map[netip.AddrPort]V) []netip.AddrPort {
	keys := make([]netip.AddrPort, 0, len(m))
	for a := range m {
		keys = append(keys, a)
	}
	slices.SortFunc(keys, func(a, b netip.AddrPort) int { return a.Compare(b) })
	return keys
}

func (w *ChatWorld) who(a netip.AddrPort) string {
	if n, ok := w.nodes[a.Addr()]; ok {
		return n.name + " (" + a.String() + ")"
	}
	return a.String()
}

// CheckMembership: the server's member set is, at every instant, the set
// of clients heard from within the interval (and not since quit), as the
// model computes it from the datagrams the network delivered.
func (w *ChatWorld) CheckMembership() string {
	got, want := w.serverSpans(), w.modelSpans()
	all := map[netip.AddrPort]bool{}
	for a := range got {
		all[a] = true
	}
	for a := range want {
		all[a] = true
	}
	for _, a := range sortedAddrs(all) {
		g, m := merge(got[a]), merge(want[a])
		if !slices.Equal(g, m) {
			return fmt.Sprintf("membership of %s: the server had %v, the datagrams it received make %v", w.who(a), g, m)
		}
	}
	return ""
}

// CheckNoStraySends: the server sends nothing to an address that is not
// a member (so nothing after it quit or expired), except the bye to a
// member that quits and the bye or "chat is full" that answers a
// non-member, never larger than a datagram the address sent it at that
// instant, each datagram answered at most once (its source is not
// validated: the server must not reflect, let alone amplify). It sends a
// member nothing from the instant it has been silent for the interval,
// whatever the order of the steps at that instant; and it broadcasts
// only members' lines.
func (w *ChatWorld) CheckNoStraySends() string {
	// When the server heard from each address, and the sizes of what it
	// received at each instant.
	heard := map[netip.AddrPort][]spec.Time{}
	type at struct {
		a netip.AddrPort
		t spec.Time
	}
	got := map[at][]int{}
	for _, it := range w.model {
		if it.kind == itemDeliver {
			heard[it.addr] = append(heard[it.addr], it.t)
			got[at{it.addr, it.t}] = append(got[at{it.addr, it.t}], len(it.pkt.data))
		}
	}
	// lastHeard is the last time a datagram from a reached the server by
	// t: the server refreshes a member with no later one.
	lastHeard := func(a netip.AddrPort, t spec.Time) (spec.Time, bool) {
		h := heard[a]
		switch i, found := slices.BinarySearch(h, t); {
		case found:
			return t, true
		case i > 0:
			return h[i-1], true
		}
		return 0, false
	}
	members := map[netip.AddrPort]bool{}
	left := map[netip.AddrPort]spec.Time{}
	for _, it := range w.stream {
		switch it.kind {
		case itemJoin:
			members[it.addr] = true
		case itemLeave:
			delete(members, it.addr)
			left[it.addr] = it.t
		case itemCrash:
			clear(members)
		case itemMessage:
			if !members[it.addr] {
				return fmt.Sprintf("at %v the server broadcast %q from %s, not a member", it.t.Sub(spec.SimEpoch), it.msg.Text, w.who(it.addr))
			}
		case itemSend:
			_, body, _ := chat.ParseHeader(it.pkt.data)
			if members[it.addr] {
				if h, ok := lastHeard(it.addr, it.t); !ok || it.t.Sub(h) >= w.cfg.Interval {
					return fmt.Sprintf("at %v the server sent %q to %s, silent since %v: it expired at %v", it.t.Sub(spec.SimEpoch), body, w.who(it.addr),
						h.Sub(spec.SimEpoch), h.Add(w.cfg.Interval).Sub(spec.SimEpoch))
				}
				continue
			}
			if t, ok := left[it.addr]; ok && t == it.t && bytes.HasPrefix(body, []byte("*** bye ")) {
				continue // the bye to a member that quit at this instant
			}
			if !bytes.HasPrefix(body, []byte("*** bye")) && !bytes.HasPrefix(body, []byte("*** chat is full")) {
				return fmt.Sprintf("at %v the server sent %q to %s, which is not a member", it.t.Sub(spec.SimEpoch), body, w.who(it.addr))
			}
			// Take the smallest datagram from it at this instant that is
			// no smaller than the answer.
			k := at{it.addr, it.t}
			best := -1
			for i, n := range got[k] {
				if n >= len(it.pkt.data) && (best < 0 || n < got[k][best]) {
					best = i
				}
			}
			if best < 0 {
				return fmt.Sprintf("at %v the server sent %s, not a member, %d bytes (%q): more than any datagram it had from there at that instant (%v)",
					it.t.Sub(spec.SimEpoch), w.who(it.addr), len(it.pkt.data), body, got[k])
			}
			got[k] = slices.Delete(got[k], best, best+1)
		}
	}
	return ""
}

// expected lists the human lines of the server's numbered datagrams to
// a host, in the order they were sent; only those the network delivered
// (at least one copy of) if delivered, only those sent before cutoff.
func (w *ChatWorld) expected(host netip.Addr, delivered bool, cutoff spec.Time) []string {
	var out []string
	for _, p := range w.toHost[host] {
		if (delivered && !w.arrived[p.id]) || p.t > cutoff {
			continue
		}
		h, body, ok := chat.ParseHeader(p.data)
		if !ok || h.Seq == 0 {
			continue
		}
		for _, l := range lines(body) {
			if chat.ParseLine([]byte(l)).Kind != chat.LineControl {
				out = append(out, l)
			}
		}
	}
	return out
}

// subsequence reports the first element of sub that cannot be matched
// in order in seq, or -1.
func subsequence[T comparable](sub, seq []T) int {
	j := 0
	for i, x := range sub {
		for j < len(seq) && seq[j] != x {
			j++
		}
		if j == len(seq) {
			return i
		}
		j++
	}
	return -1
}

func (w *ChatWorld) clients(role string) []chatNode {
	var out []chatNode
	for _, n := range w.nodes {
		if n.role == role {
			out = append(out, n)
		}
	}
	slices.SortFunc(out, func(a, b chatNode) int { return strings.Compare(a.name, b.name) })
	return out
}

func (w *ChatWorld) host(name string) netip.Addr {
	for a, n := range w.nodes {
		if n.name == name {
			return a
		}
	}
	return netip.Addr{}
}

// numbered returns the lines a client showed from numbered datagrams.
func (w *ChatWorld) numbered(name string) []string {
	var out []string
	for _, l := range w.shown[name] {
		if l.Seq != 0 {
			out = append(out, l.Text)
		}
	}
	return out
}

// CheckShown: a sequenced client shows a subsequence of what the server
// sent it and the network delivered, in the server's order: no line
// twice for one send (duplication never shows), no reordering, nothing
// made up. Hence every member sees the lines of one sender in the order
// the server broadcast them. (Unnumbered replies to a non-member, the
// bye to a resent quit or "chat is full", are shown as they arrive.)
func (w *ChatWorld) CheckShown() string {
	for _, n := range w.clients("client") {
		want := w.expected(w.host(n.name), true, w.end)
		got := w.numbered(n.name)
		if i := subsequence(got, want); i >= 0 {
			return fmt.Sprintf("%s showed %q (line %d of %d) out of the order, or more often than, the server sent it: got %q, server sent %q",
				n.name, got[i], i+1, len(got), clip(got, i), want)
		}
	}
	return ""
}

func clip(s []string, i int) []string { return s[max(0, i-3):min(len(s), i+1)] }

// said is one broadcastable line: a message or a /me.
type said struct {
	action bool
	text   string
}

func saidOf(l string) (said, bool) {
	switch {
	case strings.HasPrefix(l, "/me "):
		return said{true, strings.TrimSpace(l[4:])}, true
	case strings.HasPrefix(l, "//"):
		return said{false, l[1:]}, true
	case strings.HasPrefix(l, "/"), l == "quit", l == "^hb^":
		return said{}, false
	}
	return said{false, l}, true
}

// sends lists what a sequenced client said, one entry per distinct
// datagram (session, seq), in the order it sent them.
func (w *ChatWorld) seqSaid(a netip.AddrPort, cutoff spec.Time) []said {
	type key struct {
		s uint64
		q uint32
	}
	seen := map[key]bool{}
	var out []said
	for _, p := range w.fromAddr[a] {
		h, body, ok := chat.ParseHeader(p.data)
		if !ok || h.Seq == 0 || seen[key{h.Session, h.Seq}] || p.t > cutoff {
			continue
		}
		seen[key{h.Session, h.Seq}] = true
		for _, l := range lines(body) {
			if s, ok := saidOf(l); ok {
				out = append(out, s)
			}
		}
	}
	return out
}

// plainSaid counts what the network delivered to the server from a plain
// client: each delivery is a send.
func (w *ChatWorld) plainSaid(a netip.AddrPort) map[said]int {
	n := map[said]int{}
	for _, it := range w.model {
		if it.kind != itemDeliver || it.addr != a {
			continue
		}
		for _, l := range lines(it.pkt.data) {
			if s, ok := saidOf(l); ok {
				n[s]++
			}
		}
	}
	return n
}

// CheckBroadcasts: every line the server broadcast was said by its
// sender, at most once per send: a sequenced client's lines in the
// order it sent them (a subsequence of its distinct datagrams) within
// each life of the server, a plain client's at most once per time the
// network delivered them. A restarted server remembers nothing of its
// predecessor, so a line the old one broadcast may come again if the
// network duplicated it across the restart; within one life it may not.
func (w *ChatWorld) CheckBroadcasts() string {
	for _, a := range sortedAddrs(w.messages) {
		var got []said
		for _, m := range w.messages[a] {
			got = append(got, said{m.Action, m.Text})
		}
		node := w.nodes[a.Addr()]
		if node.role == "plain" {
			budget := w.plainSaid(a)
			for _, s := range got {
				if budget[s]--; budget[s] < 0 {
					return fmt.Sprintf("the server broadcast %q from %s more often than the network delivered it", s.text, w.who(a))
				}
			}
			continue
		}
		sent := w.seqSaid(a, w.end)
		for lo := 0; lo < len(got); {
			hi := lo + 1
			for hi < len(got) && w.life[a][hi] == w.life[a][lo] {
				hi++
			}
			if i := subsequence(got[lo:hi], sent); i >= 0 {
				return fmt.Sprintf("the server broadcast %q from %s (its line %d) more often than, or out of the order, it was sent", got[lo+i].text, w.who(a), lo+i+1)
			}
			lo = hi
		}
	}
	return ""
}

// CheckComplete is liveness on a network that loses nothing and never
// partitions or crashes (it may duplicate and reorder): every sequenced
// client shows exactly the lines the server sent it, and the server
// broadcasts every line every client said, in order, once per send.
// What was sent within quiet of the end may still be in flight.
func (w *ChatWorld) CheckComplete(quiet time.Duration) string {
	cutoff := w.end.Add(-quiet)
	for _, n := range w.clients("client") {
		want := w.expected(w.host(n.name), true, cutoff)
		got := w.numbered(n.name)
		if len(got) > len(want) {
			got = got[:len(want)]
		}
		if !slices.Equal(got, want) {
			i := 0
			for i < len(got) && got[i] == want[i] {
				i++
			}
			return fmt.Sprintf("%s showed %d lines of the %d the server sent it; first difference at line %d: got %q, want %q",
				n.name, len(w.numbered(n.name)), len(want), i+1, clip(got, i), clip(want, i))
		}
	}
	for _, role := range []string{"client", "plain"} {
		for _, n := range w.clients(role) {
			for _, a := range w.addrsOf(n.name) {
				var got []said
				for _, m := range w.messages[a] {
					got = append(got, said{m.Action, m.Text})
				}
				if role == "plain" {
					want := 0
					for _, c := range w.plainSaid(a) {
						want += c
					}
					if len(got) != want {
						return fmt.Sprintf("the server broadcast %d lines from %s; the network delivered %d", len(got), n.name, want)
					}
					continue
				}
				want := w.seqSaid(a, cutoff)
				if len(got) > len(want) {
					got = got[:len(want)]
				}
				if !slices.Equal(got, want) {
					return fmt.Sprintf("the server broadcast %d of the %d lines %s said", len(w.messages[a]), len(want), n.name)
				}
			}
		}
	}
	return ""
}

func (w *ChatWorld) addrsOf(name string) []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range sortedAddrs(w.fromAddr) {
		if w.nodes[a.Addr()].name == name {
			out = append(out, a)
		}
	}
	return out
}

// Nick is the last nick the server gave a client.
func (w *ChatWorld) Nick(name string) string { return w.nicks[w.host(name)] }

// Left says how a client's last membership ended ("" if it is a member,
// or the server crashed since).
func (w *ChatWorld) Left(name string) string { return w.left[w.host(name)] }

// Shown returns the lines a client showed.
func (w *ChatWorld) Shown(name string) []string {
	out := make([]string, len(w.shown[name]))
	for i, l := range w.shown[name] {
		out[i] = l.Text
	}
	return out
}

// Broadcasts is how many lines the server broadcast.
func (w *ChatWorld) Broadcasts() int {
	n := 0
	for _, m := range w.messages {
		n += len(m)
	}
	return n
}

// Safety runs every safety check and returns the first failure.
func (w *ChatWorld) Safety() string {
	for _, c := range []func() string{w.CheckMembership, w.CheckNoStraySends, w.CheckShown, w.CheckBroadcasts} {
		if v := c(); v != "" {
			return v
		}
	}
	return ""
}
