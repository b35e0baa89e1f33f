package rudp

import "time"

// Config tunes an Endpoint. The zero value of every field means its
// default; Config marshals to JSON because trace headers record it.
type Config struct {
	// Seed drives the endpoint's randomness: session ids and, on a
	// server, the cookie secret. Give every endpoint its own.
	Seed uint64 `json:"seed"`
	// MaxDatagram is the largest datagram sent or accepted (default
	// 1452: fits a 1500-byte MTU under IPv6 or IPv4 headers). Each side
	// announces its own; a session uses the smaller.
	MaxDatagram int `json:"maxDatagram,omitempty"`
	// InitialWindow is the congestion window a session starts with, in
	// segments (default 10, RFC 6928).
	InitialWindow int `json:"initialWindow,omitempty"`
	// MaxWindow caps the congestion window and the segments in flight
	// (default 4096).
	MaxWindow int `json:"maxWindow,omitempty"`
	// RecvWindow is how many segments beyond the cumulative ack the
	// receiver buffers out of order; it is announced to the peer and
	// bounds the receiver's memory (default 2048).
	RecvWindow int `json:"recvWindow,omitempty"`
	// AckEvery: acknowledge every this many in-order segments (default
	// 2), unless the last acknowledgement left less than AckGap ago
	// (default 100µs): on a fast path up to AckMax segments (default 16)
	// then share one, so acks cost little at high packet rates and
	// nothing changes at low ones. AckDelay bounds how long a lone
	// segment's acknowledgement waits (default 5ms).
	AckEvery int           `json:"ackEvery,omitempty"`
	AckGap   time.Duration `json:"ackGap,omitempty"`
	AckMax   int           `json:"ackMax,omitempty"`
	AckDelay time.Duration `json:"ackDelay,omitempty"`
	// InitialRTO (default 1s, RFC 6298; data starts with 3s instead if a
	// SYN was resent, RFC 6298 §5.7), MinRTO (default 200ms; RFC 6298
	// says 1s, Linux uses 200ms) and MaxRTO (default 10s) bound the
	// retransmission timeout.
	InitialRTO time.Duration `json:"initialRTO,omitempty"`
	MinRTO     time.Duration `json:"minRTO,omitempty"`
	MaxRTO     time.Duration `json:"maxRTO,omitempty"`
	// MaxRetries is how many consecutive retransmission timeouts without
	// progress a session survives before it is aborted with "connection
	// timed out" (default 10: 62.6s from an RTO of 200ms). It alone ends
	// a session with data unacknowledged; IdleTimeout does not apply then.
	MaxRetries int `json:"maxRetries,omitempty"`
	// KeepAlive is how long a session with nothing unacknowledged may
	// hear nothing before it probes the peer (default 5s); IdleTimeout
	// how long before it gives up (default 30s). Neither applies while
	// data is unacknowledged: the retransmissions probe the peer then,
	// and MaxRetries decides.
	KeepAlive   time.Duration `json:"keepAlive,omitempty"`
	IdleTimeout time.Duration `json:"idleTimeout,omitempty"`
	// TimeWait is how long the side that closes first lingers to answer
	// a retransmitted FIN, counted from the last FIN it received
	// (default 4s: the MSL analogue is 2s).
	TimeWait time.Duration `json:"timeWait,omitempty"`
	// CookieLifetime bounds the age of a handshake cookie (default 60s).
	CookieLifetime time.Duration `json:"cookieLifetime,omitempty"`
	// MaxSessions bounds a listening endpoint's sessions (default 1024)
	// and MaxPerAddr those from one IP address (default 64).
	MaxSessions int `json:"maxSessions,omitempty"`
	MaxPerAddr  int `json:"maxPerAddr,omitempty"`
	// CC picks the congestion controller: "westwood" (default: NewReno
	// that takes a loss for noise and keeps its window when the RTT shows
	// no queue and under 2% of transmissions are lost, and otherwise
	// keeps at least 1.25 times the measured bandwidth-delay product if
	// that is more than half; doc.go says why) or "newreno" (RFC 6582
	// halving on every loss event).
	CC string `json:"cc,omitempty"`
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	dur := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.MaxDatagram, 1452)
	// MinDatagram, not the 121 bytes a SYN needs: peers refuse a SYN
	// announcing less, so a smaller one could never connect.
	c.MaxDatagram = min(max(c.MaxDatagram, MinDatagram), MaxPacket)
	def(&c.InitialWindow, 10)
	def(&c.MaxWindow, 4096)
	c.MaxWindow = min(c.MaxWindow, 1<<20)
	c.InitialWindow = min(c.InitialWindow, c.MaxWindow)
	def(&c.RecvWindow, 2048)
	c.RecvWindow = min(c.RecvWindow, 1<<20)
	def(&c.AckEvery, 2)
	def(&c.AckMax, 16)
	c.AckMax = max(c.AckMax, c.AckEvery)
	dur(&c.AckGap, 100*time.Microsecond)
	dur(&c.AckDelay, 5*time.Millisecond)
	dur(&c.InitialRTO, time.Second)
	dur(&c.MinRTO, 200*time.Millisecond)
	dur(&c.MaxRTO, 10*time.Second)
	c.MaxRTO = max(c.MaxRTO, c.MinRTO)
	def(&c.MaxRetries, 10)
	dur(&c.KeepAlive, 5*time.Second)
	dur(&c.IdleTimeout, 30*time.Second)
	dur(&c.TimeWait, 4*time.Second)
	dur(&c.CookieLifetime, 60*time.Second)
	def(&c.MaxSessions, 1024)
	def(&c.MaxPerAddr, 64)
	if c.CC != "newreno" {
		c.CC = "westwood"
	}
	return c
}
