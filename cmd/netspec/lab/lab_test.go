package lab

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func needLab(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("NETSPEC_REQUIRE_LAB") != "" {
			t.Fatalf("NETSPEC_REQUIRE_LAB is set: %v", err)
		}
		t.Skipf("skipping: %v", err)
	}
}

// A lab network connects its hosts, runs processes inside them, and
// leaves nothing behind when closed, even with processes still running.
func TestCreateRunClose(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n, err := Create(ctx, Options{Hosts: 3, Rate: 10e6, MTU: 9000})
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()
	h1, h3 := n.Host("h1"), n.Host("h3")
	if h1.Addr.String() != "10.0.0.1" || h3.Addr.String() != "10.0.0.3" {
		t.Fatalf("addresses %v %v, want mininet's 10.0.0.1 and 10.0.0.3", h1.Addr, h3.Addr)
	}
	// A process in h1 sees only its own namespace's links.
	p, err := n.Start(ctx, h1, "ip", "-o", "addr", "show")
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Wait(); err != nil || !strings.Contains(p.Output(), "10.0.0.1/24") || strings.Contains(p.Output(), "10.0.0.3") {
		t.Fatalf("ip addr in h1: %v\n%s", err, p.Output())
	}
	// A long-running process is stopped by Close.
	sleeper, err := n.Start(ctx, h3, "sleep", "600")
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	closed = true
	select {
	case <-sleeper.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("Close left a process running")
	}
	left, err := Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range left {
		if strings.Contains(l, n.id) {
			t.Errorf("left behind: %s", l)
		}
	}
}
