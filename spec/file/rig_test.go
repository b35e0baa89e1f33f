package file

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/netip"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

var (
	rigServer = netip.MustParseAddrPort("10.0.0.1:6000")
	rigClient = netip.MustParseAddrPort("10.0.0.2:7000")
)

// sessionRig connects one machine under test (a Server or a Client) to a
// bare rudp endpoint the test plays by hand, over a lossless network on
// which every datagram takes 1 ms: the test decides what the endpoint
// writes, sees the stream it receives, and may have it never
// acknowledge anything.
type sessionRig struct {
	t        testing.TB
	m        spec.Machine
	mAddr    netip.AddrPort
	ep       *rudp.Endpoint
	epAddr   netip.AddrPort
	conn     rudp.ConnID // the endpoint's session, once dialled or accepted
	now      spec.Time
	mTimers  map[spec.Timer]spec.Time
	epTimers map[spec.Timer]spec.Time
	toM      [][]byte // datagrams in flight to the machine
	toEp     [][]byte // and to the endpoint
	stream   []byte   // what the endpoint received on its session
	events   []spec.Event
	exited   bool
	// dropData drops the machine's data segments on the way: a peer
	// that reads nothing and acknowledges nothing.
	dropData bool
	// onOpen runs when the endpoint's session opens (after a dial, or
	// on accepting the machine's), before the endpoint flushes.
	onOpen func()
	// afterStep, if set, checks the machine after each of its steps;
	// sent is what that step sent, in datagram bytes.
	afterStep func(sent int)
}

func newSessionRig(t testing.TB, m spec.Machine, mAddr netip.AddrPort, ep *rudp.Endpoint, epAddr netip.AddrPort) *sessionRig {
	return &sessionRig{t: t, m: m, mAddr: mAddr, ep: ep, epAddr: epAddr, now: spec.SimEpoch,
		mTimers: map[spec.Timer]spec.Time{}, epTimers: map[spec.Timer]spec.Time{}}
}

// start starts the machine, answering its bind with mAddr.
func (r *sessionRig) start() { r.stepM(spec.Input{Kind: spec.InStart}) }

// dial opens the endpoint's session to the machine.
func (r *sessionRig) dial() {
	r.conn = r.ep.Dial(r.now, r.mAddr)
	if r.onOpen != nil {
		r.onOpen()
	}
	r.flushEp(nil)
}

// write queues bytes on the endpoint's session.
func (r *sessionRig) write(b []byte) {
	if err := r.ep.Write(r.conn, b); err != nil {
		r.t.Fatalf("endpoint write: %v", err)
	}
	r.flushEp(nil)
}

func (r *sessionRig) stepM(in spec.Input) {
	if r.exited {
		return
	}
	sent := 0
	var binds []spec.Output
	for _, o := range r.m.Step(r.now, in, nil) {
		switch o.Kind {
		case spec.OutBind:
			binds = append(binds, o)
		case spec.OutSend:
			if o.Addr != r.epAddr {
				r.t.Fatalf("the machine sent to %v, its peer is %v", o.Addr, r.epAddr)
			}
			sent += len(o.Data)
			r.toEp = append(r.toEp, o.Data)
		case spec.OutSetTimer:
			r.mTimers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(r.mTimers, o.Timer)
		case spec.OutEvent:
			r.events = append(r.events, o.Event)
		case spec.OutExit:
			r.exited = true
		}
	}
	if r.afterStep != nil {
		r.afterStep(sent)
	}
	for _, b := range binds {
		r.stepM(spec.Input{Kind: spec.InBound, Sock: b.Sock, Addr: r.mAddr})
	}
}

func (r *sessionRig) stepEp(in spec.Input) {
	out, _ := r.ep.Handle(r.now, in, nil)
	r.flushEp(out)
}

func (r *sessionRig) flushEp(out []spec.Output) {
	for ev, ok := r.ep.Next(); ok; ev, ok = r.ep.Next() {
		switch ev.Kind {
		case rudp.Accepted:
			r.conn = ev.Conn
			if r.onOpen != nil {
				r.onOpen()
			}
		case rudp.Data:
			r.stream = append(r.stream, ev.Data...)
		}
	}
	for _, o := range r.ep.Flush(r.now, out) {
		switch o.Kind {
		case spec.OutSend:
			r.toM = append(r.toM, o.Data)
		case spec.OutSetTimer:
			r.epTimers[o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(r.epTimers, o.Timer)
		}
	}
}

// run delivers datagrams and fires timers, in time order, for d.
func (r *sessionRig) run(d time.Duration) {
	end := r.now.Add(d)
	for i := 0; ; i++ {
		if i > 1_000_000 {
			r.t.Fatalf("no end to the exchange at %v", r.now.Sub(spec.SimEpoch))
		}
		tm, at, ep, ok := r.earliest()
		if len(r.toM)+len(r.toEp) > 0 && (!ok || at > r.now.Add(time.Millisecond)) {
			r.now = r.now.Add(time.Millisecond)
			if r.now > end {
				break
			}
			toM, toEp := r.toM, r.toEp
			r.toM, r.toEp = nil, nil
			for _, b := range toEp {
				if r.dropData && isData(b) {
					continue
				}
				r.stepEp(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: r.mAddr, Data: b})
			}
			for _, b := range toM {
				r.stepM(spec.Input{Kind: spec.InDatagram, Sock: sockUDP, Addr: r.epAddr, Data: b})
			}
			continue
		}
		if !ok || at > end {
			break
		}
		r.now = max(r.now, at)
		if ep {
			delete(r.epTimers, tm)
			r.stepEp(spec.Input{Kind: spec.InTimer, Timer: tm})
		} else {
			delete(r.mTimers, tm)
			r.stepM(spec.Input{Kind: spec.InTimer, Timer: tm})
		}
	}
	r.now = max(r.now, end)
}

