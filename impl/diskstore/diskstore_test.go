package diskstore_test

import (
	"bytes"
	"crypto/md5"
	"os"
	"path/filepath"
	"testing"

	"github.com/netspec/netspec/impl/diskstore"
	"github.com/netspec/netspec/spec/p2p"
)

var _ p2p.Store = (*diskstore.Store)(nil)

func file(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + i>>8)
	}
	return b
}

// Chunks written in any order come back, the MD5 is the file's, and
// only Commit makes PATH appear.
func TestStoreCommits(t *testing.T) {
	const size, chunk = 100_000, 16384
	want := file(size)
	path := filepath.Join(t.TempDir(), "out.bin")
	s := diskstore.New(path, 1<<20)
	if err := s.Open(size, chunk); err != nil {
		t.Fatal(err)
	}
	n := (size + chunk - 1) / chunk
	for i := n - 1; i >= 0; i-- {
		if err := s.Put(i, want[i*chunk:min((i+1)*chunk, size)]); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if err := s.Open(size, chunk); err != nil {
		t.Fatalf("reopening with the same geometry: %v", err)
	}
	for i := 0; i < n; i++ {
		got, err := s.Get(i)
		if err != nil || !bytes.Equal(got, want[i*chunk:min((i+1)*chunk, size)]) {
			t.Fatalf("get %d: %d bytes, %v", i, len(got), err)
		}
	}
	if sum, err := s.Sum(); err != nil || sum != md5.Sum(want) {
		t.Fatalf("sum %x, %v; want %x", sum, err, md5.Sum(want))
	}
	if _, err := os.Stat(path); err == nil {
		t.Fatal("PATH exists before Commit")
	}
	if err := s.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(n - 1); !bytes.Equal(got, want[(n-1)*chunk:]) {
		t.Fatal("the store stopped serving after Commit")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(path); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("committed file: %d bytes, %v", len(got), err)
	}
	if _, err := os.Stat(s.Part()); err == nil {
		t.Fatal("PATH.part left after Commit")
	}
}

// A download closed before Commit leaves neither PATH nor PATH.part;
// Reset zeroes what was written.
func TestStoreAbandoned(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.bin")
	s := diskstore.New(path, 1<<20)
	if err := s.Open(10, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(1, []byte("abcd")); err != nil {
		t.Fatal(err)
	}
	s.Reset()
	if got, err := s.Get(1); err != nil || !bytes.Equal(got, make([]byte, 4)) {
		t.Fatalf("after Reset chunk 1 is %q, %v", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, s.Part()} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s left behind", p)
		}
	}
}

// What a server may announce or a peer may send is checked.
func TestStoreRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.bin")
	for _, tc := range []struct {
		name string
		do   func(s *diskstore.Store) error
	}{
		{"too large", func(s *diskstore.Store) error { return s.Open(1001, 10) }},
		{"negative size", func(s *diskstore.Store) error { return s.Open(-1, 10) }},
		{"zero chunk", func(s *diskstore.Store) error { return s.Open(100, 0) }},
		{"new geometry", func(s *diskstore.Store) error { _ = s.Open(100, 10); return s.Open(100, 20) }},
		{"chunk out of range", func(s *diskstore.Store) error { _ = s.Open(100, 10); return s.Put(10, make([]byte, 10)) }},
		{"negative chunk", func(s *diskstore.Store) error { _ = s.Open(100, 10); _, err := s.Get(-1); return err }},
		{"short chunk", func(s *diskstore.Store) error { _ = s.Open(100, 10); return s.Put(3, make([]byte, 9)) }},
		{"short last chunk", func(s *diskstore.Store) error { _ = s.Open(95, 10); return s.Put(9, make([]byte, 10)) }},
		{"get before open", func(s *diskstore.Store) error { _, err := s.Get(0); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := diskstore.New(path, 1000)
			defer s.Close()
			if err := tc.do(s); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
