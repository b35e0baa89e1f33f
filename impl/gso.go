package impl

import (
	"encoding/binary"
	"errors"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Generic segmentation offload: a run of datagrams to one destination
// whose sizes are equal (the last may be shorter) leaves as one message
// whose payloads are separate iovecs and whose UDP_SEGMENT control message
// tells the kernel where to cut, so a window of equal segments costs the
// sender one trip down the stack instead of one per datagram.
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 65000
)

// gsoControl is the control message asking for segments of size bytes.
func gsoControl(size int) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level = unix.IPPROTO_UDP
	h.Type = unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], uint16(size))
	return b
}

// gsoRun returns how many datagrams from the start of run can go out as
// one segmented message (1: send it alone).
func gsoRun(run []pendingSend) int {
	if len(run) < 2 {
		return len(run)
	}
	size := len(run[0].data)
	if size == 0 {
		return 1
	}
	n, total := 1, size
	for n < len(run) && n < gsoMaxSegments {
		p := run[n]
		if p.to != run[0].to || p.from != run[0].from || len(p.data) > size || len(p.data) == 0 || total+len(p.data) > gsoMaxBytes {
			break
		}
		n++
		total += len(p.data)
		if len(p.data) < size {
			break // a shorter segment can only be the last
		}
	}
	return n
}

// gsoUnsupported reports errors that mean the socket or device cannot
// segment, so the runner stops trying on it.
func gsoUnsupported(err error) bool {
	return errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EIO) || errors.Is(err, syscall.ENOPROTOOPT) || errors.Is(err, syscall.EOPNOTSUPP)
}
