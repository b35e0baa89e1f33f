package tftp_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/netspec/netspec/spec/tftp"
)

var (
	benchSize    = flag.Int64("goodput.size", 64<<20, "bytes per transfer in BenchmarkLoopbackGoodput")
	benchBlksize = flag.Int("goodput.blksize", 1428, "TFTP blksize in BenchmarkLoopbackGoodput")
)

// BenchmarkLoopbackGoodput measures, in one run so the figures compare
// like with like on a shared machine, the goodput of a TFTP download on
// loopback (server and client machines on impl, blksize 1428) at
// windowsize 1, 16 and 64, beside the native file protocol's (spec/file
// over spec/rudp, SHA-256 verified) for the same size:
//
//	go test ./spec/tftp -run XXX -bench LoopbackGoodput -benchtime 1x
func BenchmarkLoopbackGoodput(b *testing.B) {
	size, blk := *benchSize, *benchBlksize
	windows := []int{1, 16, 64}
	for i := 0; i < b.N; i++ {
		rates := map[string]float64{}
		for _, w := range windows {
			rates[fmt.Sprintf("tftp-w%d", w)] = tftpGoodput(b, size, blk, w)
		}
		rates["file"] = nativeGoodput(b, size)
		var tbl strings.Builder
		fmt.Fprintf(&tbl, "goodput on loopback, %d MiB per transfer:\n", size>>20)
		for _, w := range windows {
			k := fmt.Sprintf("tftp-w%d", w)
			fmt.Fprintf(&tbl, "  tftp blksize %d windowsize %-3d %8.1f MB/s  (%.2f of the file protocol)\n", blk, w, rates[k]/1e6, rates[k]/rates["file"])
			b.ReportMetric(rates[k]/1e6, k+"-MB/s")
		}
		fmt.Fprintf(&tbl, "  file protocol (rudp)            %8.1f MB/s", rates["file"]/1e6)
		b.ReportMetric(rates["file"]/1e6, "file-MB/s")
		b.Log(tbl.String())
	}
}

func listen(ev spec.Event, addr chan<- string) {
	if ev.Name == "listening" {
		addr <- ev.Text
	}
}

// tftpGoodput downloads a synthetic file of size bytes from a TFTP
// server to a client, both on impl over loopback, with the runner
// options cmd/netspec uses, and returns the goodput from the client's
// start to its last block.
func tftpGoodput(b *testing.B, size int64, blk, window int) float64 {
	scfg := tftp.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Files: []file.SynthFile{{Name: "f", Size: size, Seed: 1}}}
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	m := tftp.NewServer(scfg, nil, nil)
	srv := impl.New(m, impl.Options{ReadBatch: 1, ReadBuffer: 1 << 20, WriteBuffer: 1 << 20,
		OnEvent: func(_ spec.Time, ev spec.Event) { listen(ev, addrc) }})
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-addrc)
	var doneAt atomic.Int64
	var got atomic.Int64
	t0 := time.Now()
	copt := impl.Options{ReadBuffer: 1 << 20, WriteBuffer: 1 << 20, MaxDatagram: max(blk+4, 1500),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "data":
				got.Add(int64(len(ev.Data)))
			case "file-done":
				doneAt.Store(int64(time.Since(t0)))
			case "file-error":
				b.Errorf("tftp download failed: %s", ev.Text)
			}
		}}
	if window == 1 {
		copt.ReadBatch = 1
	}
	cl := impl.New(tftp.NewClient(tftp.ClientConfig{Server: addr, Blksize: blk, Windowsize: window, Dally: -1}, nil), copt)
	cl.Command(spec.Command{Name: "get", Args: []string{"f"}})
	cl.Command(spec.Command{Name: "exit"})
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer ccancel()
	if err := cl.Run(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		b.Fatal(err)
	}
	cancel()
	<-srvDone
	if doneAt.Load() == 0 || got.Load() != size {
		b.Fatalf("the download did not finish: %d of %d bytes", got.Load(), size)
	}
	for _, c := range m.Counters() { // the runner has stopped: safe to read
		if (c.Name == "data_resent" || c.Name == "timeouts") && c.Value > 0 {
			b.Logf("windowsize %d: server %s %d", window, c.Name, c.Value)
		}
	}
	return float64(size) / time.Duration(doneAt.Load()).Seconds()
}

