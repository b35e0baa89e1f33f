package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
