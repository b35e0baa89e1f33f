package p2p

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
)

// tree is a peer's place in the server's distribution trees (see "Trees"
// in the package documentation): peer id of n, in d trees. Tree s holds
// the peers in a d-ary heap (position q's children are d(q-1)+2 ..
// dq+1) filled first with the ids in class s (id-1 = s mod d), in order,
// then with the other ids, in order: so the interior positions of
// different trees (the peers that forward) are different peers with two
// trees, every peer forwards in one tree at most, its home tree, and the
// roots and upper levels are the first peers to join.
type tree struct {
	id, n, d int
}

// class is how many of the ids 1..n are in class s.
func (t tree) class(s int) int {
	if t.n <= s {
		return 0
	}
	return (t.n-s-1)/t.d + 1
}

// pos is id's position (1-based) in tree s.
func (t tree) pos(s, id int) int {
	b, o := (id-1)/t.d, (id-1)%t.d
	if o == s {
		return b + 1
	}
	if o > s {
		o--
	}
	return t.class(s) + b*(t.d-1) + o + 1
}

// at is the id at position q of tree s.
func (t tree) at(s, q int) int {
	if a := t.class(s); q <= a {
		return (q-1)*t.d + s + 1
	} else {
		q -= a
	}
	b, o := (q-1)/(t.d-1), (q-1)%(t.d-1)
	if o >= s {
		o++
	}
	return b*t.d + o + 1
}

// parent is the id of this peer's parent in tree s; 0: it is the root,
// fed by the server.
func (t tree) parent(s int) int {
	q := t.pos(s, t.id)
	if q == 1 {
		return 0
	}
	return t.at(s, (q-2)/t.d+1)
}

// isChild reports whether peer c is this peer's child in tree s.
func (t tree) isChild(s, c int) bool {
	if c < 1 || c > t.n || c == t.id {
		return false
	}
	q := t.pos(s, c)
	return q > 1 && (q-2)/t.d+1 == t.pos(s, t.id)
}

// home is the tree in which this peer has children, or -1.
func (t tree) home() int {
	for s := 0; s < t.d; s++ {
		if q := t.pos(s, t.id); t.d*(q-1)+2 <= t.n {
			return s
		}
	}
	return -1
}

// valid reports whether the geometry is one a peer accepts.
func (t tree) valid() bool {
	return t.n >= 1 && t.id >= 1 && t.id <= t.n && t.d >= 1 && t.d <= maxTrees
}

// maxTrees bounds the trees a server may announce.
const maxTrees = 16

// children appends the ids of this peer's children in tree s.
func (t tree) children(s int, dst []int) []int {
	q := t.pos(s, t.id)
	for c := t.d*(q-1) + 2; c <= t.d*q+1 && c <= t.n; c++ {
		dst = append(dst, t.at(s, c))
	}
	return dst
}

// --- a peer in the trees ------------------------------------------------------

// treeOf is the tree chunk i travels down, or -1 without trees.
func (p *Peer) treeOf(i int) int {
	if p.tr.n == 0 {
		return -1
	}
	return i % p.tr.d
}

// treeMsg takes the server's TREE (this peer's place) and PARENT (where
// a parent listens).
func (p *Peer) treeMsg(now spec.Time, m Msg, out []spec.Output) []spec.Output {
	if p.cfg.NoTree || p.cfg.Legacy {
		return out
	}
	switch m.Op {
	case TREE:
		t := tree{id: m.TreeID, n: m.TreeN, d: m.Trees}
		if t == p.tr {
			return out
		}
		if !p.joined {
			return append(out, spec.Debug("p2p: tree place before SHEL ignored", slog.Int("id", m.TreeID)))
		}
		if p.tr.n != 0 {
			// A new place (the server restarted): leave the old one.
			for _, ic := range p.ins {
				ic.tree, ic.tlist = false, false
			}
			for _, oc := range p.outs {
				oc.tsub = 0
			}
		}
		p.tr = t
		p.tjoin = now
		p.tparent = make([]netip.AddrPort, t.d)
		p.tlast = make([]spec.Time, t.d)
		p.ttop = make([]int, t.d)
		p.tbits = make([]bitset, t.d)
		for s := range t.d {
			p.tlast[s], p.ttop[s] = now, -1
			p.tbits[s] = newBitset(p.n)
			for i := s; i < p.n; i += t.d {
				p.tbits[s].set(i)
			}
		}
		p.needFill = true
		out = append(out, spec.Debug("p2p: tree place", slog.Int("id", t.id), slog.Int("of", t.n), slog.Int("trees", t.d)))
		for _, ic := range p.ins {
			// Children that subscribed before this place came.
			if id, s := ic.tsubID, ic.tsubTree; id != 0 && !ic.gone && !ic.closing {
				ic.tsubID = 0
				if s == t.home() && t.isChild(s, id) {
					out = p.adoptChild(now, ic, id, out)
				}
			}
		}
	case PARENT:
		if p.tr.n == 0 || m.Stripe >= p.tr.d || p.tr.parent(m.Stripe) == 0 || p.self(m.Addr) {
			return out
		}
		p.tparent[m.Stripe] = m.Addr
		p.tlast[m.Stripe] = now
		nb := p.hear(m.Addr)
		switch {
		case nb.banned:
		case nb.out == nil:
			nb.retryAt = 0
			out = p.dialPeer(now, nb, out)
		case nb.out.ready && nb.out.ext > 0:
			p.subscribe(now, nb.out)
		}
	}
	return out
}

