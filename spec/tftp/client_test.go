package tftp_test

import (
	"bytes"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/tftp"
)

// clientBench drives a client machine by hand through its first answer.
type clientBench struct {
	t   *testing.T
	c   *tftp.Client
	now spec.Time
	out []spec.Output
	req []byte
}

func newClientBench(t *testing.T, cfg tftp.ClientConfig, cmd spec.Command) *clientBench {
	cfg.Server = serverAddr
	b := &clientBench{t: t, c: tftp.NewClient(cfg, nil), now: spec.SimEpoch}
	b.step(spec.Input{Kind: spec.InCommand, Cmd: cmd})
	out := sends(b.step(spec.Input{Kind: spec.InBound, Sock: 1, Addr: netip.MustParseAddrPort("10.0.0.9:40000")}))
	if len(out) != 1 || out[0].Addr != serverAddr {
		t.Fatalf("want the request sent to port 69, got %v", out)
	}
	b.req = out[0].Data
	return b
}

func (b *clientBench) step(in spec.Input) []spec.Output {
	b.out = b.c.Step(b.now, in, b.out[:0])
	return append([]spec.Output(nil), b.out...)
}

func (b *clientBench) from(addr netip.AddrPort, data []byte) []spec.Output {
	return b.step(spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: addr, Data: data})
}

func events(out []spec.Output, name string) []spec.Event {
	var evs []spec.Event
	for _, o := range out {
		if o.Kind == spec.OutEvent && o.Event.Name == name {
			evs = append(evs, o.Event)
		}
	}
	return evs
}

var tid = netip.AddrPortFrom(serverAddr.Addr(), 50000)

func oack(opts ...string) []byte {
	p := tftp.Packet{Op: tftp.OpOACK}
	for i := 0; i+1 < len(opts); i += 2 {
		p.Options = append(p.Options, tftp.Option{Name: opts[i], Value: opts[i+1]})
	}
	return p.Append(nil)
}

// The client refuses an OACK that does not answer its request with
// ERROR 8, and fails the transfer.
func TestClientRefusesBadOACK(t *testing.T) {
	for _, tc := range []struct {
		name string
		oack []byte
		why  string // in the file-error's text
	}{
		{"unrequested option", oack("windowsize", "4"), "windowsize=4, which was not asked for"},
		// It was asked for, just not as much (the message said "not
		// asked for").
		{"larger blksize", oack("blksize", "2000"), "blksize=2000, which is not what was asked for"},
		{"blksize too small", oack("blksize", "7"), "blksize=7, which is not what was asked for"},
		{"bad number", oack("blksize", "12x"), "bad value"},
		{"twice", oack("blksize", "100", "BLKSIZE", "100"), "twice"},
		{"unknown", oack("color", "blue"), "option color"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newClientBench(t, tftp.ClientConfig{Blksize: 1000}, spec.Command{Name: "get", Args: []string{"f"}})
			out := b.from(tid, tc.oack)
			s := sends(out)
			if len(s) != 1 || s[0].Addr != tid || decode(t, s[0].Data).Code != tftp.ErrOptionsRefused {
				t.Fatalf("answered %v, want ERROR 8 to the server's TID", s)
			}
			if fe := events(out, "file-error"); len(fe) != 1 || !strings.Contains(fe[0].Text, tc.why) {
				t.Fatalf("file-error %v, want one saying %q", fe, tc.why)
			}
		})
	}
}

// Options accepted lower: the client adopts them and acknowledges with
// ACK 0; a download longer than its tsize is an error, not a file.
func TestClientTSizeMismatch(t *testing.T) {
	b := newClientBench(t, tftp.ClientConfig{Blksize: 1000}, spec.Command{Name: "get", Args: []string{"f"}})
	out := b.from(tid, oack("blksize", "10", "tsize", "15"))
	if s := sends(out); len(s) != 1 || !bytes.Equal(s[0].Data, ack(0)) {
		t.Fatalf("OACK answered %v, want ACK 0", s)
	}
	if fs := events(out, "file-start"); len(fs) != 1 || fs[0].Value.(tftp.FileStart).Blksize != 10 || fs[0].Value.(tftp.FileStart).Size != 15 {
		t.Fatalf("file-start %v", fs)
	}
	b.from(tid, append(tftp.AppendData(nil, 1), "0123456789"...))
	out = b.from(tid, append(tftp.AppendData(nil, 2), "0123456789"...))
	if len(events(out, "file-error")) != 1 || len(events(out, "data")) != 0 {
		t.Fatalf("20 bytes of a 15-byte file: %v", out)
	}
}

