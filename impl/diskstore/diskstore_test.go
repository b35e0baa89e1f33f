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

func tempFile(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "out.part"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// Chunks written in any order come back, the file holds exactly them,
// and the MD5 is the file's.
func TestStoreKeepsChunks(t *testing.T) {
	const size, chunk = 100_000, 16384
	want := make([]byte, size)
	for i := range want {
		want[i] = byte(i*31 + i>>8)
	}
	f := tempFile(t)
	if _, err := f.Write([]byte("stale bytes of an earlier run, longer than nothing")); err != nil {
		t.Fatal(err)
	}
	s := diskstore.New(f, 1<<20)
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
	if got, err := os.ReadFile(f.Name()); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("the file holds %d bytes (%v), want the %d written", len(got), err, size)
	}
	s.Reset()
	if got, err := s.Get(1); err != nil || !bytes.Equal(got, make([]byte, chunk)) {
		t.Fatalf("after Reset chunk 1 is not zeros (%v)", err)
	}
}

// What a server may announce or a peer may send is checked.
func TestStoreRefuses(t *testing.T) {
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
		{"sum before open", func(s *diskstore.Store) error { _, err := s.Sum(); return err }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.do(diskstore.New(tempFile(t), 1000)); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
