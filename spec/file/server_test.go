package file

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/netspec/netspec/spec/rudp"
)

// rigToServer is a rig whose machine is a server of files (nil fsys:
// the synthetic root) and whose endpoint is a client, already dialled.
func rigToServer(t *testing.T, cfg ServerConfig, fsys fs.FS) (*sessionRig, *Server) {
	t.Helper()
	cfg.Addr, cfg.Session.Seed = rigServer, 1
	s := NewServer(cfg, fsys)
	r := newSessionRig(t, s, rigServer, rudp.NewEndpoint(rudp.Config{Seed: 2}, sockUDP, sessionTimers, false), rigClient)
	r.start()
	r.dial()
	return r, s
}

// A client that pipelines small requests for large answers and never
// acknowledges them cannot make the server buffer more than SendBuffer
// (plus one answer) for it: 2,000 "ls" (14 KB) against a root of 3,000
// files once made one session hold 124 MB. Requests wait their turn,
// MaxQueued of them, and one more is a protocol error.
func TestRepliesBoundedBySendBuffer(t *testing.T) {
	var files []SynthFile
	for i := range 3000 {
		files = append(files, SynthFile{Name: fmt.Sprintf("some-rather-long-file-name-number-%05d.bin", i), Size: 1})
	}
	r, s := rigToServer(t, ServerConfig{Files: files}, nil)
	r.dropData = true
	limit := s.cfg.SendBuffer + FrameHeaderLen + MaxControl
	peak := 0
	r.afterStep = func(int) {
		for id, ss := range s.sessions {
			b := s.ep.Buffered(id)
			peak = max(peak, b)
			if b > limit {
				t.Fatalf("the session holds %d bytes of answers, more than SendBuffer and one answer (%d)", b, limit)
			}
			if len(ss.queue) > s.cfg.MaxQueued {
				t.Fatalf("%d requests queued, MaxQueued is %d", len(ss.queue), s.cfg.MaxQueued)
			}
		}
	}
	for range 2000 {
		r.write(appendFrame(nil, FrameCmd, []byte("ls")))
	}
	r.run(5 * time.Second)
	if peak < s.cfg.SendBuffer {
		t.Fatalf("the session never filled its SendBuffer (peak %d): the test did not load the server", peak)
	}
	if s.c.badFrames != 1 {
		t.Errorf("%d protocol errors, want 1 (the request past MaxQueued)", s.c.badFrames)
	}
}

// A GET from a client that acknowledges none of the file holds two DATA
// frames in its session, not SendBuffer: 1,024 such sessions held a
// server at about 1.1 GB. A client that does acknowledge gets the whole
// SendBuffer. A frame is queued only if it fits the budget, so the FILE
// frame and the DATA never hold more than two frames' worth, nor, later,
// more than SendBuffer.
func TestGetBudgetGrowsWithAcknowledgments(t *testing.T) {
	files := []SynthFile{{Name: "big.bin", Size: 8 << 20, Seed: 1}}
	for _, ack := range []bool{false, true} {
		r, s := rigToServer(t, ServerConfig{Files: files}, nil)
		r.dropData = !ack
		limit := 2 * (FrameHeaderLen + s.cfg.Chunk)
		peak := 0
		r.afterStep = func(int) {
			for id := range s.sessions {
				peak = max(peak, s.ep.Buffered(id))
			}
		}
		r.write(appendFrame(nil, FrameGet, u64(0), make([]byte, 32), []byte("big.bin")))
		r.run(5 * time.Second)
		switch {
		case !ack && (peak > limit || peak < s.cfg.Chunk):
			t.Errorf("never acknowledged: the session held up to %d bytes, want one or two DATA frames (at most %d)", peak, limit)
		case ack && (peak > s.cfg.SendBuffer || peak < s.cfg.SendBuffer-FrameHeaderLen-s.cfg.Chunk):
			t.Errorf("acknowledged: the session held at most %d bytes, want its SendBuffer (%d) filled, not exceeded", peak, s.cfg.SendBuffer)
		}
	}
}

