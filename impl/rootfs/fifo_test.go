//go:build unix

package rootfs_test

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/netspec/netspec/spec/tftp"
)

// fifoRoot is a root holding ok.txt and a named pipe, pipe, that no one
// writes to: opening it for reading the usual way blocks for ever.
func fifoRoot(t *testing.T) (*rootfs.Root, string) {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "ok.txt"), []byte("fine"), 0o644))
	pipe := filepath.Join(dir, "pipe")
	must(t, syscall.Mkfifo(pipe, 0o644))
	r, err := rootfs.Open(dir)
	must(t, err)
	t.Cleanup(func() { r.Close() })
	return r, pipe
}

// promptly runs f, failing the test if it has not returned within a
// generous deadline (a blocked open is for ever, not slow). A blocked f
// is then released by opening the pipe for writing.
func promptly(t *testing.T, pipe, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		if w, err := os.OpenFile(pipe, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		<-done
		t.Fatalf("%s blocked on a FIFO", what)
	}
}

// Opening a FIFO, reading it as a file or listing it as a directory
// fails at once with ErrNotRegular; Stat still describes it.
func TestFIFORefusedWithoutBlocking(t *testing.T) {
	r, pipe := fifoRoot(t)
	fsys := r.FS()
	ops := map[string]func() error{
		"Open":     func() error { f, err := fsys.Open("pipe"); closeIf(f); return err },
		"ReadFile": func() error { _, err := fs.ReadFile(fsys, "pipe"); return err },
		"ReadDir":  func() error { _, err := fs.ReadDir(fsys, "pipe"); return err },
	}
	for name, op := range ops {
		var err error
		promptly(t, pipe, name, func() { err = op() })
		if !errors.Is(err, rootfs.ErrNotRegular) {
			t.Errorf("%s of a FIFO: %v, want ErrNotRegular", name, err)
		}
	}
	if st, err := fs.Stat(fsys, "pipe"); err != nil || st.Mode().Type() != fs.ModeNamedPipe {
		t.Errorf("Stat of a FIFO: %v, %v", st, err)
	}
	if b, err := fs.ReadFile(fsys, "ok.txt"); err != nil || string(b) != "fine" {
		t.Errorf("a regular file next to the FIFO: %q, %v", b, err)
	}
}

func closeIf(f fs.File) {
	if f != nil {
		f.Close()
	}
}

// The TFTP server refuses an RRQ for a FIFO with an ERROR, at once.
func TestTFTPServerRefusesFIFO(t *testing.T) {
	r, pipe := fifoRoot(t)
	srvAddr := netip.MustParseAddrPort("10.0.0.1:69")
	cli := netip.MustParseAddrPort("10.0.0.2:40000")
	s := tftp.NewServer(tftp.ServerConfig{Addr: srvAddr}, r.FS(), nil)
	s.Step(spec.SimEpoch, spec.Input{Kind: spec.InStart}, nil)
	s.Step(spec.SimEpoch, spec.Input{Kind: spec.InBound, Sock: 1, Addr: srvAddr}, nil)
	rrq := (&tftp.Packet{Op: tftp.OpRRQ, Filename: "pipe", Mode: "octet"}).Append(nil)
	var out []spec.Output
	promptly(t, pipe, "an RRQ", func() {
		out = s.Step(spec.SimEpoch, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: cli, Data: rrq}, nil)
	})
	for _, o := range out {
		if o.Kind == spec.OutSend {
			var p tftp.Packet
			if err := tftp.Decode(o.Data, &p); err != nil || p.Op != tftp.OpERROR {
				t.Fatalf("RRQ for a FIFO answered %s, want an ERROR", tftp.Describe(o.Data))
			}
			return
		}
	}
	t.Fatal("RRQ for a FIFO not answered")
}

