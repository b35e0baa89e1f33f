package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/rootfs"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/tftp"
)

func tftpGroup() *group {
	return &group{
		name: "tftp",
		help: "TFTP (RFC 1350 with blksize, timeout, tsize and windowsize options): serve a directory, get and put files",
		verbs: []verb{
			{"serve", "serve a directory to TFTP clients (curl, tftp-hpa, atftp)", tftpServe},
			{"get", "download a file from a TFTP server", tftpGet},
			{"put", "upload a file to a TFTP server", tftpPut},
		},
	}
}

// tftpSocketBuffers are the UDP socket buffers TFTP endpoints ask for:
// room for several 64-block windows of 1428 bytes.
const tftpSocketBuffers = 1 << 20

func tftpServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("tftp serve", "--addr ADDR --root DIR [--allow-write] [flags]",
		"Serves the files under DIR over TFTP, octet mode (names with .. and symlinks that\n"+
			"leave DIR are refused). Each transfer gets a fresh port. With --allow-write,\n"+
			"write requests create new files (never overwrite); an upload appears under its\n"+
			"name only once its last block has arrived. Try:\n"+
			"  curl -o out tftp://127.0.0.1:6969/NAME")
	var addr addrFlag
	fs.Var(&addr, "addr", "serve on `ADDR` (host:port or port; TFTP's own port is 69)")
	root := fs.String("root", "", "serve the files under `DIR`")
	allowWrite := fs.Bool("allow-write", false, "accept write requests (new files only)")
	var cfg tftp.ServerConfig
	fs.IntVar(&cfg.MaxTransfers, "max-transfers", 64, "refuse transfers beyond `N` at once")
	fs.IntVar(&cfg.MaxBlksize, "max-blksize", tftp.MaxBlksize, "largest blksize option to accept, in `BYTES`")
	fs.IntVar(&cfg.MaxWindowsize, "max-windowsize", 64, "largest windowsize option to accept, in `BLOCKS`")
	fs.DurationVar(&cfg.Timeout, "timeout", time.Second, "retransmission timeout when the client sends no timeout option")
	fs.IntVar(&cfg.Retries, "retries", 5, "retransmissions without progress before a transfer is abandoned")
	fs.Int64Var(&cfg.MaxWriteSize, "max-write-size", 1<<30, "largest upload in `BYTES`")
	fs.DurationVar(&cfg.MaxDuration, "max-duration", time.Hour, "end any transfer still running after this long, with an error")
	fs.BoolVar(&cfg.AllowLowPorts, "allow-low-ports", false, "also answer clients on source ports below 1024 (reflection risk)")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	switch {
	case !addr.ap.IsValid():
		return usagef("tftp serve: --addr ADDR is required")
	case *root == "":
		return usagef("tftp serve: --root DIR is required")
	case cfg.MaxTransfers < 1:
		return usagef("tftp serve: --max-transfers must be positive")
	case cfg.Retries < 1:
		return usagef("tftp serve: --retries must be positive")
	case cfg.Timeout <= 0:
		return usagef("tftp serve: --timeout must be positive")
	case cfg.MaxWriteSize < 1:
		return usagef("tftp serve: --max-write-size must be positive")
	case cfg.MaxDuration <= 0:
		return usagef("tftp serve: --max-duration must be positive")
	case cfg.MaxBlksize < tftp.MinBlksize || cfg.MaxBlksize > tftp.MaxBlksize:
		return usagef("tftp serve: --max-blksize must be between %d and %d", tftp.MinBlksize, tftp.MaxBlksize)
	case cfg.MaxWindowsize < 1 || cfg.MaxWindowsize > 4096:
		return usagef("tftp serve: --max-windowsize must be between 1 and 4096")
	}
	rt, err := rootfs.Open(*root)
	if err != nil {
		return usagef("tftp serve: --root: %v", err)
	}
	defer rt.Close()
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg.Addr, cfg.AllowWrite = addr.ap, *allowWrite
	return runTFTPServer(ctx, e, cfg, rt, log, tr)
}

// serveTFTP runs a TFTP server on addr over root until ctx is done, with
// the default limits: what `netspec file serve --tftp ADDR` runs beside
// the native protocol. It prints one line when it listens ("tftp:
// serving DIR on ADDR") and one per transfer.
func serveTFTP(ctx context.Context, e *env, addr netip.AddrPort, root *rootfs.Root, allowWrite bool, log *slog.Logger) error {
	return runTFTPServer(ctx, e, tftp.ServerConfig{Addr: addr, AllowWrite: allowWrite}, root, log, &traceFile{})
}

