package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/file"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func fileGroup() *group {
	return &group{
		name: "file",
		help: "seed 002's file service: sessions over reliable UDP, a menu, SHA-256-verified resumable downloads",
		verbs: []verb{
			{"serve", "serve a directory to file clients", fileServe},
			{"get", "download a file (resumes a partial download, verifies SHA-256)", fileGet},
			{"shell", "the menu: help, time, about, ls, get, chat, exit", fileShell},
		},
	}
}

// sessionFlags are the session-layer and fault-injection flags every
// file verb takes.
type sessionFlags struct {
	datagram int
	cc       string
	faults   impl.FaultConfig
}

func addSessionFlags(fs *flag.FlagSet) *sessionFlags {
	s := &sessionFlags{}
	fs.IntVar(&s.datagram, "datagram", 1452, "largest datagram in `BYTES` (fits a 1500-byte MTU by default)")
	fs.StringVar(&s.cc, "cc", "westwood", "congestion control: westwood or newreno")
	fs.Float64Var(&s.faults.Loss, "loss", 0, "drop this fraction of the datagrams this end sends (testing: the kernel has no netem)")
	fs.Float64Var(&s.faults.Dup, "dup", 0, "duplicate this fraction of the datagrams this end sends")
	fs.DurationVar(&s.faults.Delay, "delay", 0, "delay every datagram this end sends")
	fs.DurationVar(&s.faults.Jitter, "jitter", 0, "add a random delay up to this to every datagram (reorders)")
	return s
}

func (s *sessionFlags) check(verb string) error {
	switch {
	case s.datagram < rudp.MinDatagram || s.datagram > rudp.MaxPacket:
		return usagef("file %s: --datagram must be between %d and %d", verb, rudp.MinDatagram, rudp.MaxPacket)
	case s.cc != "westwood" && s.cc != "newreno":
		return usagef("file %s: --cc must be westwood or newreno", verb)
	case !(s.faults.Loss >= 0 && s.faults.Loss < 1): // NaN too
		return usagef("file %s: --loss must be in [0, 1)", verb)
	case !(s.faults.Dup >= 0 && s.faults.Dup <= 1):
		return usagef("file %s: --dup must be in [0, 1]", verb)
	case s.faults.Delay < 0:
		return usagef("file %s: --delay must not be negative", verb)
	case s.faults.Jitter < 0:
		return usagef("file %s: --jitter must not be negative", verb)
	}
	s.faults.Seed = randomSeed()
	return nil
}

// options are the runner options of a file verb.
func (s *sessionFlags) options(o impl.Options) impl.Options {
	o.Faults = s.faults
	o.ReadBuffer, o.WriteBuffer = socketBuffers, socketBuffers
	o.MaxDatagram = s.datagram
	// Bulk transfers: windows of equal segments to one peer leave as one
	// segmented message each.
	o.GSO = true
	return o
}

func (s *sessionFlags) config() rudp.Config {
	return rudp.Config{Seed: randomSeed(), MaxDatagram: s.datagram, CC: s.cc}
}

// randomSeed seeds a machine run on real sockets: session ids and the
// cookie secret must not be guessable.
func randomSeed() uint64 {
	var b [8]byte
	_, _ = crand.Read(b[:])
	return binary.LittleEndian.Uint64(b[:])
}

// socketBuffers are the UDP socket buffer sizes the file verbs ask for.
const socketBuffers = 4 << 20

// sameUDPPort reports whether binding both a and b would collide: one
// port (not 0, any free one) on one address, or on a wildcard that
// covers the other.
func sameUDPPort(a, b netip.AddrPort) bool {
	if !a.IsValid() || !b.IsValid() || a.Port() == 0 || a.Port() != b.Port() {
		return false
	}
	x, y := a.Addr().Unmap(), b.Addr().Unmap()
	covers := func(w, o netip.Addr) bool { // [::] is dual-stack, 0.0.0.0 only IPv4
		return w.IsUnspecified() && (w.Is6() || o.Is4())
	}
	return x == y || covers(x, y) || covers(y, x)
}

