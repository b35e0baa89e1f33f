package tftp_test

import (
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
	"github.com/netspec/netspec/spec/tftp"
)

func seeds() [][]byte {
	return [][]byte{
		nil, {0}, {0, 1}, {0, 7},
		rrq("a.bin").Append(nil),
		rrq("a.bin", "blksize", "1428", "tsize", "0", "windowsize", "16", "timeout", "3").Append(nil),
		(&tftp.Packet{Op: tftp.OpWRQ, Filename: "up/x", Mode: "OCTET", Options: []tftp.Option{{"tsize", "12"}}}).Append(nil),
		append(tftp.AppendData(nil, 1), "hello"...),
		tftp.AppendData(nil, 65535),
		ack(0), ack(65535), {0, 4, 0},
		tftp.AppendError(nil, 1, "file not found"),
		{0, 5, 0, 2, 'n', 'o', ' ', 'n', 'u', 'l'},
		(&tftp.Packet{Op: tftp.OpOACK, Options: []tftp.Option{{"blksize", "8"}}}).Append(nil),
		[]byte("\x00\x01a\x00octet\x00blksize\x00"),
		[]byte("\x00\x06\x00\x00"),
	}
}

// Decode never panics; whatever it accepts re-encodes (when Valid) to
// bytes that decode to the same packet; what Append writes of a valid
// packet decodes back to it.
func FuzzDecode(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var p tftp.Packet
		if err := tftp.Decode(b, &p); err != nil {
			return
		}
		if p.Op == tftp.OpDATA && len(b) < 4 || p.Op == tftp.OpACK && len(b) != 4 {
			t.Fatalf("accepted a %d-byte %v", len(b), p.Op)
		}
		if len(p.Options) > tftp.MaxOptions {
			t.Fatalf("accepted %d options", len(p.Options))
		}
		if err := p.Valid(); err != nil {
			t.Fatalf("decoded %q to an invalid packet %+v: %v", b, p, err)
		}
		again := p.Append(nil)
		var q tftp.Packet
		if err := tftp.Decode(again, &q); err != nil {
			t.Fatalf("re-encoded %+v does not decode: %v", p, err)
		}
		if len(p.Data) == 0 && len(q.Data) == 0 {
			p.Data, q.Data = nil, nil
		}
		if len(p.Options) == 0 && len(q.Options) == 0 {
			p.Options, q.Options = nil, nil
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip: %+v became %+v", p, q)
		}
		_ = tftp.Describe(b)
		checkParseOptions(t, p.Options)
	})
}

// FuzzParseOptions: any name/value pairs (the bytes cut at NULs, as on
// the wire, with no limit on their number) parse to options within the
// ranges doc.go gives (blksize 8..65464, windowsize 1..65535, timeout
// 1..255, tsize 0 or more), each the first of its name, compared without
// case; every other name is returned as unknown, and a first value that
// is not a decimal (digits only, no sign) in range as bad and left absent. What List makes of
// the result parses back to it, with nothing unknown or bad.
func FuzzParseOptions(f *testing.F) {
	for _, s := range []string{
		"blksize\x001428\x00tsize\x000\x00windowsize\x0016\x00timeout\x003\x00",
		"BLKSIZE\x007\x00blksize\x00512\x00TSize\x00-1\x00timeout\x00256\x00windowsize\x000\x00",
		"blksize\x0065465\x00windowsize\x0065536\x00tsize\x009223372036854775807\x00x\x00y\x00",
		"blksize\x00\x00timeout\x00+5\x00windowsize\x00 1\x00multicast\x00\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		parts := strings.Split(string(b), "\x00")
		var opts []tftp.Option
		for i := 0; i+1 < len(parts); i += 2 {
			opts = append(opts, tftp.Option{Name: parts[i], Value: parts[i+1]})
		}
		checkParseOptions(t, opts)
	})
}

