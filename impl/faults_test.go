package impl_test

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
)

// The injector does on real sockets what its statistics say: the
// receiver gets every datagram sent, less those dropped, plus one more
// copy of each duplicated one, and jitter reorders them.
func TestFaultyConnDropsDuplicatesAndReorders(t *testing.T) {
	rx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	_ = rx.SetReadBuffer(4 << 20)
	tx, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	f := impl.NewFaultyConn(tx, impl.FaultConfig{Seed: 7, Loss: 0.1, Dup: 0.2, Jitter: 5 * time.Millisecond})
	to := rx.LocalAddr().(*net.UDPAddr).AddrPort()
	// Read while sending: a burst left waiting would overflow the
	// socket buffer, and the kernel's drops would count as the
	// injector's.
	seen := map[uint64]int{}
	got, reordered := 0, 0
	done := make(chan struct{})
	go func() {
		defer close(done)
		var highest uint64
		buf := make([]byte, 64)
		for {
			// Every held copy is out within the 5 ms of jitter; a quiet
			// half second means all have arrived.
			_ = rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			k, err := rx.Read(buf)
			if err != nil {
				return
			}
			i := binary.BigEndian.Uint64(buf[:k])
			if got > 0 && i < highest && seen[i] == 0 {
				reordered++
			}
			highest = max(highest, i)
			seen[i]++
			got++
		}
	}()
	const n = 500
	for i := range n {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(i))
		if _, err := f.WriteToUDPAddrPort(b[:], to); err != nil {
			t.Fatal(err)
		}
		if i%50 == 49 {
			time.Sleep(time.Millisecond) // a paced sender, as the protocols are
		}
	}
	<-done
	st := f.Stats()
	dups := 0
	for _, c := range seen {
		dups += c - 1
	}
	t.Logf("sent %d: dropped %d, duplicated %d, delayed %d; received %d, %d copies, %d reordered", st.Sent, st.Dropped, st.Duplicated, st.Delayed, got, dups, reordered)
	if st.Sent != n || st.Dropped == 0 || st.Duplicated == 0 {
		t.Fatalf("stats %+v: want %d sent with some dropped and some duplicated", st, n)
	}
	if want := int(st.Sent - st.Dropped + st.Duplicated); got != want {
		t.Errorf("received %d datagrams, want sent - dropped + duplicated = %d", got, want)
	}
	if dups != int(st.Duplicated) || len(seen) != int(st.Sent-st.Dropped) {
		t.Errorf("%d distinct datagrams with %d extra copies, want %d and %d", len(seen), dups, st.Sent-st.Dropped, st.Duplicated)
	}
	if reordered == 0 {
		t.Error("5 ms of jitter reordered nothing")
	}
}