// The file server answers a GET of a FIFO with an error, at once, and
// goes on serving: a regular file is fetched next on the same session.
func TestFileServerRefusesFIFO(t *testing.T) {
	r, pipe := fifoRoot(t)
	srvAddr := netip.MustParseAddrPort("10.0.0.1:6000")
	cliAddr := netip.MustParseAddrPort("10.0.0.2:7000")
	n := newPair(file.NewServer(file.ServerConfig{Addr: srvAddr, Session: rudp.Config{Seed: 1}}, r.FS()), srvAddr,
		file.NewClient(file.ClientConfig{Server: srvAddr, Session: rudp.Config{Seed: 2}}), cliAddr)
	var events []spec.Event
	promptly(t, pipe, "a GET", func() {
		n.command(spec.Command{Name: "get", Args: []string{"pipe"}})
		n.command(spec.Command{Name: "get", Args: []string{"ok.txt"}})
		events = n.run(func(ev spec.Event) bool { return ev.Name == "file-done" || ev.Name == "closed" })
	})
	var got []string
	for _, ev := range events {
		if ev.Name == "file-error" || ev.Name == "file-done" {
			got = append(got, ev.Name+" "+ev.Text)
		}
	}
	if len(got) != 2 || got[0] != "file-error get pipe: not a regular file" || got[1] != "file-done ok.txt" {
		t.Fatalf("outcomes %q, want the FIFO refused and ok.txt fetched", got)
	}
}

// pair runs a server machine and a client machine against each other
// over a lossless, instant network, firing timers in order when nothing
// is in flight.
type pair struct {
	m      [2]spec.Machine
	addr   [2]netip.AddrPort
	now    spec.Time
	timers [2]map[spec.Timer]spec.Time
	queue  []delivery
	events []spec.Event
}

type delivery struct {
	to int
	in spec.Input
}

func newPair(srv spec.Machine, srvAddr netip.AddrPort, cli spec.Machine, cliAddr netip.AddrPort) *pair {
	p := &pair{m: [2]spec.Machine{srv, cli}, addr: [2]netip.AddrPort{srvAddr, cliAddr}, now: spec.SimEpoch,
		timers: [2]map[spec.Timer]spec.Time{{}, {}}}
	for i := range p.m {
		p.step(i, spec.Input{Kind: spec.InStart})
	}
	return p
}

func (p *pair) command(c spec.Command) { p.step(1, spec.Input{Kind: spec.InCommand, Cmd: c}) }

// step gives machine i one input and routes what it asks for.
func (p *pair) step(i int, in spec.Input) {
	for _, o := range p.m[i].Step(p.now, in, nil) {
		switch o.Kind {
		case spec.OutBind:
			p.queue = append(p.queue, delivery{i, spec.Input{Kind: spec.InBound, Sock: o.Sock, Addr: p.addr[i]}})
		case spec.OutSend:
			p.queue = append(p.queue, delivery{1 - i, spec.Input{Kind: spec.InDatagram, Sock: 1, Addr: p.addr[i], Data: o.Data}})
		case spec.OutSetTimer:
			p.timers[i][o.Timer] = o.At
		case spec.OutCancelTimer:
			delete(p.timers[i], o.Timer)
		case spec.OutEvent:
			if i == 1 {
				p.events = append(p.events, o.Event)
			}
		}
	}
}

// run delivers and fires timers until the client emits an event stop
// accepts, or for at most a simulated minute.
func (p *pair) run(stop func(spec.Event) bool) []spec.Event {
	end := p.now.Add(time.Minute)
	for p.now < end {
		for _, ev := range p.events {
			if stop(ev) {
				return p.events
			}
		}
		if len(p.queue) > 0 {
			d := p.queue[0]
			p.queue = p.queue[1:]
			p.step(d.to, d.in)
			continue
		}
		who, tm, at := -1, spec.Timer(0), spec.Time(0)
		for i := range p.timers {
			for k, v := range p.timers[i] {
				if who < 0 || v < at || v == at && (i < who || i == who && k < tm) {
					who, tm, at = i, k, v
				}
			}
		}
		if who < 0 {
			break
		}
		delete(p.timers[who], tm)
		p.now = max(p.now, at)
		p.step(who, spec.Input{Kind: spec.InTimer, Timer: tm})
	}
	return p.events
}
