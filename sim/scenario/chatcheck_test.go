package scenario_test

import (
	"cmp"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/scenario"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/chat"
)

// faulty wraps a chat server with one of the faults CheckNoStraySends
// must catch.
type faulty struct {
	*chat.Server
	fault string
}

func (f *faulty) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch {
	case f.fault == "send at the deadline" && in.Kind == spec.InTimer:
		// As the hold step did before expiry came first in every step:
		// at a member's deadline, send it something, then expire it.
		for _, m := range f.Members() {
			if m.Heard.Add(f.Config().Interval) <= now {
				out = append(out, spec.Send(1, m.Addr, []byte("[alice] late\n")))
			}
		}
	case f.fault == "full reflects" && in.Kind == spec.InDatagram && len(in.Data) == 1:
		// As the full server did: a long refusal to a one-byte datagram.
		out = f.Server.Step(now, in, out)
		return append(out, spec.Send(1, in.Addr, []byte("*** chat is full (1 members); try again later\n")))
	}
	return f.Server.Step(now, in, out)
}

// CheckNoStraySends catches a send to a member at the instant its
// silence reaches the interval, even when the server reports the expiry
// only after it, and an answer to a stranger larger than what the
// stranger sent; the real server passes the same runs.
func TestCheckNoStraySendsCatches(t *testing.T) {
	srv := netip.MustParseAddrPort("10.0.0.1:9999")
	a, b, c := netip.MustParseAddrPort("10.0.1.1:4000"), netip.MustParseAddrPort("10.0.1.2:4000"), netip.MustParseAddrPort("10.0.1.3:4000")
	hdr := func(seq uint32) []byte { return chat.AppendHeader(nil, chat.Header{Session: 7, Seq: seq}) }
	for _, tc := range []struct {
		fault string
		want  string
	}{
		{"", ""},
		{"send at the deadline", "silent since"},
		{"full reflects", "more than any datagram"},
	} {
		t.Run(cmp.Or(tc.fault, "real server"), func(t *testing.T) {
			cfg := chat.ServerConfig{Addr: srv, Interval: 10 * time.Second, MaxMembers: 3}
			w := scenario.NewChatWorld("server", cfg)
			scfg := sim.Config{Seed: 1, Link: sim.Symmetric(sim.Dir{})}
			w.Observe(&scfg)
			s := sim.New(scfg)
			s.MustAddNode(sim.NodeSpec{Name: "server", Addr: srv.Addr(), Protocol: "chat", Role: "server", Config: cfg,
				New: func() spec.Machine { return &faulty{Server: chat.NewServer(cfg), fault: tc.fault} }})
			s.Inject(0, c, srv, []byte("hello from c"))
			s.Inject(50*time.Millisecond, b, srv, []byte("hello from b"))
			s.Inject(60*time.Millisecond, a, srv, append(hdr(1), "/nick alice"...))
			s.Inject(5*time.Second, c, srv, []byte("^hb^"))
			s.Inject(9*time.Second, a, srv, append(hdr(0), "^hb^"...))
			// alice's 3 without 2 waits Hold (100 ms), until b's deadline.
			s.Inject(9950*time.Millisecond, a, srv, append(hdr(3), "late"...))
			s.Inject(9960*time.Millisecond, netip.MustParseAddrPort("10.0.2.1:4000"), srv, []byte("x")) // a stranger: the chat is full
			s.Run(20 * time.Second)
			w.Finish(s.Now())
			got := w.CheckNoStraySends()
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Fatalf("CheckNoStraySends() = %q, want %q", got, tc.want)
			}
		})
	}
}
