package spec

import (
	"encoding/json"
	"fmt"
)

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

// Role is one role of a protocol: how its machine is built from the JSON
// configuration a trace header records.
type Role struct {
	Name string
	New  func(config []byte) (Machine, error)
}

// JSONRole is a Role whose configuration decodes into a C that build
// turns into the machine.
func JSONRole[C any](name string, build func(C) (Machine, error)) Role {
	return Role{Name: name, New: func(config []byte) (Machine, error) {
		var c C
		if err := json.Unmarshal(config, &c); err != nil {
			return nil, fmt.Errorf("%s config: %w", name, err)
		}
		return build(c)
	}}
}

// NewProtocol describes a protocol by its roles: New dispatches on the
// role's name and prefixes errors with the protocol's.
func NewProtocol(name string, describe func(payload []byte) string, roles ...Role) Protocol {
	p := Protocol{Name: name, Describe: describe}
	for _, r := range roles {
		p.Roles = append(p.Roles, r.Name)
	}
	p.New = func(role string, config []byte) (Machine, error) {
		for _, r := range roles {
			if r.Name == role {
				m, err := r.New(config)
				if err != nil {
					return nil, fmt.Errorf("%s: %w", name, err)
				}
				return m, nil
			}
		}
		return nil, fmt.Errorf("%s: unknown role %q", name, role)
	}
	return p
}
