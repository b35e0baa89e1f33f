package spec

import "math/rand/v2"

// Rand is the only source of randomness a machine may use. It is seeded
// from the machine's configuration, so the same seed and the same inputs
// give the same outputs in the simulator, on sockets and in replay.
type Rand struct {
	*rand.Rand
}

// NewRand returns a deterministic generator for seed.
func NewRand(seed uint64) Rand {
	return Rand{rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Bytes fills b with random bytes.
func (r Rand) Bytes(b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// Mix hashes seed and an index k into 64 well-mixed bits (SplitMix64's
// step and finaliser): a word of deterministic random data addressed by
// k, or a value folded into a draw.
func Mix(seed, k uint64) uint64 {
	z := seed + (k+1)*0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}
