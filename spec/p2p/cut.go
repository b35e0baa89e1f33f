package p2p

import (
	"log/slog"

	"github.com/netspec/netspec/spec"
)

// --- cut-through: passing a tree's bodies on as they arrive -------------------

// Every link in the trees runs at the server's rate, so a hop that waits
// for a whole chunk before passing it on adds a chunk's serialisation
// (and a sibling's copy) to every chunk's way down, and at a thousand
// peers ten such hops are a tenth of the bound. A relay passes each body
// from its parent in its home tree (the hash list, then that tree's
// chunks) to its children byte by byte as it arrives, and checks it when
// the last byte is in; a body that fails the check is followed at once,
// on each child's connection, by VOID, so the child drops it without
// blaming the relay. See "Cut-through" in the package documentation.

// cut is the body a connection from a parent is passing through.
type cut struct {
	on, off bool      // passing it on; declined (or given up) for this body
	at      spec.Time // when it started
	hash    bool      // the hash list, else chunk i
	i       int
	offset  int64
	size    int // body bytes
	sent    int // body bytes passed on
	kids    []*iconn
}

// feeds reports whether c brings this peer its home tree, whose bodies
// it passes on. Only a peer that paces by rate cuts through: a window
// counts whole responses.
func (p *Peer) feeds(c *oconn) bool {
	if p.tr.n == 0 || p.cfg.NoCut || p.pace.rate == 0 || c.gone {
		return false
	}
	s := p.tr.home()
	switch {
	case s < 0:
		return false
	case p.tr.parent(s) == 0:
		return c.server && c.ext > 0
	default:
		// As response will require: a parent that has not said XHEL
		// push is banned for its PUSH, so its body must not reach the
		// children first.
		return !c.server && c.ext > 0 && c.tsub&(1<<s) != 0
	}
}

// passOn passes the body so far (done: all of it) of hdr, arriving on c,
// to the children that take it. A body is passed through only while the
// uplink keeps up (the pacer has room): a relay with a slow uplink queues
// whole chunks, paced, as without cut-through, and its children see the
// tree lag and pull round it. It reports whether the body, now whole, is
// a chunk that was passed through and matched its digest, so that data
// need not hash it again.
func (p *Peer) passOn(now spec.Time, c *oconn, hdr Msg, body []byte, done bool, out []spec.Output) ([]spec.Output, bool) {
	x := &c.cut
	if !x.on {
		if x.off || (len(body) == 0 && !done) {
			if done {
				*x = cut{kids: x.kids[:0]}
			}
			return out, false
		}
		if !p.feeds(c) || !p.pace.ready(now) || !p.startCut(now, c, hdr) {
			x.off = !done
			return out, false
		}
	}
	if d := body[x.sent:]; len(d) > 0 {
		for _, k := range x.kids {
			if !k.gone {
				k.cutbuf = append(k.cutbuf, d...)
				p.grow(&k.wconn, 0)
				p.pace.sent(now, len(d))
			}
		}
		x.sent = len(body)
	}
	if !done {
		return out, false
	}
	return p.endCut(now, c, body, out)
}

// startCut decides whether the body hdr announces is passed on, and to
// whom, and writes its header to them.
func (p *Peer) startCut(now spec.Time, c *oconn, hdr Msg) bool {
	x := &c.cut
	x.kids = x.kids[:0]
	switch hdr.Op {
	case PUSH:
		i, ok := p.chunkAt(hdr.Offset)
		if !ok || p.hashes == nil {
			return false
		}
		if p.treeOf(i) != p.tr.home() || int64(hdr.Size) != p.chunkLen(i) || p.have.has(i) || p.pend.has(i) {
			return false
		}
		for _, k := range p.ins {
			if k.tree && k.ext && k.push && p.clear(k) && !k.holds(i) {
				x.kids = append(x.kids, k)
			}
		}
		x.hash, x.i, x.size = false, i, hdr.Size
	case HASH:
		if !p.joined || p.hashes != nil || p.root == nil || hdr.Size != p.n {
			return false
		}
		for _, k := range p.ins {
			if k.tree && k.tlist && !k.gotList && p.clear(k) && (k.nb == nil || k.nb.out == nil || !k.nb.out.hasHash) {
				x.kids = append(x.kids, k)
			}
		}
		x.hash, x.i, x.size = true, -1, 32*hdr.Size
	default:
		return false
	}
	if len(x.kids) == 0 {
		return false
	}
	x.on, x.offset, x.sent, x.at = true, hdr.Offset, 0, now
	for _, k := range x.kids {
		// What was written before goes first; what is written while the
		// body passes waits behind it (see flush).
		k.cutbuf = append(k.cutbuf, k.wbuf...)
		k.wbuf = nil
		if x.hash {
			k.cutbuf = AppendHASHHeader(k.cutbuf, hdr.Size)
		} else {
			k.cutbuf = AppendPUSHHeader(k.cutbuf, hdr.Offset, hdr.Size)
		}
		k.hold = true
		p.grow(&k.wconn, 0)
	}
	return true
}