// fileSeedPort is seed 002's control port: a file server's by default.
const fileSeedPort = 6000

// fileServerAddr parses a file client's SERVER: HOST:PORT, a bare PORT, or,
// as seed 002's client took it, a HOST alone, served on fileSeedPort.
func fileServerAddr(s string) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.AddrPortFrom(a, fileSeedPort), nil
	}
	if s != "" && !strings.Contains(s, ":") && strings.Trim(s, "0123456789") != "" {
		s = net.JoinHostPort(s, strconv.Itoa(fileSeedPort))
	}
	return parseAddr(s, true)
}

func fileServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("file serve", "[--addr ADDR] --root DIR [flags]",
		"Serves the files under DIR (symlinks that leave it and names with .. are refused)\n"+
			"to 'netspec file get' and 'netspec file shell'. Lines typed on standard input\n"+
			"go to the clients in chat mode; their chat lines are printed.")
	addr := addrFlag{ap: netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), fileSeedPort)}
	fs.Var(&addr, "addr", "serve on `ADDR` (host:port or port; by default on seed 002's control port)")
	root := fs.String("root", "", "serve the files under `DIR`")
	maxSessions := fs.Int("max-sessions", 1024, "refuse sessions beyond `N`")
	var tftpAddr addrFlag
	fs.Var(&tftpAddr, "tftp", "also serve DIR, read-only, over TFTP on `ADDR` (curl, tftp-hpa, atftp)")
	sf := addSessionFlags(fs)
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case *root == "":
		return usagef("file serve: --root DIR is required")
	case *maxSessions < 1:
		return usagef("file serve: --max-sessions must be at least 1")
	case sameUDPPort(addr.ap, tftpAddr.ap):
		return usagef("file serve: --tftp %s and --addr %s would share a UDP port: give TFTP its own (69 is its standard port)", tftpAddr.ap, addr.ap)
	}
	if err := sf.check("serve"); err != nil {
		return err
	}
	rt, err := rootfs.Open(*root)
	if err != nil {
		return usagef("file serve: --root: %v", err)
	}
	defer rt.Close()
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	sess := sf.config()
	sess.MaxSessions = *maxSessions
	cfg := file.ServerConfig{Addr: addr.ap, Root: rt.Dir(), Session: sess}
	var out sync.Mutex
	say := func(format string, a ...any) {
		out.Lock()
		defer out.Unlock()
		fmt.Fprintf(e.stdout, format, a...)
	}
	r := tr.New("file", "server", cfg, file.NewServer(cfg, rt.FS()), sf.options(impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				say("file: serving %s on %s\n", rt.Dir(), ev.Text)
			case "session":
				say("file: session %s\n", ev.Text)
			case "say":
				say("[%s] %s\n", ev.Value.(file.ChatLine).From, printable(ev.Text))
			case "chat-nobody":
				say("file: %s\n", ev.Text)
			}
		},
	}))
	// TFTP, if asked for, serves the same root beside the native protocol;
	// either stopping stops both.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go console(ctx, e, func(b []byte) { r.Command(spec.Command{Name: "say", Data: b}) },
		func(n int) { say("file: a console line of %d bytes is too long; skipped\n", n) })
	tftpErr := make(chan error, 1)
	if tftpAddr.ap.IsValid() {
		go func() { err := serveTFTP(ctx, e, tftpAddr.ap, rt, false, log); cancel(); tftpErr <- err }()
	} else {
		tftpErr <- nil
	}
	err = exitErr(r.Run(ctx))
	cancel()
	if terr := <-tftpErr; err == nil {
		err = terr
	}
	return err
}

// printable keeps a peer's text from driving the terminal.
func printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\t' && r != '\n' || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

func fileGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("file get", "SERVER NAME [-o PATH] [flags]",
		"Downloads NAME from a file server into PATH (default: NAME's last element, here).\n"+
			"SERVER is HOST:PORT, or a HOST alone on seed 002's control port, 6000.\n"+
			"Bytes go to PATH.part and are renamed to PATH only once their SHA-256 matches\n"+
			"the server's; an interrupted download leaves PATH.part, and running the same\n"+
			"command again resumes from it once the server has checked it is a prefix.")
	outPath := fs.String("o", "", "write to `PATH` (default: NAME's last element, here; a directory: that name inside it; a device such as /dev/null, or - for standard output: into it as the bytes come, no resume, and an error exit if the SHA-256 then differs)")
	noResume := fs.Bool("no-resume", false, "ignore PATH.part and download from the start")
	quiet := fs.Bool("q", false, "no progress")
	connectTimeout := fs.Duration("connect-timeout", 0, "give up if the server has not answered within this `DURATION` (0: when the transport does, after about 85 s of SYNs)")
	sf := addSessionFlags(fs)
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	if *connectTimeout < 0 {
		return usagef("file get: --connect-timeout must not be negative")
	}
	server, err := fileServerAddr(pos[0])
	if err != nil {
		return usagef("file get: %v", err)
	}
	if err := file.ValidName(pos[1]); err != nil {
		return usagef("file get: %v", err)
	}
	if err := sf.check("get"); err != nil {
		return err
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	d, err := newDownload(e, pos[1], *outPath, *quiet)
	if err != nil {
		return err
	}
	cmd, err := d.command(!*noResume)
	if err != nil {
		return err
	}
	unlock, err := d.lock()
	if err != nil {
		return err
	}
	defer unlock()
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.abort = cancel
	silent := warnIfQuiet(e, "file get", server, sessionPlan)
	defer silent.stop()
	// No answer within --connect-timeout ends the run as Ctrl-C does,
	// and says why; a download under way is never cut by it.
	var gaveUp atomic.Bool
	if *connectTimeout > 0 {
		t := time.AfterFunc(*connectTimeout, func() {
			if !silent.heard.Load() {
				gaveUp.Store(true)
				cancel()
			}
		})
		defer t.Stop()
	}
	ccfg := file.ClientConfig{Server: server, Session: sf.config()}
	cl := file.NewClient(ccfg)
	d.counters = cl.Counters // read by finish, once the runner has stopped
	r := tr.New("file", "client", ccfg, cl, sf.options(impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			if ev.Name == "connected" {
				silent.hear()
			}
			d.event(now, ev)
		},
	}))
	r.Command(cmd)
	r.Command(spec.Command{Name: "exit"})
	runErr := exitErr(r.Run(rctx))
	if gaveUp.Load() && !d.done && d.failure == "" {
		d.failure = fmt.Sprintf("no answer from %s in %v (--connect-timeout)", server, *connectTimeout)
	}
	return d.finish(runErr)
}

// sessionPlan is what a file client does while its server is silent.
const sessionPlan = "still sending SYNs, backing off, until it gives up (Ctrl-C stops)"

// download writes one file a "get" brings: to PATH.part while the bytes
// come, renamed to PATH once the client machine has verified them. It
// runs in the runner's goroutine (OnEvent); finish reads it after.
type download struct {
	e          *env
	name, path string
	part       string
	f          *os.File
	w          *bufio.Writer
	size       int64
	offset     int64
	got        int64
	done       bool
	sum        string
	failure    string
	corrupt    bool
	werr       error
	abort      func()
	prog       *progress
	quiet      bool
	t0         spec.Time
	dur        time.Duration
	counters   func() []spec.Counter // the client machine's
	// toStdout: -o -, the bytes go to standard output as they come (no
	// PATH.part, no resume) and the messages to standard error.
	toStdout bool
}

func newDownload(e *env, name, out string, quiet bool) (*download, error) {
	e = e.statusFor(out)
	p := path.Base(name)
	if out != "" {
		p = out
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			p = filepath.Join(out, path.Base(name))
		}
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() && out != "-" {
		// Caught now: the rename at the end would fail after the whole
		// download, and again after every resume.
		return nil, usagef("file get: %s is a directory: name the file with -o PATH", p)
	}
	if out == "-" {
		return &download{e: e, name: name, path: "standard output", toStdout: true, quiet: quiet}, nil
	}
	// A symbolic link is written through (the file behind it replaced,
	// the link kept); a device (-o /dev/null) is written into, without
	// resuming: PATH.part renamed over it would replace it with a
	// regular file.
	target, device, err := outTarget(p)
	if err != nil {
		return nil, usagef("file get: -o: %v", err)
	}
	d := &download{e: e, name: name, path: target, part: target + ".part", quiet: quiet}
	if device {
		d.part = ""
	}
	return d, nil
}

