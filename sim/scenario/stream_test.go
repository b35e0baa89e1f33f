package scenario_test

import (
	"strings"
	"testing"

	"github.com/netspec/netspec/sim/scenario"
)

// The listener whose host crashes is judged by what happened: the server
// must have dropped it when its expiry fell within the run, and its end
// says when the host crashed (observed, not scheduled) and what followed.
func TestStreamSilentListener(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		dropped bool
		end     string
	}{
		{nil, true, "; expired at "},
		// Expiry due 1000 s after the crash, long after the server stops.
		{[]string{"--expire", "1000", "--report", "1s"}, false, "was not due before the server stopped"},
		// The host dies before it has joined: nothing to expire.
		{[]string{"--duration", "1ns"}, false, "before the server sent it anything"},
	} {
		sc := parsed(t, "stream", tc.args...)
		res, err := sc.Run(scenario.Options{Seed: 1})
		if err != nil || res.Failed != "" {
			t.Errorf("stream %v: %v %s", tc.args, err, res.Failed)
			continue
		}
		v := res.Value.(scenario.StreamResult)
		last := v.Clients[len(v.Clients)-1]
		if got := strings.HasPrefix(last.Dropped, "expired at"); got != tc.dropped || !last.Match {
			t.Errorf("stream %v: %s dropped %q, match %v", tc.args, last.Name, last.Dropped, last.Match)
		}
		row := res.Tables[0].Rows[len(v.Clients)-1]
		if end := row[len(row)-1]; !strings.HasPrefix(end, "host crashed at ") || !strings.Contains(end, tc.end) {
			t.Errorf("stream %v: %s ended %q, want it to say %q", tc.args, last.Name, end, tc.end)
		}
	}
}

// The forged joins' victim is no client's address: the 249th client was
// given it, and everything it rightly received counted as amplification.
func TestStreamVictimIsNoClient(t *testing.T) {
	res, err := parsed(t, "stream", "--clients", "249", "--duration", "1s").Run(scenario.Options{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed != "" {
		t.Fatal(res.Failed)
	}
}
