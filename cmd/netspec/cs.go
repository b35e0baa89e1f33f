package main

import (
	"bufio"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
)

func csGroup() *group {
	return &group{
		name: "cs",
		help: "seed 001's client/server download: the server streams the whole file to each client",
		verbs: []verb{
			{"serve", "stream a file (default: 10 MB of random bytes) to every client that connects", csServe},
			{"get", "download the file once (nc HOST 52000 > out works as well)", csGet},
		},
	}
}

func csServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("cs serve", "[-p PORT] [-f FILE | FILE] [flags]",
		"Streams FILE to every client that connects, then closes the connection: the\n"+
			"seed's C/S server (FILE may also come alone, as in its 'server.py FILE').\n"+
			"Without a file it serves 10 MB of random bytes generated from --seed, so\n"+
			"'nc HOST PORT > out' downloads the same bytes every time.")
	port := fs.Int("p", cs.DefaultPort, "listen on `PORT` (0: any free port)")
	file := fs.String("f", "", "serve `FILE` (default: generated random bytes)")
	ip := fs.String("ip", "0.0.0.0", "listen on `IP`")
	size := fs.Int64("size", cs.DefaultFileSize, "size of the generated file in `BYTES`")
	seed := fs.Uint64("seed", 1, "seed of the generated file")
	maxPerAddr := fs.Int("max-per-addr", 64, "downloads one IP address may hold at once; more are reset (one host must not take every place)")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 0, 1)
	if err != nil {
		return err
	}
	if len(pos) == 1 {
		if *file != "" {
			return usagef("cs serve: give the file once: -f %s or %s", *file, pos[0])
		}
		*file = pos[0]
	}
	addr, err := swarmListen(*ip, *port)
	if err != nil {
		return usagef("cs serve: %v", err)
	}
	if *maxPerAddr < 1 {
		return usagef("cs serve: --max-per-addr must be at least 1")
	}
	if *size < 0 || *size > cs.MaxGenerated {
		return usagef("cs serve: --size must be between 0 and %d", int64(cs.MaxGenerated))
	}
	fspec := cs.FileSpec{Seed: *seed, Size: *size}
	if tr.Is(*file) {
		return usagef("cs serve: --trace names the file -f serves: the trace would overwrite it")
	}
	data, release, err := swarmFile("cs serve", *file, fspec)
	if err != nil {
		return err
	}
	defer release() // after the runner, whose writers may still hold slices of data
	if *file != "" {
		fspec = cs.FileSpec{} // the trace names the file (Path) instead
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	sum := cs.Digest(data)
	say := newSayer(e.stdout)
	scfg := cs.ServerConfig{Addr: addr, File: fspec, Path: *file, MaxPerAddr: *maxPerAddr}
	if *file != "" {
		scfg.PathMD5 = hex.EncodeToString(sum[:])
	}
	r := tr.New("cs", "server", scfg, cs.NewServer(scfg, data), impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				say("cs: serving %d bytes (md5 %s) on %s\n", len(data), hex.EncodeToString(sum[:]), ev.Text)
			case "served":
				v := ev.Value.(cs.Served)
				say("%s finished downloading, time used: %.2f sec (%s)\n", v.Client, v.Elapsed.Seconds(), swarmRateText(v.Bytes, v.Elapsed))
			}
		},
		OnStep: func(now spec.Time, in spec.Input, _ []spec.Output) {
			if in.Kind == spec.InAccepted {
				say("accept connection from %s, sending the file\n", in.Addr)
			}
		},
	})
	return exitErr(r.Run(ctx))
}

func csGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("cs get", "[-s SERVER] [-p PORT] [-o OUTPUT] [flags]",
		"Downloads the file from a C/S server, prints the time used, the rate and the\n"+
			"MD5, and saves it to OUTPUT (without -o it is only counted and hashed, as\n"+
			"it arrives, and not kept).")
	server := fs.String("s", "10.0.0.1", "the server's `ADDRESS` (the seed's h1; HOST, or HOST:PORT instead of -p)")
	port := fs.Int("p", cs.DefaultPort, "the server's `PORT`")
	output := fs.String("o", "", "save the file to `OUTPUT` (written to OUTPUT.part, renamed when complete; -: standard output, status to stderr)")
	quiet := fs.Bool("q", false, "no progress bar")
	idle := fs.Duration("idle", time.Minute, "give up when nothing arrives for this long")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *port < 1 || *port > 65535 {
		return usagef("cs get: -p must be a port between 1 and 65535")
	}
	if *idle <= 0 {
		return usagef("cs get: --idle must be positive")
	}
	to, err := swarmDialAddr(*server, *port, "p", flagSet(fs, "p"))
	if err != nil {
		return usagef("cs get: %v", err)
	}
	if *output == "-" {
		*output = "/dev/stdout" // as file and tftp get take it; the status goes to stderr
	}
	if err := checkOutput(*output); err != nil {
		return usagef("cs get: -o: %v", err)
	}
	e = e.statusFor(*output)
	if tr.Is(*output) {
		return usagef("cs get: --trace names the -o file: the download would replace the trace")
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	var out *bufio.Writer
	var dst *dest
	if *output != "" {
		if dst, err = createDest("cs get", *output); err != nil {
			return err
		}
		defer dst.close()
		out = bufio.NewWriterSize(dst.f, 1<<20)
	}
	bar := newSwarmBar(e.stderr, "cs get", -1, *quiet)
	var done *cs.Done
	var werr error
	cfg := cs.ClientConfig{Server: to, Idle: *idle, Emit: out != nil, ProgressEvery: 64 << 10}
	r := tr.New("cs", "client", cfg, cs.NewClient(cfg, nil), impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "data":
				if werr == nil {
					_, werr = out.Write(ev.Data)
				}
			case "progress":
				bar.set(ev.Value.(int64))
			case "done":
				v := ev.Value.(cs.Done)
				done = &v
			}
		},
	})
	runErr := exitErr(r.Run(ctx))
	bar.finish()
	if runErr != nil {
		return verbErr("cs get", runErr)
	}
	if done == nil {
		return fmt.Errorf("cs get: interrupted")
	}
	if out != nil {
		if werr == nil {
			werr = out.Flush()
		}
		if werr == nil {
			werr = dst.commit()
		}
		if werr != nil {
			return fmt.Errorf("cs get: saving %s: %w", *output, werr)
		}
	}
	fmt.Fprintf(e.stdout, "time used: %.2f sec\n%d bytes, %s, md5 %s\n", done.Elapsed.Seconds(), done.Bytes, swarmRateText(done.Bytes, done.Elapsed), done.MD5)
	return nil
}

