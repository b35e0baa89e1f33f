package scenario_test

import (
	"flag"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim/scenario"
)

// Flags that would panic, exhaust memory or run for ever are refused
// before a run starts (netspec sim turns the error into exit code 2).
func TestValidateRefusesBadFlags(t *testing.T) {
	bad := []struct {
		name string
		v    scenario.Validator
	}{
		{"echo negative max-size", &scenario.Echo{MaxSize: -2}},
		{"echo 1e8 clients", &scenario.Echo{Clients: 100_000_000}},
		{"echo 1e8 messages", &scenario.Echo{Messages: 100_000_000}},
		{"echo loss 1.5", &scenario.Echo{Loss: 1.5}},
		{"echo negative rate", &scenario.Echo{Rate: -5}},
		{"echo negative delay", &scenario.Echo{Delay: -time.Second}},
		{"stream negative duration", &scenario.Stream{Duration: -time.Second}},
		{"stream 1e7 clients", &scenario.Stream{Clients: 10_000_000}},
		{"stream a nanosecond apart", &scenario.Stream{Delay: time.Nanosecond}},
		{"stream a day a microsecond apart", &scenario.Stream{Delay: 10 * time.Microsecond, Duration: 24 * time.Hour}},
		{"stream negative rate", &scenario.Stream{Rate: -1}},
		{"file negative clients", &scenario.File{Clients: -1}},
		{"file unknown cc", &scenario.File{CC: "bogus"}},
		{"file negative datagram", &scenario.File{Datagram: -5}},
		{"file datagram too small", &scenario.File{Datagram: 100}},
		{"chat 1e8 messages", &scenario.Chat{Messages: 100_000_000}},
		// Each of these ran out of memory (24 GB, 8 GB) before the first
		// event, and ignored Ctrl-C meanwhile.
		{"echo 1e7 messages", &scenario.Echo{Clients: 100, Messages: 100_000}},
		{"echo 1e5 messages of 64 KB", &scenario.Echo{Clients: 100, Messages: 1000, MaxSize: 65507}},
		{"chat 4e9 deliveries", &scenario.Chat{Clients: 100, Plain: 100, Messages: 100_000}},
		{"swarm plot into no directory", &scenario.Swarm{Plot: "/nonexistent-netspec-dir/x.png"}},
		{"swarm 200,000 chunks", &scenario.Swarm{FileSize: 200_000, ChunkSize: 1, Mode: "p2p"}},
		{"stream reordered past MAX_MISORDER", &scenario.Stream{Delay: time.Millisecond, Jitter: 110 * time.Millisecond}},
	}
	for _, tc := range bad {
		if err := tc.v.Validate(); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	for _, ok := range []scenario.Validator{&scenario.Echo{}, &scenario.Stream{}, &scenario.File{}, (&scenario.Chat{}).Defaults()} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%T with defaults: %v", ok, err)
		}
	}
}

// parsed finds the scenario called name and parses args into its flags,
// as `netspec sim NAME ARGS...` does.
func parsed(t *testing.T, name string, args ...string) scenario.Scenario {
	t.Helper()
	sc, ok := scenario.Find(name)
	if !ok {
		t.Fatalf("no scenario %q", name)
	}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	sc.Flags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	return sc
}

