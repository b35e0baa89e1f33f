package scenario_test

import (
	"testing"

	"github.com/netspec/netspec/sim/scenario"
)

// A put whose server's last ACK is lost: the client resends its last
// block one timeout later, which arrived just as the server's
// one-timeout dally ended, and the put failed (seeds 207 and 211 of the
// default scenario; 9 seeds in 60 at 15% loss with an empty file).
func TestTFTPLastACKLost(t *testing.T) {
	small := []string{"--clients", "1", "--size", "0", "--windowsize", "1", "--dup", "0", "--jitter", "0", "--loss", "0.15"}
	for _, tc := range []struct {
		seed uint64
		args []string
	}{{207, nil}, {211, nil}, {18, small}, {19, small}, {21, small}} {
		res, err := parsed(t, "tftp", tc.args...).Run(scenario.Options{Seed: tc.seed})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != "" {
			t.Errorf("seed %d %v: %s", tc.seed, tc.args, res.Failed)
		}
	}
}

// Retransmissions back off (RFC 1123 4.2.3.2): with a fixed 1 s timeout a
// window slower than that to cross a 150 kbit/s link, a 2 s round trip
// (the OACK given up after one resend) and 60 clients' windows
// overflowing the server's queue all failed without loss.
func TestTFTPBacksOff(t *testing.T) {
	clean := []string{"--loss", "0", "--dup", "0", "--jitter", "0"}
	for _, args := range [][]string{
		append([]string{"--clients", "1", "--put=false", "--rate", "150000"}, clean...),
		append([]string{"--clients", "1", "--size", "0", "--delay", "500ms"}, clean...),
		append([]string{"--clients", "60"}, clean...),
	} {
		res, err := parsed(t, "tftp", args...).Run(scenario.Options{Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if res.Failed != "" {
			t.Errorf("%v: %s", args, res.Failed)
		}
	}
}