// subscribe sends TSUB on c for every tree whose parent c leads to: with
// the hello, or once the neighbour has answered it (a PARENT that came
// later).
func (p *Peer) subscribe(now spec.Time, c *oconn) {
	if p.tr.n == 0 || c.nb == nil || c.ext < 0 {
		return
	}
	for s, a := range p.tparent {
		if a == c.nb.addr && c.tsub&(1<<s) == 0 {
			c.tsub |= 1 << s
			p.tlast[s] = now
			c.wbuf = AppendTSUB(p.grow(&c.wconn, 32), p.tr.id, s)
		}
	}
}

// adoptChild makes c a child in this peer's home tree: it is sent every
// chunk of that tree it has not announced, in order, then each as it
// comes.
func (p *Peer) adoptChild(now spec.Time, c *iconn, id int, out []spec.Output) []spec.Output {
	if c.tree {
		return out
	}
	c.tree, c.tid = true, id
	// The hash list, which a peer needs before it passes anything on,
	// comes from its parent in the tree it forwards in (a peer that
	// forwards in none: tree 0), so each peer is sent one copy.
	kid := tree{id: id, n: p.tr.n, d: p.tr.d}
	h := kid.home()
	c.tlist = h == p.tr.home() || h < 0 && p.tr.home() == 0
	if p.hashes != nil && c.tlist {
		c.pushq = append(c.pushq, push{chunk: -1, at: now, tree: true})
	}
	s := p.tr.home()
	for i := s; p.joined && i < p.n; i += p.tr.d {
		if p.have.has(i) && !c.holds(i) {
			c.pushq = append(c.pushq, push{chunk: i, at: now, tree: true})
		}
	}
	p.schedIn(c)
	return out
}

// forward queues chunk i for this peer's children if i belongs to its
// home tree, and appends them to dst.
func (p *Peer) forward(now spec.Time, i int, dst []*iconn) []*iconn {
	if p.treeOf(i) != p.tr.home() {
		return dst
	}
	for _, ic := range p.ins {
		if ic.tree && ic.cutLast == i+1 {
			dst = append(dst, ic) // passed through as it came
			continue
		}
		if ic.tree && !ic.closing && !ic.gone && !ic.holds(i) {
			ic.pushq = append(ic.pushq, push{chunk: i, at: now, tree: true})
			p.schedIn(ic)
			dst = append(dst, ic)
		}
	}
	return dst
}

// fed reports whether tree s is bringing its chunks: chunks above its
// last one are left to it rather than pulled.
func (p *Peer) fed(now spec.Time, s int) bool {
	return p.tr.n > 0 && now.Sub(p.tlast[s]) < p.cfg.TreeStall && !p.lagging(s)
}

// lagging reports whether tree s has brought less than half as far into
// the file as the fastest tree, once that one is treeLagFrom chunks in:
// a parent with a slow uplink would otherwise hold its subtree to its
// pace. (A tree's depth differs from peer to peer, so the trees' last
// chunks differ by tens of chunks even when all are healthy.)
func (p *Peer) lagging(s int) bool {
	top := 0
	for _, t := range p.ttop {
		top = max(top, t+1)
	}
	return top >= treeLagFrom && 2*(p.ttop[s]+1) < top
}

// treeLagFrom is how far into the file the fastest tree must be before
// another one is said to lag.
const treeLagFrom = 128

// treeHeld is the mask of word k's chunks left to the trees.
func (p *Peer) treeHeld(now spec.Time, k int) uint64 {
	var m uint64
	for s := range p.tr.d {
		if !p.fed(now, s) {
			continue
		}
		w := p.tbits[s][k]
		// Only chunks above the tree's last one: those below it that
		// are missing, it skipped.
		if top := p.ttop[s] + 1; top > k<<6 {
			if top >= (k+1)<<6 {
				continue
			}
			w &^= 1<<uint(top-k<<6) - 1
		}
		m |= w
	}
	return m
}

// listComing reports whether the hash list is on its way down the
// trees: a peer's parent in its home tree (tree 0 for a peer with no
// home) sends it unasked, so asking anyone else would cost an uplink
// the trees need.
func (p *Peer) listComing(now spec.Time) bool {
	if p.tr.n == 0 {
		return false
	}
	if p.roots() > 0 {
		// The server sends a root the list with its place.
		return now.Sub(p.tjoin) < p.cfg.TreeStall
	}
	return p.fed(now, max(p.tr.home(), 0))
}

// treeNeighbours is how many neighbours a peer in the trees dials
// besides its parents.
const treeNeighbours = 2

// treeHaveDelay batches announcements in the trees.
const treeHaveDelay = 250 * time.Millisecond

// roots counts the trees this peer is the root of.
func (p *Peer) roots() int {
	k := 0
	for s := range p.tr.d {
		if p.tr.parent(s) == 0 {
			k++
		}
	}
	return k
}