// lock takes an exclusive lock on PATH.part for the download, so that a
// second file get to the same PATH fails at once instead of writing the
// same file (both then claimed success, and PATH held one's bytes under
// the other's digest). unlock releases it, and removes a PATH.part the
// lock created if nothing was written to it.
func (d *download) lock() (unlock func(), err error) {
	if d.part == "" {
		return func() {}, nil
	}
	_, serr := os.Stat(d.part)
	created := errors.Is(serr, os.ErrNotExist)
	f, err := os.OpenFile(d.part, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file get: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("file get: another download is writing %s (%v)", d.part, err)
	}
	return func() {
		if st, err := f.Stat(); err == nil && created && st.Size() == 0 && !d.done {
			os.Remove(d.part)
		}
		f.Close()
	}, nil
}

// command is the "get" for this download: with the SHA-256 state of
// PATH.part if there is one to resume.
func (d *download) command(resume bool) (spec.Command, error) {
	cmd := spec.Command{Name: "get", Args: []string{d.name}}
	if !resume || d.part == "" {
		return cmd, nil
	}
	f, err := os.Open(d.part)
	if errors.Is(err, os.ErrNotExist) {
		return cmd, nil
	}
	if err != nil {
		return cmd, fmt.Errorf("file get: %w", err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return cmd, fmt.Errorf("file get: reading %s: %w", d.part, err)
	}
	if n == 0 {
		return cmd, nil
	}
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return cmd, err
	}
	cmd.Args = append(cmd.Args, strconv.FormatInt(n, 10))
	cmd.Data = state
	return cmd, nil
}

func (d *download) event(now spec.Time, ev spec.Event) {
	switch ev.Name {
	case "file-start":
		v := ev.Value.(file.FileStart)
		d.size, d.offset, d.got, d.t0 = v.Size, v.Offset, 0, now
		if d.toStdout {
			d.w = bufio.NewWriterSize(d.e.stdout, 1<<20)
			if !d.quiet {
				d.prog = newProgress(d.e.stderr, d.name, v.Size, v.Offset, now)
			}
			return
		}
		var f *os.File
		var err error
		if d.part == "" {
			f, err = os.OpenFile(d.path, os.O_WRONLY, 0)
		} else {
			f, err = os.OpenFile(d.part, os.O_CREATE|os.O_WRONLY, 0o644)
			if err == nil {
				err = f.Truncate(v.Offset)
			}
			if err == nil {
				_, err = f.Seek(v.Offset, io.SeekStart)
			}
		}
		if err != nil {
			d.fail(fmt.Errorf("file get: %w", err))
			return
		}
		d.f, d.w = f, bufio.NewWriterSize(f, 1<<20)
		if !d.quiet {
			d.prog = newProgress(d.e.stderr, d.name, v.Size, v.Offset, now)
		}
	case "data":
		if d.w == nil || d.werr != nil {
			return
		}
		if _, err := d.w.Write(ev.Data); err != nil {
			name := d.part
			if name == "" {
				name = d.path
			}
			d.fail(fmt.Errorf("file get: writing %s: %w", name, err))
			return
		}
		d.got += int64(len(ev.Data))
		if d.prog != nil {
			d.prog.update(now, d.offset+d.got)
		}
	case "file-done":
		v := ev.Value.(file.FileDone)
		if d.werr != nil {
			// The client machine verified what it received, not what
			// reached the disk: after a failed write (the shell has no
			// abort to stop the transfer) PATH.part is short, and must
			// not become PATH.
			return
		}
		if err := d.close(); err != nil {
			d.fail(err)
			return
		}
		// The bytes are on disk and verified: only now may PATH exist.
		if d.part == "" {
			// Written to the device itself.
		} else if err := os.Rename(d.part, d.path); err != nil {
			d.fail(fmt.Errorf("file get: %w", err))
			return
		}
		d.done, d.sum = true, v.SHA256
		if d.prog != nil {
			d.prog.finish(now, d.size)
		}
		d.dur = now.Sub(d.t0)
	case "file-error":
		d.failure = ev.Text
		if v, ok := ev.Value.(file.FileError); ok && v.Corrupt {
			d.corrupt = true
		}
		_ = d.close()
		if d.corrupt && d.part != "" {
			os.Remove(d.part)
		}
		if d.prog != nil {
			d.prog.stop()
		}
	}
}

