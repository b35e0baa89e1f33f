package tftp_test

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/tftp"
	"pgregory.net/rapid"
)

// dupBench is a download in progress, driven by hand: the client
// receives blocks of dupBlksize bytes (each holding its own number, so
// a full block: never the last) in whatever order the test sends them,
// and the bench follows what the client has delivered in order and
// acknowledged.
type dupBench struct {
	c       *clientBench
	got     uint64 // blocks delivered in order ("data" events)
	lastAck uint64 // the block the client's latest ACK acknowledged
	timer   spec.Timer
	timerAt spec.Time
}

const dupBlksize = 8

func newDupBench(t *testing.T, window int) *dupBench {
	t.Helper()
	c := newClientBench(t, tftp.ClientConfig{Blksize: dupBlksize, Windowsize: window, NoTSize: true}, spec.Command{Name: "get", Args: []string{"f"}})
	d := &dupBench{c: c}
	opts := []string{"blksize", fmt.Sprint(dupBlksize)}
	if window > 1 {
		opts = append(opts, "windowsize", fmt.Sprint(window))
	}
	if acks := d.track(c.from(tid, oack(opts...))); len(acks) != 1 || acks[0] != 0 {
		t.Fatalf("the OACK drew ACKs %v, want ACK 0", acks)
	}
	return d
}

// track follows out: delivered blocks, ACKs sent (returned) and the
// retransmission timer.
func (d *dupBench) track(out []spec.Output) (acks []uint64) {
	d.c.t.Helper()
	for _, o := range out {
		switch {
		case o.Kind == spec.OutEvent && o.Event.Name == "data":
			for b := o.Event.Data; len(b) > 0; b = b[dupBlksize:] {
				d.got++
				if n := binary.BigEndian.Uint64(b); n != d.got {
					d.c.t.Fatalf("delivered block %d as block %d", n, d.got)
				}
			}
		case o.Kind == spec.OutEvent && o.Event.Name == "file-error":
			d.c.t.Fatalf("the download failed: %s", o.Event.Text)
		case o.Kind == spec.OutSend:
			p := decode(d.c.t, o.Data)
			if p.Op != tftp.OpACK {
				d.c.t.Fatalf("the client sent %v, want only ACKs", p.Op)
			}
			// No wrap: these transfers stay far below 65536 blocks.
			d.lastAck = uint64(p.Block)
			acks = append(acks, d.lastAck)
		case o.Kind == spec.OutSetTimer:
			d.timer, d.timerAt = o.Timer, o.At
		}
	}
	return acks
}

// data delivers block n and returns the ACKs it drew.
func (d *dupBench) data(n uint64) []uint64 {
	d.c.t.Helper()
	p := tftp.AppendData(nil, uint16(n))
	p = binary.BigEndian.AppendUint64(p, n)
	return d.track(d.c.from(tid, p))
}

// expire fires the retransmission timer and returns the ACKs it drew.
func (d *dupBench) expire() []uint64 {
	d.c.t.Helper()
	d.c.now = d.timerAt
	return d.track(d.c.step(spec.Input{Kind: spec.InTimer, Timer: d.timer}))
}

// doc.go: "A duplicate block is acknowledged again only if the
// receiver's last ACK covered it (that ACK may have been lost and the
// sender resent), and once until progress or the receiver's own
// timeout." A fixed run through each clause, window 4.
func TestDuplicateDataAcks(t *testing.T) {
	d := newDupBench(t, 4)
	steps := []struct {
		what  string
		block uint64 // 0: the timer fires
		want  []uint64
	}{
		{"in order", 1, nil}, {"in order", 2, nil}, {"in order", 3, nil},
		{"the window's last", 4, []uint64{4}},
		{"in order", 5, nil}, {"in order", 6, nil},
		{"duplicate our ACK 4 did not cover", 5, nil},
		{"duplicate our ACK 4 did not cover", 6, nil},
		{"duplicate our ACK 4 covered", 3, []uint64{6}},
		{"second duplicate before progress", 4, nil},
		{"third duplicate before progress", 6, nil},
		{"first duplicate of block 1, before progress", 1, nil},
		{"progress", 7, nil},
		{"duplicate after progress", 2, []uint64{7}},
		{"second duplicate after progress", 7, nil},
		{"our timeout", 0, []uint64{7}},
		{"duplicate after our timeout", 7, []uint64{7}},
		{"second duplicate after our timeout", 5, nil},
	}
	for i, s := range steps {
		var acks []uint64
		if s.block == 0 {
			acks = d.expire()
		} else {
			acks = d.data(s.block)
		}
		if fmt.Sprint(acks) != fmt.Sprint(s.want) {
			t.Fatalf("step %d, %s (block %d): ACKs %v, want %v", i, s.what, s.block, acks, s.want)
		}
	}
}

// The same rule as a property, over random arrivals (in order, early,
// duplicate) and timeouts: a duplicate draws exactly one ACK, of the
// blocks received in order, if the client's last ACK covered it and no
// duplicate drew one since the last progress or timeout, and none
// otherwise.
func TestDuplicateDataAcksProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		window := rapid.IntRange(1, 8).Draw(rt, "window")
		d := newDupBench(t, window)
		dupAcked := false // a duplicate drew an ACK since progress or timeout
		timeouts := 0     // since progress; the client gives up after 5
		for i, n := 0, rapid.IntRange(1, 200).Draw(rt, "arrivals"); i < n; i++ {
			if timeouts < 4 && rapid.IntRange(0, 15).Draw(rt, "timeout") == 0 {
				d.expire()
				dupAcked = false
				timeouts++
				continue
			}
			got, lastAck := d.got, d.lastAck
			b := rapid.Uint64Range(1, got+uint64(window)).Draw(rt, "block")
			acks := d.data(b)
			if d.got > got {
				dupAcked, timeouts = false, 0
			}
			if b > got {
				continue // not a duplicate: other rules
			}
			var want []uint64
			answered := dupAcked
			if !dupAcked && b <= lastAck {
				want = []uint64{got}
				dupAcked = true
			}
			if fmt.Sprint(acks) != fmt.Sprint(want) {
				rt.Fatalf("duplicate block %d (received %d in order, last ACK %d, a duplicate already answered: %v): ACKs %v, want %v",
					b, got, lastAck, answered, acks, want)
			}
		}
	})
}

// doc.go: a gap is reported, with one ACK for the last block received
// in order, "only on evidence of loss: a block three past the gap
// (TCP's three duplicate ACKs), the window's last block, or the
// file's", and once until progress. A fixed run through the first two
// clauses, window 8.
func TestGapAcks(t *testing.T) {
	d := newDupBench(t, 8)
	steps := []struct {
		what  string
		block uint64
		want  []uint64
	}{
		{"in order", 1, nil},
		{"one past the gap at 2", 3, nil},
		{"two past the gap", 4, nil},
		{"three past the gap", 5, []uint64{1}},
		{"four past the gap, already reported", 6, nil},
		{"the gap fills: 2..6 delivered", 2, nil},
		{"one past the gap at 7", 8, nil},
		// The last ACK was for 1: its window ends at 1+8 = 9.
		{"two past the gap, the window's last", 9, []uint64{6}},
		{"the gap fills: 7..9 delivered", 7, nil},
	}
	for i, s := range steps {
		if acks := d.data(s.block); fmt.Sprint(acks) != fmt.Sprint(s.want) {
			t.Fatalf("step %d, %s (block %d): ACKs %v, want %v", i, s.what, s.block, acks, s.want)
		}
	}
	if d.got != 9 {
		t.Fatalf("%d blocks delivered in order, want 9", d.got)
	}
}
