package pcap_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/sim/pcap"
	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/trace"
)

// Every fault the simulator reports becomes a comment on its packet, on
// the interface the package documents: what arrived on 0, what was lost
// on 1.
func TestFaultComments(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:5000")
	b := netip.MustParseAddrPort("10.0.0.2:7")
	at := func(ms int) spec.Time { return spec.SimEpoch.Add(time.Duration(ms) * time.Millisecond) }
	ev := func(ms int, k sim.NetKind, id uint64, note string) sim.NetEvent {
		return sim.NetEvent{T: at(ms), Kind: k, ID: id, Proto: spec.UDP, From: a, To: b, Data: []byte{byte(id)}, Note: note}
	}
	dup := ev(1, sim.NetDup, 2, "")
	dup.Orig = 1
	jittered := ev(3, sim.NetDeliver, 3, "")
	jittered.Extra, jittered.Jitter = 4*time.Millisecond, 4*time.Millisecond
	queued := ev(4, sim.NetDeliver, 4, "")
	queued.Extra = 3 * time.Millisecond
	events := []sim.NetEvent{
		ev(1, sim.NetDeliver, 1, ""),
		dup,
		ev(2, sim.NetDeliver, 2, ""),
		jittered,
		queued,
		ev(5, sim.NetDeliver, 5, ""),
		ev(6, sim.NetDeliver, 3, ""), // 3 again, after 5: reordered
		ev(7, sim.NetLoss, 6, "uplink loss"),
		ev(8, sim.NetQueueDrop, 7, "downlink queue full"),
		ev(9, sim.NetCut, 8, "partition"),
		ev(10, sim.NetNoPort, 9, "no socket bound"),
	}
	want := []struct {
		intf    int
		ms      int    // its timestamp: when it arrived or was lost
		comment string // a substring of the packet's comments
	}{
		{0, 1, "netspec packet #1"},
		{0, 2, "duplicated: a copy of packet #1"},
		{0, 3, "delayed by 4.000 ms of jitter"},
		{0, 4, "queued 3.000 ms"},
		{0, 5, "netspec packet #5"},
		{0, 6, "reordered: arrived after packet #5"},
		{1, 7, "dropped: uplink loss"},
		{1, 8, "dropped: downlink queue full"},
		{1, 9, "cut by a partition"},
		{1, 10, "dropped: no socket bound"},
	}

	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		w.Observe(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Packets() != len(want) {
		t.Fatalf("wrote %d packets, want %d", w.Packets(), len(want))
	}

	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	for i, wnt := range want {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if ci.InterfaceIndex != wnt.intf {
			t.Errorf("packet %d on interface %d, want %d", i, ci.InterfaceIndex, wnt.intf)
		}
		if all := strings.Join(opts.Comments, " | "); !strings.Contains(all, wnt.comment) {
			t.Errorf("packet %d comments %q lack %q", i, all, wnt.comment)
		}
		if !ci.Timestamp.Equal(at(wnt.ms).Wall()) {
			t.Errorf("packet %d stamped %v, want %v", i, ci.Timestamp, at(wnt.ms).Wall())
		}
		p := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if udp == nil || udp.SrcPort != 5000 || udp.DstPort != 7 {
			t.Errorf("packet %d does not decode as UDP 5000 -> 7: %v", i, p)
		}
	}
	if _, _, err := r.ReadPacketData(); !errors.Is(err, io.EOF) {
		t.Errorf("more packets than written: %v", err)
	}
}

// A delivered packet's comments tell jitter from queueing: the queueing
// is the extra delay less the jitter, and noted only past a millisecond.
// Exact lists, so that a jittered packet noted as queued too shows.
func TestDelayComments(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:5000")
	b := netip.MustParseAddrPort("10.0.0.2:7")
	ms := func(f float64) time.Duration { return time.Duration(f * float64(time.Millisecond)) }
	tests := []struct {
		extra, jitter time.Duration
		want          []string
	}{
		{0, 0, nil},
		{ms(4), ms(4), []string{"delayed by 4.000 ms of jitter"}},
		{ms(3), 0, []string{"queued 3.000 ms"}},
		{ms(6), ms(4), []string{"delayed by 4.000 ms of jitter", "queued 2.000 ms"}},
		{ms(4.5), ms(4), []string{"delayed by 4.000 ms of jitter"}},
		{ms(0.25), ms(0.25), []string{"delayed by 0.250 ms of jitter"}},
	}
	var evs []sim.NetEvent
	for i, tc := range tests {
		evs = append(evs, sim.NetEvent{T: spec.SimEpoch.Add(time.Duration(i) * time.Second), Kind: sim.NetDeliver, ID: uint64(i + 1), Proto: spec.UDP, From: a, To: b,
			Extra: tc.extra, Jitter: tc.jitter})
	}
	frames := captureEvents(t, evs)
	for i, tc := range tests {
		want := append([]string{fmt.Sprintf("netspec packet #%d", i+1)}, tc.want...)
		if diff := cmp.Diff(want, frames[i].Comments); diff != "" {
			t.Errorf("extra %v, jitter %v: comments (-want +got):\n%s", tc.extra, tc.jitter, diff)
		}
	}
}

// A delivered packet is noted as reordered when a later packet of its
// flow (a higher id, same source and destination) arrived before it,
// even the very next one; later packets of other flows do not count.
func TestReorderComments(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:5000")
	b := netip.MustParseAddrPort("10.0.0.2:7")
	c := netip.MustParseAddrPort("10.0.0.3:7")
	tests := []struct {
		to   netip.AddrPort
		id   uint64
		want []string
	}{
		{b, 1, nil},
		{b, 3, nil},
		{b, 2, []string{"reordered: arrived after packet #3, sent later"}},
		{c, 9, nil},
		{b, 5, nil},
		{b, 4, []string{"reordered: arrived after packet #5, sent later"}},
		{c, 6, []string{"reordered: arrived after packet #9, sent later"}},
	}
	var evs []sim.NetEvent
	for i, tc := range tests {
		evs = append(evs, sim.NetEvent{T: spec.SimEpoch.Add(time.Duration(i) * time.Millisecond), Kind: sim.NetDeliver, ID: tc.id, Proto: spec.UDP, From: a, To: tc.to})
	}
	frames := captureEvents(t, evs)
	for i, tc := range tests {
		want := append([]string{fmt.Sprintf("netspec packet #%d", tc.id)}, tc.want...)
		if diff := cmp.Diff(want, frames[i].Comments); diff != "" {
			t.Errorf("packet #%d to %v: comments (-want +got):\n%s", tc.id, tc.to, diff)
		}
	}
}

// A datagram the simulator jitters on an idle rate-limited link is noted
// as jittered, by what its delivery reports, and not as queued.
func TestSimJitterNotQueued(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var jitter time.Duration
	s := sim.New(sim.Config{Seed: 1, Faults: sim.Faults{Jitter: 10 * time.Millisecond},
		Link: sim.Symmetric(sim.Dir{Rate: 1e6, Delay: time.Millisecond}),
		OnNet: func(ev sim.NetEvent) {
			if ev.Kind == sim.NetDeliver {
				jitter = ev.Jitter
			}
			w.Observe(ev)
		}})
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return udpPeer{} }})
	s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return udpPeer{} }})
	s.Command(0, "a", spec.Command{Args: []string{"10.0.0.2:9"}, Data: make([]byte, 1000)})
	s.Run(time.Second)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frames := readFrames(t, buf.Bytes())
	if len(frames) != 1 || jitter <= time.Millisecond {
		t.Fatalf("%d frames, jitter %v: want one, jittered by over a millisecond", len(frames), jitter)
	}
	want := []string{"netspec packet #1", fmt.Sprintf("delayed by %.3f ms of jitter", float64(jitter)/1e6)}
	if diff := cmp.Diff(want, frames[0].Comments); diff != "" {
		t.Errorf("comments (-want +got):\n%s", diff)
	}
}

