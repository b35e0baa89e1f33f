package tftp_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
)

var client = netip.MustParseAddrPort("10.0.0.9:40000")

// bench drives a server machine by hand.
type bench struct {
	t     *testing.T
	s     *tftp.Server
	now   spec.Time
	out   []spec.Output
	port  uint16 // the next transfer socket's port
	bound map[spec.Sock]netip.AddrPort
}

func newBench(t *testing.T, cfg tftp.ServerConfig) *bench {
	t.Helper()
	if !cfg.Addr.IsValid() {
		cfg.Addr = serverAddr
	}
	if cfg.Files == nil {
		cfg.Files = []file.SynthFile{{Name: "a.bin", Size: 1300, Seed: 1}, {Name: "empty", Size: 0, Seed: 2}, {Name: "d/x", Size: 512, Seed: 3}}
	}
	b := &bench{t: t, s: tftp.NewServer(cfg, nil, nil), now: spec.SimEpoch, port: 50000, bound: map[spec.Sock]netip.AddrPort{}}
	b.step(spec.Input{Kind: spec.InStart})
	b.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: serverAddr})
	return b
}

// step feeds one input and answers every bind at once, like a runner.
func (b *bench) step(in spec.Input) []spec.Output {
	b.out = b.s.Step(b.now, in, b.out[:0])
	got := append([]spec.Output(nil), b.out...)
	for _, o := range got {
		if o.Kind == spec.OutBind && o.Sock != 1 {
			a := netip.AddrPortFrom(serverAddr.Addr(), b.port)
			b.port++
			b.bound[o.Sock] = a
			got = append(got, b.step(spec.Input{Kind: spec.InBound, Sock: o.Sock, Addr: a})...)
		}
	}
	return got
}

func (b *bench) request(from netip.AddrPort, p tftp.Packet) []spec.Output {
	return b.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: from, Data: p.Append(nil)})
}

func (b *bench) to(sock spec.Sock, from netip.AddrPort, data []byte) []spec.Output {
	return b.step(spec.Input{Kind: spec.InDatagram, Sock: sock, Addr: from, Data: data})
}

func (b *bench) advance(d time.Duration, timer spec.Timer) []spec.Output {
	b.now = b.now.Add(d)
	return b.step(spec.Input{Kind: spec.InTimer, Timer: timer})
}

func sends(out []spec.Output) []spec.Output {
	var s []spec.Output
	for _, o := range out {
		if o.Kind == spec.OutSend {
			s = append(s, o)
		}
	}
	return s
}

func decode(t *testing.T, b []byte) tftp.Packet {
	t.Helper()
	var p tftp.Packet
	if err := tftp.Decode(b, &p); err != nil {
		t.Fatalf("server sent undecodable %q: %v", b, err)
	}
	return p
}

func rrq(name string, opts ...string) tftp.Packet {
	p := tftp.Packet{Op: tftp.OpRRQ, Filename: name, Mode: "octet"}
	for i := 0; i+1 < len(opts); i += 2 {
		p.Options = append(p.Options, tftp.Option{Name: opts[i], Value: opts[i+1]})
	}
	return p
}

func ack(block uint16) []byte { return tftp.AppendAck(nil, block) }