// checkParseOptions checks ParseOptions(opts) as FuzzParseOptions says.
func checkParseOptions(t *testing.T, opts []tftp.Option) {
	t.Helper()
	o, unknown, bad := tftp.ParseOptions(opts)
	if o.Blksize != 0 && (o.Blksize < tftp.MinBlksize || o.Blksize > tftp.MaxBlksize) ||
		o.Windowsize != 0 && (o.Windowsize < 1 || o.Windowsize > tftp.MaxWindowsize) ||
		o.Timeout != 0 && (o.Timeout < 1 || o.Timeout > tftp.MaxTimeoutOption) ||
		o.TSize < -1 {
		t.Fatalf("%q parsed to %+v, outside the RFC ranges", opts, o)
	}
	got := map[string]int64{tftp.OptBlksize: int64(o.Blksize), tftp.OptWindowsize: int64(o.Windowsize), tftp.OptTimeout: int64(o.Timeout), tftp.OptTSize: o.TSize}
	absent := map[string]int64{tftp.OptBlksize: 0, tftp.OptWindowsize: 0, tftp.OptTimeout: 0, tftp.OptTSize: -1}
	ranges := map[string][2]int64{tftp.OptBlksize: {tftp.MinBlksize, tftp.MaxBlksize}, tftp.OptWindowsize: {1, tftp.MaxWindowsize},
		tftp.OptTimeout: {1, tftp.MaxTimeoutOption}, tftp.OptTSize: {0, math.MaxInt64}}
	seen := map[string]bool{}
	var wantUnknown, wantBad []string
	for _, op := range opts {
		name := strings.ToLower(op.Name)
		if _, known := got[name]; !known {
			wantUnknown = append(wantUnknown, op.Name)
			continue
		}
		if seen[name] {
			continue
		}
		seen[name] = true
		v, err := strconv.ParseInt(op.Value, 10, 64)
		digits := op.Value != "" && strings.Trim(op.Value, "0123456789") == ""
		if r := ranges[name]; err == nil && digits && v >= r[0] && v <= r[1] {
			if got[name] != v {
				t.Fatalf("%q: %s is %d, not the first %s's value %q", opts, name, got[name], name, op.Value)
			}
			continue
		}
		// Not taken: it must be bad, and the option absent.
		wantBad = append(wantBad, op.Name)
		if got[name] != absent[name] {
			t.Fatalf("%q: %s is %d after the first %s's bad value %q", opts, name, got[name], name, op.Value)
		}
	}
	for name := range got {
		if !seen[name] && got[name] != absent[name] {
			t.Fatalf("%q: %s is %d, but no option named it", opts, name, got[name])
		}
	}
	if !slices.Equal(unknown, wantUnknown) || !slices.Equal(bad, wantBad) {
		t.Fatalf("%q: unknown %q bad %q, want unknown %q bad %q", opts, unknown, bad, wantUnknown, wantBad)
	}
	again, unknown, bad := tftp.ParseOptions(o.List())
	if again != o || len(unknown) > 0 || len(bad) > 0 {
		t.Fatalf("%+v listed as %q parses back as %+v, unknown %q, bad %q", o, o.List(), again, unknown, bad)
	}
}

// Hostile datagrams on the server's port 69 and on a transfer's port:
// never a panic, never more than one datagram answered per datagram on
// port 69, never more than 100 bytes answered there, and at most one
// transfer opened per datagram.
func FuzzServer(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, toTransfer bool) {
		bch := newBench(t, tftp.ServerConfig{AllowWrite: true})
		sock := spec.Sock(1)
		if toTransfer {
			out := sends(bch.request(client, rrq("a.bin", "windowsize", "4")))
			sock = out[0].Sock
		}
		for _, from := range []netip.AddrPort{client, netip.MustParseAddrPort("10.0.0.7:1234")} {
			out := bch.step(spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: from, Data: b})
			binds, main := 0, 0
			for _, o := range out {
				switch {
				case o.Kind == spec.OutBind:
					binds++
				case o.Kind == spec.OutSend && o.Sock == 1:
					main++
					if len(o.Data) > 100 {
						t.Fatalf("answered %d bytes on port 69", len(o.Data))
					}
				}
			}
			if binds > 1 || main > 1 {
				t.Fatalf("one datagram opened %d transfers and drew %d answers on port 69", binds, main)
			}
		}
	})
}

// Hostile datagrams to a client waiting for its first answer, and in
// the middle of a download: never a panic, and no data reported beyond
// what one block may hold. (Order is the sim properties' to check:
// TestTransfersExactOrError compares every byte.)
func FuzzClient(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, b []byte, midway bool) {
		c := tftp.NewClient(tftp.ClientConfig{Server: serverAddr, Blksize: 100, Windowsize: 4}, nil)
		now := spec.SimEpoch
		var out []spec.Output
		step := func(in spec.Input) []spec.Output {
			out = c.Step(now, in, out[:0])
			return out
		}
		step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"f"}}})
		step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: netip.MustParseAddrPort("10.0.0.9:40000")})
		tid := netip.AddrPortFrom(serverAddr.Addr(), 50000)
		if midway {
			step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: tid, Data: append(tftp.AppendData(nil, 1), make([]byte, 512)...)})
		}
		for _, from := range []netip.AddrPort{tid, serverAddr, netip.MustParseAddrPort("10.0.0.7:1234")} {
			for _, o := range step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: b}) {
				if o.Kind == spec.OutEvent && o.Event.Name == "data" && len(o.Event.Data) > 512 {
					t.Fatalf("reported %d bytes from one block", len(o.Event.Data))
				}
			}
		}
	})
}

// FuzzDescribe: Describe takes any datagram (wire.go: "it accepts any
// bytes") and gives one line for a timeline (spec.Protocol.Describe):
// every string it shows is clipped to 48 bytes and escaped, and a packet
// holds at most MaxOptions options, so at most 8 KiB; the same every
// time, with the datagram left as it was; a packet that decodes is named
// by its opcode.
func FuzzDescribe(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Add((&tftp.Packet{Op: tftp.OpRRQ, Filename: "a\nb", Mode: "octet", Options: []tftp.Option{{"blk\nsize", "1\r\n"}}}).Append(nil))
	f.Add(tftp.AppendError(nil, 99, strings.Repeat("\xff", 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := spectest.CheckDescribe(t, tftp.Describe, b, 8<<10)
		var p tftp.Packet
		if tftp.Decode(b, &p) == nil && !strings.HasPrefix(d, p.Op.String()) {
			t.Fatalf("a %v described as %q", p.Op, d)
		}
	})
}
