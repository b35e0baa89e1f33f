package conformance_test

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/impl"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// TestRecordChat re-records the chat corpus with -update: a simulated
// chat with loss, duplication, reordering, a client whose process dies, a
// quitter and forged hostile datagrams; and a server, a netspec client
// and a plain (nc-style) client on real loopback sockets, with garbage
// thrown at the server.
func TestRecordChat(t *testing.T) {
	if !*update {
		t.Skip("run with -update to re-record the corpus")
	}
	var buf bytes.Buffer
	sc := scenario.ChatScript{
		Server: chat.ServerConfig{Addr: scenario.ChatServerAddr, Interval: time.Second, Rate: 4, Burst: 3},
		Clients: []scenario.ChatClient{
			{Name: "alice", Nick: "alice", Lines: []scenario.ChatLine{
				{At: 100 * time.Millisecond, Text: "hello"}, {At: 400 * time.Millisecond, Text: "/who"},
				{At: 900 * time.Millisecond, Text: "/me waves"}, {At: 2500 * time.Millisecond, Text: "hello"}}},
			{Name: "bob", Start: 50 * time.Millisecond, Lines: []scenario.ChatLine{
				{At: 300 * time.Millisecond, Text: "/nick bob"}, {At: 600 * time.Millisecond, Text: "hi alice"},
				{At: 610 * time.Millisecond, Text: "one"}, {At: 611 * time.Millisecond, Text: "two"}, {At: 612 * time.Millisecond, Text: "three"},
				{At: 613 * time.Millisecond, Text: "four, over the rate limit"}, {At: 1500 * time.Millisecond, Text: "quit"}}},
			{Name: "carol", Nick: "carol", Start: 80 * time.Millisecond, Lines: []scenario.ChatLine{{At: 700 * time.Millisecond, Text: "soon gone"}}},
			{Name: "nc", Plain: true, Lines: append([]scenario.ChatLine{{At: 20 * time.Millisecond, Text: "/nick NC"},
				{At: 800 * time.Millisecond, Text: "typed in nc"}}, scenario.Heartbeats(0, 3*time.Second, 300*time.Millisecond)...)},
		},
	}
	f := sim.Faults{Loss: 0.1, Dup: 0.15, Jitter: 15 * time.Millisecond,
		Crashes: []sim.Crash{{Node: "carol", At: 1200 * time.Millisecond}}}
	w := scenario.NewChatWorld("server", sc.Server)
	cfg := sim.Config{Seed: 5, Link: sim.Symmetric(sim.Dir{Rate: 10e6, Delay: 3 * time.Millisecond}), Faults: f, Protocol: "chat", Trace: &buf}
	w.Observe(&cfg)
	s := sim.New(cfg)
	if err := sc.Build(s, w); err != nil {
		t.Fatal(err)
	}
	stranger := netip.MustParseAddrPort("10.9.9.9:5555")
	s.Inject(200*time.Millisecond, stranger, scenario.ChatServerAddr, bytes.Repeat([]byte("x"), 3000))
	s.Inject(210*time.Millisecond, stranger, scenario.ChatServerAddr, []byte("^0000000000000000.1^zero session"))
	s.Inject(220*time.Millisecond, stranger, scenario.ChatServerAddr, []byte("caf\xe9 \x1b[2J"))
	s.Inject(230*time.Millisecond, stranger, scenario.ChatServerAddr, []byte("quit"))
	s.Run(4 * time.Second)
	w.Finish(s.Now())
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if v := w.Safety(); v != "" {
		t.Fatalf("the recorded run is not safe: %s", v)
	}
	write(t, "testdata/chat-sim.ndjson", buf.Bytes())

	// Real sockets: a server, a netspec client and a plain client, each
	// recording its own trace.
	var srvTrace, cliTrace, plainTrace bytes.Buffer
	scfg := chat.ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:0"), Interval: 2 * time.Second}
	listening := make(chan string, 1)
	ctx, cancel := context.WithCancel(context.Background())
	srv := impl.New(chat.NewServer(scfg), impl.Options{
		Trace: &srvTrace, TraceNode: "server", TraceHeader: nodeHeader("chat", "server", "server", scfg),
		OnEvent: func(_ spec.Time, ev spec.Event) {
			if ev.Name == "listening" {
				listening <- strings.TrimPrefix(ev.Text, "udp ")
			}
		},
	})
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	addr := netip.MustParseAddrPort(<-listening)

	pcfg := chat.PlainConfig{Server: addr, AnswerWelcome: true}
	heard := make(chan string, 64)
	plain := impl.New(chat.NewPlain(pcfg), impl.Options{Trace: &plainTrace, TraceNode: "nc", TraceHeader: nodeHeader("chat", "nc", "plain", pcfg),
		OnEvent: func(_ spec.Time, ev spec.Event) { heard <- ev.Text }})
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan error, 1)
	go func() { pdone <- plain.Run(pctx) }()
	plain.Command(spec.Command{Name: "line", Data: []byte("/nick NC")})
	await(t, heard, "*** welcome NC")

	// Hostile input: oversized, invalid UTF-8, a bad header, a stranger's
	// quit.
	if c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr)); err == nil {
		for _, d := range []string{strings.Repeat("y", 5000), "caf\xe9", "^0000000000000000.3^x", "\x1b]0;pwned\x07", "quit"} {
			_, _ = c.Write([]byte(d))
			time.Sleep(5 * time.Millisecond)
		}
		c.Close()
	}

	ccfg := chat.ClientConfig{Server: addr, Nick: "alice", Interval: scfg.Interval}
	cli := impl.New(chat.NewClient(ccfg), impl.Options{Trace: &cliTrace, TraceNode: "alice", TraceHeader: nodeHeader("chat", "alice", "client", ccfg)})
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()
	cdone := make(chan error, 1)
	go func() { cdone <- cli.Run(cctx) }()
	await(t, heard, "*** alice joined")
	cli.Command(spec.Command{Name: "line", Data: []byte("hello from a netspec client")})
	await(t, heard, "[alice] hello from a netspec client")
	plain.Command(spec.Command{Name: "line", Data: []byte("hello alice, from nc")})
	time.Sleep(800 * time.Millisecond) // quiet: a heartbeat goes out
	plain.Command(spec.Command{Name: "line", Data: []byte("^hb^")})
	cli.Command(spec.Command{Name: "line", Data: []byte("/me leaves")})
	cli.Command(spec.Command{Name: "quit"})
	if err := <-cdone; err != nil {
		t.Fatal(err)
	}
	await(t, heard, "*** alice left")
	plain.Command(spec.Command{Name: "line", Data: []byte("quit")})
	await(t, heard, "*** bye NC")
	plain.Command(spec.Command{Name: "close"})
	if err := <-pdone; err != nil {
		t.Fatal(err)
	}
	pcancel()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	write(t, "testdata/chat-impl-server.ndjson", srvTrace.Bytes())
	write(t, "testdata/chat-impl-client.ndjson", cliTrace.Bytes())
	write(t, "testdata/chat-impl-plain.ndjson", plainTrace.Bytes())
}

// await waits for a line starting with prefix.
func await(t *testing.T, lines <-chan string, prefix string) {
	t.Helper()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("never heard %q", prefix)
		}
	}
}