// Requests the server refuses get one ERROR from port 69 and open
// nothing; some get nothing at all.
func TestServerRefusals(t *testing.T) {
	long := strings.Repeat("x", 600)
	tests := []struct {
		name  string
		from  netip.AddrPort
		data  []byte
		write bool
		code  int // -1: no answer at all
	}{
		{"missing file", client, rrq("nope").Append(nil), false, 1},
		{"dot dot", client, rrq("../etc/passwd").Append(nil), false, 2},
		{"absolute", client, rrq("/etc/passwd").Append(nil), false, 2},
		{"backslash", client, rrq(`d\x`).Append(nil), false, 2},
		{"directory", client, rrq("d").Append(nil), false, 2},
		{"netascii", client, (&tftp.Packet{Op: tftp.OpRRQ, Filename: "a.bin", Mode: "netascii"}).Append(nil), false, 0},
		{"write not allowed", client, (&tftp.Packet{Op: tftp.OpWRQ, Filename: "new", Mode: "octet"}).Append(nil), false, 2},
		{"write existing", client, (&tftp.Packet{Op: tftp.OpWRQ, Filename: "a.bin", Mode: "octet"}).Append(nil), true, 6},
		{"write too large", client, (&tftp.Packet{Op: tftp.OpWRQ, Filename: "big", Mode: "octet", Options: []tftp.Option{{"tsize", "99999999999"}}}).Append(nil), true, 3},
		{"too long", client, rrq(long).Append(nil), false, 4},
		{"malformed", client, []byte("\x00\x01a.bin\x00octet"), false, 4},
		{"low port", netip.MustParseAddrPort("10.0.0.9:53"), rrq("a.bin").Append(nil), false, -1},
		{"highest low port", netip.MustParseAddrPort("10.0.0.9:1023"), rrq("a.bin").Append(nil), false, -1},
		{"port zero", netip.MustParseAddrPort("10.0.0.9:0"), rrq("a.bin").Append(nil), false, -1},
		{"not a request", client, ack(1), false, -1},
		{"garbage", client, []byte("GET / HTTP/1.0\r\n\r\n"), false, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t, tftp.ServerConfig{AllowWrite: tc.write})
			out := b.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: tc.from, Data: tc.data})
			s := sends(out)
			for _, o := range out {
				if o.Kind == spec.OutBind {
					t.Fatalf("refused request opened a socket")
				}
			}
			if tc.code < 0 {
				if len(s) != 0 {
					t.Fatalf("answered %d datagrams, want none", len(s))
				}
				return
			}
			if len(s) != 1 || s[0].Sock != 1 || s[0].Addr != tc.from {
				t.Fatalf("answer %v, want one ERROR from port 69", s)
			}
			p := decode(t, s[0].Data)
			if p.Op != tftp.OpERROR || int(p.Code) != tc.code {
				t.Fatalf("answered %v code %d (%q), want ERROR %d", p.Op, p.Code, p.Msg, tc.code)
			}
			if len(s[0].Data) > 100 {
				t.Fatalf("refusal of %d bytes: a reflector must not amplify", len(s[0].Data))
			}
		})
	}
}

// A read without options: DATA from a fresh port, lock-step, and the
// transfer is released after the last ACK.
func TestServerReadLockStep(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	out := sends(b.request(client, rrq("a.bin")))
	if len(out) != 1 || out[0].Sock == 1 {
		t.Fatalf("want DATA 1 from a transfer socket, got %v", out)
	}
	sock := out[0].Sock
	var got []byte
	for blk := uint16(1); ; blk++ {
		p := decode(t, out[0].Data)
		if p.Op != tftp.OpDATA || p.Block != blk {
			t.Fatalf("got %v %d, want DATA %d", p.Op, p.Block, blk)
		}
		got = append(got, p.Data...)
		all := b.to(sock, client, ack(blk))
		out = sends(all)
		if len(p.Data) < 512 {
			if len(out) != 0 || b.s.Transfers() != 0 {
				t.Fatalf("after the last ACK: %v sends, %d transfers", out, b.s.Transfers())
			}
			break
		}
		// A duplicate ACK draws nothing.
		if dup := sends(b.to(sock, client, ack(blk))); len(dup) != 0 {
			t.Fatalf("duplicate ACK %d drew %d datagrams", blk, len(dup))
		}
	}
	want := make([]byte, 1300)
	file.SynthBytes(1, 0, want)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes, not the file", len(got))
	}
}

// Options are acknowledged within the server's limits; DATA waits for
// ACK 0; a window goes out at once and a stale ACK moves nothing.
func TestServerOptions(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{MaxBlksize: 100, MaxWindowsize: 4, MaxTimeout: 3 * time.Second})
	out := sends(b.request(client, rrq("a.bin", "BLKSIZE", "1428", "windowsize", "64", "tsize", "0", "timeout", "9", "color", "blue")))
	if len(out) != 1 {
		t.Fatalf("want one OACK, got %v", out)
	}
	p := decode(t, out[0].Data)
	o, unknown, bad := tftp.ParseOptions(p.Options)
	if p.Op != tftp.OpOACK || o.Blksize != 100 || o.Windowsize != 4 || o.TSize != 1300 || o.Timeout != 0 || len(unknown)+len(bad) != 0 {
		t.Fatalf("OACK %+v: %+v unknown %v bad %v", p, o, unknown, bad)
	}
	sock := out[0].Sock
	out = sends(b.to(sock, client, ack(0)))
	if len(out) != 4 {
		t.Fatalf("after ACK 0: %d datagrams, want a window of 4", len(out))
	}
	for i, o := range out {
		if p := decode(t, o.Data); p.Block != uint16(i+1) || len(p.Data) != 100 {
			t.Fatalf("window datagram %d: block %d, %d bytes", i, p.Block, len(p.Data))
		}
	}
	// ACK 2 (the receiver lost block 3): the next window starts at 3.
	out = sends(b.to(sock, client, ack(2)))
	if len(out) != 4 || decode(t, out[0].Data).Block != 3 {
		t.Fatalf("after ACK 2: %d datagrams from block %d, want 4 from 3", len(out), decode(t, out[0].Data).Block)
	}
	for _, stale := range []uint16{0, 1, 2, 9, 65535} {
		if s := sends(b.to(sock, client, ack(stale))); len(s) != 0 {
			t.Fatalf("stale ACK %d drew %d datagrams", stale, len(s))
		}
	}
}