// earliest is the next timer to fire: the machine's first among equals,
// then the lowest id, so runs are deterministic.
func (r *sessionRig) earliest() (spec.Timer, spec.Time, bool, bool) {
	var tm spec.Timer
	var at spec.Time
	ep, ok := false, false
	for i, timers := range []map[spec.Timer]spec.Time{r.mTimers, r.epTimers} {
		for k, v := range timers {
			sameMap := (i == 1) == ep
			if !ok || v < at || v == at && sameMap && k < tm {
				tm, at, ep, ok = k, v, i == 1, true
			}
		}
	}
	return tm, at, ep, ok
}

func isData(b []byte) bool {
	var p rudp.Packet
	return rudp.Decode(b, &p) == nil && p.Type == rudp.TypeSEG && p.Flags&rudp.FlagDATA != 0
}

// answers checks a server's answer stream as a frameHandler: frames of
// the right types and shapes, DATA only inside a transfer and exactly
// the file's bytes, END only after all of them and with the file's
// SHA-256. Files are the root the server serves.
type answers struct {
	files   map[string][]byte
	replies []string // REPLY texts, "ok: " or "error: " first
	ends    int      // transfers completed with END
	starts  []uint64 // the offset of each FILE
	x       *fileHeader
	got     uint64 // bytes of the transfer so far
}

func newAnswers(files []SynthFile) *answers {
	a := &answers{files: map[string][]byte{}}
	for _, f := range files {
		b := make([]byte, f.Size)
		SynthBytes(f.Seed, 0, b)
		a.files[f.Name] = b
	}
	return a
}

// answered is how many requests the stream has answered so far.
func (a *answers) answered() int { return len(a.replies) + a.ends }

func (a *answers) frame(typ byte, body []byte) error {
	switch typ {
	case FrameReply:
		if len(body) < 1 || body[0] > StatusError {
			return fmt.Errorf("REPLY without a status: %q", body)
		}
		if a.x != nil && body[0] != StatusError {
			return fmt.Errorf("REPLY ok inside a transfer of %s", a.x.name)
		}
		if !utf8.Valid(body[1:]) {
			return fmt.Errorf("REPLY text is not UTF-8: %.60q", body[1:])
		}
		a.x = nil
		a.replies = append(a.replies, [...]string{"ok: ", "error: "}[body[0]]+string(body[1:]))
	case FrameFile:
		if a.x != nil {
			return fmt.Errorf("FILE inside a transfer of %s", a.x.name)
		}
		h, err := decodeFile(body)
		if err != nil {
			return err
		}
		if f, ok := a.files[h.name]; !ok || h.size != uint64(len(f)) {
			return fmt.Errorf("FILE %s of %d bytes: not a file of the root", h.name, h.size)
		}
		a.x, a.got = &h, 0
		a.starts = append(a.starts, h.offset)
	case FrameEnd:
		if a.x == nil || a.x.offset+a.got != a.x.size {
			return fmt.Errorf("END outside a transfer, or before its last byte")
		}
		if sum := sha256.Sum256(a.files[a.x.name]); !bytes.Equal(body, sum[:]) {
			return fmt.Errorf("END of %s: %x is not the file's SHA-256", a.x.name, body)
		}
		a.x = nil
		a.ends++
	case FrameChat:
	default:
		return fmt.Errorf("frame type 0x%02x from a server", typ)
	}
	return nil
}

func (a *answers) dataBegin(n int) error {
	if a.x == nil || a.x.offset+a.got+uint64(n) > a.x.size {
		return fmt.Errorf("DATA of %d bytes outside a transfer or past its end", n)
	}
	return nil
}

func (a *answers) data(b []byte) error {
	at := a.x.offset + a.got
	if want := a.files[a.x.name][at : at+uint64(len(b))]; !bytes.Equal(b, want) {
		return fmt.Errorf("DATA at %d of %s is not the file's bytes", at, a.x.name)
	}
	a.got += uint64(len(b))
	return nil
}