// MaxSize refuses a download larger than it (ERROR 3, disk full), up
// front when the OACK's tsize says so, else at the block that passes
// it, whose bytes are not delivered; one of exactly MaxSize bytes
// completes.
func TestClientMaxSize(t *testing.T) {
	for _, tc := range []struct {
		name   string
		oack   []byte
		blocks []string // DATA 1, 2... after ACK 0
		done   bool
		got    int // bytes delivered
	}{
		{"tsize MaxSize", oack("blksize", "10", "tsize", "15"), []string{"0123456789", "01234"}, true, 15},
		{"tsize past MaxSize", oack("blksize", "10", "tsize", "16"), nil, false, 0},
		{"no tsize, MaxSize", oack("blksize", "10"), []string{"0123456789", "01234"}, true, 15},
		{"no tsize, past MaxSize", oack("blksize", "10"), []string{"0123456789", "012345"}, false, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newClientBench(t, tftp.ClientConfig{Blksize: 1000, MaxSize: 15}, spec.Command{Name: "get", Args: []string{"f"}})
			out := b.from(tid, tc.oack)
			for i, blk := range tc.blocks {
				out = append(out, b.from(tid, append(tftp.AppendData(nil, uint16(i+1)), blk...))...)
			}
			got := 0
			for _, ev := range events(out, "data") {
				got += len(ev.Data)
			}
			s := sends(out)
			last := decode(t, s[len(s)-1].Data)
			switch {
			case got != tc.got:
				t.Fatalf("%d bytes delivered, want %d", got, tc.got)
			case tc.done && (len(events(out, "file-done")) != 1 || last.Op != tftp.OpACK):
				t.Fatalf("file-done %v, last sent %v: want the download done and acknowledged", events(out, "file-done"), last.Op)
			case !tc.done && (len(events(out, "file-error")) != 1 || last.Op != tftp.OpERROR || last.Code != tftp.ErrDiskFull):
				t.Fatalf("file-error %v, last sent %v %v: want ERROR 3 and the download failed", events(out, "file-error"), last.Op, last.Code)
			}
		})
	}
}

// Datagrams from strangers get ERROR 5 and change nothing; the first
// answer fixes the server's TID.
func TestClientTIDs(t *testing.T) {
	b := newClientBench(t, tftp.ClientConfig{}, spec.Command{Name: "get", Args: []string{"f"}})
	stranger := netip.MustParseAddrPort("10.0.0.66:50000")
	out := sends(b.from(stranger, append(tftp.AppendData(nil, 1), "evil"...)))
	if len(out) != 1 || out[0].Addr != stranger || decode(t, out[0].Data).Code != tftp.ErrUnknownTID {
		t.Fatalf("stranger got %v", out)
	}
	b.from(tid, append(tftp.AppendData(nil, 1), make([]byte, 512)...))
	other := netip.AddrPortFrom(serverAddr.Addr(), 50001)
	out = sends(b.from(other, append(tftp.AppendData(nil, 2), "x"...)))
	if len(out) != 1 || out[0].Addr != other || decode(t, out[0].Data).Code != tftp.ErrUnknownTID {
		t.Fatalf("a second server TID got %v", out)
	}
	out = b.from(tid, append(tftp.AppendData(nil, 2), "end"...))
	if len(events(out, "file-done")) != 1 {
		t.Fatalf("the real transfer did not finish: %v", out)
	}
}

// A silent server: the request is resent Retries times, then the
// transfer fails and the client exits with the error.
func TestClientNoAnswer(t *testing.T) {
	b := newClientBench(t, tftp.ClientConfig{Retries: 2, Timeout: time.Second}, spec.Command{Name: "get", Args: []string{"f"}})
	b.step(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "exit"}})
	resent := 0
	var exit string
	for i := 0; i < 5; i++ {
		b.now = b.now.Add(time.Second)
		for _, o := range b.step(spec.Input{Kind: spec.InTimer, Timer: 1}) {
			if o.Kind == spec.OutSend && bytes.Equal(o.Data, b.req) {
				resent++
			}
			if o.Kind == spec.OutExit {
				exit = o.Err
			}
		}
	}
	if resent != 2 || exit == "" {
		t.Fatalf("resent %d times, exit %q; want 2 and an error", resent, exit)
	}
}

// Files longer than 65535 blocks: block numbers wrap to 0, over a lossy,
// duplicating, reordering network. (Lock step wraps in cmd/netspec's
// curl test, on real sockets.)
func TestBlockNumberWraparound(t *testing.T) {
	f := file.SynthFile{Name: "big.img", Size: 70_000*8 + 3, Seed: 9}
	want := synth(f)
	for _, window := range []int{8} {
		sc := scenario{
			files:   []file.SynthFile{f},
			clients: []tftp.ClientConfig{{Server: serverAddr, Blksize: 8, Windowsize: window}},
			jobs:    [][]job{{{name: f.Name, want: want}}},
			faults:  sim.Faults{Loss: 0.01, Dup: 0.01, Jitter: time.Millisecond},
			seed:    uint64(window),
		}
		w := newWorld()
		s := sc.build(nil, w)
		s.RunUntil(w.allExited, time.Hour)
		r := w.clients["c0"].results
		if len(r) != 1 || !r[0].done || !bytes.Equal(r[0].got.Bytes(), want) {
			t.Fatalf("window %d: %d results, done=%v err=%q", window, len(r), len(r) > 0 && r[0].done, r[0].err)
		}
		rec := &recorder{}
		w.check(rec)
		if rec.err != nil {
			t.Fatalf("window %d: %v", window, rec.err)
		}
	}
}