// The timeout option is granted up to MaxTimeout, inclusive, and then
// times the retransmissions; above it the option is left out of the
// OACK and the server's Timeout (1 s) applies.
func TestServerTimeoutOption(t *testing.T) {
	for _, tc := range []struct {
		asked   string
		granted int // 0: left out
		resend  time.Duration
	}{
		{"2", 2, 2 * time.Second},
		{"3", 3, 3 * time.Second},
		{"4", 0, time.Second},
	} {
		t.Run(tc.asked, func(t *testing.T) {
			b := newBench(t, tftp.ServerConfig{MaxTimeout: 3 * time.Second})
			out := b.request(client, rrq("a.bin", "timeout", tc.asked, "blksize", "512"))
			s := sends(out)
			if len(s) != 1 {
				t.Fatalf("want one OACK, got %v", s)
			}
			p := decode(t, s[0].Data)
			o, _, _ := tftp.ParseOptions(p.Options)
			if p.Op != tftp.OpOACK || o.Timeout != tc.granted {
				t.Fatalf("OACK %+v: timeout %d, want %d", p, o.Timeout, tc.granted)
			}
			var at []time.Duration
			for _, o := range out {
				if o.Kind == spec.OutSetTimer {
					at = append(at, o.At.Sub(b.now))
				}
			}
			if len(at) != 1 || at[0] != tc.resend {
				t.Fatalf("retransmission timer in %v, want %v", at, tc.resend)
			}
		})
	}
}

// A transfer's client that has acknowledged nothing yet may be a forger:
// a wrong packet from it ends the transfer with an ERROR no larger than
// that packet (a 2-byte OACK drew 20 bytes), or none; a verified client
// gets the whole message.
func TestServerUnverifiedPeerErrorFits(t *testing.T) {
	for _, tc := range []struct {
		name     string
		pkt      []byte
		verified bool
		max      int // largest ERROR, -1 for none
	}{
		{"empty OACK", []byte{0, 6}, false, -1},
		{"DATA to a reader", []byte{0, 3, 0, 1}, false, -1},
		{"an RRQ", (&tftp.Packet{Op: tftp.OpRRQ, Filename: "a", Mode: "octet"}).Append(nil), false, 10},
		{"verified", []byte{0, 6}, true, 100},
	} {
		b := newBench(t, tftp.ServerConfig{})
		out := sends(b.request(client, rrq("a.bin")))
		if len(out) != 1 {
			t.Fatalf("%s: the request drew %d datagrams", tc.name, len(out))
		}
		sock := out[0].Sock
		if tc.verified {
			b.to(sock, client, ack(1))
		}
		got := sends(b.to(sock, client, tc.pkt))
		switch {
		case tc.max < 0 && len(got) != 0:
			t.Errorf("%s: %d-byte packet drew %q", tc.name, len(tc.pkt), got[0].Data)
		case len(got) > 1 || len(got) == 1 && (len(got[0].Data) > tc.max || decode(t, got[0].Data).Op != tftp.OpERROR):
			t.Errorf("%s: %d-byte packet drew %v", tc.name, len(tc.pkt), got)
		case tc.verified && (len(got) != 1 || !strings.Contains(decode(t, got[0].Data).Msg, "unexpected")):
			t.Errorf("%s: want the whole message, got %v", tc.name, got)
		}
	}
}

