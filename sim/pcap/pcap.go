// Package pcap writes what a simulated network carried as a pcapng file
// that Wireshark and tshark read: every packet as an IPv4 or IPv6 packet
// (raw IP link type) carrying UDP or TCP, stamped with virtual time, and a
// comment on every fault.
//
// A file has two interfaces. Interface 0, "delivered", holds each packet
// at the moment it reached its receiver, with comments for what the
// network did to it on the way (duplicated, delayed by jitter, reordered).
// Interface 1, "dropped", holds each packet at the moment it was lost,
// with the reason (random loss, a full queue, a partition, no such host or
// port). Analyses of what receivers saw read interface 0 only:
//
//	tshark -r run.pcapng -2 -R 'frame.interface_id == 0' -d udp.port==5004,rtp -z rtp,streams -q
//
// TCP segments get sequence numbers from their byte offsets and
// acknowledgements from what the other direction has delivered, so
// Wireshark follows the streams; a connection opens with SYN and SYN-ACK,
// or a RST where nothing listened. The simulator does not model pure ACK
// packets, which therefore do not appear.
package pcap

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/gopacket/gopacket/pcapgo"
	"github.com/netspec/netspec/sim"
	"github.com/netspec/netspec/spec"
)

// Interfaces of the file.
const (
	Delivered = 0
	Dropped   = 1
)

// Raw IP carries IPv4 and IPv6 on one interface: readers tell them apart
// by the version nibble.
const (
	linkType = layers.LinkTypeRaw
	snapLen  = 65535 + 40 // an IPv6 header and the largest payload it can carry
)

// Writer turns network events into pcapng packets.
type Writer struct {
	w       *pcapgo.NgWriter
	dupOf   map[uint64]uint64
	lastID  map[flow]uint64 // per flow, the highest packet id delivered
	acked   map[connDir]uint64
	err     error
	packets int
	skipped int

	// A scenario may run several simulations into one file (swarm: C/S,
	// then P2P, per N), each from virtual time zero with the same
	// addresses and packet ids. Each later run is shifted to start a
	// second after the previous one ended, so time never goes back
	// and Wireshark sees separate conversations one after another.
	last   spec.Time // the latest event time seen, unshifted
	shift  time.Duration
	runs   int
	marked bool // the current run's first packet carries its note
}

type flow struct{ src, dst netip.AddrPort }

type connDir struct {
	conn uint64
	src  netip.AddrPort
}

// NewWriter starts a pcapng file on w.
func NewWriter(w io.Writer) (*Writer, error) {
	ng, err := pcapgo.NewNgWriterInterface(w, pcapgo.NgInterface{
		Name: "delivered", Description: "packets as their receivers got them", LinkType: linkType, SnapLength: snapLen,
	}, pcapgo.NgWriterOptions{SectionInfo: pcapgo.NgSectionInfo{Application: "netspec sim", Comment: "virtual time; interface 1 holds dropped packets"}})
	if err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	if _, err := ng.AddInterface(pcapgo.NgInterface{Name: "dropped", Description: "packets the network lost, at the moment it lost them", LinkType: linkType, SnapLength: snapLen}); err != nil {
		return nil, fmt.Errorf("pcap: %w", err)
	}
	return &Writer{w: ng, dupOf: map[uint64]uint64{}, lastID: map[flow]uint64{}, acked: map[connDir]uint64{}}, nil
}

// Packets is how many packets have been written.
func (w *Writer) Packets() int { return w.packets }

// Skipped is how many packets could not be written: an end without an
// address, or ends not both IPv4 or both IPv6.
func (w *Writer) Skipped() int { return w.skipped }

// Observe takes one network event; use it as (part of) sim.Config.OnNet.
func (w *Writer) Observe(ev sim.NetEvent) {
	if w.err != nil {
		return
	}
	if w.runs == 0 {
		w.runs = 1
	} else if ev.T < w.last {
		w.shift += w.last.Sub(spec.SimEpoch) + time.Second
		w.runs++
		w.marked = false
		clear(w.dupOf)
		clear(w.lastID)
		clear(w.acked)
	}
	w.last = ev.T
	switch {
	case ev.Kind == sim.NetDup:
		w.dupOf[ev.ID] = ev.Orig
	case ev.Kind == sim.NetDeliver:
		var notes []string
		if orig, ok := w.dupOf[ev.ID]; ok {
			notes = append(notes, fmt.Sprintf("duplicated: a copy of packet #%d", orig))
			delete(w.dupOf, ev.ID)
		}
		if ev.Jitter > 0 {
			notes = append(notes, fmt.Sprintf("delayed by %.3f ms of jitter", float64(ev.Jitter)/1e6))
		}
		if q := ev.Extra - ev.Jitter; q > time.Millisecond {
			notes = append(notes, fmt.Sprintf("queued %.3f ms", float64(q)/1e6))
		}
		f := flow{ev.From, ev.To}
		if last := w.lastID[f]; last > ev.ID {
			notes = append(notes, fmt.Sprintf("reordered: arrived after packet #%d, sent later", last))
		} else {
			w.lastID[f] = ev.ID
		}
		w.write(ev, Delivered, notes)
		if ev.Conn != 0 {
			k := connDir{ev.Conn, ev.From}
			if end := ev.Seq + uint64(len(ev.Data)); end > w.acked[k] {
				w.acked[k] = end
			}
		}
	case ev.Kind.Dropped():
		delete(w.dupOf, ev.ID)
		note := "dropped: " + ev.Note
		if ev.Kind == sim.NetCut {
			note = "cut by a partition"
		}
		w.write(ev, Dropped, []string{note})
	}
}

