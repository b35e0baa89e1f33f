package tftp_test

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/netspec/netspec/spec"
	"github.com/netspec/netspec/spec/tftp"
)

// silence fires a transfer's retransmission timer each time it comes
// due, answering nothing, starting from out (the step that sent pkt at
// start and armed the timer). It returns when each resend of pkt went
// out and when the timer last fired, counted from start: the firing that
// gave up, having resent nothing.
func silence(t *testing.T, start spec.Time, out []spec.Output, pkt []byte, fire func(at spec.Time, tm spec.Timer) []spec.Output) (resends []time.Duration, gaveUp time.Duration) {
	t.Helper()
	for range 20 {
		var tm spec.Timer
		at := spec.Time(0)
		for _, o := range out {
			switch o.Kind {
			case spec.OutSetTimer:
				tm, at = o.Timer, o.At
			case spec.OutCancelTimer:
				at = 0
			}
		}
		if at == 0 {
			t.Fatalf("no retransmission timer armed after %v", resends)
		}
		out = fire(at, tm)
		resent := false
		for _, o := range out {
			resent = resent || o.Kind == spec.OutSend && bytes.Equal(o.Data, pkt)
		}
		if !resent {
			return resends, at.Sub(start)
		}
		resends = append(resends, at.Sub(start))
	}
	t.Fatalf("still resending after %v", resends)
	return nil, 0
}

// backoff is when, with timeout T and 5 retries, the retransmissions
// come (T<<min(tries,3) after the last: T, 2T, 4T, 8T, 8T) and when the
// transfer gives up (8T after the last).
func backoff(T time.Duration) ([]time.Duration, time.Duration) {
	return []time.Duration{T, 3 * T, 7 * T, 15 * T, 23 * T}, 31 * T
}

// RFC 1123 4.2.3.2's backoff, as doc.go states it: each retransmission
// timer doubles with every timeout since the last progress, up to 8
// times the timeout, and progress starts it again from the timeout.
// Without answers, what an end waits on is resent 1, 3, 7, 15 and 23
// timeouts after it first went out (virtual time, to the nanosecond),
// and the transfer gives up 31 timeouts after.
func TestRetransmissionBackoff(t *testing.T) {
	t.Run("client request", func(t *testing.T) {
		const T = 2 * time.Second
		b := newClientBench(t, tftp.ClientConfig{Timeout: T}, spec.Command{Name: "get", Args: []string{"f"}})
		resends, gaveUp := silence(t, b.now, b.out, b.req, func(at spec.Time, tm spec.Timer) []spec.Output {
			b.now = at
			return b.step(spec.Input{Kind: spec.InTimer, Timer: tm})
		})
		want, wantEnd := backoff(T)
		if !slices.Equal(resends, want) || gaveUp != wantEnd {
			t.Fatalf("request resent at %v, given up at %v; want %v and %v", resends, gaveUp, want, wantEnd)
		}
	})

	t.Run("client ACK", func(t *testing.T) {
		const T = time.Second
		b := newClientBench(t, tftp.ClientConfig{Timeout: T}, spec.Command{Name: "get", Args: []string{"f"}})
		b.now = b.now.Add(10 * time.Millisecond)
		start := b.now
		out := b.from(tid, append(tftp.AppendData(nil, 1), make([]byte, 512)...))
		if s := sends(out); len(s) != 1 || !bytes.Equal(s[0].Data, ack(1)) {
			t.Fatalf("DATA 1 answered %v, want ACK 1", s)
		}
		resends, gaveUp := silence(t, start, out, ack(1), func(at spec.Time, tm spec.Timer) []spec.Output {
			b.now = at
			return b.step(spec.Input{Kind: spec.InTimer, Timer: tm})
		})
		want, wantEnd := backoff(T)
		if !slices.Equal(resends, want) || gaveUp != wantEnd {
			t.Fatalf("ACK 1 resent at %v, given up at %v; want %v and %v", resends, gaveUp, want, wantEnd)
		}
	})

	// The server's DATA, after the client has answered (before, only
	// FirstRetries resends).
	for _, progress := range []bool{false, true} {
		name := map[bool]string{false: "server DATA", true: "server DATA after progress"}[progress]
		t.Run(name, func(t *testing.T) {
			const T = time.Second // the server's default
			b := newBench(t, tftp.ServerConfig{})
			out := sends(b.request(client, rrq("a.bin")))
			if len(out) != 1 {
				t.Fatalf("want DATA 1, got %v", out)
			}
			sock := out[0].Sock
			fire := func(at spec.Time, tm spec.Timer) []spec.Output {
				b.now = at
				return b.step(spec.Input{Kind: spec.InTimer, Timer: tm})
			}
			b.now = b.now.Add(10 * time.Millisecond)
			start := b.now
			all := b.to(sock, client, ack(1))
			data2 := sends(all)
			if len(data2) != 1 || decode(t, data2[0].Data).Block != 2 {
				t.Fatalf("ACK 1 answered %v, want DATA 2", data2)
			}
			if progress {
				// Two timeouts, then ACK 2: DATA 3's timer starts from T
				// again.
				for i := 0; i < 2; i++ {
					var tm spec.Timer
					at := spec.Time(0)
					for _, o := range all {
						if o.Kind == spec.OutSetTimer {
							tm, at = o.Timer, o.At
						}
					}
					all = fire(at, tm)
				}
				b.now = b.now.Add(10 * time.Millisecond)
				start = b.now
				all = b.to(sock, client, ack(2))
				data2 = sends(all)
				if len(data2) != 1 || decode(t, data2[0].Data).Block != 3 {
					t.Fatalf("ACK 2 answered %v, want DATA 3", data2)
				}
			}
			resends, gaveUp := silence(t, start, all, data2[0].Data, fire)
			want, wantEnd := backoff(T)
			if !slices.Equal(resends, want) || gaveUp != wantEnd {
				t.Fatalf("DATA resent at %v, given up at %v; want %v and %v", resends, gaveUp, want, wantEnd)
			}
			if b.s.Transfers() != 0 {
				t.Fatalf("%d transfers after the last timeout, want 0", b.s.Transfers())
			}
		})
	}
}
