// Package diskstore keeps a P2P download (spec/p2p's Store) in a file on
// disk instead of in memory: each chunk is written at its offset as it
// comes and served back from there. A download of any size then costs
// the peer a few chunks of memory, where a MemStore costs the file twice
// over once the garbage collector's headroom is counted. Where the file
// lives, and when it becomes the download (cmd's PATH.part, locked and
// renamed once verified), is the caller's business.
package diskstore

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/netspec/netspec/spec/p2p"
)

// Store is a p2p.Store backed by an open file.
type Store struct {
	f     *os.File
	max   int64
	open  bool
	size  int64
	chunk int
}

// New returns a store that keeps the download in f, read and written at
// offsets, and refuses files larger than max bytes.
func New(f *os.File, max int64) *Store { return &Store{f: f, max: max} }

// Open implements p2p.Store: it sizes the file to the download.
func (s *Store) Open(size int64, chunk int) error {
	if size < 0 || size > s.max {
		return fmt.Errorf("file of %d bytes exceeds the store's %d", size, s.max)
	}
	if chunk <= 0 {
		return fmt.Errorf("diskstore: chunk size %d", chunk)
	}
	if s.open {
		if s.size != size || s.chunk != chunk {
			return errors.New("diskstore: the file changed geometry")
		}
		return nil
	}
	if err := s.f.Truncate(0); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	if err := s.f.Truncate(size); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	s.open, s.size, s.chunk = true, size, chunk
	return nil
}

func (s *Store) span(i, n int) (int64, int64, error) {
	if !s.open {
		return 0, 0, fmt.Errorf("diskstore: chunk %d: not open", i)
	}
	return p2p.ChunkSpan(i, s.chunk, s.size, n)
}

// Put implements p2p.Store.
func (s *Store) Put(i int, data []byte) error {
	lo, _, err := s.span(i, len(data))
	if err != nil {
		return err
	}
	if _, err := s.f.WriteAt(data, lo); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	return nil
}

// Get implements p2p.Store.
func (s *Store) Get(i int) ([]byte, error) {
	lo, hi, err := s.span(i, -1)
	if err != nil {
		return nil, err
	}
	b := make([]byte, hi-lo)
	if _, err := s.f.ReadAt(b, lo); err != nil {
		return nil, fmt.Errorf("diskstore: %w", err)
	}
	return b, nil
}

// Sum implements p2p.Store: the MD5 of the file as written.
func (s *Store) Sum() ([16]byte, error) {
	if !s.open {
		return [16]byte{}, errors.New("diskstore: not open")
	}
	h := md5.New()
	if _, err := io.Copy(h, io.NewSectionReader(s.f, 0, s.size)); err != nil {
		return [16]byte{}, fmt.Errorf("diskstore: %w", err)
	}
	return [16]byte(h.Sum(nil)), nil
}

// Reset implements p2p.Store: every byte back to zero.
func (s *Store) Reset() {
	if s.open {
		_ = s.f.Truncate(0)
		_ = s.f.Truncate(s.size)
	}
}
