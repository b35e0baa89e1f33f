package spec

// Protocol describes one protocol to the tools that handle any of them:
// replay, conformance, the timeline viewer and the command line.
type Protocol struct {
	// Name is the protocol's name in traces and on the command line.
	Name string
	// Roles lists the roles New accepts, such as "server" and "client".
	Roles []string
	// New builds a machine for role from its JSON configuration: the bytes
	// a trace header records for the node.
	New func(role string, config []byte) (Machine, error)
	// Describe decodes a payload (a datagram, or a chunk of stream bytes)
	// into a short line for timelines. It must accept any bytes. It may be
	// nil.
	Describe func(payload []byte) string
}
