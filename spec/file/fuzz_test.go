package file

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
	"github.com/netspec/netspec/spec/spectest"
)

// fuzzFiles is the root of FuzzServer's server and FuzzClient's requests.
var fuzzFiles = []SynthFile{{Name: "a.bin", Size: 2500, Seed: 1}, {Name: "d/b.bin", Size: 10, Seed: 2}, {Name: "empty", Size: 0, Seed: 3}}

// frames concatenates frames for seeds: each part is a type byte
// followed by body parts.
func frames(parts ...[]any) []byte {
	var b []byte
	for _, p := range parts {
		var body [][]byte
		for _, x := range p[1:] {
			switch x := x.(type) {
			case string:
				body = append(body, []byte(x))
			case []byte:
				body = append(body, x)
			}
		}
		b = appendFrame(b, p[0].(byte), body...)
	}
	return b
}

// FuzzServer sends a server any request stream over an established
// session, from a client that reads and acknowledges its answers or
// from one that never does. Whatever it is sent, the server never
// panics; its answers parse as a server's frames, each DATA the file's
// own bytes and each END its SHA-256; it answers no more requests than
// it was sent (one more REPLY for a protocol error), and all of them
// if the client reads them and breaks no rule; it never holds
// more than SendBuffer and one answer unacknowledged, nor more than
// MaxQueued requests; and no step sends more than that.
func FuzzServer(f *testing.F) {
	a := make([]byte, 2500)
	SynthBytes(1, 0, a)
	prefix := sha256.Sum256(a[:1000])
	get := func(off uint64, prefix []byte, name string) []any {
		return []any{FrameGet, u64(off), prefix, name}
	}
	zero := make([]byte, 32)
	for _, seed := range [][]byte{
		frames([]any{FrameCmd, "help"}, []any{FrameCmd, "ls"}, get(0, zero, "a.bin"), []any{FrameCmd, "time"}, []any{FrameSay, "hi"}, []any{FrameCmd, "ls d"}),
		frames(get(1<<63, zero, "a.bin"), get(1000, prefix[:], "a.bin"), get(1000, zero, "a.bin"), get(0, zero, "../x"), get(0, zero, "nope"), get(10, zero, "d/b.bin")),
		frames([]any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}, []any{FrameCmd, "ls"}),
		frames(get(0, zero, "a.bin"), get(0, zero, "empty"), get(0, zero, "d/b.bin"), []any{FrameCmd, "chat"}, []any{FrameCmd, "exitchat"}, []any{FrameCmd, "bogus"}),
		frames([]any{FrameData, "x"}),
		{0x99, 0, 0, 0, 0},
		{FrameCmd, 0xff, 0xff, 0xff, 0xff},
		frames(get(0, zero, "a.bin"))[:20],
	} {
		f.Add(seed, true)
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, stream []byte, ack bool) {
		cfg := ServerConfig{Files: fuzzFiles, Chunk: 1000, SendBuffer: 4000, MaxQueued: 4, HashStep: 700}
		cfg.Addr, cfg.Session.Seed = rigServer, 1
		s := NewServer(cfg, nil)
		r := newSessionRig(t, s, rigServer, rudp.NewEndpoint(rudp.Config{Seed: 2}, sockUDP, sessionTimers, false), rigClient)
		r.dropData = !ack
		limit := cfg.SendBuffer + FrameHeaderLen + MaxControl
		r.afterStep = func(sent int) {
			for id, ss := range s.sessions {
				if b := s.ep.Buffered(id); b > limit {
					t.Fatalf("the session holds %d bytes unacknowledged, limit %d", b, limit)
				}
				if len(ss.queue) > cfg.MaxQueued {
					t.Fatalf("%d requests queued, MaxQueued %d", len(ss.queue), cfg.MaxQueued)
				}
			}
			if sent > 2*limit {
				t.Fatalf("one step sent %d bytes", sent)
			}
		}
		r.start()
		r.dial()
		r.write(stream)
		r.run(3 * time.Second)

		// What the client asked for, as the server parses it.
		asked := &recorder{}
		perr := (&parser{accept: clientSends}).feed(stream, asked)
		requests := 0
		for _, fr := range asked.frames {
			if fr[0] != FrameSay {
				requests++
			}
		}
		if perr != nil {
			requests++ // the REPLY saying why the session ends
		}
		ans := newAnswers(fuzzFiles)
		if err := (&parser{accept: serverSends}).feed(r.stream, ans); err != nil {
			t.Fatalf("the server's answers do not parse: %v", err)
		}
		if ans.answered() > requests {
			t.Fatalf("%d answers to %d requests", ans.answered(), requests)
		}
		if ack && s.c.badFrames == 0 && ans.answered() != requests {
			t.Fatalf("%d answers to %d requests from a client that reads them", ans.answered(), requests)
		}
	})
}

