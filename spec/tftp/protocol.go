package tftp

import (
	"github.com/netspec/netspec/spec"
)

// Protocol describes TFTP to the generic tools. Machines rebuilt from a
// config serve (and, as clients, upload) the config's synthetic files,
// and servers hash uploads and discard them.
var Protocol = spec.NewProtocol("tftp", Describe,
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) { return NewServer(c, nil, nil), nil }),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) { return NewClient(c, nil), nil }),
)