// A window is granted no more bytes than MaxWindowBytes (128 KiB), so it
// fits the receiver's socket buffer: 64 blocks of 1428 bytes, 2 of
// 65464 (atftp asking for 4 of those lost every window's tail and did
// not fetch 20 MB in 25 s), and always at least 1.
func TestServerWindowBytes(t *testing.T) {
	for _, tc := range []struct {
		cfg            tftp.ServerConfig
		blksize, asked string
		want           int
	}{
		{tftp.ServerConfig{}, "1428", "64", 64},
		{tftp.ServerConfig{}, "65464", "4", 2},
		{tftp.ServerConfig{}, "8192", "64", 16},
		{tftp.ServerConfig{MaxWindowBytes: 1000}, "65464", "8", 1},
		{tftp.ServerConfig{MaxWindowBytes: 1 << 20}, "65464", "8", 8},
	} {
		b := newBench(t, tc.cfg)
		out := sends(b.request(client, rrq("a.bin", "blksize", tc.blksize, "windowsize", tc.asked)))
		if len(out) != 1 {
			t.Fatalf("want one OACK, got %v", out)
		}
		o, _, _ := tftp.ParseOptions(decode(t, out[0].Data).Options)
		if o.Windowsize != tc.want {
			t.Errorf("blksize %s windowsize %s, MaxWindowBytes %d: granted %d, want %d", tc.blksize, tc.asked, tc.cfg.MaxWindowBytes, o.Windowsize, tc.want)
		}
	}
}

// A forged request aims at most 1+FirstRetries datagrams at its victim;
// a client that answers gets the full Retries.
func TestServerForgedRequestBudget(t *testing.T) {
	for _, withOptions := range []bool{false, true} {
		b := newBench(t, tftp.ServerConfig{})
		req := rrq("a.bin")
		if withOptions {
			req = rrq("a.bin", "blksize", "65464")
		}
		victim := netip.MustParseAddrPort("10.9.9.9:5555")
		out := sends(b.request(victim, req))
		total, bytesOut := len(out), 0
		for _, o := range out {
			bytesOut += len(o.Data)
		}
		timer := spec.Timer(out[0].Sock)
		for i := 0; i < 10 && b.s.Transfers() > 0; i++ {
			for _, o := range sends(b.advance(time.Second, timer)) {
				total++
				bytesOut += len(o.Data)
			}
		}
		if total != 2 || b.s.Transfers() != 0 {
			t.Errorf("options=%v: a forged request drew %d datagrams (%d bytes), %d transfers left; want 2, 0", withOptions, total, bytesOut, b.s.Transfers())
		}
		if withOptions && bytesOut > 64 {
			t.Errorf("a forged request with options drew %d bytes: only OACKs should go out", bytesOut)
		}
	}
}

// Requests dropped because MaxUnverified transfers await their clients
// draw one warning a second that counts them, and those transfers, whose
// clients never answer, end without a warning: forged requests decide
// how often both happen (each drew a WARN line, the drops none).
func TestServerForgedRequestsDoNotFloodTheLog(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{MaxUnverified: 3})
	var warns []spec.Output
	timers := map[spec.Timer]bool{}
	collect := func(out []spec.Output) {
		for _, o := range out {
			switch {
			case o.Kind == spec.OutLog && o.Log.Level >= slog.LevelWarn:
				warns = append(warns, o)
			case o.Kind == spec.OutSetTimer:
				timers[o.Timer] = true
			}
		}
	}
	for i := range 10 {
		if i == 9 {
			b.now = b.now.Add(time.Second)
		}
		collect(b.request(netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(i)}), 3000), rrq("a.bin")))
	}
	if len(warns) != 2 || !strings.Contains(fmt.Sprint(warns[0].Log.Attrs), "dropped=1") || !strings.Contains(fmt.Sprint(warns[1].Log.Attrs), "dropped=6") {
		t.Fatalf("warnings %+v; want one at the first drop and one a second later counting 6", warns)
	}
	warns = nil
	for round := 0; b.s.Transfers() > 0; round++ {
		if round > 100 {
			t.Fatalf("%d transfers still open", b.s.Transfers())
		}
		b.now = b.now.Add(10 * time.Second)
		for tm := range timers {
			delete(timers, tm)
			collect(b.step(spec.Input{Kind: spec.InTimer, Timer: tm}))
		}
	}
	if len(warns) != 0 {
		t.Fatalf("transfers whose clients never answered ended with warnings: %+v", warns)
	}
}

