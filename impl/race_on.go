//go:build race

package impl

// raceEnabled is set in -race builds. There x/net tells the race detector
// that every batched read writes all of its buffers (16 x 64 KiB), which
// made race-enabled tests crawl (lock-step TFTP: 0.5 s -> 10.8 s), so such
// builds read one datagram per system call; everything else is the same.
const raceEnabled = true
