package main

import (
	"bufio"
	"context"
	crand "crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/impl/diskstore"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/cs"
	"github.com/netspec/netspec/spec/p2p"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

func p2pGroup() *group {
	return &group{
		name: "p2p",
		help: "seed 001's P2P distribution: a tracker/seed server and peers that download from each other",
		verbs: []verb{
			{"serve", "hold the file and the list of online peers (the seed's P2P server)", p2pServe},
			{"get", "join the swarm, download the file from the server and the peers, serve what you have", p2pGet},
		},
	}
}

func p2pServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("p2p serve", "[-p PORT] [-f FILE] [--config FILE] [flags]",
		"Serves FILE (default: 10 MB of random bytes generated from --seed) to P2P peers\n"+
			"and keeps the list of online peers, as the seed's server.py does. Settings\n"+
			"come from the [server] section of --config (keys port, ip, file_path,\n"+
			"file_size); flags given on the command line take precedence.")
	port := fs.Int("p", p2p.DefaultServerPort, "listen on `PORT` (0: any free port) [config: port]")
	file := fs.String("f", "", "serve `FILE` (default: generated random bytes) [config: file_path]")
	config := fs.String("config", "config.ini", "read settings from `FILE` (a missing config.ini is fine; \"\": none)")
	ip := fs.String("ip", "0.0.0.0", "listen on `IP` [config: ip]")
	size := fs.Int64("size", cs.DefaultFileSize, "size of the generated file in `BYTES`; ignored with -f, as in the seed [config: file_size]")
	seed := fs.Uint64("seed", 1, "seed of the generated file and of the server's choices")
	chunk := fs.Int("chunk-size", p2p.DefaultChunkSize, "chunk size in `BYTES`")
	rate := fs.String("rate", "", "the uplink's rate, e.g. 10mbit, to pace uploads by (default: pace by acknowledgments)")
	maxList := fs.Int("max-list", 8, "peers listed in each SHEL")
	legacy := fs.Bool("legacy", false, "speak only the seed's protocol (no extensions)")
	expect := fs.Int("expect", 0, "arrange the first `N` peers that join in distribution trees (0: none): faster on clean links, slower with loss (see README)")
	trees := fs.Int("trees", 2, "with --expect: how many trees, each carrying 1/`D` of the chunks (0: none, every chunk is pulled, as without --expect)")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	ini, err := swarmReadINI(*config, flagSet(fs, "config"))
	if err != nil {
		return usagef("p2p serve: %v", err)
	}
	keys := map[string]any{"port": port, "ip": ip, "file_path": file, "file_size": size}
	flagOf := map[string]string{"port": "p", "ip": "ip", "file_path": "f", "file_size": "size"}
	if err := ini.apply(fs, "server", keys, flagOf); err != nil {
		return usagef("p2p serve: %s: %v", *config, err)
	}
	addr, err := swarmListen(*ip, *port)
	if err != nil {
		return usagef("p2p serve: %v", err)
	}
	bits, err := swarmParseRate(*rate)
	if err != nil {
		return usagef("p2p serve: --rate: %v", err)
	}
	switch {
	case *size < 0 || *size > cs.MaxGenerated:
		return usagef("p2p serve: --size (config: file_size) must be between 0 and %d", int64(cs.MaxGenerated))
	case *chunk < 1 || *chunk > 16<<20:
		return usagef("p2p serve: --chunk-size must be between 1 and %d", 16<<20)
	case *maxList < 1:
		return usagef("p2p serve: --max-list must be at least 1")
	case *expect < 0 || *expect > 1<<20:
		return usagef("p2p serve: --expect must be between 0 and %d", 1<<20)
	case *trees < 0 || *trees > 16:
		return usagef("p2p serve: --trees must be between 0 and 16")
	case *expect == 0 && *trees > 0 && flagSet(fs, "trees"):
		return usagef("p2p serve: --trees %d needs --expect N, the number of peers to arrange in the trees", *trees)
	}
	if *trees == 0 {
		*expect = 0 // pull every chunk, as sim swarm and lab swarm mean by --trees 0
	}
	fspec := cs.FileSpec{Seed: *seed, Size: *size}
	if tr.Is(*file) {
		return usagef("p2p serve: --trace names the file -f serves: the trace would overwrite it")
	}
	data, release, err := swarmFile("p2p serve", *file, fspec)
	if err != nil {
		return err
	}
	defer release() // after the runner, whose writers may still hold slices of data
	if n := (int64(len(data)) + int64(*chunk) - 1) / int64(*chunk); n > p2p.DefaultMaxChunks {
		return usagef("p2p serve: %d bytes in chunks of %d make %d chunks, more than peers accept (%d): raise --chunk-size", len(data), *chunk, n, p2p.DefaultMaxChunks)
	}
	content, err := p2p.NewContent(data, *chunk)
	if err != nil {
		return err
	}
	if *file != "" {
		fspec = cs.FileSpec{} // the trace names the file (Path) instead
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	say := newSayer(e.stdout)
	start := time.Now()
	var pathMD5 string
	if *file != "" {
		sum := cs.Digest(data)
		pathMD5 = hex.EncodeToString(sum[:])
	}
	cfg := p2p.ServerConfig{Addr: addr, File: fspec, Path: *file, PathMD5: pathMD5, ChunkSize: *chunk, Seed: *seed, MaxList: *maxList, UploadRate: bits, Legacy: *legacy, Expect: *expect, Trees: *trees}
	r := tr.New("p2p", "server", cfg, p2p.NewServer(cfg, content), impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				sum := content.MD5()
				chunks := "chunks"
				if content.Chunks() == 1 {
					chunks = "chunk"
				}
				say("p2p: serving %d bytes in %d %s of %d (md5 %s) on %s\n", content.Size(), content.Chunks(), chunks, content.ChunkSize(), hex.EncodeToString(sum[:]), ev.Text)
			case "checked":
				v := ev.Value.(p2p.Checked)
				verdict := "verified the file"
				if !v.OK {
					verdict = "sent a checksum that does not fit"
				}
				say("%s %s, %.2f sec after the server started\n", v.Peer, verdict, time.Since(start).Seconds())
			}
		},
	})
	return exitErr(r.Run(ctx))
}