func runTFTPServer(ctx context.Context, e *env, cfg tftp.ServerConfig, root *rootfs.Root, log *slog.Logger, tr *traceFile) error {
	cfg.Root = root.Dir()
	var store tftp.Store
	if cfg.AllowWrite {
		store = rootStore{root.OS()}
		if n := sweepUploadTemps(root.OS()); n > 0 {
			log.Info("tftp: removed the remains of uploads cut short", slog.Int("files", n))
		}
	}
	var mu sync.Mutex
	say := func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(e.stdout, format, a...)
	}
	r := tr.New("tftp", "server", cfg, tftp.NewServer(cfg, root.FS(), store), impl.Options{
		Logger:      log,
		ReadBuffer:  tftpSocketBuffers,
		WriteBuffer: tftpSocketBuffers,
		// A server socket receives one ACK per window: batched reads
		// buy nothing, and cost a lot under the race detector.
		ReadBatch:   1,
		MaxDatagram: tftp.MaxBlksize + 4,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				say("tftp: serving %s on %s\n", root.Dir(), ev.Text)
			case "transfer-done":
				t := ev.Value.(tftp.Transfer)
				dir := "to"
				if t.Op == "put" {
					dir = "from"
				}
				say("tftp: %s %s %s %s, %d bytes\n", t.Op, printable(t.Name), dir, t.Peer, t.Bytes)
			case "transfer-error":
				t := ev.Value.(tftp.Transfer)
				say("tftp: %s %s with %s failed: %s\n", t.Op, printable(t.Name), t.Peer, printable(t.Err))
			}
		},
	})
	return exitErr(r.Run(ctx))
}

// rootStore writes uploads into an os.Root: each to a temporary name
// beside its target, linked into place only when the last block has
// arrived (the link fails if the name exists: nothing is overwritten,
// even by two uploads racing), and removed if the transfer fails.
type rootStore struct{ r *os.Root }

func (s rootStore) Create(name string, _ int64) (tftp.Upload, error) {
	if _, err := s.r.Lstat(name); err == nil {
		return nil, fs.ErrExist
	}
	var rnd [6]byte
	_, _ = crand.Read(rnd[:])
	tmp := rootfs.UploadTemp(name, rnd)
	f, err := s.r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err == nil {
		// Held while the upload runs: sweepUploadTemps leaves it alone.
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	}
	if err != nil {
		// os.Root refuses a directory that leads out of the root (a
		// symlink) with an error of no exported identity: make it the
		// access violation a read of the same name gets, not error 0.
		var pe *fs.PathError
		if errors.As(err, &pe) && pe.Err != nil && pe.Err.Error() == "path escapes from parent" {
			return nil, &fs.PathError{Op: "create", Path: name, Err: rootfs.ErrOutside}
		}
		return nil, err
	}
	return &rootUpload{r: s.r, name: name, tmp: tmp, f: f, w: bufio.NewWriterSize(f, 256<<10)}, nil
}

// sweepUploadTemps removes what uploads cut short by a crash left in the
// root (their temporary files, which listings hide), leaving those a
// live server holds locked; it looks at no more than 100,000 entries,
// and reports how many it removed.
func sweepUploadTemps(r *os.Root) int {
	removed, seen := 0, 0
	_ = fs.WalkDir(r.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if seen++; seen > 100_000 {
			return fs.SkipAll
		}
		if err != nil {
			return nil // unreadable: skipped
		}
		if d.IsDir() || !rootfs.IsUploadTemp(d.Name()) {
			return nil
		}
		f, err := r.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return nil
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil && r.Remove(p) == nil {
			removed++
		}
		f.Close()
		return nil
	})
	return removed
}

type rootUpload struct {
	r         *os.Root
	name, tmp string
	f         *os.File
	w         *bufio.Writer
}

func (u *rootUpload) Write(p []byte) (int, error) { return u.w.Write(p) }

func (u *rootUpload) Commit() error {
	err := u.w.Flush()
	if err == nil {
		err = u.f.Sync()
	}
	if cerr := u.f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = u.r.Link(u.tmp, u.name)
		if err != nil && !errors.Is(err, fs.ErrExist) {
			// A file system without hard links: rename, after one more
			// look for a file that appeared meanwhile.
			if _, serr := u.r.Lstat(u.name); serr == nil {
				err = fs.ErrExist
			} else {
				err = u.r.Rename(u.tmp, u.name)
			}
		}
	}
	_ = u.r.Remove(u.tmp)
	return err
}