func (d *download) close() error {
	if d.toStdout && d.w != nil {
		w := d.w
		d.w = nil
		if err := w.Flush(); err != nil {
			return fmt.Errorf("file get: writing to standard output: %w", err)
		}
		return nil
	}
	if d.f == nil {
		return nil
	}
	f := d.f
	d.f = nil
	err := d.w.Flush()
	if err == nil && d.part != "" { // a device may not sync (EINVAL)
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("file get: writing %s: %w", d.part, err)
	}
	return nil
}

func (d *download) fail(err error) {
	if d.werr == nil {
		d.werr = err
	}
	if d.f != nil {
		d.f.Close()
		d.f = nil
	}
	if d.abort != nil {
		d.abort()
	}
}

// finish reports the outcome once the runner has stopped.
func (d *download) finish(runErr error) error {
	if d.done {
		resumed := ""
		if d.offset > 0 {
			resumed = fmt.Sprintf(", resumed from byte %d", d.offset)
		}
		msgs := d.e.stdout
		if d.toStdout {
			msgs = d.e.stderr
		}
		fmt.Fprintf(msgs, "%s: %d bytes in %s%s, sha256 %s -> %s\n", d.name, d.size, elapsed(d.size-d.offset, d.dur), resumed, d.sum, d.path)
		if d.counters != nil {
			// The seed's client reported how often data came twice.
			c := counterMap(d.counters())
			fmt.Fprintf(msgs, "%s: %d segments received, %d of them duplicates\n", d.name, c["rudp_segments_received"], c["rudp_duplicate_segments"])
		}
		return nil
	}
	_ = d.close()
	hint := ""
	if !d.corrupt && d.part != "" {
		if st, err := os.Stat(d.part); err == nil && st.Size() > 0 {
			hint = fmt.Sprintf(" (%d bytes kept in %s: run the same command to resume)", st.Size(), d.part)
		}
	}
	switch {
	case d.werr != nil:
		return fmt.Errorf("%w%s", d.werr, hint)
	case d.failure != "":
		return fmt.Errorf("file get: %s%s", d.failure, hint)
	case runErr != nil:
		return fmt.Errorf("file get %s: %w%s", d.name, runErr, hint)
	}
	return fmt.Errorf("file get %s: interrupted%s", d.name, hint)
}

// progress shows a download's progress: a bar with bytes, rate and ETA
// on a terminal, a plain line a second otherwise.
type progress struct {
	bar   *progressbar.ProgressBar
	w     io.Writer
	name  string
	size  int64
	from  int64
	start spec.Time
	last  spec.Time
}

func newProgress(w io.Writer, name string, size, from int64, now spec.Time) *progress {
	p := &progress{w: w, name: name, size: size, from: from, start: now, last: now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(name),
			progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionShowTotalBytes(true), progressbar.OptionSetPredictTime(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionFullWidth(), progressbar.OptionShowElapsedTimeOnFinish(), progressbar.OptionUseIECUnits(true)) // MiB, as the summary line
		_ = p.bar.Set64(from)
	}
	return p
}

func (p *progress) update(now spec.Time, at int64) {
	if p.bar != nil {
		_ = p.bar.Set64(at)
		return
	}
	if now.Sub(p.last) >= time.Second {
		p.last = now
		p.line(now, at)
	}
}

