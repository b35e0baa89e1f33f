package p2p

import (
	"encoding/hex"
	"net/netip"
	"strconv"
)

// crlf ends every header line and JSON body netspec writes.
const crlf = "\r\n"

// AppendCHEL appends "CHEL port".
func AppendCHEL(b []byte, port uint16) []byte {
	b = append(b, "CHEL "...)
	b = strconv.AppendUint(b, uint64(port), 10)
	return append(b, crlf...)
}

// AppendSHEL appends "SHEL filesize chunksize" and the peer list as a
// compact JSON array of [ip, port] pairs on one line.
func AppendSHEL(b []byte, fileSize, chunkSize int64, peers []netip.AddrPort) []byte {
	b = append(b, "SHEL "...)
	b = strconv.AppendInt(b, fileSize, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, chunkSize, 10)
	b = append(b, crlf...)
	b = append(b, '[')
	for i, p := range peers {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `["`...)
		b = append(b, p.Addr().String()...)
		b = append(b, `",`...)
		b = strconv.AppendUint(b, uint64(p.Port()), 10)
		b = append(b, ']')
	}
	b = append(b, ']')
	return append(b, crlf...)
}

// AppendOp appends a message with no arguments: PHEL, CLREQ, DANY, HREQ,
// DCAN.
func AppendOp(b []byte, op Op) []byte {
	b = append(b, op.String()...)
	return append(b, crlf...)
}

// AppendCLRSP appends "CLRSP" and the chunk ids as a compact JSON array.
func AppendCLRSP(b []byte, chunks []int) []byte {
	b = append(b, "CLRSP"+crlf+"["...)
	for i, c := range chunks {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendInt(b, int64(c), 10)
	}
	b = append(b, ']')
	return append(b, crlf...)
}

// clrspMax bounds the length of a CLRSP that lists every one of n
// chunks.
func clrspMax(n int) int {
	digits := len(strconv.Itoa(max(n-1, 0)))
	return len("CLRSP\r\n[]\r\n") + n*(digits+1)
}

// unreadCap is how many bytes of unpaced answers a node lets a
// connection leave unread (MaxUnread, 0: the default): 256 KiB, or four
// lists of every chunk if that is more, so that a client asking for the
// list now and then never comes near it.
func unreadCap(cfg, chunks int) int {
	if cfg > 0 {
		return cfg
	}
	return max(256<<10, 4*clrspMax(chunks))
}

// AppendDREQ appends "DREQ chunkid".
func AppendDREQ(b []byte, chunk int) []byte {
	b = append(b, "DREQ "...)
	b = strconv.AppendInt(b, int64(chunk), 10)
	return append(b, crlf...)
}

// AppendDATAHeader appends "DATA offset size"; size raw bytes must follow.
func AppendDATAHeader(b []byte, offset int64, size int) []byte {
	return appendChunkHeader(b, "DATA ", offset, size)
}

// AppendPUSHHeader appends "PUSH offset size"; size raw bytes must follow.
func AppendPUSHHeader(b []byte, offset int64, size int) []byte {
	return appendChunkHeader(b, "PUSH ", offset, size)
}

func appendChunkHeader(b []byte, op string, offset int64, size int) []byte {
	b = append(b, op...)
	b = strconv.AppendInt(b, offset, 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(size), 10)
	return append(b, crlf...)
}

// AppendCHECK appends "CHECK md5" with the digest in lower-case hex.
func AppendCHECK(b []byte, sum [16]byte) []byte {
	b = append(b, "CHECK "...)
	b = hex.AppendEncode(b, sum[:])
	return append(b, crlf...)
}

// AppendERROR appends "ERROR id".
func AppendERROR(b []byte, id string) []byte {
	b = append(b, "ERROR "...)
	b = append(b, id...)
	return append(b, crlf...)
}

// AppendXHEL appends "XHEL version [root] [rate]".
func AppendXHEL(b []byte, root []byte, paced bool) []byte {
	return appendXHEL(b, root, paced, false, false)
}

func appendXHEL(b []byte, root []byte, paced, push, tree bool) []byte {
	b = append(b, "XHEL "...)
	b = strconv.AppendInt(b, Version, 10)
	if len(root) == 32 {
		b = append(b, ' ')
		b = hex.AppendEncode(b, root)
	}
	if paced {
		b = append(b, " rate"...)
	}
	if push {
		b = append(b, " push"...)
	}
	if tree {
		b = append(b, " tree"...)
	}
	return append(b, crlf...)
}

// AppendTREE appends "TREE id n d".
func AppendTREE(b []byte, id, n, d int) []byte {
	b = append(b, "TREE "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(n), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(d), 10)
	return append(b, crlf...)
}

// AppendPARENT appends "PARENT stripe ip port".
func AppendPARENT(b []byte, stripe int, a netip.AddrPort) []byte {
	b = append(b, "PARENT "...)
	b = strconv.AppendInt(b, int64(stripe), 10)
	b = append(b, ' ')
	b = a.Addr().AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(a.Port()), 10)
	return append(b, crlf...)
}

// AppendTSUB appends "TSUB id stripe".
func AppendTSUB(b []byte, id, stripe int) []byte {
	b = append(b, "TSUB "...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(stripe), 10)
	return append(b, crlf...)
}

// maxHaveLine keeps HAVE lines well under the parsers' line limit.
const maxHaveLine = 1024

// AppendHAVE appends "HAVE [HASH] id..." lines for chunks (split so no
// line is longer than about a kilobyte).
func AppendHAVE(b []byte, hash bool, chunks []int) []byte {
	if !hash && len(chunks) == 0 {
		return b
	}
	start := len(b)
	b = append(b, "HAVE"...)
	if hash {
		b = append(b, " HASH"...)
	}
	for _, c := range chunks {
		if len(b)-start > maxHaveLine {
			b = append(b, crlf+"HAVE"...)
			start = len(b) - 4
		}
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(c), 10)
	}
	return append(b, crlf...)
}

// AppendDCAN appends "DCAN chunkid" (chunk < 0: "DCAN", withdrawing a
// DANY).
func AppendDCAN(b []byte, chunk int) []byte {
	if chunk < 0 {
		return AppendOp(b, DCAN)
	}
	b = append(b, "DCAN "...)
	b = strconv.AppendInt(b, int64(chunk), 10)
	return append(b, crlf...)
}

// AppendVOID appends "VOID offset", or "VOID HASH" if hash: the body
// just passed on does not match its digest (see "Cut-through").
func AppendVOID(b []byte, offset int64, hash bool) []byte {
	if hash {
		return append(b, "VOID HASH\r\n"...)
	}
	b = append(b, "VOID "...)
	b = strconv.AppendInt(b, offset, 10)
	return append(b, crlf...)
}

// AppendHASHHeader appends "HASH n"; n 32-byte digests must follow.
func AppendHASHHeader(b []byte, n int) []byte {
	b = append(b, "HASH "...)
	b = strconv.AppendInt(b, int64(n), 10)
	return append(b, crlf...)
}