// Forged requests fill at most MaxUnverified transfers; MaxTransfers
// and MaxPerHost refuse with "busy"; a duplicate request starts nothing.
func TestServerLimits(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{MaxUnverified: 3, MaxTransfers: 5, MaxPerHost: 2})
	for i := 0; i < 10; i++ {
		from := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 8, 0, byte(i)}), 3000)
		b.request(from, rrq("a.bin"))
	}
	if n := b.s.Transfers(); n != 3 {
		t.Fatalf("%d transfers from 10 forged requests, want MaxUnverified=3", n)
	}
	b = newBench(t, tftp.ServerConfig{MaxPerHost: 2})
	var refused int
	for i := 0; i < 4; i++ {
		out := sends(b.request(netip.AddrPortFrom(client.Addr(), uint16(4000+i)), rrq("a.bin")))
		if p := decode(t, out[0].Data); p.Op == tftp.OpERROR {
			refused++
		}
	}
	if refused != 2 || b.s.Transfers() != 2 {
		t.Fatalf("MaxPerHost 2: %d refused, %d transfers", refused, b.s.Transfers())
	}
	b = newBench(t, tftp.ServerConfig{})
	b.request(client, rrq("a.bin"))
	if out := sends(b.request(client, rrq("a.bin"))); len(out) != 0 || b.s.Transfers() != 1 {
		t.Fatalf("a duplicate request drew %d datagrams and left %d transfers", len(out), b.s.Transfers())
	}
}

// A datagram from another port gets ERROR 5, never larger than itself
// (a stranger's 4-byte ACK drew 24 bytes: forged, from a victim's
// address, an amplifier), and the transfer goes on; an ERROR from the
// client ends it.
func TestServerUnknownTID(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	sock := sends(b.request(client, rrq("a.bin")))[0].Sock
	stranger := netip.MustParseAddrPort("10.0.0.9:40001")
	if out := sends(b.to(sock, stranger, ack(1))); len(out) != 0 {
		t.Fatalf("a stranger's 4-byte ACK drew %v: no ERROR fits in 4 bytes", out)
	}
	big := append(tftp.AppendData(nil, 1), make([]byte, 512)...)
	out := sends(b.to(sock, stranger, big))
	if len(out) != 1 || out[0].Addr != stranger || len(out[0].Data) > len(big) {
		t.Fatalf("stranger got %v, want one ERROR 5 of at most %d bytes", out, len(big))
	}
	if p := decode(t, out[0].Data); p.Code != tftp.ErrUnknownTID || p.Msg != "unknown transfer ID" {
		t.Fatalf("stranger got %+v, want ERROR 5 with its message", p)
	}
	data := append(tftp.AppendData(nil, 1), 'x') // 5 bytes: room for the code alone
	if out := sends(b.to(sock, stranger, data)); len(out) != 1 || len(out[0].Data) != 5 || decode(t, out[0].Data).Code != tftp.ErrUnknownTID {
		t.Fatalf("a 5-byte DATA drew %v, want a bare ERROR 5", out)
	}
	if out := sends(b.to(sock, stranger, tftp.AppendError(nil, 0, "x"))); len(out) != 0 {
		t.Fatalf("an ERROR from a stranger was answered")
	}
	if out := sends(b.to(sock, client, ack(1))); len(out) != 1 || decode(t, out[0].Data).Block != 2 {
		t.Fatalf("the transfer did not go on: %v", out)
	}
	b.to(sock, client, tftp.AppendError(nil, 0, "user cancelled"))
	if b.s.Transfers() != 0 {
		t.Fatalf("an ERROR from the client left the transfer")
	}
}

// A client that ACKs each block just before the timeout keeps a
// transfer alive; MaxDuration ends it with an ERROR all the same, and a
// slow transfer within it is not touched.
func TestServerMaxDuration(t *testing.T) {
	for _, tc := range []struct {
		name    string
		max     time.Duration
		pace    time.Duration // between the client's ACKs
		wantEnd bool
	}{
		{"slow client cut off", 2 * time.Second, 900 * time.Millisecond, true},
		{"slow within the limit", time.Minute, 900 * time.Millisecond, false},
		{"no limit", -1, 900 * time.Millisecond, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBench(t, tftp.ServerConfig{MaxDuration: tc.max, Files: []file.SynthFile{{Name: "big", Size: 512 * 10, Seed: 1}}})
			sock := sends(b.request(client, rrq("big")))[0].Sock
			var ended bool
			for blk := uint16(1); blk <= 4 && !ended; blk++ {
				b.now = b.now.Add(tc.pace)
				for _, o := range sends(b.to(sock, client, ack(blk))) {
					if p := decode(t, o.Data); p.Op == tftp.OpERROR {
						if !strings.Contains(p.Msg, "longer than") {
							t.Fatalf("ERROR %q", p.Msg)
						}
						ended = true
					}
				}
			}
			if ended != tc.wantEnd || (b.s.Transfers() == 0) != tc.wantEnd {
				t.Fatalf("ended %v with %d transfers left, want ended %v", ended, b.s.Transfers(), tc.wantEnd)
			}
		})
	}
}