func (p *progress) line(now spec.Time, at int64) {
	el := now.Sub(p.start).Seconds()
	rate := float64(at-p.from) / max(el, 1e-9)
	eta := "?"
	if rate > 0 {
		eta = time.Duration(float64(p.size-at) / rate * float64(time.Second)).Round(time.Second).String()
	}
	pct := 100.0
	if p.size > 0 {
		pct = 100 * float64(at) / float64(p.size)
	}
	if el < time.Millisecond.Seconds() {
		// Too short a time for a rate: see elapsed.
		fmt.Fprintf(p.w, "%s: %s of %s (%.0f%%)\n", p.name, humanBytes(float64(at)), humanBytes(float64(p.size)), pct)
		return
	}
	fmt.Fprintf(p.w, "%s: %s of %s (%.0f%%), %s/s, ETA %s\n", p.name, humanBytes(float64(at)), humanBytes(float64(p.size)), pct, humanBytes(rate), eta)
}

func (p *progress) finish(now spec.Time, size int64) {
	if p.bar != nil {
		_ = p.bar.Finish()
		fmt.Fprintln(p.w)
		return
	}
	p.line(now, size)
}

func (p *progress) stop() {
	if p.bar != nil {
		_ = p.bar.Exit()
		fmt.Fprintln(p.w)
	}
}

// counterMap indexes a machine's counters by name.
func counterMap(cs []spec.Counter) map[string]uint64 {
	m := make(map[string]uint64, len(cs))
	for _, c := range cs {
		m[c.Name] = c.Value
	}
	return m
}

// elapsed is "76ms (155.3 MiB/s)": how long n bytes took, and their
// rate; "<1ms" alone when the clock saw too little time for a rate to
// mean anything (it would read hundreds of GiB/s).
func elapsed(n int64, d time.Duration) string {
	if d < time.Millisecond {
		return "<1ms"
	}
	return fmt.Sprintf("%v (%s/s)", d.Round(time.Millisecond), humanBytes(float64(n)/d.Seconds()))
}

func humanBytes(n float64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB"}
	i := 0
	for n >= 1024 && i < len(units)-1 {
		n /= 1024
		i++
	}
	if i == 0 {
		return fmt.Sprintf("%.0f %s", n, units[i])
	}
	return fmt.Sprintf("%.1f %s", n, units[i])
}

func fileShell(ctx context.Context, e *env, args []string) error {
	fs := e.flags("file shell", "SERVER [flags]",
		"Opens a session to a file server (HOST:PORT, or a HOST alone on port 6000) and\n"+
			"reads commands, one a line, as the seed's client menu did: help, time (1),\n"+
			"chat (2), get NAME [PATH] (3 NAME), about (4), ls [DIR], exit. In chat mode\n"+
			"every line goes to the server's console until exitchat. The end of input is exit.")
	sf := addSessionFlags(fs)
	logger := logFlags(fs)
	pos, err := e.parse(fs, args, 1, 1)
	if err != nil {
		return err
	}
	server, err := fileServerAddr(pos[0])
	if err != nil {
		return usagef("file shell: %v", err)
	}
	if err := sf.check("shell"); err != nil {
		return err
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	var mu sync.Mutex // guards dl and the output
	var dl *download
	print := func(format string, a ...any) {
		fmt.Fprintf(e.stdout, format, a...)
	}
	answers := make(chan spec.Event, 16)
	quiet := warnIfQuiet(e, "file shell", server, sessionPlan)
	defer quiet.stop()
	r := impl.New(file.NewClient(file.ClientConfig{Server: server, Session: sf.config()}), sf.options(impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			mu.Lock()
			defer mu.Unlock()
			switch ev.Name {
			case "connected":
				quiet.hear()
				print("connected to %s; type help\n", ev.Text)
			case "reply":
				print("%s\n", printable(ev.Text))
				answers <- ev
			case "chat":
				print("[server] %s\n", printable(ev.Text))
			case "file-start", "data":
				if dl != nil {
					dl.event(now, ev)
				}
			case "file-done", "file-error":
				if dl != nil {
					dl.event(now, ev)
				}
				answers <- ev
			case "closed":
				if ev.Text != "" {
					print("session closed: %s\n", ev.Text)
				}
			}
		},
	}))
	runDone := make(chan error, 1)
	go func() { runDone <- exitErr(r.Run(ctx)) }()
	wait := func() bool {
		select {
		case <-answers:
			return true
		case err := <-runDone:
			runDone <- err
			return false
		}
	}
	type input struct {
		line string
		long int // a line this long was skipped
	}
	lines := make(chan input)
	go func() {
		defer close(lines)
		// A line too long for a command is refused and skipped; the
		// ones after it still run (a Scanner stopped at it, silently).
		_ = readLines(e.stdin, maxInputLine, func(b []byte) { lines <- input{line: string(b)} },
			func(n int) { lines <- input{long: n} })
	}()
	chatting := false
