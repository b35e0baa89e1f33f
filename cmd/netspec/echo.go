package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/echo"
)

func echoGroup() *group {
	return &group{
		name: "echo",
		help: "RFC 862 echo over UDP and TCP",
		verbs: []verb{
			{"serve", "answer every datagram and stream with its own bytes", echoServe},
			{"send", "send a message and print its echo", echoSend},
		},
	}
}

// The seeds' echo servers: UDP (003) and TCP (004).
var (
	echoSeedUDP = netip.MustParseAddrPort("127.0.0.1:9999")
	echoSeedTCP = netip.MustParseAddrPort("127.0.0.1:5000")
)

func echoServe(ctx context.Context, e *env, args []string) error {
	fs := e.flags("echo serve", "[--udp ADDR] [--tcp ADDR]", "Serves RFC 862 echo; try: echo '233' | nc -u -w1 127.0.0.1 9999\n"+
		"With neither flag it serves the seeds' addresses: UDP on 127.0.0.1:9999 (seed 003)\nand TCP on 127.0.0.1:5000 (seed 004).")
	var udp, tcp addrFlag
	fs.Var(&udp, "udp", "serve UDP echo on `ADDR` (host:port or port)")
	fs.Var(&tcp, "tcp", "serve TCP echo on `ADDR`")
	lowPorts := fs.Bool("allow-low-ports", false, "also answer sources below port 1024 (reflection risk)")
	maxPerAddr := fs.Int("max-per-addr", 64, "TCP connections one IP address may hold at once; more are reset (one host must not take every place)")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	if _, err := e.parse(fs, args, 0, 0); err != nil {
		return err
	}
	if !udp.ap.IsValid() && !tcp.ap.IsValid() {
		udp.ap, tcp.ap = echoSeedUDP, echoSeedTCP
	}
	if *maxPerAddr < 1 {
		return usagef("echo serve: --max-per-addr must be at least 1")
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	cfg := echo.ServerConfig{UDP: udp.ap, TCP: tcp.ap, AllowLowPorts: *lowPorts, MaxPerAddr: *maxPerAddr}
	r := tr.New("echo", "server", cfg, echo.NewServer(cfg), impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				fmt.Fprintf(e.stdout, "echo: listening on %s\n", ev.Text)
			}
		},
	})
	return exitErr(r.Run(ctx))
}

func echoSend(ctx context.Context, e *env, args []string) error {
	fs := e.flags("echo send", "[--tcp] ADDR MESSAGE", "Sends MESSAGE to an echo server and prints what comes back.")
	tcp := fs.Bool("tcp", false, "use TCP instead of UDP")
	timeout := fs.Duration("timeout", time.Second, "UDP: wait this long for each echo")
	retries := fs.Int("retries", 2, "UDP: resend this many times")
	logger := logFlags(fs)
	tr := traceFlag(fs)
	defer tr.Close()
	pos, err := e.parse(fs, args, 2, 2)
	if err != nil {
		return err
	}
	server, err := parseAddr(pos[0], true)
	if err != nil {
		return usagef("echo send: %v", err)
	}
	log, closeLog, err := logger(e)
	if err != nil {
		return err
	}
	defer closeLog()
	if *retries < 0 {
		return usagef("echo send: --retries must be >= 0")
	}
	if *timeout <= 0 {
		return usagef("echo send: --timeout must be > 0")
	}
	// The kernel refuses a larger datagram (EMSGSIZE), which the client
	// would only see as an echo that never comes.
	if max := maxUDPPayload(server); !*tcp && len(pos[1]) > max {
		return usagef("echo send: MESSAGE is %d bytes; a UDP datagram to %s carries at most %d (use --tcp)", len(pos[1]), server, max)
	}
	cfg := echo.ClientConfig{Server: server, TCP: *tcp, Timeout: *timeout, Retries: *retries}
	if *retries == 0 {
		cfg.Retries = -1
	}
	echoed := false
	r := tr.New("echo", "client", cfg, echo.NewClient(cfg), impl.Options{
		Logger: log,
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "reply" {
				echoed = true
				fmt.Fprintf(e.stdout, "%s\n", ev.Data)
			}
		},
	})
	r.Command(spec.Command{Name: "send", Data: []byte(pos[1])})
	r.Command(spec.Command{Name: "close"})
	if err := exitErr(r.Run(ctx)); err != nil {
		return err
	}
	if !echoed && ctx.Err() != nil {
		// The runner stops cleanly when told to; the echo still never came.
		return errors.New("echo send: interrupted before the echo came")
	}
	return nil
}

// exitErr turns a runner's result into a command's.
func exitErr(err error) error {
	var ee *impl.ExitError
	if errors.As(err, &ee) {
		return errors.New(ee.Msg)
	}
	return err
}

// verbErr names the verb in front of err, without the protocol's own
// prefix that a machine's exit message carries ("cs: download failed"
// from cs get reads "cs get: download failed").
func verbErr(verb string, err error) error {
	proto, _, _ := strings.Cut(verb, " ")
	if rest, ok := strings.CutPrefix(err.Error(), proto+": "); ok {
		return fmt.Errorf("%s: %s", verb, rest)
	}
	return fmt.Errorf("%s: %w", verb, err)
}

// maxUDPPayload is the largest UDP payload to server: an IP packet's
// 65,535 bytes less the IPv4 header, or an IPv6 payload's less UDP's.
func maxUDPPayload(server netip.AddrPort) int {
	if server.Addr().Is4() {
		return 65535 - 20 - 8
	}
	return 65535 - 8
}