func p2pGet(ctx context.Context, e *env, args []string) error {
	fs := e.flags("p2p get", "[-s SERVER] [-sp SERVER_PORT] [-p PORT] [-o OUTPUT] [--config FILE] [flags]",
		"Joins the swarm of a P2P server: downloads the file's chunks from the server and\n"+
			"from other peers while serving the chunks it has on PORT, checks every chunk\n"+
			"(SHA-256, when the server has the extension) and the whole file (MD5, CHECK),\n"+
			"prints the time used, and keeps serving for --linger. Settings come from the\n"+
			"[client] section of --config (keys port, ip, server_ip, server_port,\n"+
			"file_path); flags given on the command line take precedence.")
	server := fs.String("s", "10.0.0.1", "the server's `ADDRESS` (HOST, or HOST:PORT instead of -sp) [config: server_ip]")
	serverPort := fs.Int("sp", p2p.DefaultServerPort, "the server's `PORT` [config: server_port]")
	port := fs.Int("p", p2p.DefaultPeerPort, "serve other peers on `PORT` (0: any free port) [config: port]")
	output := fs.String("o", "", "save the file to `OUTPUT` once verified (default: memory only; -: standard output, status to stderr) [config: file_path]")
	config := fs.String("config", "config.ini", "read settings from `FILE` (a missing config.ini is fine; \"\": none)")
	ip := fs.String("ip", "0.0.0.0", "serve other peers on `IP` [config: ip]")
	linger := fs.Duration("linger", 10*time.Second, "keep serving other peers this long after verifying (negative: until interrupted)")
	rate := fs.String("rate", "", "the uplink's rate, e.g. 10mbit, to pace uploads by (default: pace by acknowledgments)")
	maxSize := fs.Int64("max-size", 0, "refuse files larger than `BYTES` (0: 1 GiB when kept in memory, 1 TiB when written to -o as it comes)")
	legacy := fs.Bool("legacy", false, "speak only the seed's protocol (no extensions)")
	quiet := fs.Bool("q", false, "no progress bar")
	seed := fs.Uint64("seed", 0, "seed of the peer's random choices (0: random)")
	serverWait := fs.Duration("server-wait", 30*time.Second, "give up if the server has not welcomed the peer after this long, or is gone and no chunk has come from anyone for this long (0: keep trying)")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if *serverWait < 0 {
		return usagef("p2p get: --server-wait must not be negative")
	}
	ini, err := swarmReadINI(*config, flagSet(fs, "config"))
	if err != nil {
		return usagef("p2p get: %v", err)
	}
	keys := map[string]any{"port": port, "ip": ip, "server_ip": server, "server_port": serverPort, "file_path": output}
	flagOf := map[string]string{"port": "p", "ip": "ip", "server_ip": "s", "server_port": "sp", "file_path": "o"}
	if err := ini.apply(fs, "client", keys, flagOf); err != nil {
		return usagef("p2p get: %s: %v", *config, err)
	}
	listen, err := swarmListen(*ip, *port)
	if err != nil {
		return usagef("p2p get: %v", err)
	}
	if *output == "-" {
		*output = "/dev/stdout" // as file and tftp get take it; the status goes to stderr
	}
	if err := checkOutput(*output); err != nil {
		return usagef("p2p get: -o: %v", err)
	}
	e = e.statusFor(*output)
	if tr.Is(*output) {
		return usagef("p2p get: --trace names the -o file: the download would replace the trace")
	}
	if *serverPort < 1 || *serverPort > 65535 {
		return usagef("p2p get: -sp must be a port between 1 and 65535")
	}
	to, err := swarmDialAddr(*server, *serverPort, "sp", flagSet(fs, "sp"))
	if err != nil {
		return usagef("p2p get: %v", err)
	}
	bits, err := swarmParseRate(*rate)
	if err != nil {
		return usagef("p2p get: --rate: %v", err)
	}
	if *maxSize < 0 {
		return usagef("p2p get: --max-size must not be negative")
	}
	if *seed == 0 {
		*seed = swarmSeed()
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	// With -o the chunks go to OUTPUT.part as they come, and it is
	// renamed once verified: memory stays a few chunks whatever the
	// file's size (in memory a 200 MB file took 440 MB). A device (-o
	// /dev/null) is written in order once verified, from memory.
	var store p2p.Store
	var mem *p2p.MemStore
	var dst *dest
	if *output != "" {
		if dst, err = createDest("p2p get", *output); err != nil {
			return err
		}
		defer dst.close()
	}
	if dst != nil && !dst.device() {
		if *maxSize == 0 {
			*maxSize = 1 << 40
		}
		store = diskstore.New(dst.f, *maxSize)
	} else {
		mem = &p2p.MemStore{Max: *maxSize}
		store = mem
	}
	cfg := p2p.PeerConfig{Server: to, Listen: listen, Seed: *seed, Legacy: *legacy, Linger: *linger, UploadRate: bits, Progress: true, ServerWait: *serverWait}
	if *linger == 0 {
		cfg.Linger = 0
	}
	say := newSayer(e.stdout)
	plan := fmt.Sprintf("still trying (for %v in all; --server-wait)", *serverWait)
	if *serverWait == 0 {
		plan = "still trying"
	}
	silent := warnIfQuiet(e, "p2p get", to, plan)
	defer silent.stop()
	var bar *swarmBar
	var verified *p2p.Verified
	var chunk, fileSize int64
	var saveErr error
	r := tr.New("p2p", "peer", cfg, p2p.NewPeer(cfg, store), impl.Options{
		Logger: log,
		OnEvent: func(now spec.Time, ev spec.Event) {
			switch ev.Name {
			case "listening":
				say("p2p: serving other peers on %s\n", ev.Text)
			case "joined":
				silent.hear()
				v := ev.Value.(p2p.Joined)
				chunk, fileSize = int64(v.ChunkSize), v.FileSize
				say("p2p: joined: %d bytes in %d-byte chunks, %d peers listed\n", v.FileSize, v.ChunkSize, v.Peers)
				bar = newSwarmBar(e.stderr, "p2p get", v.FileSize, *quiet)
			case "progress":
				v := ev.Value.(p2p.Progress)
				if bar != nil {
					bar.set(min(int64(v.Have)*chunk, bar.total))
				}
			case "corrupt":
				v := ev.Value.(p2p.Corrupt)
				say("p2p: chunk %d from %s failed its SHA-256; fetching it elsewhere\n", v.Chunk, v.From)
			case "banned":
				say("p2p: banned peer %s\n", ev.Text)
			case "verified":
				v := ev.Value.(p2p.Verified)
				verified = &v
				if bar != nil {
					bar.finish()
				}
				size := fileSize
				say("time used: %.2f sec\n%d bytes, %s, md5 %s (the server's CHECK agrees)\n%d chunks from the server, %d from peers, %d duplicates, %d corrupt rejected\n",
					v.Elapsed.Seconds(), size, swarmRateText(size, v.Elapsed), v.MD5, v.FromServer, v.FromPeers, v.Duplicates, v.Corrupt)
				if dst != nil {
					if dst.device() {
						_, saveErr = dst.f.Write(mem.Bytes())
					}
					if saveErr == nil {
						saveErr = dst.commit()
					}
					if saveErr == nil {
						say("p2p: saved %s\n", *output)
					}
				}
				switch {
				case *linger > 0:
					say("p2p: serving other peers for %v more (Ctrl-C to stop)\n", *linger)
				case *linger < 0:
					say("p2p: serving other peers until stopped (Ctrl-C)\n")
				}
			}
		},
	})
	runErr := exitErr(r.Run(ctx))
	if bar != nil {
		bar.finish()
	}
	switch {
	case saveErr != nil:
		return fmt.Errorf("p2p get: saving %s: %w", *output, saveErr)
	case verified != nil:
		return nil
	case runErr != nil:
		return verbErr("p2p get", runErr)
	}
	return errors.New("p2p get: interrupted before the file was verified")
}

// swarmSeed seeds a peer's choices on real sockets.
func swarmSeed() uint64 {
	var b [8]byte
	if _, err := crand.Read(b[:]); err != nil {
		return uint64(time.Now().UnixNano())
	}
	return binary.LittleEndian.Uint64(b[:])
}

// checkOutput refuses, before any download, an output path that could
// not be saved to: a directory, a file in a directory that is not there,
// a link to nothing (see outTarget).
func checkOutput(path string) error {
	if path == "" {
		return nil
	}
	if path == "-" {
		return errors.New("standard output is not supported here: name a file")
	}
	_, _, err := outTarget(path)
	return err
}

// flagSet reports whether the flag called name was given.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// swarmINI is a config.ini as Python's configparser reads it: [section]
// headers, key = value or key: value lines, # and ; comments, and a
// [DEFAULT] section whose keys every section inherits. A UTF-8 byte
// order mark (Notepad's) is skipped.
type swarmINI map[string]map[string]string

// swarmReadINI reads path; a missing file is an error only if the user
// named it, and --config "" reads none.
func swarmReadINI(path string, named bool) (swarmINI, error) {
	if path == "" {
		return swarmINI{}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && !named {
			return swarmINI{}, nil
		}
		return nil, err
	}
	defer f.Close()
	return parseSwarmINI(f, path)
}

func parseSwarmINI(r io.Reader, name string) (swarmINI, error) {
	ini := swarmINI{}
	section := ""
	// As configparser's strict mode: a section or a key given twice is
	// an error, not a silent choice of one of them.
	seenSec, seenKey := map[string]int{}, map[[2]string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if n == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
		}
		line := strings.TrimSpace(text)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' {
			if !strings.HasSuffix(line, "]") {
				return nil, fmt.Errorf("%s:%d: bad section header %q", name, n, line)
			}
			section = strings.ToLower(strings.TrimSpace(line[1 : len(line)-1]))
			if at, ok := seenSec[section]; ok {
				return nil, fmt.Errorf("%s:%d: section [%s] again (first at line %d)", name, n, section, at)
			}
			seenSec[section] = n
			continue
		}
		i := strings.IndexAny(line, "=:")
		if i <= 0 {
			return nil, fmt.Errorf("%s:%d: want key = value, got %q", name, n, line)
		}
		k := strings.ToLower(strings.TrimSpace(line[:i]))
		if at, ok := seenKey[[2]string{section, k}]; ok {
			return nil, fmt.Errorf("%s:%d: %s given again (first at line %d)", name, n, k, at)
		}
		seenKey[[2]string{section, k}] = n
		if ini[section] == nil {
			ini[section] = map[string]string{}
		}
		ini[section][k] = strings.TrimSpace(line[i+1:])
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return ini, nil
}

