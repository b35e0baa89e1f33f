package rudp

import (
	"testing"
	"time"
)

// TestReorderWindowWidens pins the RFC 8985 reordering window that doc.go
// describes: a quarter of the minimum RTT once reordering is seen, a
// quarter more per spurious retransmission, at most 16 quarters and never
// beyond SRTT.
func TestReorderWindowWidens(t *testing.T) {
	const rtt = 40 * time.Millisecond
	c := &Conn{ep: &Endpoint{cfg: Config{MinRTO: time.Millisecond, MaxRTO: time.Minute}}}
	c.sampleRTT(rtt)
	if got, want := c.lossDelay(), rtt*9/8; got != want {
		t.Fatalf("before reordering: loss delay %v, want 9/8 RTT %v", got, want)
	}
	c.reordered = true
	if got, want := c.lossDelay(), rtt+rtt/4; got != want {
		t.Fatalf("reordering seen: loss delay %v, want RTT + minRTT/4 = %v", got, want)
	}
	c.srtt = time.Hour // lift the SRTT cap to see the quarter cap
	for i := 1; i <= 20; i++ {
		c.onSpurious(0)
		q := min(1+i, 16)
		if got, want := c.lossDelay(), c.srtt+time.Duration(q)*rtt/4; got != want {
			t.Fatalf("after %d spurious retransmissions: loss delay %v, want SRTT + %d quarters = %v", i, got, q, want)
		}
	}
	c.srtt = 2 * rtt
	if got, want := c.lossDelay(), c.srtt+c.srtt; got != want {
		t.Fatalf("window above SRTT: loss delay %v, want SRTT + SRTT = %v", got, want)
	}
}
