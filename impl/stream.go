package impl

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/netspec/netspec/spec"
)

// stream is one TCP connection. The loop owns the bookkeeping fields
// (rdone, held); the writer goroutine and the loop share the queue under
// mu, the reader goroutine and the loop the paused flag.
type stream struct {
	id spec.Stream

	// held is what the reader read after the machine paused the stream
	// (it was mid-read) and what came behind it, for the machine once it
	// resumes.
	held []item

	mu      sync.Mutex
	cond    *sync.Cond // the writer waits for bytes, FIN or death
	rcond   *sync.Cond // the reader waits for resume, room or death
	paused  bool
	posted  int // bytes the reader handed the loop that it has not taken
	conn    *net.TCPConn
	q       [][]byte
	pending int
	closing bool
	finSent bool
	dead    bool
	started bool
	rdone   bool
}

func newStream(c *net.TCPConn) *stream {
	if c != nil {
		noFIN(c)
	}
	st := &stream{conn: c}
	st.cond = sync.NewCond(&st.mu)
	st.rcond = sync.NewCond(&st.mu)
	return st
}

// noFIN makes the kernel reset c, not end it with a FIN, if the process
// dies (SIGKILL, a crash) before the machine closes it: SO_LINGER 0 until
// the writer sends the machine's FIN. A FIN is the end of a stream, and
// for a protocol whose stream is the file (seed 001's C/S, nc) a server
// killed mid-file must not look like a file that ended there: a killed
// cs server's client saved 90 of 200 MB as the whole file.
func noFIN(c *net.TCPConn) { _ = c.SetLinger(0) }

// attach gives a dialed stream its connection.
func (st *stream) attach(c *net.TCPConn, r *Runner) {
	noFIN(c)
	st.mu.Lock()
	dead := st.dead
	if !dead {
		st.conn = c
	}
	st.mu.Unlock()
	if dead {
		// The machine gave up on the dial: it never was a stream.
		_ = c.SetLinger(0)
		_ = c.Close()
	}
}

// startReader starts the stream's reader and writer once the machine
// knows the stream.
func (st *stream) startReader(r *Runner) {
	st.mu.Lock()
	if st.started || st.dead || st.conn == nil {
		st.mu.Unlock()
		return
	}
	st.started = true
	st.mu.Unlock()
	r.wg.Add(2)
	go st.read(r)
	go st.writeLoop(r)
}

func (st *stream) write(b []byte) {
	if len(b) == 0 {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closing || st.dead {
		return
	}
	st.q = append(st.q, b)
	st.pending += len(b)
	st.cond.Signal()
}

func (st *stream) closeWrite() {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.closing = true
	st.cond.Signal()
}

// setPaused stops or restarts the reader (spec.OutPause, OutResume).
func (st *stream) setPaused(p bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.paused = p
	st.rcond.Broadcast()
}

// waitRoom blocks while the stream is paused, or has max bytes posted
// that the loop has not taken, and is alive: so a machine slower than
// the socket holds its sender back by TCP's flow control, and a stream
// queues at most max bytes (plus one read) in the runner, not a share
// of the whole input queue.
func (st *stream) waitRoom(max int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	for (st.paused || st.posted >= max) && !st.dead {
		st.rcond.Wait()
	}
}

// addPosted counts n bytes read and handed to the loop (n > 0), or taken
// by it (n < 0).
func (st *stream) addPosted(n int) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.posted += n
	if n < 0 {
		st.rcond.Broadcast()
	}
}

// isPaused reports whether the machine paused the stream.
func (st *stream) isPaused() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.paused
}

// isClosing reports whether the machine closed the stream (its FIN
// follows the queued bytes).
func (st *stream) isClosing() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closing
}

func (st *stream) drained() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.pending == 0
}

func (st *stream) wdone() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.finSent
}

func (st *stream) isDead() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.dead
}

// kill closes the connection; with rst the peer gets a reset, not a FIN.
func (st *stream) kill(rst bool) {
	st.mu.Lock()
	st.dead = true
	c := st.conn
	st.cond.Broadcast()
	st.rcond.Broadcast()
	st.mu.Unlock()
	if c != nil {
		if rst {
			_ = c.SetLinger(0)
		}
		_ = c.Close()
	}
}

// waitFlushed waits until everything written has gone to the kernel and
// the FIN after it, or deadline; it reports whether that happened (a
// stream never connected, or already dead, has nothing to flush).
func (st *stream) waitFlushed(deadline time.Time) bool {
	for {
		st.mu.Lock()
		flushed := st.pending == 0 && st.finSent
		done := st.dead || !st.started || flushed
		st.mu.Unlock()
		if done {
			return flushed || !st.started
		}
		if !time.Now().Before(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (st *stream) writeLoop(r *Runner) {
	defer r.wg.Done()
	for {
		st.mu.Lock()
		for len(st.q) == 0 && !st.closing && !st.dead {
			st.cond.Wait()
		}
		if st.dead {
			st.mu.Unlock()
			return
		}
		if len(st.q) == 0 && st.closing {
			c := st.conn
			st.mu.Unlock()
			_ = c.SetLinger(-1) // everything is written: a close may FIN
			_ = c.CloseWrite()
			// Only now: a stopping runner closes the socket once it
			// sees finSent, and a close before the lines above would
			// still reset.
			st.mu.Lock()
			st.finSent = true
			st.mu.Unlock()
			r.post(item{kind: itFin, st: st, in: spec.Input{Stream: st.id}})
			return
		}
		bufs := net.Buffers(st.q)
		st.q = nil
		c := st.conn
		st.mu.Unlock()
		n, err := bufs.WriteTo(c)
		st.mu.Lock()
		st.pending -= int(n)
		empty := st.pending == 0
		dead := st.dead
		st.mu.Unlock()
		if err != nil {
			if !dead {
				r.post(item{kind: itClosed, st: st, in: spec.Input{Kind: spec.InStreamClosed, Stream: st.id, Err: sysErr(err)}})
			}
			return
		}
		if empty {
			r.post(item{kind: itWritable, st: st, in: spec.Input{Kind: spec.InStreamWritable, Stream: st.id}})
		}
	}
}

func (st *stream) read(r *Runner) {
	defer r.wg.Done()
	r.readers.Add(1)
	defer r.readers.Add(-1)
	// Small until a read fills it: a connection that sends little (or
	// is held open by a flood of them: 3,000 took a server from 21 to
	// 258 MB) holds 2 KiB, one that sends in bulk 64 KiB.
	buf := make([]byte, 2<<10)
	for {
		st.waitRoom(r.streamShare())
		n, err := st.conn.Read(buf)
		if n > 0 {
			data := make([]byte, n)
			copy(data, buf[:n])
			st.addPosted(n)
			r.backlog.Add(int64(n))
			if n == len(buf) && n < 64<<10 {
				buf = make([]byte, 64<<10)
			}
			r.post(item{kind: itData, st: st, in: spec.Input{Kind: spec.InStreamData, Stream: st.id, Data: data}})
		}
		if err != nil {
			switch {
			case errors.Is(err, io.EOF):
				r.post(item{kind: itClosed, st: st, in: spec.Input{Kind: spec.InStreamClosed, Stream: st.id}})
			case !st.isDead():
				r.post(item{kind: itClosed, st: st, in: spec.Input{Kind: spec.InStreamClosed, Stream: st.id, Err: sysErr(err)}})
			}
			return
		}
	}
}