// swarmKeys are the keys of the seed's config.ini files, the server's
// and the client's: one file may hold both roles' keys, but any other key
// is a typo that would silently change nothing.
const swarmKeys = "file_path, file_size, ip, port, server_ip, server_port"

// apply sets the variables in keys from the section (keys outside any
// section and in [DEFAULT] count too, the section's own first), except
// those whose flag was given: flags take precedence, as in the seed.
func (ini swarmINI) apply(fs *flag.FlagSet, section string, keys map[string]any, flagOf map[string]string) error {
	vals := map[string]string{}
	for _, sec := range []string{"", "default", section} {
		for k, v := range ini[sec] {
			vals[k] = v
		}
	}
	for k, v := range vals {
		dst, ok := keys[k]
		if !ok && !slices.Contains(strings.Split(swarmKeys, ", "), k) {
			return fmt.Errorf("unknown key %q (known: %s)", k, swarmKeys)
		}
		if !ok || flagSet(fs, flagOf[k]) {
			continue // the other role's key, or a flag given
		}
		switch d := dst.(type) {
		case *string:
			*d = v
		case *int:
			if v == "" {
				continue
			}
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%s = %q is not a number", k, v)
			}
			*d = n
		case *int64:
			if v == "" {
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%s = %q is not a number", k, v)
			}
			*d = n
		}
	}
	return nil
}

