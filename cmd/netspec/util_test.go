package main

import (
	"bytes"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a command's output: the command writes it from its
// goroutines while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// wait polls until the output matches re and returns the submatches, or
// fails the test after 15 s.
func (s *syncBuffer) wait(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if m := rx.FindStringSubmatch(s.String()); m != nil {
			return m
		}
	}
	t.Fatalf("output never matched %q:\n%s", re, s.String())
	return nil
}

// awaitExit waits up to d for the exit code of a command run in-process
// (what says which), and says what went wrong if it was not 0 in time.
func awaitExit(done <-chan int, d time.Duration, what string) error {
	select {
	case code := <-done:
		if code != 0 {
			return fmt.Errorf("%s: exit %d, want 0", what, code)
		}
		return nil
	case <-time.After(d):
		return fmt.Errorf("%s: did not exit within %v", what, d)
	}
}