// FuzzClient gives a client that asked for a file, the help and a
// missing file any answer stream from its server. Whatever it gets, the
// client never panics; it reports data only between a file-start and
// that file's end, never past the size it announced; it reports
// file-done only for bytes whose SHA-256 it gives, all of them; and it
// answers no request twice.
func FuzzClient(f *testing.F) {
	hello := []byte("hello")
	sum := sha256.Sum256(hello)
	ok := []byte{StatusOK}
	bad := []byte{StatusError}
	for _, seed := range [][]byte{
		frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, hello}, []any{FrameEnd, sum[:]}, []any{FrameReply, ok, "help"}, []any{FrameReply, bad, "no such file"}),
		frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, "hellx"}, []any{FrameEnd, sum[:]}),
		frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, "hello!"}),
		frames([]any{FrameData, "x"}, []any{FrameFile, u64(5), u64(9), "a.bin"}),
		frames([]any{FrameChat, "hi"}, []any{FrameReply}, []any{FrameFile, u64(1 << 63), u64(0), "a.bin"}),
		frames([]any{FrameReply, bad, "refused"}, []any{FrameReply, ok, "help"}, []any{FrameReply, ok, "extra"}),
		{0x99, 0, 0, 0, 0},
		{FrameData, 0xff, 0xff, 0xff, 0xff},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := NewClient(ClientConfig{Server: rigServer, Session: rudp.Config{Seed: 2}})
		r := newSessionRig(t, c, rigClient, rudp.NewEndpoint(rudp.Config{Seed: 1}, sockUDP, sessionTimers, true), rigServer)
		r.onOpen = func() { _ = r.ep.Write(r.conn, stream) }
		r.start()
		const commands = 3
		r.stepM(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"a.bin"}}})
		r.stepM(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "help"}})
		r.stepM(spec.Input{Kind: spec.InCommand, Cmd: spec.Command{Name: "get", Args: []string{"nope"}}})
		r.run(3 * time.Second)

		var (
			in      bool // between file-start and its end
			size    int64
			got     []byte
			answers int
		)
		for _, ev := range r.events {
			switch ev.Name {
			case "file-start":
				if in {
					t.Fatal("file-start inside a transfer")
				}
				fs := ev.Value.(FileStart)
				in, size, got = true, fs.Size-fs.Offset, nil
			case "data":
				if !in {
					t.Fatal("data outside a transfer")
				}
				got = append(got, ev.Data...)
				if int64(len(got)) > size {
					t.Fatalf("%d bytes of data, %d announced", len(got), size)
				}
			case "file-done":
				d := ev.Value.(FileDone)
				sum := sha256.Sum256(got)
				if !in || int64(len(got)) != size || d.SHA256 != hex.EncodeToString(sum[:]) {
					t.Fatalf("file-done for %d of %d bytes, SHA-256 %s of %x", len(got), size, d.SHA256, sum)
				}
				in = false
				answers++
			case "file-error":
				in = false
				answers++
			case "reply":
				answers++
			}
		}
		if answers > commands {
			t.Fatalf("%d answers to %d requests", answers, commands)
		}
	})
}

// FuzzDescribe: Describe takes any datagram (a trace may hold anything)
// and gives one line (spec.Protocol.Describe): rudp's summary (at most
// 512 bytes) and the frames a segment's payload starts with, which it
// stops listing at 200 bytes, so at most 800 bytes in all; the same
// every time, with the datagram left as it was, and starting with
// rudp's summary of it.
func FuzzDescribe(f *testing.F) {
	seg := func(payload []byte) []byte {
		return (&rudp.Packet{Type: rudp.TypeSEG, Dst: 1, Seq: 3, Ack: 2, Wnd: 64, Flags: rudp.FlagDATA, Payload: payload}).Append(nil)
	}
	sum := sha256.Sum256([]byte("x"))
	f.Add(seg(frames([]any{FrameGet, u64(0), sum[:], "a.bin"})))
	f.Add(seg(frames([]any{FrameCmd, "ls"}, []any{FrameSay, "hi"}, []any{FrameCmd, "get a.bin"})))
	f.Add(seg(frames([]any{FrameFile, u64(2500), u64(0), "a.bin"}, []any{FrameData, make([]byte, 100)}, []any{FrameEnd, sum[:]})))
	f.Add(seg(frames([]any{FrameReply, []byte{StatusError}, "no such file"})[:9]))
	f.Add(seg(append(frames([]any{FrameChat, "x"}), 0x83, 0xff, 0xff, 0xff, 0xff)))
	f.Add(seg(bytes.Repeat(frames([]any{FrameCmd}), 100)))
	f.Add((&rudp.Packet{Type: rudp.TypeSYN, Src: 9, MSS: 1452, Wnd: 64}).Append(nil))
	f.Add([]byte("not rudp at all"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d := spectest.CheckDescribe(t, Describe, b, 800)
		if r := rudp.Describe(b); !strings.HasPrefix(d, r) {
			t.Fatalf("Describe(% x) = %q does not start with rudp's %q", b, d, r)
		}
	})
}