// Requests pipelined by a client that reads its answers are all
// answered, in order, even when their answers fill SendBuffer many
// times over and have to wait for acknowledgements.
func TestPipelinedRequestsAnsweredInOrder(t *testing.T) {
	var files []SynthFile
	for i := range 3000 {
		files = append(files, SynthFile{Name: fmt.Sprintf("some-rather-long-file-name-number-%05d.bin", i), Size: 1})
	}
	r, s := rigToServer(t, ServerConfig{Files: files}, nil)
	const n = 32 // more than SendBuffer holds (16 listings), fewer than it and MaxQueued together
	var reqs []byte
	for i := range n {
		reqs = appendFrame(reqs, FrameCmd, []byte([]string{"ls", "help"}[i%2]))
	}
	r.write(reqs)
	r.run(10 * time.Second)
	a := newAnswers(files)
	if _, err := parseStream(r.stream, a); err != nil {
		t.Fatal(err)
	}
	if len(a.replies) != n {
		t.Fatalf("%d answers to %d requests", len(a.replies), n)
	}
	for i, rep := range a.replies {
		want := "ok: " + fmt.Sprintf("%12d  %s", 1, files[0].Name)
		if i%2 == 1 {
			want = "ok: " + HelpText
		}
		if !strings.HasPrefix(rep, want) {
			t.Fatalf("answer %d: %.60q, want %.60q", i, rep, want)
		}
	}
	if s.c.badFrames != 0 {
		t.Fatalf("%d protocol errors", s.c.badFrames)
	}
}

// A reply longer than a REPLY holds (an unknown command of 64 KiB,
// quoted back) is cut on a rune boundary: the wire says REPLY text is
// UTF-8, and a cut mid-rune is not.
func TestLongReplyCutOnRune(t *testing.T) {
	for _, shift := range []int{0, 1} {
		r, _ := rigToServer(t, ServerConfig{}, nil)
		word := strings.Repeat("x", shift) + strings.Repeat("é", (MaxControl-2)/2)
		r.write(appendFrame(nil, FrameCmd, []byte(word)))
		r.run(10 * time.Second)
		a := newAnswers(nil)
		if _, err := parseStream(r.stream, a); err != nil {
			t.Fatalf("shift %d: %v", shift, err)
		}
		if len(a.replies) != 1 || len(a.replies[0]) < MaxControl-8 {
			t.Fatalf("shift %d: %d replies (%.80q), want one of about %d bytes", shift, len(a.replies), a.replies, MaxControl)
		}
	}
}

// parseStream parses a server's answer stream into a.
func parseStream(stream []byte, a *answers) (*answers, error) {
	p := parser{accept: serverSends}
	return a, p.feed(stream, a)
}

// A GET's offset is a u64: one of 2^63 or more is past the end like any
// other (the file is sent whole, after a FILE with offset 0), not a
// negative number that skipped the FILE frame.
func TestGetOffsetPastTheEnd(t *testing.T) {
	files := []SynthFile{{Name: "a.bin", Size: 100, Seed: 1}}
	for _, off := range []uint64{101, 1 << 62, 1 << 63, 1<<64 - 1} {
		t.Run(fmt.Sprint(off), func(t *testing.T) {
			r, _ := rigToServer(t, ServerConfig{Files: files}, nil)
			r.write(appendFrame(nil, FrameGet, u64(off), make([]byte, 32), []byte("a.bin")))
			r.run(time.Second)
			if len(r.stream) == 0 || r.stream[0] != FrameFile {
				t.Fatalf("the answer starts %s, want a FILE", describeFrames(r.stream))
			}
			a := newAnswers(files)
			if _, err := parseStream(r.stream, a); err != nil {
				t.Fatal(err)
			}
			if a.ends != 1 || len(a.starts) != 1 || a.starts[0] != 0 {
				t.Fatalf("%d transfers completed, from %v: want the whole file once, from 0", a.ends, a.starts)
			}
		})
	}
	// At the end exactly, with the right prefix: a FILE from offset 100,
	// no DATA, and END.
	r, _ := rigToServer(t, ServerConfig{Files: files}, nil)
	whole := newAnswers(files).files["a.bin"]
	sum := sha256.Sum256(whole)
	r.write(appendFrame(nil, FrameGet, u64(100), sum[:], []byte("a.bin")))
	r.run(time.Second)
	if got := describeFrames(r.stream); got != "[0x82 21B][0x84 32B]" {
		t.Fatalf("resume at the end answered %s", got)
	}
}

// openSpy is a file system that records every name opened, and counts
// the bytes read from what it opened. It is an fs.StatFS, as the roots
// the server gets are: fs.Stat on one that is not opens the file to ask.
type openSpy struct {
	fs.FS
	opened []string
	read   int64
}

func (o *openSpy) Stat(name string) (fs.FileInfo, error) { return fs.Stat(o.FS, name) }

