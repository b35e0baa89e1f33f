// Package diskstore keeps a P2P download (spec/p2p's Store) in a file on
// disk instead of in memory: each chunk is written at its offset in
// PATH.part as it comes, served back from there, and the file is renamed
// to PATH only once the whole of it has been verified. A download of any
// size then costs the peer a few chunks of memory, where a MemStore costs
// the file twice over once the garbage collector's headroom is counted.
package diskstore

import (
	"crypto/md5"
	"errors"
	"fmt"
	"io"
	"os"
)

// Store is a p2p.Store backed by PATH.part.
type Store struct {
	path  string
	max   int64
	f     *os.File
	size  int64
	chunk int
	done  bool // renamed to path
}

// New returns a store that will write to path+".part" and refuses files
// larger than max bytes.
func New(path string, max int64) *Store { return &Store{path: path, max: max} }

// Part is the file the chunks are written to until Commit.
func (s *Store) Part() string { return s.path + ".part" }

// Open implements p2p.Store: it creates PATH.part, sized to the file.
func (s *Store) Open(size int64, chunk int) error {
	if size < 0 || size > s.max {
		return fmt.Errorf("file of %d bytes exceeds the store's %d", size, s.max)
	}
	if chunk <= 0 {
		return fmt.Errorf("diskstore: chunk size %d", chunk)
	}
	if s.f != nil {
		if s.size != size || s.chunk != chunk {
			return errors.New("diskstore: the file changed geometry")
		}
		return nil
	}
	f, err := os.OpenFile(s.Part(), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(s.Part())
		return fmt.Errorf("diskstore: %w", err)
	}
	s.f, s.size, s.chunk = f, size, chunk
	return nil
}

func (s *Store) span(i int) (int64, int64, error) {
	lo := int64(i) * int64(s.chunk)
	if s.f == nil || i < 0 || lo >= s.size {
		return 0, 0, fmt.Errorf("diskstore: chunk %d out of range", i)
	}
	return lo, min(lo+int64(s.chunk), s.size), nil
}

// Put implements p2p.Store.
func (s *Store) Put(i int, data []byte) error {
	lo, hi, err := s.span(i)
	if err != nil {
		return err
	}
	if int64(len(data)) != hi-lo {
		return fmt.Errorf("diskstore: chunk %d is %d bytes, want %d", i, len(data), hi-lo)
	}
	if _, err := s.f.WriteAt(data, lo); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	return nil
}

// Get implements p2p.Store.
func (s *Store) Get(i int) ([]byte, error) {
	lo, hi, err := s.span(i)
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
	if s.f == nil {
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
	if s.f != nil {
		_ = s.f.Truncate(0)
		_ = s.f.Truncate(s.size)
	}
}

// Size is the file's size, once opened.
func (s *Store) Size() int64 { return s.size }

// Commit flushes PATH.part to disk and renames it to PATH: call it once
// the file is verified. The store keeps serving chunks from it.
func (s *Store) Commit() error {
	if s.f == nil {
		return errors.New("diskstore: not open")
	}
	if s.done {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	if err := os.Rename(s.Part(), s.path); err != nil {
		return fmt.Errorf("diskstore: %w", err)
	}
	s.done = true
	return nil
}

// Close closes the file; a download never committed is removed, so an
// interrupted or failed one leaves nothing that looks like the file.
func (s *Store) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	if !s.done {
		if rerr := os.Remove(s.Part()); err == nil && !errors.Is(rerr, os.ErrNotExist) {
			err = rerr
		}
	}
	return err
}
