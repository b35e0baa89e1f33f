package tftp_test

import (
	"net/netip"
	"reflect"
	"testing"

	"github.com/netspec/netspec/spec"
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
		tftp.ParseOptions(p.Options)
	})
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