// swarmParseRate reads a rate in bit/s: 10mbit, 10M, 10e6, 1.5gbit,
// 800kbps ("" is 0: unknown).
func swarmParseRate(s string) (float64, error) {
	if s == "" {
		return 0, nil
	}
	t := strings.ToLower(strings.TrimSpace(s))
	t = strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(t, "bit/s"), "bps"), "bit")
	mult := 1.0
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult, t = 1e3, t[:len(t)-1]
		case 'm':
			mult, t = 1e6, t[:len(t)-1]
		case 'g':
			mult, t = 1e9, t[:len(t)-1]
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || !(v > 0) || v*mult > 1e12 { // !(v > 0) is also NaN
		return 0, fmt.Errorf("bad rate %q (want e.g. 10mbit)", s)
	}
	if v*mult < 8e3 {
		// Under a kilobyte a second is a typo for 10mbit, not a link:
		// one 16 KiB chunk would take more than 16 s.
		return 0, fmt.Errorf("rate %q is below 8kbit", s)
	}
	return v * mult, nil
}

// newSayer returns a printf to w that is safe from any goroutine.
func newSayer(w io.Writer) func(format string, a ...any) {
	var mu sync.Mutex
	return func(format string, a ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(w, format, a...)
	}
}

// swarmBar is a download's progress bar, shown only on a terminal.
type swarmBar struct {
	w     io.Writer
	bar   *progressbar.ProgressBar
	total int64
	done  bool
}

func newSwarmBar(w io.Writer, what string, total int64, quiet bool) *swarmBar {
	b := &swarmBar{w: w, total: total}
	f, ok := w.(*os.File)
	if quiet || !ok || !term.IsTerminal(int(f.Fd())) {
		return b
	}
	b.bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true), progressbar.OptionShowCount(), progressbar.OptionShowTotalBytes(true), progressbar.OptionSetPredictTime(true),
		progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionFullWidth(), progressbar.OptionShowElapsedTimeOnFinish())
	return b
}

func (b *swarmBar) set(n int64) {
	if b.bar != nil && !b.done {
		_ = b.bar.Set64(n)
	}
}

func (b *swarmBar) finish() {
	if b.bar != nil && !b.done {
		b.done = true
		_ = b.bar.Finish()
		fmt.Fprintln(b.w)
	}
}