// Several simulations written into one file (swarm runs C/S, then P2P)
// follow each other in time, each later one marked where it starts (a
// third run follows the second, its shift added to the first's), and
// the same connection in two runs gets two initial sequence numbers.
func TestRunsFollowEachOther(t *testing.T) {
	a := netip.MustParseAddrPort("10.0.0.1:5000")
	b := netip.MustParseAddrPort("10.0.0.2:7")
	at := func(ms int) spec.Time { return spec.SimEpoch.Add(time.Duration(ms) * time.Millisecond) }
	syn := func(ms int) sim.NetEvent {
		return sim.NetEvent{T: at(ms), Kind: sim.NetDeliver, ID: 1, Proto: spec.TCP, From: a, To: b, Conn: 1, Flags: "S"}
	}
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	// The third starts a second run, ending at 300 ms; the fourth a third.
	for _, e := range []sim.NetEvent{syn(1), syn(500), syn(2), syn(300), syn(5)} {
		w.Observe(e)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	r, err := pcapgo.NewNgReader(&buf, pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var stamps []time.Time
	var seqs []uint32
	var notes []string
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		stamps = append(stamps, ci.Timestamp)
		notes = append(notes, strings.Join(opts.Comments, " | "))
		tcp, _ := gopacket.NewPacket(data, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || !tcp.SYN {
			t.Fatalf("packet %d is not a SYN", len(stamps))
		}
		seqs = append(seqs, tcp.Seq)
	}
	if len(stamps) != 5 {
		t.Fatalf("%d packets, want 5", len(stamps))
	}
	// Each run starts a second after the previous one's last packet, so
	// the shifts add up.
	for i, ms := range []int{1, 500, 1500 + 2, 1500 + 300, 1500 + 300 + 1000 + 5} {
		if want := at(ms).Wall(); !stamps[i].Equal(want) {
			t.Errorf("packet %d stamped %v, want %v", i, stamps[i], want)
		}
	}
	if !strings.Contains(notes[2], "simulation run 2 starts here") || !strings.Contains(notes[4], "simulation run 3 starts here") ||
		strings.Contains(notes[1], "simulation run") || strings.Contains(notes[3], "simulation run") {
		t.Errorf("run marks misplaced: %q", notes)
	}
	if seqs[0] != seqs[1] || seqs[2] == seqs[0] || seqs[3] != seqs[2] || seqs[4] == seqs[2] || seqs[4] == seqs[0] {
		t.Errorf("initial sequence numbers %v: want one per connection per run", seqs)
	}
}

// A socket run's trace of a server on 0.0.0.0 records each datagram's
// local address, and the capture carries it: the request to 127.0.0.2 and
// the answer from there, not the unspecified address or a stand-in.
func TestTraceLocalAddressInCapture(t *testing.T) {
	frames, _ := captureTrace(t, []trace.Record{
		{T: 0, In: "bound", Sock: 1, Addr: "0.0.0.0:7"},
		{T: 1000, In: "datagram", Sock: 1, Addr: "127.0.0.1:5000", Local: "127.0.0.2", Text: "hi"},
		{T: 2000, Out: "send", Sock: 1, Addr: "127.0.0.1:5000", Local: "127.0.0.2", Text: "hi"},
	})
	want := [][2]string{{"127.0.0.1", "127.0.0.2"}, {"127.0.0.2", "127.0.0.1"}}
	if len(frames) != len(want) {
		t.Fatalf("%d frames, want %d", len(frames), len(want))
	}
	for i, f := range frames {
		ip, _ := gopacket.NewPacket(f.Data, layers.LinkTypeRaw, gopacket.Default).Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		if ip == nil || ip.SrcIP.String() != want[i][0] || ip.DstIP.String() != want[i][1] {
			t.Errorf("frame %d: %v, want %s -> %s", i, ip, want[i][0], want[i][1])
		}
	}
}

// udpPeer binds UDP port 9 and sends what commands say.
type udpPeer struct{}

func (udpPeer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	switch in.Kind {
	case spec.InStart:
		out = append(out, spec.Bind(1, spec.UDP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)))
	case spec.InCommand:
		out = append(out, spec.Send(1, netip.MustParseAddrPort(in.Cmd.Args[0]), in.Cmd.Data))
	}
	return out
}

// frame is one packet of a capture, for comparing captures.
type frame struct {
	Intf     int
	At       time.Time
	Data     []byte
	Comments []string
}

// captureEvents writes evs, each one packet, and reads the frames back.
func captureEvents(t *testing.T, evs []sim.NetEvent) []frame {
	t.Helper()
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		w.Observe(ev)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	frames := readFrames(t, buf.Bytes())
	if len(frames) != len(evs) {
		t.Fatalf("%d frames, want %d", len(frames), len(evs))
	}
	return frames
}

func readFrames(t *testing.T, b []byte) []frame {
	t.Helper()
	r, err := pcapgo.NewNgReader(bytes.NewReader(b), pcapgo.DefaultNgReaderOptions)
	if err != nil {
		t.Fatal(err)
	}
	var out []frame
	for {
		data, ci, opts, err := r.ReadPacketDataWithOptions()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, frame{ci.InterfaceIndex, ci.Timestamp, data, opts.Comments})
	}
}