func (o *openSpy) Open(name string) (fs.File, error) {
	o.opened = append(o.opened, name)
	f, err := o.FS.Open(name)
	if err != nil {
		return nil, err
	}
	return spyFile{File: f, o: o}, nil
}

type spyFile struct {
	fs.File
	o *openSpy
}

func (f spyFile) Read(b []byte) (int, error) {
	n, err := f.File.Read(b)
	f.o.read += int64(n)
	return n, err
}

// doc.go: a resumed GET's prefix is hashed "in HashStep pieces, one per
// step, so a long prefix does not stall other sessions". A resume at
// the end of a 10,000-byte file with HashStep 1000 reads the file in
// ten steps of 1000 bytes, then answers FILE from the end and END.
func TestResumePrefixHashedInSteps(t *testing.T) {
	files := []SynthFile{{Name: "a.bin", Size: 10_000, Seed: 1}}
	spy := &openSpy{FS: Synthetic(files)}
	r, _ := rigToServer(t, ServerConfig{HashStep: 1000}, spy)
	var steps []int64 // bytes read in each step that read any
	last := int64(0)
	r.afterStep = func(int) {
		if d := spy.read - last; d > 0 {
			steps = append(steps, d)
		}
		last = spy.read
	}
	sum := sha256.Sum256(newAnswers(files).files["a.bin"])
	r.write(appendFrame(nil, FrameGet, u64(10_000), sum[:], []byte("a.bin")))
	r.run(time.Second)
	if got := describeFrames(r.stream); got != "[0x82 21B][0x84 32B]" {
		t.Fatalf("resume at the end answered %s, want FILE and END", got)
	}
	if fmt.Sprint(steps) != fmt.Sprint([]int64{1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000, 1000}) {
		t.Fatalf("bytes read per step %v, want 1000 in each of 10 steps", steps)
	}
}

// replyTexts writes reqs to the server on r's session, runs it for a second,
// and returns the texts of the frames it sent back (replies to
// requests that send no file).
func replyTexts(t *testing.T, r *sessionRig, reqs []byte) []string {
	t.Helper()
	r.write(reqs)
	r.run(time.Second)
	rec, err := parseAll(r.stream, nil, serverSends)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, fr := range rec.frames {
		got = append(got, string(fr[2:]))
	}
	return got
}

// The server looks at what a name is before it opens it: a FIFO (or a
// device) is refused without an open, which for a FIFO would block the
// runner and every session with it, for "get" and "ls" alike.
func TestNonRegularFilesNeverOpened(t *testing.T) {
	spy := &openSpy{FS: fstest.MapFS{
		"ok.txt": {Data: []byte("fine")},
		"pipe":   {Mode: fs.ModeNamedPipe},
		"dev":    {Mode: fs.ModeDevice | fs.ModeCharDevice},
	}}
	r, _ := rigToServer(t, ServerConfig{}, spy)
	var reqs []byte
	for _, name := range []string{"pipe", "dev"} {
		reqs = appendFrame(reqs, FrameGet, u64(0), make([]byte, 32), []byte(name))
		reqs = appendFrame(reqs, FrameCmd, []byte("ls "+name))
	}
	got := replyTexts(t, r, reqs)
	want := []string{"get pipe: not a regular file", "ls: not a directory", "get dev: not a regular file", "ls: not a directory"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("answers %q, want %q", got, want)
	}
	if len(spy.opened) != 0 {
		t.Fatalf("opened %q", spy.opened)
	}
}

// "ls" lists only what "get" would serve: a name with a newline (which
// would forge a line of the listing) or a C1 control (which a terminal
// obeys) is left out; "ls ." is the root and "ls /" is refused as
// absolute, not as an empty name.
func TestListingShowsOnlyServableNames(t *testing.T) {
	fsys := fstest.MapFS{
		"ok.txt":      {Data: []byte("fine")},
		"new\nline":   {Data: []byte("x")},
		"csi\u009b2J": {Data: []byte("x")},
	}
	r, _ := rigToServer(t, ServerConfig{}, fsys)
	var reqs []byte
	for _, c := range []string{"ls", "ls .", "ls /"} {
		reqs = appendFrame(reqs, FrameCmd, []byte(c))
	}
	got := replyTexts(t, r, reqs)
	listing := fmt.Sprintf("%12d  ok.txt", 4)
	want := []string{listing, listing, "refused: absolute paths are not served (names are relative to the root)"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("answers %q, want %q", got, want)
	}
}

