package cs

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"net/netip"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/spectest"
)

var (
	fuzzServer = netip.MustParseAddrPort("10.0.0.1:52000")
	fuzzFile   = FileSpec{Seed: 7}
)

func peerAddr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 1, byte(i)}), 40000+uint16(i))
}

// fuzzData is the first size bytes of the file the fuzz targets serve.
func fuzzData(t *testing.T, size int) []byte {
	f := fuzzFile
	f.Size = int64(size)
	b, err := Generate(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// owed is what the server owes one client.
type owed struct {
	sent    int // bytes of the file written
	pending int // bytes written since the transport last took everything
}

// FuzzServer gives the server a hostile sequence of connections,
// writability, client bytes, half-closes, resets (also of connections
// not yet accepted, and of ones it has finished with) and stale inputs.
// It writes each client nothing but the file, from its first byte, in
// order: never more than the file, never a byte that is not the file's,
// never more than one piece ahead of the transport, nothing at all for
// what a client sends; it closes a connection exactly when the whole
// file is written, with a "served" event of the file's size; it refuses
// connections beyond MaxStreams, ignores connections reset before their
// accept, never touches a stream the runner no longer holds, and holds
// state only for downloads in progress and for resets of connections
// still to be accepted.
func FuzzServer(f *testing.F) {
	const accept, writable, data, fin, reset, early, stale = 0, 1, 2, 3, 4, 5, 6
	f.Add(spectest.Seq(accept, writable, 0, writable, 0, writable, 0, writable, 0), uint16(3000), uint16(1000), uint8(0))
	f.Add(spectest.Seq(accept, accept, data, 0, "CHEL 51000\r\n", fin, 1, writable, 1, writable, 0, reset, 0, writable, 1, writable, 1,
		reset, 1, stale, 0, 0, "x"), uint16(2500), uint16(1200), uint8(1))
	f.Add(spectest.Seq(early, accept, accept, writable, 1, early, early, accept, accept, writable, 0, writable, 0, fin, 0),
		uint16(100), uint16(60), uint8(2))
	f.Add(spectest.Seq(accept, accept, accept, writable, 0, writable, 0, accept, writable, 3, writable, 3), uint16(0), uint16(1), uint8(1))
	f.Add(spectest.Seq(accept, accept, accept, writable, 0, writable, 0, writable, 0, accept, writable, 1, writable, 3), uint16(30), uint16(9), uint8(1))
	f.Add(spectest.Seq(accept, data, 0, "\x00\xff", fin, 0, writable, 0, writable, 0, writable, 0, reset, 0, stale, 3, 1, stale, 4, 2),
		uint16(1), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, program []byte, size, piece uint16, maxStreams uint8) {
		file := fuzzData(t, int(size%5000))
		cfg := ServerConfig{Addr: fuzzServer, Piece: 1 + int(piece%1500), MaxStreams: 1 + int(maxStreams%3)}
		s := NewServer(cfg, file)
		r := spectest.NewRig(t, s)
		r.Step(spec.Input{Kind: spec.InStart})
		r.AnswerBinds()
		if r.Bound[sockListen] != spec.TCP || r.Exited {
			t.Fatalf("the server did not listen: bound %v, exited %v %q", r.Bound, r.Exited, r.Exit)
		}
		held := map[spec.Stream]*owed{}
		// finished: downloads written and closed whose clients have not
		// closed yet; they keep their places.
		finished := map[spec.Stream]bool{}
		dead := map[spec.Stream]bool{} // reset before their accept
		var ids []spec.Stream
		accepted := 0
		var served uint64
		// wrote checks what the last step wrote on id: the next bytes of
		// the file, at most a piece ahead of the transport, then a close
		// exactly when the file is all written.
		wrote := func(id spec.Stream, what string) {
			t.Helper()
			d := held[id]
			w := r.Writes[id]
			if d.sent+len(w) > len(file) || !bytes.Equal(w, file[d.sent:d.sent+len(w)]) {
				t.Fatalf("%s: wrote %d bytes at offset %d that are not the %d-byte file's", what, len(w), d.sent, len(file))
			}
			d.sent += len(w)
			d.pending += len(w)
			if d.pending > cfg.Piece {
				t.Fatalf("%s: %d bytes written ahead of the transport, the piece is %d", what, d.pending, cfg.Piece)
			}
			var servedNow []Served
			for _, ev := range r.Events {
				if ev.Name == "served" {
					servedNow = append(servedNow, ev.Value.(Served))
				}
			}
			if r.Closes[id] {
				if d.sent != len(file) || len(servedNow) != 1 || servedNow[0].Bytes != int64(len(file)) {
					t.Fatalf("%s: closed after %d of %d bytes, served %v", what, d.sent, len(file), servedNow)
				}
				served++
				delete(held, id)
				finished[id] = true
			} else if len(w) == 0 || len(servedNow) > 0 {
				t.Fatalf("%s: neither wrote nor closed (served %v), %d of %d bytes written", what, servedNow, d.sent, len(file))
			}
		}
		p := spectest.Prog(program)
		for len(p) > 0 && !r.Exited {
			r.Now = r.Now.Add(time.Millisecond)
			switch op := p.Byte() % 7; op {
			case accept:
				accepted++
				id := spec.AcceptedStream | spec.Stream(accepted)
				ids = append(ids, id)
				if dead[id] {
					// The runner reported it reset before its accept.
					delete(dead, id)
					r.Step(spec.Input{Kind: spec.InAccepted, Sock: sockListen, Stream: id, Addr: peerAddr(accepted)})
					r.Only("the accept of a connection already reset")
					break
				}
				full := len(held)+len(finished) >= cfg.MaxStreams
				r.Accept(sockListen, accepted, peerAddr(accepted), full)
				if !full {
					held[id] = &owed{}
					wrote(id, "accept")
				}
			case writable:
				id := p.Stream(ids)
				if r.Streams[id] == nil {
					continue
				}
				r.Step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				if held[id] == nil {
					r.Only("writable after the download")
					continue
				}
				held[id].pending = 0
				wrote(id, "writable")
			case data:
				id := p.Stream(ids)
				st := r.Streams[id]
				d := p.Chunk(64)
				if st == nil || st.EOF {
					continue
				}
				r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: d})
				r.Only("bytes from a client")
			case fin: // the client half-closes: it still gets the file
				id := p.Stream(ids)
				st := r.Streams[id]
				if st == nil || st.EOF {
					continue
				}
				st.EOF = true
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				r.Only("a half-close")
				delete(finished, id) // its place is free now
			case reset: // also of a connection the server has finished with
				id := p.Stream(ids)
				if r.Streams[id] == nil {
					continue
				}
				delete(r.Streams, id)
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.Only("a reset")
				delete(held, id)
				delete(finished, id)
			case early: // the next connection is reset before its accept
				id := spec.AcceptedStream | spec.Stream(accepted+1)
				if dead[id] {
					continue
				}
				dead[id] = true
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id, Err: "connection reset by peer"})
				r.Only("a reset before the accept")
			case stale: // input on a stream the runner does not hold
				id := spec.AcceptedStream | spec.Stream(int(p.Byte())%(accepted+1)+1)
				if r.Streams[id] != nil || dead[id] || int(id&^spec.AcceptedStream) > accepted {
					continue
				}
				switch p.Byte() % 3 {
				case 0:
					r.Step(spec.Input{Kind: spec.InStreamData, Stream: id, Data: p.Chunk(16)})
				case 1:
					r.Step(spec.Input{Kind: spec.InStreamWritable, Stream: id})
				default:
					r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: id})
				}
				r.Only("stale input")
			}
			// The server holds exactly the downloads in progress and
			// those finished whose clients are still there, and
			// remembers only resets of connections still to be accepted.
			if len(s.streams) != len(held)+len(finished) {
				t.Fatalf("the server holds %d downloads, %d are in progress and %d finished", len(s.streams), len(held), len(finished))
			}
			for id := range finished {
				if s.streams[id] == nil {
					t.Fatalf("the server forgot the finished download on %#x while its client is there", uint64(id))
				}
			}
			for id := range held {
				if s.streams[id] == nil {
					t.Fatalf("the server forgot the download on %#x", uint64(id))
				}
			}
			for id := range s.dead {
				if !dead[id] {
					t.Fatalf("the server remembers a reset of %#x, which is not a connection still to be accepted", uint64(id))
				}
			}
		}
		if c := s.Counters(); c[1].Value != served {
			t.Fatalf("counters %v, %d downloads served", c, served)
		}
		r.Step(spec.Input{Kind: spec.InStop})
		if !r.Exited || r.Exit != "" {
			t.Fatalf("stop: exited %v %q", r.Exited, r.Exit)
		}
		r.CheckFrozen()
	})
}