// A simulator trace rebuilds the capture the simulator writes itself:
// the same packets with the same comments, jitter told from queueing.
func TestTraceRebuildMatchesSim(t *testing.T) {
	var direct, tr bytes.Buffer
	w, err := pcap.NewWriter(&direct)
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Config{Seed: 7, Trace: &tr, OnNet: w.Observe,
		Faults: sim.Faults{Loss: 0.1, Dup: 0.1, Jitter: 5 * time.Millisecond},
		// Slow enough that a burst queues.
		Link: sim.Symmetric(sim.Dir{Rate: 1e6, Delay: time.Millisecond})})
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return udpPeer{} }})
	b := s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return udpPeer{} }})
	to := netip.AddrPortFrom(b.Addr, 9).String()
	for i := range 100 {
		s.Command(time.Duration(i/10)*20*time.Millisecond, "a", spec.Command{Name: "send", Args: []string{to}, Data: bytes.Repeat([]byte{byte(i)}, 1000)})
	}
	s.Run(5 * time.Second)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	h, recs, err := trace.ReadAll(&tr)
	if err != nil {
		t.Fatal(err)
	}
	var rebuilt bytes.Buffer
	w2, err := pcap.NewWriter(&rebuilt)
	if err != nil {
		t.Fatal(err)
	}
	if err := pcap.FromTrace(w2, h, recs); err != nil {
		t.Fatal(err)
	}
	if err := w2.Close(); err != nil {
		t.Fatal(err)
	}
	want, got := readFrames(t, direct.Bytes()), readFrames(t, rebuilt.Bytes())
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("capture rebuilt from the trace differs (-sim +trace):\n%s", diff)
	}
	all := fmt.Sprint(want)
	for _, note := range []string{"of jitter", "queued", "dropped", "duplicated"} {
		if !strings.Contains(all, note) {
			t.Errorf("no packet commented %q: the run does not test it", note)
		}
	}
}