func (u *rootUpload) Abort() {
	u.f.Close()
	_ = u.r.Remove(u.tmp)
}

// tftpClientFlags are the flags get and put share.
type tftpClientFlags struct {
	blksize, windowsize, retries int
	timeout                      time.Duration
	timeoutOption, noTSize       bool
}

func addTFTPClientFlags(fs interface {
	IntVar(*int, string, int, string)
	DurationVar(*time.Duration, string, time.Duration, string)
	BoolVar(*bool, string, bool, string)
}) *tftpClientFlags {
	f := &tftpClientFlags{}
	fs.IntVar(&f.blksize, "blksize", 1428, "ask for `BYTES` per block (blksize option; 0: none, RFC 1350's 512)")
	fs.IntVar(&f.windowsize, "windowsize", 16, "ask for `N` blocks per ACK (windowsize option; 1: none)")
	fs.DurationVar(&f.timeout, "timeout", time.Second, "retransmission timeout")
	fs.BoolVar(&f.timeoutOption, "timeout-option", false, "also send the timeout as the timeout option (whole seconds)")
	fs.IntVar(&f.retries, "retries", 5, "retransmissions without progress before giving up")
	fs.BoolVar(&f.noTSize, "no-tsize", false, "do not send the tsize option")
	return f
}

func (f *tftpClientFlags) config(verb string, server netip.AddrPort) (tftp.ClientConfig, error) {
	switch {
	case f.blksize != 0 && (f.blksize < tftp.MinBlksize || f.blksize > tftp.MaxBlksize):
		return tftp.ClientConfig{}, usagef("tftp %s: --blksize must be 0 or between %d and %d", verb, tftp.MinBlksize, tftp.MaxBlksize)
	case f.windowsize < 1 || f.windowsize > 4096:
		return tftp.ClientConfig{}, usagef("tftp %s: --windowsize must be between 1 and 4096", verb)
	case f.timeout <= 0:
		return tftp.ClientConfig{}, usagef("tftp %s: --timeout must be positive", verb)
	case f.retries < 1:
		return tftp.ClientConfig{}, usagef("tftp %s: --retries must be positive", verb)
	case f.timeoutOption && (f.timeout < time.Second || f.timeout > tftp.MaxTimeoutOption*time.Second):
		return tftp.ClientConfig{}, usagef("tftp %s: --timeout-option needs a --timeout between 1s and %ds", verb, tftp.MaxTimeoutOption)
	}
	return tftp.ClientConfig{Server: server, Blksize: f.blksize, Windowsize: f.windowsize, Timeout: f.timeout,
		TimeoutOption: f.timeoutOption, Retries: f.retries, NoTSize: f.noTSize}, nil
}

func tftpGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("tftp get", "SERVER NAME [-o PATH] [--blksize N] [--windowsize N] [flags]",
		"Downloads NAME from a TFTP server (SERVER is host:port, or host for port 69) into\n"+
			"PATH (default: NAME's last element, here; '-': standard output). The bytes go to\n"+
			"PATH.part, renamed to PATH only once the transfer completed (and matched the size\n"+
			"the server announced, if it did); a failed download leaves nothing behind (a\n"+
			"killed one, PATH.part: only PATH is ever the finished file).")
	outPath := fs.String("o", "", "write to `PATH` (default: NAME's last element, here; a directory: that name inside it; a device such as /dev/null: into it; -: standard output)")
	dally := fs.Duration("dally", 0, "after the last ACK, wait this long to answer a retransmitted last block (RFC 1350 §6; 0: exit at once, as curl and tftp-hpa do)")
	quiet := fs.Bool("q", false, "no progress")
	cf := addTFTPClientFlags(fs)
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	server, err := tftpServerAddr(pos[0])
	if err != nil {
		return usagef("tftp get: %v", err)
	}
	name := pos[1]
	cfg, err := cf.config("get", server)
	if err != nil {
		return err
	}
	if *dally < 0 {
		return usagef("tftp get: --dally must not be negative")
	}
	cfg.Dally = *dally
	if cfg.Dally == 0 {
		cfg.Dally = -1
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	d, err := newTFTPDownload(e, name, *outPath, *quiet)
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d.abort = cancel
	r := tr.New("tftp", "client", cfg, tftp.NewClient(cfg, nil), tftpClientOptions(cfg, impl.Options{Logger: log, OnEvent: d.event}))
	r.Command(spec.Command{Name: "get", Args: []string{name}})
	r.Command(spec.Command{Name: "exit"})
	return d.finish(exitErr(r.Run(rctx)))
}