// A 0 typed on the command line is never the default in disguise: where
// 0 means nothing to run with, Validate refuses it (netspec sim exits 2)
// with the range it is outside of, and the least value of that range is
// accepted, so the message says what is accepted.
func TestTypedZeroRefused(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		msg   string
		least []string // the least accepted value
	}{
		{"echo", []string{"--clients", "0"}, "between 1 and 1000", []string{"--clients", "1"}},
		{"echo", []string{"--messages", "0"}, "between 1 and 100000", []string{"--messages", "1"}},
		{"echo", []string{"--max-size", "0"}, "between 1 and 65507", []string{"--max-size", "1"}},
		{"echo", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "1e-3"}},
		{"chat", []string{"--clients", "0", "--plain", "0"}, "--clients + --plain must be between 1 and 200", []string{"--clients", "0", "--plain", "1", "--silent", "0"}},
		{"chat", []string{"--interval", "0"}, "--interval must be between 10ms and 1h", []string{"--interval", "10ms"}},
		{"chat", []string{"--duration", "0"}, "--duration must be at least 1s", []string{"--duration", "1s"}},
		{"chat", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "1"}},
		{"chat", []string{"--clients", "1", "--plain", "0", "--quitters", "1", "--silent", "1"}, "--quitters + --silent must be at most --clients + --plain (1)",
			[]string{"--clients", "1", "--plain", "0", "--quitters", "1", "--silent", "0"}},
		{"stream", []string{"--clients", "0"}, "between 1 and 1000", []string{"--clients", "1"}},
		{"stream", []string{"--delay", "0"}, "at least 10µs", []string{"--delay", "10µs", "--duration", "1s", "--jitter", "0"}},
		{"stream", []string{"--duration", "0"}, "between 1ns and 24h", []string{"--duration", "1ns"}},
		{"stream", []string{"--report", "0"}, "between 1ms and 1h", []string{"--report", "1ms"}},
		{"stream", []string{"--expire", "0"}, "between 2 and 1000", []string{"--expire", "2"}},
		{"stream", []string{"--expire", "1"}, "between 2 and 1000", []string{"--expire", "2"}},
		{"stream", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "1"}},
		{"file", []string{"--clients", "0"}, "between 1 and 100", []string{"--clients", "1"}},
		{"file", []string{"--queue", "0"}, "between 1 and 1000000", []string{"--queue", "1"}},
		{"file", []string{"--datagram", "0"}, "between 128 and 65507", []string{"--datagram", "128"}},
		{"file", []string{"--cc", ""}, "westwood or newreno", []string{"--cc", "newreno"}},
		{"file", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "1"}},
		{"tftp", []string{"--clients", "0"}, "between 1 and 100", []string{"--clients", "1"}},
		{"tftp", []string{"--windowsize", "0"}, "between 1 and 4096", []string{"--windowsize", "1"}},
		{"tftp", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "1"}},
		{"swarm", []string{"--file-size", "0"}, "[1, 1 GiB]", []string{"--file-size", "1"}},
		{"swarm", []string{"--chunk-size", "0"}, "[1, 64 MiB]", []string{"--chunk-size", "1", "--file-size", "1000"}},
		{"swarm", []string{"--rate", "0"}, "--rate must be a finite number > 0", []string{"--rate", "64000"}},
		{"swarm", []string{"--rate", "16000"}, "below 64000 bit/s", []string{"--rate", "16000", "--mode", "cs"}},
		{"swarm", []string{"--server-rate", "1"}, "below 64000 bit/s", []string{"--server-rate", "64000"}},
		{"swarm", []string{"--mtu", "0"}, "[576, 65535]", []string{"--mtu", "576"}},
		{"swarm", []string{"--mode", ""}, "want cs, p2p or both", []string{"--mode", "cs"}},
		{"swarm", []string{"--n", ""}, "no downloader count", []string{"--n", "1"}},
	} {
		err := parsed(t, tc.name, tc.args...).(scenario.Validator).Validate()
		if err == nil {
			t.Errorf("sim %s %v: accepted", tc.name, tc.args)
		} else if !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("sim %s %v: %q, want it to say %q", tc.name, tc.args, err, tc.msg)
		}
		if err := parsed(t, tc.name, tc.least...).(scenario.Validator).Validate(); err != nil {
			t.Errorf("sim %s %v, the least value %q allows: %v", tc.name, tc.least, tc.msg, err)
		}
	}
}