// captureTrace converts a socket run's records and returns its frames.
func captureTrace(t *testing.T, recs []trace.Record) ([]frame, *pcap.Writer) {
	t.Helper()
	h := trace.Header{Format: trace.Format, Protocol: "echo", Source: "impl", Nodes: []trace.NodeInfo{{Name: "n", Role: "server"}}}
	for i := range recs {
		recs[i].Node = "n"
	}
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := pcap.FromTrace(w, h, recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return readFrames(t, buf.Bytes()), w
}

// A socket run's stream chunks of any size become well-formed TCP
// segments of at most SocketMSS bytes, numbered by byte offset.
func TestSocketStreamSegments(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 70000/16) // over an IP packet's 64 KiB
	tr := trace.Record{Out: "write", Stream: 1}
	tr.SetPayload(big)
	recs := []trace.Record{
		{In: "bound", Sock: 1, Addr: "127.0.0.1:7"},
		{In: "accepted", Sock: 1, Stream: 2, Addr: "127.0.0.1:5000"},
		{Out: "dial", Stream: 1, Addr: "127.0.0.1:8000"},
		{In: "connected", Stream: 1, Addr: "127.0.0.1:8000"},
		tr,
		{Out: "write", Stream: 1, Text: "tail"},
		{In: "data", Stream: 2, Text: "in"},
	}
	frames, _ := captureTrace(t, recs)
	// Two connections' handshakes, the segments, "tail" and "in".
	if want := 4 + (len(big)+pcap.SocketMSS-1)/pcap.SocketMSS + 2; len(frames) != want {
		t.Fatalf("%d frames, want %d", len(frames), want)
	}
	var sent []byte
	var first uint32
	for i, f := range frames {
		p := gopacket.NewPacket(f.Data, layers.LayerTypeIPv4, gopacket.Default)
		if el := p.ErrorLayer(); el != nil {
			t.Fatalf("frame %d malformed: %v", i, el.Error())
		}
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
		if tcp == nil || int(ip.Length) != len(f.Data) || len(tcp.Payload) > pcap.SocketMSS {
			t.Fatalf("frame %d: IP length %d of %d bytes, TCP %v", i, ip.Length, len(f.Data), tcp)
		}
		if tcp.DstPort != 8000 {
			continue
		}
		if tcp.SYN {
			first = tcp.Seq + 1
			continue
		}
		if got := tcp.Seq - first; int(got) != len(sent) {
			t.Fatalf("frame %d at offset %d, want %d", i, got, len(sent))
		}
		sent = append(sent, tcp.Payload...)
	}
	if !bytes.Equal(sent, append(big, "tail"...)) {
		t.Errorf("the segments carry %d bytes, not the %d written", len(sent), len(big)+4)
	}
}

