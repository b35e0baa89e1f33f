package p2p

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

// A seed-style client that pipelines its requests acknowledges nothing
// by asking again (it has asked everything already): without an upload
// rate, the server counts the answers its transport has taken as
// acknowledged, so every InStreamWritable lets the next Window answers
// out. It used to send Window of them per AckTimeout (8 chunks every
// 500 ms, 2 Mbit/s whatever the link). Asking for every chunk of a file
// of more than 256 at once is fine too (MaxPending follows the chunk
// count; it used to cut such a client off).
func TestPipelinedSeedClientIsNotHeldToAckTimeout(t *testing.T) {
	data := bytes.Repeat([]byte{7}, 300*1024)
	srv, err := NewServerOf(ServerConfig{Addr: netip.MustParseAddrPort("127.0.0.1:52000"), ChunkSize: 1024}, data)
	if err != nil {
		t.Fatal(err)
	}
	r := spectest.NewRig(t, srv)
	r.Step(spec.Input{Kind: spec.InStart})
	r.AnswerBinds()
	st := r.Accept(1, 1, netip.MustParseAddrPort("127.0.0.1:40000"), false)
	var reqs bytes.Buffer
	reqs.WriteString("CHEL 5000\r\n")
	for i := range 300 {
		reqs.WriteString("DREQ " + strconv.Itoa(i) + "\r\n")
	}
	r.Step(spec.Input{Kind: spec.InStreamData, Stream: st, Data: reqs.Bytes()})
	datas := func() int { return bytes.Count(r.Streams[st].Written, []byte("DATA ")) }
	first := datas()
	if first == 0 || first >= 300 {
		t.Fatalf("%d answers at once, want a window of them; wrote %q", first, r.Streams[st].Written[:min(200, len(r.Streams[st].Written))])
	}
	// The transport takes what was written, again and again, within
	// the same instant: no AckTimeout passes.
	for range 300 {
		if datas() == 300 {
			break
		}
		r.Step(spec.Input{Kind: spec.InStreamWritable, Stream: st})
	}
	if n := datas(); n != 300 {
		t.Fatalf("%d of 300 pipelined requests answered without an acknowledgment timing out", n)
	}
}
