package file

import (
	"crypto/sha256"
	"encoding"
	"strings"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/rudp"
)

// clientAnswered runs a client that issues cmd against a test server
// that answers with stream, and returns the client and the events it
// emitted.
func clientAnswered(t *testing.T, cmd spec.Command, stream []byte) (*Client, []spec.Event) {
	t.Helper()
	c := NewClient(ClientConfig{Server: rigServer, Session: rudp.Config{Seed: 2}})
	r := newSessionRig(t, c, rigClient, rudp.NewEndpoint(rudp.Config{Seed: 1}, sockUDP, sessionTimers, true), rigServer)
	r.onOpen = func() { _ = r.ep.Write(r.conn, stream) }
	r.start()
	r.stepM(spec.Input{Kind: spec.InCommand, Cmd: cmd})
	r.run(3 * time.Second)
	return c, r.events
}

// resumeState is the "get" command's Data for a client that holds b.
func resumeState(t *testing.T, b []byte) []byte {
	t.Helper()
	h := sha256.New()
	h.Write(b)
	st, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// A client reports file-done only when the bytes it holds (the resumed
// prefix included) hash to the END the server sent (doc.go: "anything
// else is file-error and nothing it received may be kept"): a DATA byte
// altered on the way, a wrong END digest, or a prefix that is not the
// file's all end in a file-error marked Corrupt, and no file-done.
func TestClientRejectsBytesThatMissTheDigest(t *testing.T) {
	hello := []byte("hello")
	sum := sha256.Sum256(hello)
	other := sha256.Sum256([]byte("hellx"))
	get := spec.Command{Name: "get", Args: []string{"a.bin"}}
	resume := spec.Command{Name: "get", Args: []string{"a.bin", "3"}}
	tests := []struct {
		name    string
		cmd     spec.Command
		held    []byte // the prefix a resumed GET holds
		stream  []byte
		corrupt bool
	}{
		{"intact", get, nil, frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, hello}, []any{FrameEnd, sum[:]}), false},
		{"a DATA byte altered", get, nil, frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, "hexlo"}, []any{FrameEnd, sum[:]}), true},
		{"a wrong END digest", get, nil, frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, hello}, []any{FrameEnd, other[:]}), true},
		{"resumed intact", resume, []byte("hel"), frames([]any{FrameFile, u64(5), u64(3), "a.bin"}, []any{FrameData, "lo"}, []any{FrameEnd, sum[:]}), false},
		{"resumed on a prefix that is not the file's", resume, []byte("HEL"), frames([]any{FrameFile, u64(5), u64(3), "a.bin"}, []any{FrameData, "lo"}, []any{FrameEnd, sum[:]}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := tc.cmd
			if tc.held != nil {
				cmd.Data = resumeState(t, tc.held)
			}
			c, events := clientAnswered(t, cmd, tc.stream)
			var done, failed []spec.Event
			for _, ev := range events {
				switch ev.Name {
				case "file-done":
					done = append(done, ev)
				case "file-error":
					failed = append(failed, ev)
				}
			}
			if !tc.corrupt {
				if len(done) != 1 || len(failed) != 0 || c.c.files != 1 {
					t.Fatalf("file-done %v, file-error %v, files_received %d; want one file-done", done, failed, c.c.files)
				}
				return
			}
			if len(done) != 0 {
				t.Fatalf("file-done %+v for bytes that do not hash to the server's END", done[0].Value)
			}
			if len(failed) != 1 {
				t.Fatalf("file-error %v; want exactly one", failed)
			}
			if fe, ok := failed[0].Value.(FileError); !ok || !fe.Corrupt || fe.Name != "a.bin" {
				t.Fatalf("file-error %#v (%q); want a.bin marked Corrupt", failed[0].Value, failed[0].Text)
			}
			if c.c.files != 0 || c.c.failed != 1 {
				t.Fatalf("files_received %d, files_failed %d; want 0 and 1", c.c.files, c.c.failed)
			}
		})
	}
}

// A FILE whose offset is neither 0 nor the one the GET asked for is a
// protocol error (doc.go): the client resets the session as for any
// malformed frame, announces no transfer and reports the GET failed.
// So is a DATA frame past the size FILE announced, counted from the
// offset it starts at: none of its bytes reaches the application.
func TestClientRejectsFileAtAnotherOffset(t *testing.T) {
	get := spec.Command{Name: "get", Args: []string{"a.bin"}}
	resume := spec.Command{Name: "get", Args: []string{"a.bin", "2"}, Data: resumeState(t, []byte("he"))}
	tests := []struct {
		name    string
		cmd     spec.Command
		file    []byte
		started bool // the FILE is right: file-start, then the bad DATA
	}{
		{"an offset the GET did not ask for", get, frames([]any{FrameFile, u64(5), u64(3), "a.bin"}), false},
		{"an offset past the one asked", resume, frames([]any{FrameFile, u64(5), u64(3), "a.bin"}), false},
		{"an offset before the one asked", resume, frames([]any{FrameFile, u64(5), u64(1), "a.bin"}), false},
		{"DATA past the size", get, frames([]any{FrameFile, u64(5), u64(0), "a.bin"}, []any{FrameData, "hello!"}), true},
		{"DATA past the size, resumed", resume, frames([]any{FrameFile, u64(5), u64(2), "a.bin"}, []any{FrameData, "llo!"}), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, events := clientAnswered(t, tc.cmd, tc.file)
			var closed string
			failed := 0
			for _, ev := range events {
				switch ev.Name {
				case "file-start":
					if !tc.started {
						t.Fatalf("%s %v after a FILE at the wrong offset", ev.Name, ev.Value)
					}
				case "data", "file-done":
					t.Fatalf("%s %v after a FILE at the wrong offset or DATA past its size", ev.Name, ev.Value)
				case "file-error":
					failed++
				case "closed":
					closed = ev.Text
				}
			}
			if c.c.badFrames != 1 || !strings.Contains(closed, ErrFrame.Error()) {
				t.Fatalf("malformed_frames %d, closed %q; want the FILE taken as a malformed frame (%q)", c.c.badFrames, closed, ErrFrame)
			}
			if failed != 1 {
				t.Fatalf("%d file-errors; want the GET reported failed once", failed)
			}
		})
	}
}
