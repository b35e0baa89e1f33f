package scenario_test

import (
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