loop:
	for {
		var line string
		select {
		case in, ok := <-lines:
			if !ok {
				break loop
			}
			if in.long > 0 {
				print("a line of %d bytes is too long for a command; skipped\n", in.long)
				continue
			}
			line = in.line
		case err := <-runDone:
			return err
		}
		if chatting {
			if strings.TrimSpace(line) == "exitchat" {
				chatting = false
				r.Command(spec.Command{Name: "exitchat"})
				if !wait() {
					break loop
				}
			} else {
				r.Command(spec.Command{Name: "say", Data: []byte(line)})
			}
			continue
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch alias := map[string]string{"1": "time", "2": "chat", "3": "get", "4": "about", "quit": "exit"}; {
		case alias[f[0]] != "":
			f[0] = alias[f[0]]
		}
		switch f[0] {
		case "help", "time", "about", "ls", "chat", "exitchat":
			r.Command(spec.Command{Name: f[0], Args: f[1:]})
			if !wait() {
				break loop
			}
			chatting = chatting || f[0] == "chat"
			if f[0] == "help" {
				// The server's menu lists its commands; these are the shell's.
				print("this shell also takes: get NAME PATH (save as PATH), and the seed's numbers: 1 time, 2 chat, 3 NAME (get), 4 about\n")
			}
		case "get":
			if len(f) < 2 || len(f) > 3 {
				print("usage: get NAME [PATH]\n")
				continue
			}
			out := ""
			if len(f) == 3 {
				out = f[2]
			}
			if out == "-" {
				print("get: the shell's standard output holds its menu: give a file name\n")
				continue
			}
			d, err := newDownload(&env{stdin: e.stdin, stdout: e.stdout, stderr: e.stderr}, f[1], out, false)
			if err != nil {
				print("%v\n", err)
				continue
			}
			cmd, err := d.command(true)
			if err != nil {
				print("%v\n", err)
				continue
			}
			mu.Lock()
			dl = d
			mu.Unlock()
			r.Command(cmd)
			if !wait() {
				break loop
			}
			mu.Lock()
			dl = nil
			mu.Unlock()
			if err := d.finish(nil); err != nil {
				print("%v\n", err)
			}
		case "exit":
			break loop
		default:
			print("unknown command %q (try help)\n", f[0])
		}
	}
	r.Command(spec.Command{Name: "exit"})
	err = <-runDone
	if err == nil {
		print("bye\n")
	}
	return err
}

// console reads the server's console lines from standard input. A server
// started in the background of a terminal ('netspec file serve ... &')
// would be stopped by the kernel (SIGTTIN) at its first read, and serve
// no one: the signal is ignored, so such a read fails with EIO instead,
// and the console tries again every second, reading once the job is
// brought to the foreground.
func console(ctx context.Context, e *env, line func([]byte), long func(int)) {
	if f, ok := e.stdin.(*os.File); ok && f == os.Stdin {
		signal.Ignore(syscall.SIGTTIN)
	}
	for {
		err := readLines(e.stdin, maxInputLine, line, long)
		if !errors.Is(err, syscall.EIO) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
}