// clear reports whether child k can take a body passed through now:
// nothing else is waiting for it, so the body is not queued behind
// older ones, and its connection is not ending.
func (p *Peer) clear(k *iconn) bool {
	return !k.gone && !k.closing && !k.hold && len(k.pushq) == 0
}

// endCut checks the body now complete: a chunk against its digest, the
// list against the root. A body that fails is voided on every child's
// connection, right behind it. It reports whether the body is a chunk
// that matched its digest.
func (p *Peer) endCut(now spec.Time, c *oconn, body []byte, out []spec.Output) ([]spec.Output, bool) {
	x := &c.cut
	var good bool
	if x.hash {
		r := rootOf(digests(body))
		good = string(r[:]) == string(p.root)
	} else {
		good = p.digest(x.i, body) == p.hashes[x.i]
	}
	for _, k := range x.kids {
		if k.gone {
			continue
		}
		k.hold = false
		switch {
		case !good:
			k.cutbuf = AppendVOID(k.cutbuf, x.offset, x.hash)
		case x.hash:
			k.gotList = true
			p.cnt.hashLists++
		default:
			k.cutLast = x.i + 1
			p.cnt.served++
		}
		p.grow(&k.wconn, 0)
	}
	if good {
		p.cnt.cut++
	} else {
		p.cnt.voided++
		out = append(out, spec.Debug("p2p: voided a body passed on", slog.String("from", p.name(c)), slog.Int("chunk", x.i)))
	}
	vetted := good && !x.hash
	*x = cut{kids: x.kids[:0]}
	return out, vetted
}

// abortCut ends a body whose sender is gone or stalled (TreeStall): the
// children get the rest as zeros, then VOID, so their streams stay
// framed and what waits behind the body goes out.
func (p *Peer) abortCut(now spec.Time, c *oconn) {
	x := &c.cut
	if x.on {
		for _, k := range x.kids {
			if k.gone {
				continue
			}
			k.cutbuf = append(k.cutbuf, make([]byte, x.size-x.sent)...)
			k.cutbuf = AppendVOID(k.cutbuf, x.offset, x.hash)
			k.hold = false
			p.pace.sent(now, x.size-x.sent)
			p.grow(&k.wconn, 0)
		}
		p.cnt.voided++
	}
	*x = cut{kids: x.kids[:0]}
}

// blameLater reports whether a body from c that fails its check may yet
// be voided: c is a tree parent, which passes bodies on before it can
// check them.
func (p *Peer) blameLater(c *oconn) bool {
	return !c.server && c.ext > 0 && c.tsub != 0
}

// suspect holds a body from c that failed its check until c's next
// message says whether c voided it.
func (p *Peer) suspect(c *oconn, chunk int, out []spec.Output) []spec.Output {
	c.suspect = chunk + 1
	if chunk < 0 {
		c.suspect = -1
	}
	return append(out, spec.Debug("p2p: body from a tree parent failed its check; blame waits for VOID", slog.String("from", p.name(c)), slog.Int("chunk", chunk)))
}

// voided settles c's suspect body on c's next message m: a VOID for it
// clears c; anything else means c vouched for the bad body, which is
// blamed on it now. It reports whether m was that VOID.
func (p *Peer) voided(now spec.Time, c *oconn, m Msg, out []spec.Output) (bool, []spec.Output) {
	list, i := c.suspect < 0, c.suspect-1
	c.suspect = 0
	if m.Op == VOID && (list && m.HaveHash || !list && !m.HaveHash && m.Offset == int64(i)*int64(p.chunk)) {
		p.cnt.voided++
		if c.voids++; c.voids > maxVoids && c.nb != nil {
			// Honest relays void a body or two when their own parent
			// turns out malicious or vanishes; one that keeps voiding
			// only wastes this peer's downlink.
			return true, p.ban(now, c.nb, "voided too many bodies", out)
		}
		return true, out
	}
	if list {
		return false, p.violation(now, c, "HASH list does not match the server's root", out)
	}
	return false, p.corrupt(now, c, i, out)
}

// maxVoids is how many bodies a parent may void before it is dropped.
const maxVoids = 8

// void takes a VOID that settles no suspect body: a chunk kept before
// the hash list came, from c, is dropped.
func (p *Peer) void(c *oconn, m Msg) {
	i, ok := p.chunkAt(m.Offset)
	if m.HaveHash || !ok {
		return
	}
	if p.pend.has(i) && p.pendFrom != nil && p.pendFrom[i] == c.nb {
		p.unpend(i)
		p.pendFrom[i] = nil
		p.cnt.voided++
		p.needFill = true
	}
}