// A write: ACK 0, blocks acknowledged in order, the last one only after
// the store committed; then the transfer dallies and re-acknowledges.
func TestServerWrite(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{AllowWrite: true})
	out := sends(b.request(client, tftp.Packet{Op: tftp.OpWRQ, Filename: "up/new.bin", Mode: "octet"}))
	if len(out) != 1 || !bytes.Equal(out[0].Data, ack(0)) {
		t.Fatalf("WRQ answered %v, want ACK 0", out)
	}
	sock := out[0].Sock
	data := tftp.AppendData(nil, 1)
	data = append(data, make([]byte, 512)...)
	if out := sends(b.to(sock, client, data)); len(out) != 1 || !bytes.Equal(out[0].Data, ack(1)) {
		t.Fatalf("DATA 1 answered %v", out)
	}
	var done []spec.Event
	for _, o := range b.to(sock, client, append(tftp.AppendData(nil, 2), "end"...)) {
		if o.Kind == spec.OutEvent {
			done = append(done, o.Event)
		}
	}
	if len(done) != 1 || done[0].Name != "transfer-done" || done[0].Value.(tftp.Transfer).Bytes != 515 {
		t.Fatalf("events %v, want transfer-done of 515 bytes", done)
	}
	if out := sends(b.to(sock, client, append(tftp.AppendData(nil, 2), "end"...))); len(out) != 1 || !bytes.Equal(out[0].Data, ack(2)) {
		t.Fatalf("a retransmitted last block got %v, want ACK 2 again", out)
	}
	b.advance(2*time.Second, spec.Timer(sock))
	if b.s.Transfers() != 0 {
		t.Fatalf("the transfer did not end after dallying")
	}
}

// Stopping tells clients that answered and releases everything.
func TestServerStop(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	sock := sends(b.request(client, rrq("a.bin")))[0].Sock
	b.to(sock, client, ack(1))
	out := b.step(spec.Input{Kind: spec.InStop})
	var errs, unbinds, exits int
	for _, o := range out {
		switch o.Kind {
		case spec.OutSend:
			if decode(t, o.Data).Op == tftp.OpERROR {
				errs++
			}
		case spec.OutUnbind:
			unbinds++
		case spec.OutExit:
			exits++
		}
	}
	if errs != 1 || unbinds != 2 || exits != 1 {
		t.Fatalf("stop: %d errors, %d unbinds, %d exits", errs, unbinds, exits)
	}
}

// Counters name what was dropped.
func TestServerCounters(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	b.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: client, Data: []byte{0, 1}})
	b.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: client, Data: ack(3)})
	got := map[string]uint64{}
	for _, c := range b.s.Counters() {
		got[c.Name] = c.Value
	}
	if got["malformed"] != 1 || got["not_requests"] != 1 {
		t.Fatalf("counters %v", got)
	}
}

