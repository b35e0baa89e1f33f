package scenario

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// The file scenario delivers exact files under loss, duplication and
// jitter, and the same seed gives the same run, trace included.
func TestFileScenarioReproduces(t *testing.T) {
	run := func() (FileResult, []byte) {
		var tr bytes.Buffer
		sc := &File{Clients: 3, Size: 300_000, Loss: 0.05, Dup: 0.02, Jitter: 2 * time.Millisecond, Rate: 10e6, Delay: 3 * time.Millisecond}
		res, err := sc.Run(Options{Seed: 42, Trace: &tr})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != "" {
			t.Fatalf("scenario failed: %s", res.Failed)
		}
		return res.Value.(FileResult), tr.Bytes()
	}
	a, ta := run()
	b, tb := run()
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if !bytes.Equal(ja, jb) || !bytes.Equal(ta, tb) {
		t.Fatal("the same seed gave different runs")
	}
	for _, c := range a.Clients {
		if !c.Exact || c.Error != "" {
			t.Errorf("%s: exact=%v error=%q", c.Name, c.Exact, c.Error)
		}
	}
	if a.Corrupt != 0 {
		t.Errorf("%d corrupt files", a.Corrupt)
	}
}
