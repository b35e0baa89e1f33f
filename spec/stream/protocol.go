package stream

import (
	"encoding/json"
	"fmt"

	"github.com/netspec/netspec/spec"
)

// Protocol describes the stream protocol to the generic tools.
var Protocol = spec.Protocol{
	Name:  "stream",
	Roles: []string{"server", "client"},
	New: func(role string, config []byte) (spec.Machine, error) {
		switch role {
		case "server":
			var c ServerConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, fmt.Errorf("stream: server config: %w", err)
			}
			return NewServer(c), nil
		case "client":
			var c ClientConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, fmt.Errorf("stream: client config: %w", err)
			}
			return NewClient(c), nil
		}
		return nil, fmt.Errorf("stream: unknown role %q", role)
	},
	Describe: Describe,
}
