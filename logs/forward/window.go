package forward

import (
	"context"
	"fmt"
	"time"

	"github.com/lookout-agent/lookout/internal/backoff"
)

// Hooks are what Deliver tells its caller about the caller's batches (T). Any may be nil.
type Hooks[T any] struct {
	// Encode returns the Forward message of b carrying chunk (AppendForward); required.
	Encode func(b T, chunk string) []byte
	// Acked: Fluentd acknowledged b.
	Acked func(b T)
	// Passed: b and every batch before it are acknowledged; called for the last batch of
	// each run acknowledged at once, in reading order.
	Passed func(b T)
	// Retried: b was written (or waited for the connection being opened) and that
	// connection failed before its ack: b is sent again.
	Retried func(b T)
	// Failed: the connection failed after a success (the first failure of a run).
	Failed func(err error)
}

// inFlight is a batch in the window: read, maybe sent, not yet passed.
type inFlight[T any] struct {
	b      T
	chunk  string
	msg    []byte
	onConn bool // written on the current connection
	tried  bool // written, or waiting for the connection being opened: counted as retried if that fails
	acked  bool
}

// Deliver sends the batches of in, up to the client's InFlight of them on the connection
// before their acks, until in is closed and everything is acknowledged, or ctx is done.
// Batches pass (Hooks.Passed) in reading order, once acknowledged along with every batch
// before them: an ack that arrives early for a later batch passes nothing, so a caller
// that keeps its position at the last batch passed resends at most the window after a
// crash. On a failed connection the batches not acknowledged are sent again, in order, on
// a new one, after a backoff. The connection stays open when Deliver returns nil.
func Deliver[T any](ctx context.Context, c *Client, in <-chan T, h Hooks[T]) error {
	var win []*inFlight[T]
	sent := 0 // batches written on the connection and not acknowledged
	failures := backoff.Backoff{Min: 250 * time.Millisecond, Max: 10 * time.Second}
	var retry <-chan time.Time
	var lastProgress time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	fail := func(err error) {
		c.Close()
		for _, w := range win {
			if w.tried && !w.acked && h.Retried != nil {
				h.Retried(w.b)
			}
			w.onConn, w.tried = false, false
		}
		sent = 0
		if failures.Attempts() == 0 && h.Failed != nil {
			h.Failed(err)
		}
		retry = time.After(failures.Next())
	}
	for {
		if in == nil && len(win) == 0 {
			return nil
		}
		limit := c.inFlight
		if c.oneShot {
			limit = 1
		}
		if retry == nil && sent < limit && len(win) > sent {
			// Batches wait to be written: on the connection, or on a new one.
			if c.c == nil || (sent == 0 && c.broken()) {
				for i, w := 0, 0; w < len(win) && i < limit; w++ {
					if !win[w].acked {
						win[w].tried = true
						i++
					}
				}
				if err := c.open(ctx); err != nil {
					if ctx.Err() != nil {
						return ctx.Err()
					}
					fail(err)
					continue
				}
			}
			var err error
			for _, w := range win {
				if sent >= limit {
					break
				}
				if w.acked || w.onConn {
					continue
				}
				w.tried = true
				if err = c.write(ctx, w.msg); err != nil {
					break
				}
				w.onConn = true
				if sent == 0 {
					lastProgress = time.Now()
				}
				sent++
			}
			if err != nil {
				if ctx.Err() != nil {
					c.Close()
					return ctx.Err()
				}
				fail(err)
				continue
			}
		}
		var recv <-chan T
		if len(win) < c.inFlight {
			recv = in
		}
		var timeout <-chan time.Time
		if sent > 0 {
			timer.Reset(time.Until(lastProgress.Add(c.timeout)))
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			c.Close()
			return ctx.Err()
		case b, ok := <-recv:
			if !ok {
				in = nil
				continue
			}
			w := &inFlight[T]{b: b, chunk: NewChunkID()}
			w.msg = h.Encode(b, w.chunk)
			win = append(win, w)
		case a := <-c.acks:
			if a.err != nil {
				fail(a.err)
				continue
			}
			if !acked(win, a.chunk, h.Acked) {
				fail(fmt.Errorf("forward protocol: ack %q for no chunk in flight", a.chunk))
				continue
			}
			sent--
			failures.Reset()
			lastProgress = time.Now()
			if c.oneShot {
				c.Close()
			}
			win = advance(win, h.Passed)
		case <-timeout:
			fail(fmt.Errorf("forward protocol: no ack within %s", c.timeout))
		case <-retry:
			retry = nil
		}
	}
}

// acked marks the batch of chunk acknowledged and tells the caller; false if no batch on
// the connection waits for that ack.
func acked[T any](win []*inFlight[T], chunk string, hook func(T)) bool {
	for _, w := range win {
		if w.chunk == chunk && w.onConn && !w.acked {
			w.acked = true
			if hook != nil {
				hook(w.b)
			}
			return true
		}
	}
	return false
}

// advance drops the acknowledged batches at the head of the window and passes the last of
// them; it returns the rest of the window.
func advance[T any](win []*inFlight[T], passed func(T)) []*inFlight[T] {
	n := 0
	for n < len(win) && win[n].acked {
		n++
	}
	if n == 0 {
		return win
	}
	if passed != nil {
		passed(win[n-1].b)
	}
	clear(win[:n])
	return win[n:]
}
