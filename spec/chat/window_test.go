package chat

import (
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"pgregory.net/rapid"
)

// Whatever the network does to a sender's datagrams (duplicates,
// reorders, losses) and whenever the hold timer fires, the window
// delivers only datagrams it was given, each at most once, in strictly
// increasing order, and nothing waits longer than hold.
func TestWindowDeliversOnceInOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, 80).Draw(t, "datagrams")
		known := rapid.Bool().Draw(t, "base known")
		hold := 100 * time.Millisecond
		// Arrivals: a permutation of 1..n with some missing and some twice.
		arrivals := rapid.Permutation(seqs(n)).Draw(t, "order")
		lose := rapid.SliceOfN(rapid.IntRange(0, n-1), 0, n/3).Draw(t, "lost positions")
		dups := rapid.SliceOfN(rapid.IntRange(0, n-1), 0, n/2).Draw(t, "duplicated positions")
		for _, i := range dups {
			arrivals = append(arrivals, arrivals[i])
		}
		lost := map[int]bool{}
		for _, i := range lose {
			lost[i] = true
		}
		w := window{}
		if known {
			w.next = 1
		}
		now := spec.SimEpoch
		var got [][]byte
		st := windowStats{}
		sent := map[uint32]bool{}
		for i, s := range arrivals {
			now = now.Add(time.Duration(rapid.IntRange(0, 30).Draw(t, "gap ms")) * time.Millisecond)
			if rapid.IntRange(0, 4).Draw(t, "timer fires") == 0 {
				got = w.due(now, hold, got, &st)
			}
			if i < n && lost[i] {
				continue
			}
			sent[s] = true
			got, _ = w.push(now, s, tag(s), got, &st)
		}
		got = w.due(now.Add(hold), hold, got, &st)
		if len(w.slots) != 0 || w.bytes != 0 {
			t.Fatalf("%d datagrams (%d bytes) still wait after hold", len(w.slots), w.bytes)
		}
		var last uint32
		for _, g := range got {
			s := binary.BigEndian.Uint32(g)
			if s <= last {
				t.Fatalf("delivered %d after %d", s, last)
			}
			if !sent[s] {
				t.Fatalf("delivered %d, which never arrived", s)
			}
			last = s
		}
		if len(got)+int(st.lost) > n {
			t.Fatalf("%d delivered + %d declared lost > %d sent", len(got), st.lost, n)
		}
	})
}

func seqs(n int) []uint32 {
	s := make([]uint32, n)
	for i := range s {
		s[i] = uint32(i + 1)
	}
	return s
}

func tag(s uint32) []byte { return binary.BigEndian.AppendUint32(nil, s) }

// With no loss and the timer never firing before everything arrived,
// the window delivers everything, in order, exactly once.
func TestWindowCompleteWithoutLoss(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(1, windowSlots-1).Draw(t, "datagrams")
		arrivals := rapid.Permutation(seqs(n)).Draw(t, "order")
		dups := rapid.SliceOfN(rapid.IntRange(0, n-1), 0, n).Draw(t, "duplicated positions")
		for _, i := range dups {
			arrivals = append(arrivals, arrivals[i])
		}
		w := window{next: 1}
		var got [][]byte
		st := windowStats{}
		for _, s := range arrivals {
			got, _ = w.push(spec.SimEpoch, s, tag(s), got, &st)
		}
		if len(got) != n || st.lost != 0 {
			t.Fatalf("delivered %d of %d, %d declared lost", len(got), n, st.lost)
		}
		for i, g := range got {
			if binary.BigEndian.Uint32(g) != uint32(i+1) {
				t.Fatalf("position %d holds %d", i, binary.BigEndian.Uint32(g))
			}
		}
	})
}

// The last sequence number, 4294967295, closes the window: what follows
// it is stale, where the base once wrapped to 0 ("not known yet") and
// took the same numbers again, broadcasting them twice.
func TestWindowTopOfSequenceSpace(t *testing.T) {
	const top = 1<<32 - 1
	tests := []struct {
		name   string
		start  uint64 // the window's next
		pushes []uint32
		want   []uint32 // delivered, in order (the hold timer fires after each push)
	}{
		{"jump to the top", 1, []uint32{top, top - 1, top, 5, 1}, []uint32{top}},
		{"base unknown", 0, []uint32{top, top, 2}, []uint32{top}},
		{"reach the top in order", top - 1, []uint32{top - 1, top, top, 1, 0}, []uint32{top - 1, top}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := window{next: tc.start}
			if got := pushAll(&w, tc.pushes, true); !slices.Equal(got, tc.want) {
				t.Fatalf("delivered %v, want %v", got, tc.want)
			}
		})
	}
}

// pushAll pushes seqs into w a second apart, the hold timer firing
// after each push if fire is set, and returns what w delivered.
func pushAll(w *window, pushes []uint32, fire bool) []uint32 {
	now := spec.SimEpoch
	var got [][]byte
	st := windowStats{}
	for _, s := range pushes {
		got, _ = w.push(now, s, tag(s), got, &st)
		now = now.Add(time.Second)
		if fire {
			got = w.due(now, 100*time.Millisecond, got, &st)
		}
	}
	var seqs []uint32
	for _, g := range got {
		seqs = append(seqs, binary.BigEndian.Uint32(g))
	}
	return seqs
}

// The window's bounds, with the hold timer never firing: a datagram up
// to 31 ahead of the next waits; one 32 or more ahead slides the window
// (what it passed is stale from then on); 32 waiting datagrams go out.
func TestWindowBounds(t *testing.T) {
	upTo := func(from, to uint32) []uint32 {
		var s []uint32
		for i := from; i <= to; i++ {
			s = append(s, i)
		}
		return s
	}
	tests := []struct {
		name    string
		start   uint64
		pushes  []uint32
		want    []uint32
		waiting int
	}{
		{"31 ahead waits for the gap", 1, []uint32{32, 1}, upTo(1, 1), 1},
		{"32 ahead slides past the next", 1, []uint32{33, 1}, nil, 1},
		{"31 waiting, base known", 1, upTo(2, 32), nil, 31},
		{"32 waiting go out, base unknown", 0, upTo(2, 33), upTo(2, 33), 0},
		{"31 waiting, base unknown", 0, upTo(2, 32), nil, 31},
		{"a duplicate of one waiting", 1, []uint32{3, 3, 2, 1}, upTo(1, 3), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := window{next: tc.start}
			if got := pushAll(&w, tc.pushes, false); !slices.Equal(got, tc.want) || len(w.slots) != tc.waiting {
				t.Fatalf("delivered %v with %d waiting, want %v with %d", got, len(w.slots), tc.want, tc.waiting)
			}
		})
	}
}