func (w *Writer) write(ev sim.NetEvent, intf int, notes []string) {
	ev.From = netip.AddrPortFrom(ev.From.Addr().Unmap(), ev.From.Port())
	ev.To = netip.AddrPortFrom(ev.To.Addr().Unmap(), ev.To.Port())
	if !ev.From.Addr().IsValid() || !ev.To.Addr().IsValid() || ev.From.Addr().Is4() != ev.To.Addr().Is4() {
		w.skipped++
		return
	}
	data, err := w.build(ev)
	if err != nil {
		w.err = err
		return
	}
	ci := gopacket.CaptureInfo{Timestamp: ev.T.Add(w.shift).Wall(), CaptureLength: len(data), Length: len(data), InterfaceIndex: intf}
	notes = append([]string{fmt.Sprintf("netspec packet #%d", ev.ID)}, notes...)
	if w.runs > 1 && !w.marked {
		w.marked = true
		notes = append(notes, fmt.Sprintf("simulation run %d starts here, shifted by %v to follow the previous run", w.runs, w.shift))
	}
	if err := w.w.WritePacketWithOptions(ci, data, pcapgo.NgPacketOptions{Comments: notes}); err != nil {
		w.err = fmt.Errorf("pcap: %w", err)
		return
	}
	w.packets++
}

func ipOf(a netip.AddrPort) net.IP {
	return net.IP(a.Addr().AsSlice())
}

// isn is a connection's initial sequence number, stable per run,
// connection and direction so captures of the same seed are identical,
// and different in each run so a reused address pair reads as a new
// connection.
func isn(run int, conn uint64, src netip.AddrPort) uint32 {
	h := fnv.New32a()
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], conn)
	binary.BigEndian.PutUint64(b[8:], uint64(run))
	h.Write(b[:])
	h.Write([]byte(src.String()))
	return h.Sum32()
}

// maxPayload is the most payload one packet can carry: IP length fields
// are 16 bits (IPv4's counts its own header too), and more would wrap them
// into a malformed packet.
func maxPayload(ev sim.NetEvent) int {
	n := 65535
	if ev.From.Addr().Is4() {
		n -= 20
	}
	if ev.Proto == spec.TCP {
		return n - 20
	}
	return n - 8
}

func (w *Writer) build(ev sim.NetEvent) ([]byte, error) {
	if max := maxPayload(ev); len(ev.Data) > max {
		return nil, fmt.Errorf("pcap: packet #%d: %d bytes of payload, more than an IP packet carries (%d)", ev.ID, len(ev.Data), max)
	}
	var ip interface {
		gopacket.SerializableLayer
		gopacket.NetworkLayer
	}
	var setProto func(layers.IPProtocol)
	if ev.From.Addr().Is4() {
		v4 := &layers.IPv4{Version: 4, TTL: 64, SrcIP: ipOf(ev.From), DstIP: ipOf(ev.To), Id: uint16(ev.ID)}
		ip, setProto = v4, func(p layers.IPProtocol) { v4.Protocol = p }
	} else {
		v6 := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: ipOf(ev.From), DstIP: ipOf(ev.To), FlowLabel: uint32(ev.ID) & 0xfffff}
		ip, setProto = v6, func(p layers.IPProtocol) { v6.NextHeader = p }
	}
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	buf := gopacket.NewSerializeBuffer()
	var err error
	switch ev.Proto {
	case spec.TCP:
		setProto(layers.IPProtocolTCP)
		t := &layers.TCP{SrcPort: layers.TCPPort(ev.From.Port()), DstPort: layers.TCPPort(ev.To.Port()), Window: 65535}
		base := isn(w.runs, ev.Conn, ev.From)
		peer := isn(w.runs, ev.Conn, ev.To)
		switch ev.Flags {
		case "S":
			t.SYN, t.Seq = true, base
		case "SA":
			t.SYN, t.Seq, t.ACK, t.Ack = true, base, true, peer+1
		default: // data, "F" (FIN) or "R" (RST)
			t.Seq = base + 1 + uint32(ev.Seq)
			t.ACK = true
			t.Ack = peer + 1 + uint32(w.acked[connDir{ev.Conn, ev.To}])
			t.PSH = len(ev.Data) > 0
			t.FIN = ev.Flags == "F"
			if t.RST = ev.Flags == "R"; t.RST {
				t.Window = 0
			}
		}
		_ = t.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, t, gopacket.Payload(ev.Data))
	default:
		setProto(layers.IPProtocolUDP)
		u := &layers.UDP{SrcPort: layers.UDPPort(ev.From.Port()), DstPort: layers.UDPPort(ev.To.Port())}
		_ = u.SetNetworkLayerForChecksum(ip)
		err = gopacket.SerializeLayers(buf, opts, ip, u, gopacket.Payload(ev.Data))
	}
	if err != nil {
		return nil, fmt.Errorf("pcap: build packet #%d: %w", ev.ID, err)
	}
	return buf.Bytes(), nil
}

// Close flushes the file; it reports the first error Observe met.
func (w *Writer) Close() error {
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = fmt.Errorf("pcap: %w", err)
	}
	return w.err
}
