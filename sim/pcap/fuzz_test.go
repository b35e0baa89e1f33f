package pcap_test

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"github.com/netspec/netspec/sim/pcap"
	"github.com/netspec/netspec/spec/trace"
)

// FuzzFromTrace: any bytes that read as a trace (a simulator's or a
// socket run's) go through FromTrace without a panic. A capture it
// writes without error is what doc.go says: a pcapng file that reads
// back, packet for packet as many as Packets says, each an IPv4 or IPv6
// packet whose length fields agree with its size, carrying UDP or TCP,
// on interface 0 (delivered) or 1 (dropped, with the reason in a
// comment). And it is bounded by the trace: a record gives at most two
// packets (a handshake) or one per SocketMSS bytes of its stream data,
// none with more payload than a record carries nor more comment than
// its note, so a small trace cannot make a huge capture.
func FuzzFromTrace(f *testing.F) {
	sim := `{"format":2,"protocol":"echo","source":"sim","epoch":1000000000,"nodes":[]}` + "\n"
	impl := `{"format":2,"protocol":"echo","source":"impl","epoch":1000000000,"nodes":[{"name":"n","role":"server","config":{}}]}` + "\n"
	f.Add([]byte(sim +
		`{"t":1,"net":"send","proto":"udp","id":1,"from":"10.0.0.2:5000","addr":"10.0.0.1:7","len":2,"text":"hi"}` + "\n" +
		`{"t":2,"net":"dup","id":2,"name":"copy of 1","from":"10.0.0.2:5000","addr":"10.0.0.1:7"}` + "\n" +
		`{"t":3,"net":"deliver","proto":"udp","id":1,"from":"10.0.0.2:5000","addr":"10.0.0.1:7","delay":2000000,"jitter":1500000}` + "\n" +
		`{"t":4,"net":"loss","proto":"udp","id":2,"from":"10.0.0.2:5000","addr":"10.0.0.1:7","err":"random loss"}` + "\n" +
		`{"t":5,"net":"send","proto":"tcp","id":3,"stream":1,"from":"[fd00::2]:4000","addr":"[fd00::1]:80","b64":"AAEC"}` + "\n" +
		`{"t":6,"net":"cut","proto":"tcp","id":3,"stream":1,"from":"[fd00::2]:4000","addr":"[fd00::1]:80"}` + "\n"))
	f.Add([]byte(impl +
		`{"t":0,"node":"n","in":"bound","sock":1,"addr":"0.0.0.0:7"}` + "\n" +
		`{"t":1,"node":"n","in":"datagram","sock":1,"addr":"10.0.0.2:5000","local":"10.0.0.1","text":"ping"}` + "\n" +
		`{"t":2,"node":"n","out":"send","sock":1,"addr":"10.0.0.2:5000","text":"ping"}` + "\n" +
		`{"t":3,"node":"n","in":"accepted","sock":2,"stream":2147483649,"addr":"10.0.0.3:6000"}` + "\n" +
		`{"t":4,"node":"n","in":"data","stream":2147483649,"text":"` + strings.Repeat("x", 3000) + `"}` + "\n" +
		`{"t":5,"node":"n","out":"write","stream":2147483649,"text":"y"}` + "\n" +
		`{"t":6,"node":"n","out":"close","stream":2147483649}` + "\n" +
		`{"t":7,"node":"n","out":"dial","stream":5,"addr":"[::1]:9"}` + "\n" +
		`{"t":8,"node":"n","in":"closed","stream":5,"err":"connection refused"}` + "\n" +
		`{"t":2,"node":"n","in":"datagram","sock":1,"addr":"10.0.0.2:5000","text":"a new run"}` + "\n"))
	f.Add([]byte(impl + `{"t":1,"node":"n","out":"send","sock":1,"addr":"10.0.0.2:5000","local":"::1","text":"mixed"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, recs, err := trace.ReadAll(bytes.NewReader(b))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		w, err := pcap.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		err = pcap.FromTrace(w, h, recs)
		if cerr := w.Close(); err != nil || cerr != nil {
			return
		}
		allowed, notes, maxPayload := 0, 0, 0
		for _, r := range recs {
			p, _ := r.Payload()
			allowed += 2 + (len(p)+pcap.SocketMSS-1)/pcap.SocketMSS
			maxPayload = max(maxPayload, len(p))
			notes += len(r.Err)
		}
		// A packet block with its comments, and IP and TCP headers, come
		// to well under 512 bytes besides the payload and the note.
		if limit := 4096 + allowed*(512+maxPayload) + notes; buf.Len() > limit {
			t.Fatalf("%d records (%d bytes) made a %d-byte capture, limit %d", len(recs), len(b), buf.Len(), limit)
		}
		frames := readFrames(t, buf.Bytes())
		if len(frames) != w.Packets() {
			t.Fatalf("the capture holds %d packets, the writer says %d", len(frames), w.Packets())
		}
		if len(frames) > allowed {
			t.Fatalf("%d records made %d packets, at most %d allowed", len(recs), len(frames), allowed)
		}
		for i, fr := range frames {
			if why := checkPacket(fr.Data); why != "" {
				t.Fatalf("packet %d: %s: % x", i, why, fr.Data)
			}
			if len(fr.Comments) == 0 || !strings.HasPrefix(fr.Comments[0], "netspec packet #") {
				t.Fatalf("packet %d has comments %q, not its number first", i, fr.Comments)
			}
			dropped := false
			for _, c := range fr.Comments {
				dropped = dropped || strings.HasPrefix(c, "dropped: ") || c == "cut by a partition"
			}
			switch {
			case fr.Intf == pcap.Delivered && dropped, fr.Intf == pcap.Dropped && !dropped, fr.Intf != pcap.Delivered && fr.Intf != pcap.Dropped:
				t.Fatalf("packet %d on interface %d with comments %q", i, fr.Intf, fr.Comments)
			}
		}
	})
}

// checkPacket says what is wrong with a captured packet, if anything: it
// must be IPv4 or IPv6 (raw IP) whose length fields agree with its size,
// carrying a TCP segment or a UDP datagram whose length agrees too.
func checkPacket(b []byte) string {
	if len(b) == 0 {
		return "empty"
	}
	var payload []byte
	var proto layers.IPProtocol
	switch b[0] >> 4 {
	case 4:
		var ip layers.IPv4
		if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			return "IPv4: " + err.Error()
		}
		if int(ip.Length) != len(b) || ip.IHL != 5 {
			return "IPv4 length fields disagree with the packet"
		}
		payload, proto = ip.Payload, ip.Protocol
	case 6:
		var ip layers.IPv6
		if err := ip.DecodeFromBytes(b, gopacket.NilDecodeFeedback); err != nil {
			return "IPv6: " + err.Error()
		}
		if int(ip.Length)+40 != len(b) {
			return "IPv6 length disagrees with the packet"
		}
		payload, proto = ip.Payload, ip.NextHeader
	default:
		return "neither IPv4 nor IPv6"
	}
	switch proto {
	case layers.IPProtocolUDP:
		if len(payload) < 8 || int(binary.BigEndian.Uint16(payload[4:])) != len(payload) {
			return "UDP length disagrees with the datagram"
		}
	case layers.IPProtocolTCP:
		var tcp layers.TCP
		if err := tcp.DecodeFromBytes(payload, gopacket.NilDecodeFeedback); err != nil {
			return "TCP: " + err.Error()
		}
	default:
		return "neither TCP nor UDP"
	}
	return ""
}