// nativeGoodput is the same download over the file service (seed 002's
// protocol on rudp sessions), as spec/file's loopback benchmark runs it.
func nativeGoodput(b *testing.B, size int64) float64 {
	opts := func(o impl.Options) impl.Options {
		o.ReadBuffer, o.WriteBuffer, o.MaxDatagram = 4<<20, 4<<20, 1452
		return o
	}
	scfg := file.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Files: []file.SynthFile{{Name: "f", Size: size, Seed: 1}},
		Session: rudp.Config{Seed: 1}}
	addrc := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := impl.New(file.NewServer(scfg, nil), opts(impl.Options{OnEvent: func(_ spec.Time, ev spec.Event) { listen(ev, addrc) }}))
	srvDone := make(chan error, 1)
	go func() { srvDone <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-addrc)
	var doneAt atomic.Int64
	t0 := time.Now()
	cl := impl.New(file.NewClient(file.ClientConfig{Server: addr, Session: rudp.Config{Seed: 2}}), opts(impl.Options{
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "file-done":
				doneAt.Store(int64(time.Since(t0)))
			case "file-error":
				b.Errorf("file download failed: %s", ev.Text)
			}
		},
	}))
	cl.Command(spec.Command{Name: "get", Args: []string{"f"}})
	cl.Command(spec.Command{Name: "exit"})
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer ccancel()
	if err := cl.Run(cctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		b.Fatal(err)
	}
	cancel()
	<-srvDone
	if doneAt.Load() == 0 {
		b.Fatal("the file download did not finish")
	}
	return float64(size) / time.Duration(doneAt.Load()).Seconds()
}

// BenchmarkMachines is the machines' own cost, without sockets: a
// server and a client stepped against each other in memory for a 16
// MiB download in blocks of 1428, windows of 16. ns/op is per block.
func BenchmarkMachines(b *testing.B) {
	const size, blk, window = 16 << 20, 1428, 16
	blocks := size/blk + 1
	srvAddr := netip.MustParseAddrPort("10.0.0.1:69")
	cliAddr := netip.MustParseAddrPort("10.0.0.2:40000")
	b.SetBytes(blk)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += blocks {
		srv := tftp.NewServer(tftp.ServerConfig{Addr: srvAddr, Files: []file.SynthFile{{Name: "f", Size: size, Seed: 1}}}, nil, nil)
		cl := tftp.NewClient(tftp.ClientConfig{Server: srvAddr, Blksize: blk, Windowsize: window, Dally: -1}, nil)
		now := spec.SimEpoch
		type pkt struct {
			toServer bool
			sock     spec.Sock
			from     netip.AddrPort
			data     []byte
		}
		var q []pkt
		ports := map[spec.Sock]netip.AddrPort{}
		var out []spec.Output
		route := func(server bool, outs []spec.Output) (exited bool) {
			for _, o := range outs {
				switch o.Kind {
				case spec.OutBind:
					a := srvAddr
					if o.Sock != 1 {
						a = netip.AddrPortFrom(srvAddr.Addr(), 50000+uint16(o.Sock))
					}
					if !server {
						a = cliAddr
					}
					ports[o.Sock] = a
					if server {
						q = append(q, pkt{toServer: true, sock: o.Sock, from: a, data: nil})
					} else {
						q = append(q, pkt{toServer: false, sock: o.Sock, from: a})
					}
				case spec.OutSend:
					if server {
						q = append(q, pkt{toServer: false, sock: 1, from: ports[o.Sock], data: o.Data})
					} else {
						sock := spec.Sock(1)
						if o.Addr.Port() != 69 {
							sock = spec.Sock(o.Addr.Port() - 50000)
						}
						q = append(q, pkt{toServer: true, sock: sock, from: cliAddr, data: o.Data})
					}
				case spec.OutExit:
					exited = !server
				}
			}
			return exited
		}
		route(true, srv.Step(now, spec.Input{Kind: spec.InStart}, out[:0]))
		route(false, cl.Step(now, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"f"}}}, out[:0]))
		route(false, cl.Step(now, spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "exit"}}, out[:0]))
		for exited := false; !exited && len(q) > 0; {
			p := q[0]
			q = q[1:]
			in := spec.Input{Kind: spec.InDatagram, Sock: p.sock, Addr: p.from, Data: p.data}
			if p.data == nil {
				in = spec.Input{Kind: spec.InBound, Sock: p.sock, Addr: p.from}
			}
			if p.toServer {
				out = srv.Step(now, in, out[:0])
				exited = route(true, out)
			} else {
				out = cl.Step(now, in, out[:0])
				exited = route(false, out)
			}
		}
	}
}
