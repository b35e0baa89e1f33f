package p2p

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/bits"
)

// Content is a file as a server distributes it: its bytes, its chunk
// size, and the digests the protocol needs (MD5 of the whole file for
// CHECK, SHA-256 of every chunk for the hash extension, and the root that
// commits to them). It is immutable once made, so any number of machines
// may share one, in one simulation or across goroutines.
type Content struct {
	data   []byte
	chunk  int
	md5    [16]byte
	hashes [][32]byte
	root   [32]byte
}

// NewContent digests data cut into chunks of chunkSize bytes.
func NewContent(data []byte, chunkSize int) (*Content, error) {
	if chunkSize <= 0 {
		return nil, fmt.Errorf("p2p: chunk size %d", chunkSize)
	}
	c := &Content{data: data, chunk: chunkSize, md5: md5.Sum(data)}
	n := numChunks(int64(len(data)), int64(chunkSize))
	c.hashes = make([][32]byte, n)
	for i := range c.hashes {
		c.hashes[i] = sha256.Sum256(c.Chunk(i))
	}
	c.root = rootOf(c.hashes)
	return c, nil
}

// rootOf is the SHA-256 of the chunk digests concatenated in order: the
// value XHEL carries, which a HASH body must match.
func rootOf(hs [][32]byte) [32]byte {
	h := sha256.New()
	for i := range hs {
		h.Write(hs[i][:])
	}
	var r [32]byte
	h.Sum(r[:0])
	return r
}

// digests splits a HASH body into its SHA-256 digests.
func digests(b []byte) [][32]byte {
	hs := make([][32]byte, len(b)/32)
	for i := range hs {
		copy(hs[i][:], b[32*i:])
	}
	return hs
}

func numChunks(size, chunk int64) int {
	if size <= 0 {
		return 0
	}
	return int((size + chunk - 1) / chunk)
}

// Size is the file's length in bytes.
func (c *Content) Size() int64 { return int64(len(c.data)) }

// ChunkSize is the chunk length (the last chunk may be shorter).
func (c *Content) ChunkSize() int { return c.chunk }

// Chunks is the number of chunks.
func (c *Content) Chunks() int { return len(c.hashes) }

// Chunk returns chunk i's bytes, shared: callers must not modify them.
func (c *Content) Chunk(i int) []byte {
	lo := int64(i) * int64(c.chunk)
	hi := min(lo+int64(c.chunk), int64(len(c.data)))
	return c.data[lo:hi:hi]
}

// Bytes returns the whole file, shared.
func (c *Content) Bytes() []byte { return c.data }

// MD5 is the whole file's MD5.
func (c *Content) MD5() [16]byte { return c.md5 }

// Root is the SHA-256 over the chunk digests.
func (c *Content) Root() [32]byte { return c.root }

// Hashes returns the chunk digests, shared.
func (c *Content) Hashes() [][32]byte { return c.hashes }

// Store is where a peer keeps the chunks it has. It is the peer's only
// access to file content, injected so that a peer can keep the file in
// memory, on disk (the command line), or not at all (large simulations).
// The machine calls it from Step, so it must not block for long.
type Store interface {
	// Open sets the file's geometry when the server announces it (SHEL).
	// It is called again, with the same geometry, after a reconnection.
	Open(size int64, chunkSize int) error
	// Put stores chunk i. data is only valid during the call.
	Put(i int, data []byte) error
	// Get returns chunk i, which Put stored; the caller does not modify
	// it.
	Get(i int) ([]byte, error)
	// Sum returns the MD5 of the whole file; it is called once every
	// chunk is stored.
	Sum() ([16]byte, error)
	// Reset forgets every chunk (a CHECK that failed).
	Reset()
}

// MemStore keeps the file in memory: the seed's default ("留空将保存在内存
// 中").
type MemStore struct {
	// Max bounds the file size Open accepts (0: 1 GiB).
	Max   int64
	data  []byte
	chunk int
}

// Open implements Store.
func (m *MemStore) Open(size int64, chunk int) error {
	max := m.Max
	if max <= 0 {
		max = 1 << 30
	}
	if size < 0 || size > max {
		return fmt.Errorf("file of %d bytes exceeds the store's %d", size, max)
	}
	if m.data != nil {
		if int64(len(m.data)) != size || m.chunk != chunk {
			return errors.New("p2p: the file changed geometry")
		}
		return nil
	}
	m.data, m.chunk = make([]byte, size), chunk
	return nil
}

