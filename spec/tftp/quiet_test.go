package tftp_test

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/tftp"
)

// A client whose first answers were lost is still served: the server
// resends its OACK only once to a client that has not answered (a
// forged request draws two datagrams), but then waits out the whole
// Retries schedule quietly, answers a repeated request once per
// timeout, and takes a late ACK 0. Given up after one resend (3 s), a
// download whose OACK and ACK 0 were both lost met a closed port.
func TestUnansweredTransferWaitsQuietly(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	out := sends(b.request(client, rrq("a.bin", "blksize", "512")))
	if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpOACK {
		t.Fatalf("RRQ answered %v, want an OACK", out)
	}
	sock, timer := out[0].Sock, spec.Timer(out[0].Sock)
	if n := len(sends(b.advance(time.Second, timer))); n != 1 {
		t.Fatalf("first timeout: %d datagrams, want the OACK once more", n)
	}
	for i := range 3 {
		if out := sends(b.advance(2*time.Second, timer)); len(out) != 0 {
			t.Fatalf("timeout %d: %d more datagrams to a client that never answered", i+2, len(out))
		}
		if b.s.Transfers() != 1 {
			t.Fatalf("timeout %d: the transfer gave up before the Retries schedule ran out", i+2)
		}
	}
	// The client asks again: answered once, and not again until the
	// next timeout.
	if out := sends(b.request(client, rrq("a.bin", "blksize", "512"))); len(out) != 1 || out[0].Sock != sock || decode(t, out[0].Data).Op != tftp.OpOACK {
		t.Fatalf("a repeated request got %v, want the OACK from the transfer's port", out)
	}
	if out := sends(b.request(client, rrq("a.bin", "blksize", "512"))); len(out) != 0 {
		t.Fatalf("a second repeat within the timeout got %v, want nothing", out)
	}
	// Its ACK 0 comes late: the download goes on.
	out = sends(b.to(sock, client, ack(0)))
	if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpDATA {
		t.Fatalf("a late ACK 0 got %v, want DATA 1", out)
	}
}

// A transfer that has sent all an unanswered client may draw gives way:
// it no longer counts against MaxUnverified, and a new request that
// needs its place takes it.
func TestQuietTransfersMakeRoom(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{MaxUnverified: 1, MaxTransfers: 1})
	forged := netip.MustParseAddrPort("10.9.9.9:5555")
	out := sends(b.request(forged, rrq("a.bin")))
	if len(out) != 1 {
		t.Fatalf("forged request got %v", out)
	}
	b.advance(time.Second, spec.Timer(out[0].Sock)) // its one resend: now quiet
	out = sends(b.request(client, rrq("a.bin")))
	if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpDATA || b.s.Transfers() != 1 {
		t.Fatalf("a request beside a quiet transfer got %v (%d transfers), want DATA 1 and the quiet one gone", out, b.s.Transfers())
	}
}

// Out-of-order DATA on a write's port is its client answering: the
// transfer gets the full Retries, not FirstRetries. Its first two
// blocks lost, a write used to give up after one resend of its OACK.
func TestOutOfOrderDataVerifiesAWrite(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{AllowWrite: true})
	out := sends(b.request(client, tftp.Packet{Op: tftp.OpWRQ, Filename: "new.bin", Mode: "octet", Options: []tftp.Option{{Name: "windowsize", Value: "4"}}}))
	if len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpOACK {
		t.Fatalf("WRQ answered %v, want an OACK", out)
	}
	sock, timer := out[0].Sock, spec.Timer(out[0].Sock)
	b.to(sock, client, append(tftp.AppendData(nil, 3), make([]byte, 512)...))
	for i := range 5 {
		if out := sends(b.advance(8*time.Second, timer)); len(out) != 1 {
			t.Fatalf("timeout %d after out-of-order DATA: %d datagrams, want one resend", i+1, len(out))
		}
	}
}

// An upload's server dallies on from each resend of the last block and
// answers each: with the dally timed from the commit, a client whose
// resends had backed off, and whose re-ACK was lost, met a closed port.
func TestDallyRestartsOnEachResend(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{AllowWrite: true})
	out := sends(b.request(client, tftp.Packet{Op: tftp.OpWRQ, Filename: "new.bin", Mode: "octet"}))
	sock, timer := out[0].Sock, spec.Timer(out[0].Sock)
	last := append(tftp.AppendData(nil, 1), "end"...)
	b.to(sock, client, last)
	for i := range 4 {
		b.now = b.now.Add(8 * time.Second)
		out := sends(b.to(sock, client, last))
		if len(out) != 1 || !bytes.Equal(out[0].Data, ack(1)) {
			t.Fatalf("resend %d of the last block got %v, want ACK 1 again", i+1, out)
		}
		var at spec.Time
		for _, o := range b.out {
			if o.Kind == spec.OutSetTimer && o.Timer == timer {
				at = o.At
			}
		}
		if at <= b.now {
			t.Fatalf("resend %d did not move the dally on", i+1)
		}
	}
}

// A client's late first answer starts the retry count afresh: the
// timeouts spent waiting quietly for it once left DATA 1 a single resend,
// eight timeouts apart.
func TestLateAnswerGetsFullRetries(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	out := sends(b.request(client, rrq("a.bin", "blksize", "512")))
	sock, timer := out[0].Sock, spec.Timer(out[0].Sock)
	for range 4 {
		b.advance(time.Second, timer)
	}
	if out := sends(b.to(sock, client, ack(0))); len(out) != 1 || decode(t, out[0].Data).Op != tftp.OpDATA {
		t.Fatalf("a late ACK 0 got %v, want DATA 1", out)
	}
	var first spec.Time
	for _, o := range b.out {
		if o.Kind == spec.OutSetTimer && o.Timer == timer {
			first = o.At
		}
	}
	if first != b.now.Add(time.Second) {
		t.Fatalf("DATA 1's timer is %v after it, want one timeout", time.Duration(first-b.now))
	}
	for i := range 5 {
		if out := sends(b.advance(time.Second, timer)); len(out) != 1 {
			t.Fatalf("timeout %d after the late ACK 0: %d datagrams, want DATA 1 again", i+1, len(out))
		}
	}
}

// Another request from a quiet transfer's port is its client moving on:
// it gets the file it asked for, from a new transfer, never the old
// transfer's blocks (which it would save under the new name).
func TestQuietTransferYieldsToAnotherRequest(t *testing.T) {
	b := newBench(t, tftp.ServerConfig{})
	out := sends(b.request(client, rrq("a.bin")))
	oldSock := out[0].Sock
	b.advance(time.Second, spec.Timer(oldSock)) // its one resend: now quiet
	out = sends(b.request(client, rrq("d/x")))
	if len(out) != 1 || out[0].Sock == oldSock {
		t.Fatalf("a request for d/x from a.bin's quiet client got %v, want DATA 1 from a new transfer", out)
	}
	if p := decode(t, out[0].Data); p.Op != tftp.OpDATA || len(p.Data) != 512 || b.s.Transfers() != 1 {
		t.Fatalf("got %v (%d bytes), %d transfers; want d/x's 512-byte block 1 and the old transfer gone", p.Op, len(p.Data), b.s.Transfers())
	}
}