// changingFS holds one file, "f", that is rewritten in place (a new
// modification time, the same size) once its first bytes have been read.
type changingFS struct {
	fstest.MapFS
	read bool
}

type changingFile struct {
	fs.File
	fsys *changingFS
}

func (c *changingFS) Open(name string) (fs.File, error) {
	f, err := c.MapFS.Open(name)
	if err != nil {
		return nil, err
	}
	return &changingFile{File: f, fsys: c}, nil
}

func (c *changingFS) Stat(name string) (fs.FileInfo, error) { return fs.Stat(c.MapFS, name) }

func (f *changingFile) Read(b []byte) (int, error) {
	f.fsys.read = true
	f.fsys.MapFS["f"].ModTime = time.Unix(2e9, 0)
	return f.File.Read(b)
}

func (f *changingFile) Stat() (fs.FileInfo, error) { return fs.Stat(f.fsys.MapFS, "f") }

// A file rewritten while it is being sent fails the transfer: the digest
// covers the bytes sent, which may mix two versions that neither is (a
// helper overwrote both ends of a file mid-download and got "verified").
func TestFileChangedMidTransferFails(t *testing.T) {
	fsys := &changingFS{MapFS: fstest.MapFS{"f": {Data: make([]byte, 100_000), ModTime: time.Unix(1e9, 0)}}}
	r, _ := rigToServer(t, ServerConfig{}, fsys)
	r.write(appendFrame(nil, FrameGet, u64(0), make([]byte, 32), []byte("f")))
	r.run(5 * time.Second)
	rec, err := parseAll(r.stream, nil, serverSends)
	if err != nil {
		t.Fatal(err)
	}
	var errs []string
	ended := false
	for _, fr := range rec.frames {
		switch fr[0] {
		case FrameEnd:
			ended = true
		case FrameReply:
			errs = append(errs, string(fr[2:]))
		}
	}
	if !fsys.read || ended || len(errs) != 1 || !strings.Contains(errs[0], "the file changed while it was being sent") {
		t.Fatalf("read %v, END sent %v, replies %q: want the transfer failed", fsys.read, ended, errs)
	}
}

// brokenFS holds one file, "bad", of 5000 bytes whose reads fail.
type brokenFS struct{}

type brokenFile struct{}

func (brokenFS) Open(name string) (fs.File, error) {
	if name != "bad" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return brokenFile{}, nil
}

func (b brokenFS) Stat(name string) (fs.FileInfo, error) {
	f, err := b.Open(name)
	if err != nil {
		return nil, err
	}
	return f.Stat()
}

func (brokenFile) Stat() (fs.FileInfo, error) {
	return fstest.MapFS{"bad": {Data: make([]byte, 5000)}}.Stat("bad")
}
func (brokenFile) Read([]byte) (int, error) { return 0, errors.New("disk on fire") }
func (brokenFile) Close() error             { return nil }

// A transfer that fails to read its file ends with an error REPLY, and
// the requests queued behind it are answered: they used to wait for
// ever, and the session with them.
func TestRequestsAfterAFailedTransferAnswered(t *testing.T) {
	r, _ := rigToServer(t, ServerConfig{}, brokenFS{})
	var reqs []byte
	reqs = appendFrame(reqs, FrameGet, u64(0), make([]byte, 32), []byte("bad"))
	reqs = appendFrame(reqs, FrameCmd, []byte("help"))
	r.write(reqs)
	r.run(time.Second)
	if got := describeFrames(r.stream); got != fmt.Sprintf("[0x82 19B][0x81 %dB][0x81 %dB]", 1+len("get bad: read failed: disk on fire"), 1+len(HelpText)) {
		t.Fatalf("answers %s: want FILE, the failure, and help", got)
	}
}

// A SendBuffer smaller than a DATA frame still sends the file: a frame is
// queued whole, so the buffer is at least one.
func TestSmallSendBufferStillSends(t *testing.T) {
	files := []SynthFile{{Name: "a.bin", Size: 5000, Seed: 1}}
	r, _ := rigToServer(t, ServerConfig{Files: files, Chunk: 1000, SendBuffer: 10}, nil)
	r.write(appendFrame(nil, FrameGet, u64(0), make([]byte, 32), []byte("a.bin")))
	r.run(5 * time.Second)
	a := newAnswers(files)
	if _, err := parseStream(r.stream, a); err != nil {
		t.Fatal(err)
	}
	if a.ends != 1 {
		t.Fatalf("%d transfers completed (stream %s), want 1", a.ends, describeFrames(r.stream))
	}
}
