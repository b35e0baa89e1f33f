package stream

import (
	"github.com/netspec/netspec/spec"
)

// Protocol describes the stream protocol to the generic tools.
var Protocol = spec.NewProtocol("stream", Describe,
	spec.JSONRole("server", func(c ServerConfig) (spec.Machine, error) { return NewServer(c), nil }),
	spec.JSONRole("client", func(c ClientConfig) (spec.Machine, error) { return NewClient(c), nil }),
)