// A socket run over IPv6 gives IPv6 frames, not an empty capture; a
// datagram too big for any IP packet is an error, not a malformed frame.
func TestSocketRunIPv6(t *testing.T) {
	frames, w := captureTrace(t, []trace.Record{
		{In: "bound", Sock: 1, Addr: "[::]:7"},
		{In: "datagram", Sock: 1, Addr: "[::1]:5000", Text: "hi"},
		{Out: "send", Sock: 1, Addr: "[::1]:5000", Text: "hi"},
	})
	if len(frames) != 2 || w.Skipped() != 0 {
		t.Fatalf("%d frames, %d skipped; want 2 and 0", len(frames), w.Skipped())
	}
	for i, f := range frames {
		p := gopacket.NewPacket(f.Data, layers.LinkTypeRaw, gopacket.Default)
		ip, _ := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
		udp, _ := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
		if ip == nil || udp == nil || string(udp.Payload) != "hi" || p.ErrorLayer() != nil {
			t.Fatalf("frame %d is not IPv6/UDP carrying %q: %v", i, "hi", p)
		}
		if ip.SrcIP.String() != "::1" || ip.DstIP.String() != "::1" {
			t.Errorf("frame %d: %v -> %v, want ::1 both ways", i, ip.SrcIP, ip.DstIP)
		}
	}
	h := trace.Header{Format: trace.Format, Protocol: "echo", Source: "impl"}
	huge := trace.Record{Node: "n", In: "datagram", Sock: 1, Addr: "127.0.0.1:5000"}
	huge.SetPayload(make([]byte, 65508))
	pw, err := pcap.NewWriter(io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := pcap.FromTrace(pw, h, []trace.Record{{Node: "n", In: "bound", Sock: 1, Addr: "127.0.0.1:7"}, huge}); err == nil || !strings.Contains(err.Error(), "65508") {
		t.Errorf("a 65508-byte datagram: %v, want an error naming its size", err)
	}
}

// A datagram between an IPv4 and an IPv6 end (a trace recorded on a v4
// socket whose local address says v6, say) fits no IP header: it is left
// out and counted, not written wrong.
func TestMixedFamiliesSkipped(t *testing.T) {
	frames, w := captureTrace(t, []trace.Record{
		{In: "bound", Sock: 1, Addr: "0.0.0.0:7"},
		{In: "datagram", Sock: 1, Addr: "127.0.0.1:5000", Local: "::1", Text: "mixed"},
		{In: "datagram", Sock: 1, Addr: "127.0.0.1:5000", Text: "fine"},
	})
	if len(frames) != 1 || w.Skipped() != 1 {
		t.Fatalf("%d frames, %d skipped; want 1 and 1", len(frames), w.Skipped())
	}
}

// tcpFlags names a frame's TCP control flags as a capture reader would.
func tcpFlags(t *testing.T, f frame) string {
	t.Helper()
	p := gopacket.NewPacket(f.Data, layers.LayerTypeIPv4, gopacket.Default)
	tcp, _ := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp == nil {
		t.Fatalf("not a TCP frame: %v", p)
	}
	var s []string
	for _, fl := range []struct {
		on   bool
		name string
	}{{tcp.SYN, "SYN"}, {tcp.FIN, "FIN"}, {tcp.RST, "RST"}, {tcp.ACK, "ACK"}} {
		if fl.on {
			s = append(s, fl.name)
		}
	}
	if len(tcp.Payload) > 0 {
		s = append(s, fmt.Sprintf("%dB", len(tcp.Payload)))
	}
	return fmt.Sprintf("%d>%d %s", tcp.SrcPort, tcp.DstPort, strings.Join(s, "|"))
}

// A socket run's connections show their handshake, FINs and RSTs, which
// the kernel did not put in the trace but a capture reader expects.
func TestSocketConnectionLifecycle(t *testing.T) {
	bound := trace.Record{In: "bound", Sock: 1, Addr: "127.0.0.1:7"}
	acc := uint64(spec.AcceptedStream)
	for _, tc := range []struct {
		name string
		recs []trace.Record
		want []string
	}{
		{"accepted, echoed, closed by the peer then us", []trace.Record{
			bound,
			{In: "accepted", Sock: 1, Stream: acc | 1, Addr: "127.0.0.1:5000"},
			{In: "data", Stream: acc | 1, Text: "hi"},
			{Out: "write", Stream: acc | 1, Text: "hi"},
			{In: "closed", Stream: acc | 1},
			{Out: "close", Stream: acc | 1},
		}, []string{"5000>7 SYN", "7>5000 SYN|ACK", "5000>7 ACK|2B", "7>5000 ACK|2B", "5000>7 FIN|ACK", "7>5000 FIN|ACK"}},
		{"accepted, reset by the peer", []trace.Record{
			bound,
			{In: "accepted", Sock: 1, Stream: acc | 1, Addr: "127.0.0.1:5000"},
			{In: "closed", Stream: acc | 1, Err: "connection reset by peer"},
			{Out: "close", Stream: acc | 1},
		}, []string{"5000>7 SYN", "7>5000 SYN|ACK", "5000>7 RST|ACK"}},
		{"dialed and aborted", []trace.Record{
			{Out: "dial", Stream: 1, Addr: "127.0.0.1:8000"},
			{In: "connected", Stream: 1, Addr: "127.0.0.1:8000"},
			{Out: "abort", Stream: 1},
		}, []string{"49152>8000 SYN", "8000>49152 SYN|ACK", "49152>8000 RST|ACK"}},
		{"dial refused", []trace.Record{
			{Out: "dial", Stream: 1, Addr: "127.0.0.1:8000"},
			{In: "closed", Stream: 1, Err: "connection refused"},
		}, []string{"49152>8000 SYN", "8000>49152 RST|ACK"}},
		{"two dials to one address, kept apart", []trace.Record{
			{Out: "dial", Stream: 1, Addr: "127.0.0.1:8000"},
			{Out: "dial", Stream: 2, Addr: "127.0.0.1:8000"},
			{In: "connected", Stream: 2, Addr: "127.0.0.1:8000"},
			{In: "connected", Stream: 1, Addr: "127.0.0.1:8000"},
			{Out: "write", Stream: 1, Text: "a"},
			{Out: "write", Stream: 2, Text: "b"},
		}, []string{"49153>8000 SYN", "8000>49153 SYN|ACK", "49152>8000 SYN", "8000>49152 SYN|ACK", "49152>8000 ACK|1B", "49153>8000 ACK|1B"}},
		{"dial timed out", []trace.Record{
			{Out: "dial", Stream: 1, Addr: "127.0.0.1:8000"},
			{In: "closed", Stream: 1, Err: "i/o timeout"},
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			frames, _ := captureTrace(t, tc.recs)
			var got []string
			isn := map[[2]layers.TCPPort]uint32{} // by (from, to)
			for _, f := range frames {
				got = append(got, tcpFlags(t, f))
				// Each end's first sequence number is its SYN's, plus one.
				tcp := gopacket.NewPacket(f.Data, layers.LayerTypeIPv4, gopacket.Default).Layer(layers.LayerTypeTCP).(*layers.TCP)
				if tcp.SYN {
					isn[[2]layers.TCPPort{tcp.SrcPort, tcp.DstPort}] = tcp.Seq
				}
				if peer, ok := isn[[2]layers.TCPPort{tcp.DstPort, tcp.SrcPort}]; ok && tcp.ACK && tcp.Ack-peer-1 > 1<<20 {
					t.Errorf("%s acknowledges %d, not its peer's %d or later", tcpFlags(t, f), tcp.Ack, peer+1)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("frames (-want +got):\n%s", diff)
			}
		})
	}
}

// dialer dials the address each command names, on a new stream.
type dialer struct{ n spec.Stream }

func (d *dialer) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if in.Kind == spec.InCommand {
		d.n++
		out = append(out, spec.Dial(d.n, netip.MustParseAddrPort(in.Cmd.Args[0])))
	}
	return out
}

// listener listens on TCP port 9.
type listener struct{}

func (listener) Step(now spec.Time, in spec.Input, out []spec.Output) []spec.Output {
	if in.Kind == spec.InStart {
		out = append(out, spec.Bind(1, spec.TCP, netip.AddrPortFrom(netip.IPv4Unspecified(), 9)))
	}
	return out
}

// A simulated dial shows its handshake: SYN and SYN-ACK where a listener
// took it, SYN and RST where none did.
func TestSimHandshakeFrames(t *testing.T) {
	var buf bytes.Buffer
	w, err := pcap.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	s := sim.New(sim.Config{OnNet: w.Observe})
	s.MustAddNode(sim.NodeSpec{Name: "a", New: func() spec.Machine { return &dialer{} }})
	s.MustAddNode(sim.NodeSpec{Name: "b", New: func() spec.Machine { return listener{} }})
	s.Command(0, "a", spec.Command{Args: []string{"10.0.0.2:9"}})
	s.Command(time.Second, "a", spec.Command{Args: []string{"10.0.0.2:10"}})
	s.Run(2 * time.Second)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if v := s.Violations(); len(v) > 0 {
		t.Fatalf("violations: %q", v)
	}
	var got []string
	for _, f := range readFrames(t, buf.Bytes()) {
		got = append(got, tcpFlags(t, f))
	}
	want := []string{"49152>9 SYN", "9>49152 SYN|ACK", "49153>10 SYN", "10>49153 RST|ACK"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("frames (-want +got):\n%s", diff)
	}
}