// ChunkSpan is chunk i's byte range [lo, hi) in a file of size bytes
// cut into chunks of chunk bytes, or an error if the file has no chunk
// i, or if n >= 0 is not that chunk's length (what a Store's Put is
// given must be).
func ChunkSpan(i, chunk int, size int64, n int) (lo, hi int64, err error) {
	lo = int64(i) * int64(chunk)
	if chunk <= 0 || i < 0 || lo >= size {
		return 0, 0, fmt.Errorf("p2p: chunk %d out of range", i)
	}
	hi = min(lo+int64(chunk), size)
	if n >= 0 && int64(n) != hi-lo {
		return 0, 0, fmt.Errorf("p2p: chunk %d is %d bytes, want %d", i, n, hi-lo)
	}
	return lo, hi, nil
}

// Put implements Store.
func (m *MemStore) Put(i int, data []byte) error {
	lo, hi, err := ChunkSpan(i, m.chunk, int64(len(m.data)), len(data))
	if err != nil {
		return err
	}
	copy(m.data[lo:hi], data)
	return nil
}

// Get implements Store.
func (m *MemStore) Get(i int) ([]byte, error) {
	lo, hi, err := ChunkSpan(i, m.chunk, int64(len(m.data)), -1)
	if err != nil {
		return nil, err
	}
	return m.data[lo:hi:hi], nil
}

// Sum implements Store.
func (m *MemStore) Sum() ([16]byte, error) { return md5.Sum(m.data), nil }

// Reset implements Store.
func (m *MemStore) Reset() { clear(m.data) }

// Bytes returns the file as stored.
func (m *MemStore) Bytes() []byte { return m.data }

// ErrNotCanonical is LightStore's refusal of bytes that differ from its
// content.
var ErrNotCanonical = errors.New("p2p: light store holds only the canonical content")

// LightStore holds no bytes of its own: it refers to a shared Content and
// remembers nothing but which chunks it was given. Put compares what it
// is given with the content byte for byte (a memcmp, far cheaper than the
// SHA-256 the peer has already checked) and refuses anything else, so a
// light store really does hold exactly the file it claims. A thousand
// simulated peers then cost one copy of the file, not a thousand. It
// cannot hold corrupt bytes, so a swarm that may carry them (a malicious
// peer, a server without the hash extension) needs a MemStore.
type LightStore struct {
	C *Content
}

// Open implements Store.
func (l LightStore) Open(size int64, chunk int) error {
	if size != l.C.Size() || chunk != l.C.ChunkSize() {
		return fmt.Errorf("light store has a %d-byte file in %d-byte chunks, the server announced %d in %d", l.C.Size(), l.C.ChunkSize(), size, chunk)
	}
	return nil
}

// Put implements Store.
func (l LightStore) Put(i int, data []byte) error {
	if i < 0 || i >= l.C.Chunks() {
		return fmt.Errorf("p2p: chunk %d out of range", i)
	}
	if !bytes.Equal(data, l.C.Chunk(i)) {
		return ErrNotCanonical
	}
	return nil
}

// Get implements Store.
func (l LightStore) Get(i int) ([]byte, error) {
	if i < 0 || i >= l.C.Chunks() {
		return nil, fmt.Errorf("p2p: chunk %d out of range", i)
	}
	return l.C.Chunk(i), nil
}

// Sum implements Store: the content's MD5, which is what the store holds
// since Put admits nothing else.
func (l LightStore) Sum() ([16]byte, error) { return l.C.MD5(), nil }

// Reset implements Store.
func (l LightStore) Reset() {}

// Digester is implemented by a Store that may know a chunk's SHA-256
// without hashing it. Digest returns sha256.Sum256(data) and true when it
// can tell that cheaply, or false (the peer then hashes the bytes).
type Digester interface {
	Digest(i int, data []byte) ([32]byte, bool)
}

// Digest implements Digester: bytes equal to the content's chunk (a
// memcmp) have the digest the content computed once, so a thousand
// simulated peers do not hash every chunk a thousand times (40% of a
// simulation's time). Any other bytes are left to the peer to hash.
func (l LightStore) Digest(i int, data []byte) ([32]byte, bool) {
	if i < 0 || i >= l.C.Chunks() || !bytes.Equal(data, l.C.Chunk(i)) {
		return [32]byte{}, false
	}
	return l.C.hashes[i], true
}

// bitset is a set of chunk ids.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) unset(i int)    { b[i>>6] &^= 1 << (uint(i) & 63) }
func (b bitset) count() (n int) {
	for _, w := range b {
		n += bits.OnesCount64(w)
	}
	return n
}
