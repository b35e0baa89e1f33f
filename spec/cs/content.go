package cs

import (
	"crypto/md5"
	"fmt"

	"github.com/netspec/netspec/spec"
)

// DefaultFileSize is the seed's default file: 10 MB of random bytes. The
// Kurose–Ross figures in the seed (8.0 s at 10 Mbit/s) take F = 10^7
// bytes, so netspec does too.
const DefaultFileSize = 10_000_000

// FileSpec names a file of random bytes generated deterministically:
// the same Seed and Size give the same bytes everywhere (server, client,
// simulator, replay), so configurations can name files without holding
// them.
type FileSpec struct {
	Seed uint64 `json:"seed"`
	Size int64  `json:"size"`
}

// MaxGenerated bounds the size of a generated file (1 GiB): servers hold
// what they serve in memory, and the simulator's experiments stop there.
const MaxGenerated = 1 << 30

// Generate returns the bytes of f: the output of spec.NewRand(f.Seed),
// 8 little-endian bytes per draw.
func Generate(f FileSpec) ([]byte, error) {
	if f.Size < 0 || f.Size > MaxGenerated {
		return nil, fmt.Errorf("cs: generated file size %d out of range [0, %d]", f.Size, int64(MaxGenerated))
	}
	b := make([]byte, f.Size)
	Fill(f.Seed, b)
	return b, nil
}

// Fill writes the generated file of seed into b: the first len(b) bytes
// of what Generate returns.
func Fill(seed uint64, b []byte) { spec.NewRand(seed).Bytes(b) }

// Digest is the MD5 of b, the checksum the seed's CHECK carries.
func Digest(b []byte) [16]byte { return md5.Sum(b) }
