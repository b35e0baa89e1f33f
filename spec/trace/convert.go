package trace

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/netspec/netspec/spec"
)

func addrString(a netip.AddrPort) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func ipString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func parseAddr(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, nil
	}
	a, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("trace: bad address %q: %w", s, err)
	}
	return a, nil
}

// FromInput records in, given to node at now; epoch is the trace's Epoch.
func FromInput(epoch, now spec.Time, node string, in spec.Input) Record {
	r := Record{T: int64(now - epoch), Node: node, In: in.Kind.String()}
	switch in.Kind {
	case spec.InBound:
		r.Sock, r.Addr, r.Err = uint32(in.Sock), addrString(in.Addr), in.Err
	case spec.InDatagram:
		r.Sock, r.Addr, r.Local = uint32(in.Sock), addrString(in.Addr), ipString(in.Local)
		r.SetPayload(in.Data)
	case spec.InAccepted:
		r.Sock, r.Stream, r.Addr = uint32(in.Sock), uint64(in.Stream), addrString(in.Addr)
	case spec.InConnected:
		r.Stream, r.Addr = uint64(in.Stream), addrString(in.Addr)
	case spec.InStreamData:
		r.Stream = uint64(in.Stream)
		r.SetPayload(in.Data)
	case spec.InStreamWritable:
		r.Stream = uint64(in.Stream)
	case spec.InStreamClosed:
		r.Stream, r.Err = uint64(in.Stream), in.Err
	case spec.InTimer:
		r.Timer = uint64(in.Timer)
	case spec.InCommand:
		r.Name, r.Args = in.Cmd.Name, in.Cmd.Args
		r.SetPayload(in.Cmd.Data)
	}
	return r
}

// Input rebuilds the spec.Input an input record stands for.
func (r Record) Input() (spec.Input, error) {
	kind, ok := spec.ParseInKind(r.In)
	if !ok {
		return spec.Input{}, fmt.Errorf("trace: unknown input kind %q", r.In)
	}
	addr, err := parseAddr(r.Addr)
	if err != nil {
		return spec.Input{}, err
	}
	var local netip.Addr
	if r.Local != "" {
		if local, err = netip.ParseAddr(r.Local); err != nil {
			return spec.Input{}, fmt.Errorf("trace: bad local address %q: %w", r.Local, err)
		}
	}
	data, err := r.Payload()
	if err != nil {
		return spec.Input{}, err
	}
	in := spec.Input{
		Local:  local,
		Kind:   kind,
		Sock:   spec.Sock(r.Sock),
		Stream: spec.Stream(r.Stream),
		Timer:  spec.Timer(r.Timer),
		Addr:   addr,
		Data:   data,
		Err:    r.Err,
	}
	if kind == spec.InCommand {
		in.Cmd = spec.Command{Name: r.Name, Args: r.Args, Data: data}
		in.Data = nil
	}
	return in, nil
}

// FromOutput records out, produced by node at now.
func FromOutput(epoch, now spec.Time, node string, out spec.Output) Record {
	r := Record{T: int64(now - epoch), Node: node, Out: out.Kind.String()}
	switch out.Kind {
	case spec.OutBind:
		r.Sock, r.Proto, r.Addr = uint32(out.Sock), out.Net.String(), addrString(out.Addr)
	case spec.OutUnbind:
		r.Sock = uint32(out.Sock)
	case spec.OutSend:
		r.Sock, r.Addr, r.Local = uint32(out.Sock), addrString(out.Addr), ipString(out.Local)
		r.SetPayload(out.Data)
	case spec.OutDial:
		r.Stream, r.Addr = uint64(out.Stream), addrString(out.Addr)
	case spec.OutWrite:
		r.Stream = uint64(out.Stream)
		r.SetPayload(out.Data)
	case spec.OutClose, spec.OutAbort, spec.OutPause, spec.OutResume:
		r.Stream = uint64(out.Stream)
	case spec.OutSetTimer:
		r.Timer, r.At = uint64(out.Timer), int64(out.At-epoch)
	case spec.OutCancelTimer:
		r.Timer = uint64(out.Timer)
	case spec.OutEvent:
		r.Name, r.Msg = out.Event.Name, out.Event.Text
		r.SetPayload(out.Event.Data)
		if out.Event.Value != nil {
			v, err := json.Marshal(out.Event.Value)
			if err != nil {
				r.Err = "value: " + err.Error()
			} else {
				r.Value = v
			}
		}
	case spec.OutLog:
		r.Level, r.Msg = out.Log.Level.String(), out.Log.Msg
		for _, a := range out.Log.Attrs {
			r.Attrs = append(r.Attrs, a.String())
		}
	case spec.OutExit:
		r.Err = out.Err
	}
	return r
}