// swarmListen makes the address a seed-style server binds from -ip and
// -p.
func swarmListen(ip string, port int) (netip.AddrPort, error) {
	if port < 0 || port > 65535 {
		return netip.AddrPort{}, fmt.Errorf("port %d out of range", port)
	}
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad IP %q", ip)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
}

// swarmDialAddr joins -s and the port flag into the server's address. -s
// may carry the port itself (HOST:PORT, as every other verb's address
// does); a port flag given as well must agree with it.
func swarmDialAddr(server string, port int, portFlag string, portSet bool) (netip.AddrPort, error) {
	if strings.TrimSpace(server) == "" {
		return netip.AddrPort{}, errors.New("-s needs the server's address")
	}
	if h, p, err := net.SplitHostPort(server); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return netip.AddrPort{}, fmt.Errorf("-s %q: want HOST or HOST:PORT with a port between 1 and 65535", server)
		}
		if portSet && n != port {
			return netip.AddrPort{}, fmt.Errorf("-s %s names port %d and -%s %d: give the port once", server, n, portFlag, port)
		}
		server, port = h, n
	}
	return parseAddr(fmt.Sprintf("%s:%d", swarmHost(server), port), true)
}

// swarmHost brackets an IPv6 literal so host and port can be joined.
func swarmHost(h string) string {
	if a, err := netip.ParseAddr(h); err == nil && a.Is6() {
		return "[" + h + "]"
	}
	return h
}

// swarmFile returns the file a server serves: the bytes of path, read
// once (a file changed later is not served torn), or the generated file
// f, in memory outside Go's heap (see offHeap); release frees it once
// the server is done. Servers hold it in memory, so a path that is not a
// regular file of at most cs.MaxGenerated bytes is a usage error.
func swarmFile(verb, path string, f cs.FileSpec) (data []byte, release func(), err error) {
	if path == "" {
		if f.Size < 0 || f.Size > cs.MaxGenerated {
			return nil, nil, usagef("%s: --size must be between 0 and %d", verb, int64(cs.MaxGenerated))
		}
		if data, release, err = offHeap(int(f.Size)); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", verb, err)
		}
		cs.Fill(f.Seed, data)
		return data, release, nil
	}
	fh, err := os.Open(path)
	if err != nil {
		return nil, nil, usagef("%s: -f: %v", verb, err)
	}
	defer fh.Close()
	st, err := fh.Stat()
	switch {
	case err != nil:
		return nil, nil, usagef("%s: -f: %v", verb, err)
	case !st.Mode().IsRegular():
		return nil, nil, usagef("%s: -f: %s is not a regular file", verb, path)
	case st.Size() > cs.MaxGenerated:
		return nil, nil, usagef("%s: -f: %s is %d bytes; the server holds the file in memory and serves at most %d", verb, path, st.Size(), int64(cs.MaxGenerated))
	}
	if data, release, err = offHeap(int(st.Size())); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", verb, err)
	}
	// The size it had when opened: bytes appended since are not served,
	// and a file that shrank meanwhile is an error, not zeros.
	if _, err := io.ReadFull(fh, data); err != nil {
		release()
		return nil, nil, fmt.Errorf("%s: reading the file to serve: %w", verb, err)
	}
	return data, release, nil
}

// swarmRateText is "1.25 MB/s (10.0 Mbit/s)".
func swarmRateText(bytes int64, d time.Duration) string {
	s := d.Seconds()
	if s <= 0 {
		return "instant"
	}
	r := float64(bytes) / s
	return fmt.Sprintf("%.1f kB/s (%.2f Mbit/s)", r/1e3, r*8/1e6)
}
