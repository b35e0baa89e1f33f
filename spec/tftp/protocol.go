package tftp

import (
	"encoding/json"
	"fmt"

	"github.com/netspec/netspec/spec"
)

// Protocol describes TFTP to the generic tools. Machines rebuilt from a
// config serve (and, as clients, upload) the config's synthetic files,
// and servers hash uploads and discard them.
var Protocol = spec.Protocol{
	Name:  "tftp",
	Roles: []string{"server", "client"},
	New: func(role string, config []byte) (spec.Machine, error) {
		switch role {
		case "server":
			var c ServerConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, fmt.Errorf("tftp: server config: %w", err)
			}
			return NewServer(c, nil, nil), nil
		case "client":
			var c ClientConfig
			if err := json.Unmarshal(config, &c); err != nil {
				return nil, fmt.Errorf("tftp: client config: %w", err)
			}
			return NewClient(c, nil), nil
		}
		return nil, fmt.Errorf("tftp: unknown role %q", role)
	},
	Describe: Describe,
}