// Where 0 means something, a typed 0 runs as 0: the run passes its own
// checks, the option is still 0 after it, and the result shows it.
func TestTypedZeroRuns(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		check func(scenario.Scenario, scenario.Result) string
	}{
		{"file", []string{"--size", "0", "--clients", "2"}, func(sc scenario.Scenario, r scenario.Result) string {
			if sc.(*scenario.File).Size != 0 {
				return "size is no longer 0"
			}
			v := r.Value.(scenario.FileResult)
			if len(v.Clients) != 2 || !v.Clients[0].Exact || !v.Clients[1].Exact {
				return fmt.Sprintf("the empty file did not arrive exactly: %+v", v.Clients)
			}
			return ""
		}},
		{"tftp", []string{"--size", "0", "--clients", "1"}, func(sc scenario.Scenario, r scenario.Result) string {
			v := r.Value.(scenario.TFTPResult)
			if sc.(*scenario.TFTP).Size != 0 || len(v.Transfers) != 2 || !v.Transfers[0].Exact || !v.Transfers[1].Exact || v.DataSent == 0 {
				return fmt.Sprintf("size %d, transfers %+v, %d DATA sent", sc.(*scenario.TFTP).Size, v.Transfers, v.DataSent)
			}
			return ""
		}},
		{"tftp", []string{"--blksize", "0", "--clients", "1", "--size", "5000"}, func(sc scenario.Scenario, r scenario.Result) string {
			// No option: 512-byte blocks, so 10 of them.
			if v := r.Value.(scenario.TFTPResult); sc.(*scenario.TFTP).Blksize != 0 || v.DataSent-v.DataResent != 10 {
				return fmt.Sprintf("%d DATA sent, %d resent: want 10 blocks of 512 bytes", v.DataSent, v.DataResent)
			}
			return ""
		}},
		{"chat", []string{"--plain", "0", "--duration", "2s", "--server-crash", "0"}, func(sc scenario.Scenario, r scenario.Result) string {
			for _, c := range r.Value.(scenario.ChatResult).Clients {
				if c.Kind != "netspec" {
					return c.Name + " is an nc client"
				}
			}
			return ""
		}},
		{"chat", []string{"--clients", "0", "--plain", "2", "--duration", "2s"}, func(sc scenario.Scenario, r scenario.Result) string {
			v := r.Value.(scenario.ChatResult)
			if len(v.Clients) != 2 || v.Clients[0].Kind != "nc" || v.Clients[1].Kind != "nc" {
				return fmt.Sprintf("clients %+v, want two nc ones", v.Clients)
			}
			return ""
		}},
		{"chat", []string{"--messages", "0", "--duration", "3s", "--server-crash", "0"}, func(sc scenario.Scenario, r scenario.Result) string {
			v := r.Value.(scenario.ChatResult)
			for _, c := range v.Clients {
				if c.Said != 0 || c.Broadcast != 0 {
					return fmt.Sprintf("%s said %d lines, %d broadcast", c.Name, c.Said, c.Broadcast)
				}
			}
			// The membership checks still had members to judge.
			if v.Server.Joins == 0 {
				return "no client ever joined"
			}
			return ""
		}},
		{"chat", []string{"--silent", "0", "--quitters", "0", "--duration", "2s"}, func(sc scenario.Scenario, r scenario.Result) string {
			for _, c := range r.Value.(scenario.ChatResult).Clients {
				if strings.Contains(c.End, "died") || strings.Contains(c.End, "quit") {
					return c.Name + ": " + c.End
				}
			}
			return ""
		}},
		{"stream", []string{"--spoof", "0", "--duration", "1s"}, func(sc scenario.Scenario, r scenario.Result) string {
			if v := r.Value.(scenario.StreamResult); v.Victim.Forged != 0 || v.Victim.Received != 0 {
				return fmt.Sprintf("victim %+v", v.Victim)
			}
			return ""
		}},
		{"echo", []string{"--loss", "0", "--dup", "0", "--jitter", "0", "--delay", "0", "--clients", "2", "--messages", "3"}, func(sc scenario.Scenario, r scenario.Result) string {
			if v := r.Value.(scenario.EchoResult); v.Net.Lost != 0 || v.Net.Dup != 0 {
				return fmt.Sprintf("network %+v on a perfect network", v.Net)
			}
			return ""
		}},
		{"swarm", []string{"--trees", "0", "--delay", "0", "--server-rate", "0", "--n", "2", "--file-size", "50000", "--plot", ""}, func(sc scenario.Scenario, r scenario.Result) string {
			if v := r.Value.(scenario.SwarmResult); v.Trees != 0 || v.Delay != 0 || v.ServerRate != v.Rate {
				return fmt.Sprintf("trees %d, delay %v, server rate %v (rate %v)", v.Trees, v.Delay, v.ServerRate, v.Rate)
			}
			return ""
		}},
	} {
		sc := parsed(t, tc.name, tc.args...)
		if err := sc.(scenario.Validator).Validate(); err != nil {
			t.Errorf("sim %s %v: refused: %v", tc.name, tc.args, err)
			continue
		}
		res, err := sc.Run(scenario.Options{Seed: 1})
		if err != nil || res.Failed != "" {
			t.Errorf("sim %s %v: %v %s", tc.name, tc.args, err, res.Failed)
			continue
		}
		if why := tc.check(sc, res); why != "" {
			t.Errorf("sim %s %v: %s", tc.name, tc.args, why)
		}
	}
}
