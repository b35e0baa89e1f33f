package stream

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"time"

	"github.com/netspec/netspec/spec"
)

// cookieJar makes and checks the stateless address-validation cookies of
// doc.go ("Address validation"), like DTLS's HelloVerifyRequest cookie
// (RFC 6347 §4.2.1) or QUIC's Retry token (RFC 9000 §8.1.2): an HMAC over
// the client's address, port and SSRC and the time it was issued, so the
// server keeps no state for a join until the client proves it receives at
// its address.
type cookieJar struct {
	mac      hash.Hash
	lifetime time.Duration
	buf      []byte
	sum      []byte
}

func newCookieJar(key []byte, lifetime time.Duration) *cookieJar {
	return &cookieJar{mac: hmac.New(sha256.New, key), lifetime: lifetime}
}

// Domain-separation labels, so a cookie can never pass as a token.
const (
	labelCookie = "netspec-stream cookie v1"
	labelToken  = "netspec-stream token v1"
)

func (j *cookieJar) digest(label string, addr netip.AddrPort, ssrc uint32, t uint64) []byte {
	b := append(j.buf[:0], label...)
	a := addr.Addr().As16() // IPv4 as v4-mapped: one encoding per address
	b = append(b, a[:]...)
	b = binary.BigEndian.AppendUint16(b, addr.Port())
	b = binary.BigEndian.AppendUint32(b, ssrc)
	b = binary.BigEndian.AppendUint64(b, t)
	j.buf = b
	j.mac.Reset()
	j.mac.Write(b)
	j.sum = j.mac.Sum(j.sum[:0])
	return j.sum
}

// cookie returns the cookie for addr and ssrc at now: the issue time in
// whole seconds (uint32, big-endian) and 16 bytes of HMAC-SHA256.
func (j *cookieJar) cookie(now spec.Time, addr netip.AddrPort, ssrc uint32) []byte {
	t := uint32(int64(now) / int64(time.Second))
	c := make([]byte, CookieSize)
	binary.BigEndian.PutUint32(c, t)
	copy(c[4:], j.digest(labelCookie, addr, ssrc, uint64(t))[:CookieSize-4])
	return c
}

// cookieVerdict says why a cookie was or was not accepted.
type cookieVerdict uint8

const (
	cookieOK cookieVerdict = iota
	cookieBad
	cookieExpired
)

// check verifies a cookie echoed from addr with ssrc at now. A cookie is
// good for lifetime after it was issued (rounded down to a second), and
// one from the future is bad.
func (j *cookieJar) check(now spec.Time, addr netip.AddrPort, ssrc uint32, c []byte) cookieVerdict {
	if len(c) < CookieSize {
		return cookieBad
	}
	t := binary.BigEndian.Uint32(c)
	if !hmac.Equal(c[4:CookieSize], j.digest(labelCookie, addr, ssrc, uint64(t))[:CookieSize-4]) {
		return cookieBad
	}
	issued := spec.Time(int64(t) * int64(time.Second))
	age := now.Sub(issued)
	switch {
	case age < 0:
		return cookieBad
	case age > j.lifetime+time.Second:
		return cookieExpired
	}
	return cookieOK
}

// token returns the consent token of a subscription that began at since:
// reports and BYEs must carry it, so an off-path attacker can neither keep
// a departed subscriber's stream alive nor end a live one.
func (j *cookieJar) token(addr netip.AddrPort, ssrc uint32, since spec.Time) [TokenSize]byte {
	var t [TokenSize]byte
	copy(t[:], j.digest(labelToken, addr, ssrc, uint64(since)))
	return t
}
