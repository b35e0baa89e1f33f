package main

import (
	"encoding/json"
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
