package lab

import (
	"context"
	"os"
	"os/exec"
	"strconv"
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
	// And it can reach only the lab's own subnet: no default route, no
	// route anywhere else (what the lab runs talks to its hosts alone).
	for _, h := range n.Hosts {
		p, err := n.Start(ctx, &h, "ip", "-4", "route", "show")
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(); err != nil {
			t.Fatalf("ip route in %s: %v\n%s", h.Name, err, p.Output())
		}
		for _, l := range strings.Split(strings.TrimSpace(p.Output()), "\n") {
			if !strings.HasPrefix(l, "10.0.0.0/24 ") {
				t.Errorf("%s has a route out of the lab: %q", h.Name, l)
			}
		}
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

// Sweep removes the networks of processes that died and spares those of
// running ones: go test runs packages with labs in parallel.
func TestSweepSparesLiveNetworks(t *testing.T) {
	needLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	live, err := Create(ctx, Options{Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer live.Close()
	orphan, err := Create(ctx, Options{Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer orphan.Close()
	// Hand the orphan to a process that has exited.
	gone := exec.Command("true")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(claimPath(orphan.id), []byte(strconv.Itoa(gone.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(); err != nil {
		t.Fatal(err)
	}
	left, err := Leftovers()
	if err != nil {
		t.Fatal(err)
	}
	has := func(id string) bool {
		for _, l := range left {
			if strings.Contains(l, Prefix+id) {
				return true
			}
		}
		return false
	}
	if !has(live.id) {
		t.Errorf("Sweep removed the network of a running process; left: %v", left)
	}
	if has(orphan.id) {
		t.Errorf("Sweep spared the network of an exited process; left: %v", left)
	}
	if _, err := os.Stat(claimPath(orphan.id)); err == nil {
		t.Error("Sweep left the orphan's claim behind")
	}
}