func TestDescribe(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want string
	}{
		{rrq("a.bin", "blksize", "1428").Append(nil), `RRQ "a.bin" octet blksize=1428`},
		{append(tftp.AppendData(nil, 7), "abc"...), "DATA 7 (3 bytes)"},
		{ack(65535), "ACK 65535"},
		{tftp.AppendError(nil, 1, "file not found"), `ERROR 1 (file not found) "file not found"`},
		{[]byte{0, 9}, "2 bytes, not TFTP"},
	} {
		if got := tftp.Describe(tc.in); !strings.HasPrefix(got, tc.want) {
			t.Errorf("Describe(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// recordStore is a Store that remembers what became of its uploads.
type recordStore struct {
	committed, aborted []string
	data               map[string][]byte // what each committed upload held
}

type recordUpload struct {
	s    *recordStore
	name string
	data []byte
}

func (s *recordStore) Create(name string, _ int64) (tftp.Upload, error) {
	return &recordUpload{s: s, name: name}, nil
}

func (u *recordUpload) Write(p []byte) (int, error) {
	u.data = append(u.data, p...)
	return len(p), nil
}
func (u *recordUpload) Abort() { u.s.aborted = append(u.s.aborted, u.name) }

func (u *recordUpload) Commit() error {
	u.s.committed = append(u.s.committed, u.name)
	if u.s.data == nil {
		u.s.data = map[string][]byte{}
	}
	u.s.data[u.name] = u.data
	return nil
}

// newStoreBench is newBench with uploads allowed, going to st.
func newStoreBench(t *testing.T, cfg tftp.ServerConfig, st tftp.Store) *bench {
	cfg.Addr, cfg.AllowWrite = serverAddr, true
	b := &bench{t: t, now: spec.SimEpoch, port: 50000, bound: map[spec.Sock]netip.AddrPort{},
		s: tftp.NewServer(cfg, nil, st)}
	b.step(spec.Input{Kind: spec.InStart})
	b.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: serverAddr})
	return b
}

// An upload that announced its size (tsize) must be exactly that size:
// a client that sends fewer bytes, or more, gets an ERROR and nothing
// is committed, so a cut-short upload never looks complete. None may
// be larger than MaxWriteSize.
func TestServerWriteHoldsToTSize(t *testing.T) {
	block := func(n uint16, size int) []byte { return append(tftp.AppendData(nil, n), make([]byte, size)...) }
	tests := []struct {
		name   string
		tsize  string
		max    int64 // MaxWriteSize; 0: the default
		blocks [][]byte
		commit bool
		code   tftp.ErrCode // the ERROR when not committed
	}{
		{"exactly tsize", "515", 0, [][]byte{block(1, 512), block(2, 3)}, true, 0},
		{"exactly tsize, a multiple of the block size", "512", 0, [][]byte{block(1, 512), block(2, 0)}, true, 0},
		{"shorter than tsize", "100000", 0, [][]byte{block(1, 3)}, false, tftp.ErrIllegal},
		{"shorter than tsize after a full block", "100000", 0, [][]byte{block(1, 512), block(2, 0)}, false, tftp.ErrIllegal},
		{"longer than tsize", "3", 0, [][]byte{block(1, 512), block(2, 3)}, false, tftp.ErrIllegal},
		// curl -T - (from stdin) announces 0: it does not know the size.
		{"tsize 0, size unknown", "0", 0, [][]byte{block(1, 512), block(2, 1)}, true, 0},
		// MaxWriteSize bounds an upload, announced or not: up to it
		// exactly is accepted, a byte more is refused (disk full), at
		// the request if tsize says so (no blocks: no transfer opens).
		{"exactly MaxWriteSize, size unknown", "0", 515, [][]byte{block(1, 512), block(2, 3)}, true, 0},
		{"exactly MaxWriteSize, announced", "515", 515, [][]byte{block(1, 512), block(2, 3)}, true, 0},
		{"past MaxWriteSize, size unknown", "0", 515, [][]byte{block(1, 512), block(2, 4)}, false, tftp.ErrDiskFull},
		{"past MaxWriteSize, announced", "516", 515, nil, false, tftp.ErrDiskFull},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &recordStore{}
			b := newStoreBench(t, tftp.ServerConfig{MaxWriteSize: tc.max}, st)
			out := sends(b.request(client, tftp.Packet{Op: tftp.OpWRQ, Filename: "up/new.bin", Mode: "octet", Options: []tftp.Option{{Name: "tsize", Value: tc.tsize}}}))
			if tc.blocks == nil {
				if len(out) != 1 || out[0].Sock != 1 || decode(t, out[0].Data).Op != tftp.OpERROR || decode(t, out[0].Data).Code != tc.code ||
					b.s.Transfers() != 0 || len(st.committed)+len(st.aborted) != 0 {
					t.Fatalf("WRQ answered %v, %d transfers, store %v %v: want ERROR %d from port 69 and nothing opened",
						out, b.s.Transfers(), st.committed, st.aborted, tc.code)
				}
				return
			}
			if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpOACK {
				t.Fatalf("WRQ answered %v, want an OACK", out)
			}
			sock := out[0].Sock
			var last tftp.Packet
			var events []string
			for _, blk := range tc.blocks {
				for _, o := range b.to(sock, client, blk) {
					switch o.Kind {
					case spec.OutSend:
						last = decode(t, o.Data)
					case spec.OutEvent:
						events = append(events, o.Event.Name)
					}
				}
			}
			if tc.commit {
				if len(st.committed) != 1 || last.Op != tftp.OpACK || !slices.Equal(events, []string{"transfer-done"}) {
					t.Fatalf("committed %v, last sent %v, events %v: want the upload committed and acknowledged", st.committed, last.Op, events)
				}
				return
			}
			if len(st.committed) != 0 || len(st.aborted) != 1 {
				t.Fatalf("committed %v, aborted %v: want the upload aborted", st.committed, st.aborted)
			}
			if last.Op != tftp.OpERROR || last.Code != tc.code || !slices.Equal(events, []string{"transfer-error"}) {
				t.Fatalf("last sent %v (code %d), events %v: want ERROR %d and a transfer-error", last.Op, last.Code, events, tc.code)
			}
			if b.s.Transfers() != 0 {
				t.Fatal("the failed upload still holds a transfer")
			}
		})
	}
}