// FuzzClient gives the client a hostile download: a connection that
// succeeds or fails, the file's bytes or others in any pieces, an EOF or a
// reset at any point, silences, timers, a stop. It reports exactly the
// bytes that arrived ("data" events, the kept "file", the byte count and
// MD5 of "done"), says the download matches exactly when they are the
// expected file, reports "done" only at EOF, keeps no more than MaxSize,
// always has a timer set while it waits (so a silent server cannot hang
// it), exits exactly once, and exits cleanly only with the exact file.
func FuzzClient(f *testing.F) {
	const connect, good, bad, fin, reset, timer, wait, stop = 0, 1, 2, 3, 4, 5, 6, 7
	f.Add(spectest.Seq(connect, good, 255, good, 255, good, 255, good, 235, fin), uint16(1000), true, uint16(0), uint8(100), false)
	f.Add(spectest.Seq(connect, good, 16, bad, "junk", good, 16, fin, timer), uint16(40), true, uint16(0), uint8(0), true)
	f.Add(spectest.Seq(connect, good, 48, wait, 50, good, 1, timer, wait, 250, timer, timer), uint16(200), false, uint16(0), uint8(7), false)
	f.Add(spectest.Seq(connect, good, 255, good, 255, fin), uint16(1000), true, uint16(300), uint8(0), false)
	f.Add(spectest.Seq(reset), uint16(10), false, uint16(0), uint8(0), false)
	f.Add(spectest.Seq(connect, good, 5, reset, stop), uint16(10), true, uint16(0), uint8(1), true)
	f.Add(spectest.Seq(connect, fin, timer, reset, timer), uint16(0), true, uint16(0), uint8(0), true)
	f.Add(spectest.Seq(connect, good, 10, good, 10, bad, "extra", fin), uint16(20), true, uint16(0), uint8(3), false)
	f.Add(spectest.Seq(connect, good, 10, fin, stop), uint16(10), false, uint16(0), uint8(0), true)
	f.Add(spectest.Seq(stop), uint16(10), false, uint16(0), uint8(0), false)
	// A short stream that ends with a clean FIN: every byte right, the
	// last ones missing. No match.
	f.Add(spectest.Seq(connect, good, 10, fin), uint16(20), false, uint16(0), uint8(0), false)
	f.Add(spectest.Seq(connect, fin), uint16(20), true, uint16(0), uint8(0), true)
	f.Fuzz(func(t *testing.T, program []byte, size uint16, keep bool, maxSize uint16, progress uint8, linger bool) {
		want := fuzzData(t, int(size%3000))
		expect := fuzzFile
		expect.Size = int64(len(want))
		cfg := ClientConfig{Server: fuzzServer, Keep: keep, Expect: &expect, Idle: time.Second, ProgressEvery: int64(progress % 64), Emit: true}
		if keep && maxSize > 0 {
			cfg.MaxSize = int64(maxSize % 4000)
		}
		if linger {
			cfg.Linger = 50 * time.Millisecond
		}
		c := NewClient(cfg, want)
		r := spectest.NewRig(t, c)
		var got, emitted []byte
		var connected, eof, done, failed bool
		var last int64 // the last "progress" value
		checkEvents := func(what string) {
			t.Helper()
			for _, ev := range r.Events {
				switch ev.Name {
				case "connected":
				case "data":
					emitted = append(emitted, ev.Data...)
				case "progress":
					v := ev.Value.(int64)
					if v <= last || v != int64(len(got)) {
						t.Fatalf("%s: progress %d after %d, %d bytes received", what, v, last, len(got))
					}
					last = v
				case "file":
					if !keep || !bytes.Equal(ev.Data, got) {
						t.Fatalf("%s: a %d-byte file event (keep %v), %d bytes received", what, len(ev.Data), keep, len(got))
					}
				case "done":
					d := ev.Value.(Done)
					sum := md5.Sum(got)
					match := bytes.Equal(got, want)
					if !eof || done || d.Bytes != int64(len(got)) || d.MD5 != hex.EncodeToString(sum[:]) || d.Match == nil || *d.Match != match {
						t.Fatalf("%s: done %+v (match %v) after %d bytes, eof %v, done before %v", what, d, d.Match != nil && *d.Match, len(got), eof, done)
					}
					done = true
					failed = !match
				default:
					t.Fatalf("%s: unexpected event %q", what, ev.Name)
				}
			}
			if !bytes.Equal(emitted, got) {
				t.Fatalf("%s: %d bytes received, %d reported as data", what, len(got), len(emitted))
			}
			if r.ExitNow && r.Exit == "" && (!done || failed) {
				t.Fatalf("%s: a clean exit, done %v, the file differs %v", what, done, failed)
			}
			if !r.Exited && !done {
				if _, ok := r.Timers[idleTimer]; !ok {
					t.Fatalf("%s: waiting for the file with no timer set", what)
				}
			}
		}
		r.Step(spec.Input{Kind: spec.InStart})
		if len(r.Dials) != 1 || r.Dials[0].Addr != fuzzServer || r.Dials[0].Stream != stream {
			t.Fatalf("start dialled %v", r.Dials)
		}
		checkEvents("start")
		p := spectest.Prog(program)
		for len(p) > 0 && !r.Exited {
			r.Now = r.Now.Add(time.Millisecond)
			r.Clear()
			st := r.Streams[stream]
			switch op := p.Byte() % 8; op {
			case connect:
				if st == nil || connected {
					continue
				}
				connected = true
				r.Step(spec.Input{Kind: spec.InConnected, Stream: stream, Addr: fuzzServer})
			case good, bad:
				var d []byte
				if op == good { // the next bytes of the file, as many as the next byte says
					n := int(p.Byte())
					d = want[min(len(got), len(want)):min(len(got)+n, len(want))]
				} else {
					d = p.Chunk(255)
				}
				if st == nil || !connected || eof {
					continue
				}
				too := keep && int64(len(got)+len(d)) > c.cfg.MaxSize
				r.Step(spec.Input{Kind: spec.InStreamData, Stream: stream, Data: d})
				if too != r.Aborts[stream] || too != (r.ExitNow && r.Exit != "") {
					t.Fatalf("%d bytes past %d received, MaxSize %d (keep %v): abort %v, exit %q", len(d), len(got), c.cfg.MaxSize, keep, r.Aborts[stream], r.Exit)
				}
				if !too {
					got = append(got, d...)
				}
			case fin:
				if st == nil || !connected || eof {
					continue
				}
				eof = true
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: stream})
				if !r.Closes[stream] {
					t.Fatalf("EOF did not close the client's side")
				}
				if match := bytes.Equal(got, want); !match != (r.ExitNow && r.Exit != "") || !linger && match && !r.ExitNow {
					t.Fatalf("EOF after %d bytes (match %v, linger %v): exit %v %q", len(got), match, linger, r.ExitNow, r.Exit)
				}
			case reset:
				if st == nil {
					continue
				}
				delete(r.Streams, stream)
				r.Step(spec.Input{Kind: spec.InStreamClosed, Stream: stream, Err: "connection reset by peer"})
				if !done && (!r.ExitNow || r.Exit == "") {
					t.Fatalf("a reset during the download: exit %v %q", r.ExitNow, r.Exit)
				}
			case timer:
				r.Fire()
			case wait:
				r.Now = r.Now.Add(time.Duration(p.Byte()) * 10 * time.Millisecond)
			case stop:
				r.Step(spec.Input{Kind: spec.InStop})
				if !r.Exited || (r.Exit == "") != done {
					t.Fatalf("stop, done %v: exited %v %q", done, r.Exited, r.Exit)
				}
			}
			checkEvents("step")
		}
		// Silence: the client gives up, or lingers and leaves.
		for i := 0; i < 10 && !r.Exited && r.Fire(); i++ {
			checkEvents("timer")
		}
		if !r.Exited {
			t.Fatalf("the client never exited; timers %v", r.Timers)
		}
		r.CheckFrozen()
	})
}
