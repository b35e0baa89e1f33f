package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// -v logs every packet the simulated network dropped: as many lines as
// the result counts lost.
func TestSimVerboseLogsDrops(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sim.log")
	code, out, stderr := runCmd("sim", "echo", "--seed", "3", "--json", "-v", "--log", log)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Result struct{ Net struct{ Lost int } }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(b), "network dropped a packet"); n != res.Result.Net.Lost || n == 0 {
		t.Errorf("%d drops logged, the result says %d lost", n, res.Result.Net.Lost)
	}
}

// A simulation's log is a function of its seed, like its trace: records
// carry the virtual time, not the wall clock's.
func TestSimLogIsDeterministic(t *testing.T) {
	dir := t.TempDir()
	var logs [2][]byte
	for i := range logs {
		p := filepath.Join(dir, fmt.Sprintf("%d.log", i))
		if code, _, errs := runCmd("sim", "echo", "--log", p, "-v"); code != 0 {
			t.Fatalf("sim echo: exit %d: %s", code, errs)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		logs[i] = b
	}
	if len(logs[0]) == 0 || !bytes.Equal(logs[0], logs[1]) {
		t.Fatalf("two runs of one seed logged %d and %d bytes that differ", len(logs[0]), len(logs[1]))
	}
}

// Ctrl-C stops a long simulation at once, instead of after the day of
// virtual time it was asked for.
func TestSimInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	var stderr bytes.Buffer
	start := time.Now()
	code := run(ctx, []string{"sim", "stream", "--duration", "24h", "--clients", "20"}, strings.NewReader(""), io.Discard, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "sim stream: interrupted (reproduce: netspec sim stream") {
		t.Fatalf("exit %d, stderr %q; want 1 and interrupted", code, stderr.String())
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("took %v to stop", d)
	}
}