// tftpClientOptions are a client's runner options: datagrams no larger
// than a block it may receive, read in batches only when windows come.
func tftpClientOptions(cfg tftp.ClientConfig, o impl.Options) impl.Options {
	o.ReadBuffer, o.WriteBuffer = tftpSocketBuffers, tftpSocketBuffers
	o.MaxDatagram = max(cfg.Blksize+4, 1500)
	if cfg.Windowsize <= 1 {
		o.ReadBatch = 1
	}
	return o
}

// tftpServerAddr parses SERVER: host:port, or a host alone for port 69.
func tftpServerAddr(s string) (netip.AddrPort, error) {
	if strings.TrimSpace(s) == "" {
		return netip.AddrPort{}, errors.New("an address is needed (HOST, or HOST:PORT)")
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		// A host alone: a name, or an IPv4 or IPv6 literal.
		return parseAddr(net2(strings.Trim(s, "[]"), "69"), true)
	}
	ap, err := parseAddr(s, true)
	if err == nil && ap.Port() == 0 {
		err = fmt.Errorf("bad address %q: port 0", s)
	}
	return ap, err
}

// net2 joins host and port, bracketing IPv6 literals.
func net2(host, port string) string {
	if ip, err := netip.ParseAddr(host); err == nil && ip.Is6() {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// tftpDownload writes what a get brings: to PATH.part, renamed to PATH
// on file-done. It runs in the runner's goroutine; finish reads it after
// the runner stopped.
type tftpDownload struct {
	e          *env
	name, path string
	dst        *dest // PATH.part or the device; nil for standard output
	stdout     bool
	w          *bufio.Writer
	quiet      bool
	prog       *progress
	size, got  int64
	t0         spec.Time
	dur        time.Duration
	done       bool
	failure    string
	werr       error
	abort      func()
}

func newTFTPDownload(e *env, name, out string, quiet bool) (*tftpDownload, error) {
	e = e.statusFor(out)
	d := &tftpDownload{e: e, name: name, quiet: quiet, size: -1}
	switch {
	case out == "-":
		d.stdout = true
		return d, nil
	case out == "":
		d.path = path.Base(name)
		if d.path == "/" || d.path == "." || d.path == ".." {
			return nil, usagef("tftp get: %q has no file name: give -o PATH", name)
		}
	default:
		d.path = out
		if st, err := os.Stat(out); err == nil && st.IsDir() {
			d.path = filepath.Join(out, path.Base(name))
		}
	}
	// Opened and locked now: a second download to PATH fails before it
	// asks the server for anything.
	dst, err := createDest("tftp get", d.path)
	if err != nil {
		return nil, err
	}
	d.dst = dst
	return d, nil
}

func (d *tftpDownload) event(now spec.Time, ev spec.Event) {
	switch ev.Name {
	case "file-start":
		v := ev.Value.(tftp.FileStart)
		d.size, d.t0 = v.Size, now
		var w io.Writer = d.e.stdout
		if d.dst != nil {
			w = d.dst.f
		}
		d.w = bufio.NewWriterSize(w, 1<<20)
		if !d.quiet && !d.stdout {
			d.prog = newProgress(d.e.stderr, d.name, max(v.Size, 0), 0, now)
		}
	case "data":
		if d.w == nil || d.werr != nil {
			return
		}
		if _, err := d.w.Write(ev.Data); err != nil {
			d.fail(fmt.Errorf("tftp get: writing %s: %w", d.written(), err))
			return
		}
		d.got += int64(len(ev.Data))
		if d.prog != nil && d.size > 0 {
			d.prog.update(now, d.got)
		}
	case "file-done":
		d.dur = now.Sub(d.t0)
		if err := d.close(); err != nil {
			d.fail(err)
			return
		}
		if d.dst != nil {
			// The bytes are on disk, complete: only now may PATH exist.
			if err := d.dst.commit(); err != nil {
				d.fail(fmt.Errorf("tftp get: %w", err))
				return
			}
			if err := d.dst.close(); err != nil {
				d.fail(fmt.Errorf("tftp get: %w", err))
				return
			}
		}
		d.done = true
		if d.prog != nil {
			d.prog.finish(now, d.got)
		}
	case "file-error":
		d.failure = ev.Text
		d.discard()
		if d.prog != nil {
			d.prog.stop()
		}
	}
}

func (d *tftpDownload) close() error {
	if d.w == nil {
		return nil
	}
	err := d.w.Flush()
	d.w = nil
	if err != nil {
		return fmt.Errorf("tftp get: writing %s: %w", d.written(), err)
	}
	return nil
}

// written names what the bytes are written to, for errors.
func (d *tftpDownload) written() string {
	switch {
	case d.dst == nil:
		return "standard output"
	case d.dst.device():
		return d.dst.path
	}
	return d.dst.part
}

// discard removes a failed download's bytes: TFTP cannot resume, and a
// partial file must not look like the file.
func (d *tftpDownload) discard() {
	d.w = nil
	if d.dst != nil {
		d.dst.close()
	}
}

func (d *tftpDownload) fail(err error) {
	if d.werr == nil {
		d.werr = err
	}
	d.discard()
	if d.abort != nil {
		d.abort()
	}
}

func (d *tftpDownload) finish(runErr error) error {
	if d.done && d.werr == nil {
		if !d.stdout {
			fmt.Fprintf(d.e.stdout, "%s: %d bytes in %s -> %s\n", d.name, d.got, elapsed(d.got, d.dur), d.path)
		}
		return nil
	}
	d.discard()
	switch {
	case d.werr != nil:
		return d.werr
	case d.failure != "":
		return fmt.Errorf("tftp get %s: %s", d.name, printable(d.failure))
	case runErr != nil:
		return fmt.Errorf("tftp get %s: %w", d.name, runErr)
	}
	return fmt.Errorf("tftp get %s: interrupted", d.name)
}

func tftpPut(ctx context.Context, e *env, args []string) error {
	fs := e.flags("tftp put", "SERVER FILE [NAME] [flags]",
		"Uploads the local FILE to a TFTP server as NAME (default: FILE's last element).\n"+
			"The server must accept writes ('netspec tftp serve --allow-write').")
	cf := addTFTPClientFlags(fs)
	logger := logFlags(fs)
	pos, err := e.parse(fs, args, 2, 3)
	if err != nil {
		return err
	}
	server, err := tftpServerAddr(pos[0])
	if err != nil {
		return usagef("tftp put: %v", err)
	}
	local, name := pos[1], filepath.Base(pos[1])
	if len(pos) == 3 {
		name = pos[2]
	}
	if name == "" || strings.IndexByte(name, 0) >= 0 {
		return usagef("tftp put: NAME must be a name without NUL bytes, not %q", name)
	}
	cfg, err := cf.config("put", server)
	if err != nil {
		return err
	}
	f, err := os.Open(local)
	if err != nil {
		return usagef("tftp put: %v", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return usagef("tftp put: %s is not a regular file", local)
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	var done *tftp.FileDone
	var failure string
	var t0, t1 spec.Time
	r := impl.New(tftp.NewClient(cfg, singleFile{f}), tftpClientOptions(cfg, impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "file-start":
				t0 = now
			case "file-done":
				v := ev.Value.(tftp.FileDone)
				done, t1 = &v, now
			case "file-error":
				failure = ev.Text
			}
		},
	}))
	r.Command(spec.Command{Name: "put", Args: []string{name, "local"}})
	r.Command(spec.Command{Name: "exit"})
	runErr := exitErr(r.Run(ctx))
	switch {
	case done != nil:
		dur := t1.Sub(t0)
		fmt.Fprintf(e.stdout, "%s: %d bytes in %s -> %s %s\n", local, done.Bytes, elapsed(done.Bytes, dur), server, name)
		return nil
	case failure != "":
		return fmt.Errorf("tftp put %s: %s", local, printable(failure))
	case runErr != nil:
		return fmt.Errorf("tftp put %s: %w", local, runErr)
	}
	return fmt.Errorf("tftp put %s: interrupted", local)
}

// singleFile is the client's file system for put: one open file, called
// "local".
type singleFile struct{ f *os.File }

func (s singleFile) Open(name string) (fs.File, error) {
	if name != "local" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return nopClose{s.f}, nil
}

// nopClose keeps the client machine from closing the file tftpPut owns.
type nopClose struct{ *os.File }

func (nopClose) Close() error { return nil }