// openSpy is a file system that records every name opened; it is an
// fs.StatFS, as the roots the server gets are.
type openSpy struct {
	fs.FS
	opened []string
}

func (o *openSpy) Open(name string) (fs.File, error) {
	o.opened = append(o.opened, name)
	return o.FS.Open(name)
}

func (o *openSpy) Stat(name string) (fs.FileInfo, error) { return fs.Stat(o.FS, name) }

// The server looks at what a name is before it opens it: a FIFO or a
// device is refused with an access violation and never opened (opening
// a FIFO blocks until a writer appears, and with it the runner).
func TestServerNeverOpensNonRegularFiles(t *testing.T) {
	spy := &openSpy{FS: fstest.MapFS{"pipe": {Mode: fs.ModeNamedPipe}, "dev": {Mode: fs.ModeDevice}}}
	s := tftp.NewServer(tftp.ServerConfig{Addr: serverAddr}, spy, nil)
	s.Step(spec.SimEpoch, spec.Input{Kind: spec.InStart}, nil)
	s.Step(spec.SimEpoch, spec.Input{Kind: spec.InBound, Sock: 1, Addr: serverAddr}, nil)
	for _, name := range []string{"pipe", "dev"} {
		out := sends(s.Step(spec.SimEpoch, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: client, Data: rrq(name).Append(nil)}, nil))
		if len(out) != 1 {
			t.Fatalf("RRQ %s answered %d datagrams", name, len(out))
		}
		if p := decode(t, out[0].Data); p.Op != tftp.OpERROR || p.Code != tftp.ErrAccess {
			t.Fatalf("RRQ %s answered %s, want ERROR 2", name, tftp.Describe(out[0].Data))
		}
	}
	if len(spy.opened) != 0 {
		t.Fatalf("opened %q", spy.opened)
	}
}

// A finished upload that is only dallying does not hold its place: a
// client uploading file after file (curl's timeout option makes the
// dally 6 s) used to be refused "too many transfers from your address"
// until the dallies ran out.
func TestServerDallyMakesRoom(t *testing.T) {
	for _, cfg := range []tftp.ServerConfig{{AllowWrite: true, MaxPerHost: 1}, {AllowWrite: true, MaxTransfers: 1}} {
		b := newBench(t, cfg)
		out := sends(b.request(client, tftp.Packet{Op: tftp.OpWRQ, Filename: "new.bin", Mode: "octet"}))
		if len(out) != 1 || !bytes.Equal(out[0].Data, ack(0)) {
			t.Fatalf("WRQ answered %v, want ACK 0", out)
		}
		if out := sends(b.to(out[0].Sock, client, append(tftp.AppendData(nil, 1), "end"...))); len(out) != 1 || !bytes.Equal(out[0].Data, ack(1)) {
			t.Fatalf("last DATA answered %v, want ACK 1", out)
		}
		next := netip.AddrPortFrom(client.Addr(), client.Port()+1)
		out = sends(b.request(next, rrq("a.bin")))
		if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpDATA {
			t.Fatalf("%+v: a request beside a dallying upload got %v, want DATA 1", cfg, out)
		}
		if n := b.s.Transfers(); n != 1 {
			t.Fatalf("%+v: %d transfers, want the new one only", cfg, n)
		}
	}
}
