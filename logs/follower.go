package logs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"regexp"
	"time"

	"github.com/docker/docker/api/types/container"
)

// follower reads one container's log and delivers it: a reader goroutine parses the
// Docker stream, run assembles records and batches, a sender goroutine delivers them.
type follower struct {
	f         *Forwarder
	id, name  string
	tty       bool
	tag       string
	multiline *regexp.Regexp
	meta      []byte
	metaPairs int
	cnt       *counters
	cancel    context.CancelFunc
	conn      *conn
	// idle is how long the stream may stay silent before the follow is restarted (see
	// errIdle); got says whether this follow read anything.
	idle time.Duration
	got  bool
}

// errIdle ends a follow that stayed silent for its idle time, in case Docker's follow
// missed a change of the log file (rotation) and waits for nothing: the next run reads
// from the position without follow first. The idle time doubles while restarts find
// nothing, so quiet containers cost little.
var errIdle = errors.New("idle")

// multilineWait is how long a multiline record waits for its next line.
const multilineWait = time.Second

// run follows the log until the stream ends (the container stopped) and everything read
// is acknowledged, or until ctx is done.
func (fl *follower) run(ctx context.Context) error {
	f := fl.f
	pos, ok, err := f.store.load(fl.id)
	if err != nil {
		// Where the last run stopped is unknown: from the container's start, so that
		// nothing is missed (some lines may be sent again). Counted and logged.
		fl.cnt.positionErrors.Add(1)
		f.total.positionErrors.Add(1)
		f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: saved position unreadable; reading from the container's start")
	} else if !ok && !f.opts.FromStart {
		pos = Position{TimeNS: f.started.UnixNano()}
		if err := f.store.save(fl.id, pos); err != nil {
			return err
		}
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	msgs := make(chan []message, 4)
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(msgs)
		readErr = fl.read(rctx, pos, msgs)
	}()
	batches := make(chan *batch, max(1, f.opts.BufferLimit/f.opts.BatchSize-f.opts.InFlight))
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		if fl.deliver(ctx, batches) != nil {
			for range batches { // stopping: the rest is read again next time
			}
		}
	}()

	var cur *batch
	var curSince time.Time
	lastMsg := time.Now()
	idled := false
	asm := newAssembler(f.opts.MaxRecordSize, fl.multiline, func(r Record) {
		if cur == nil {
			cur = &batch{tag: fl.tag}
			curSince = time.Now()
		}
		cur.records = append(cur.records, r)
		cur.bytes += len(r.Log)
		if r.Truncated > 0 {
			fl.cnt.truncated.Add(1)
			f.total.truncated.Add(1)
		}
	})
	flush := func() bool {
		if cur == nil {
			return true
		}
		select {
		case batches <- cur:
			cur = nil
			return true
		case <-ctx.Done():
			return false
		}
	}
	// The ticker runs every Linger/2 while a batch or a multiline record waits; otherwise it
	// wakes only when the stream would have been silent for its idle time.
	fast := f.opts.Linger / 2
	tick := time.NewTicker(fast)
	defer tick.Stop()
	slow := false
	ended := false
	for !ended {
		ticked := false
		select {
		case ms, ok := <-msgs:
			if !ok {
				asm.flush(!idled)
				ended = true
				break
			}
			lastMsg = time.Now()
			fl.got = true
			for _, m := range ms {
				asm.add(m)
				if cur != nil && (len(cur.records) >= f.opts.BatchSize || cur.bytes >= 1<<20) && !flush() {
					ended = true
					break
				}
			}
		case <-tick.C:
			ticked = true
			if fl.multiline != nil && time.Since(lastMsg) >= multilineWait {
				asm.flush(false)
			}
			if fl.idle > 0 && time.Since(lastMsg) >= fl.idle {
				stop() // stop reading; what was read is still delivered below
				idled = true
			}
			if cur != nil && time.Since(curSince) >= f.opts.Linger && !flush() {
				ended = true
			}
		}
		if idle := cur == nil && !asm.waiting() && fl.idle > 0 && !idled; idle && (!slow || ticked) {
			tick.Reset(max(fast, time.Until(lastMsg.Add(fl.idle))))
			slow = true
		} else if !idle && slow {
			tick.Reset(fast)
			slow = false
		}
	}
	flush()
	close(batches)
	<-sendDone
	stop()
	<-readDone
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if idled || errors.Is(readErr, errLag) {
		return errIdle
	}
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		return readErr
	}
	return nil
}

// Reading modes. Docker's json-file follow before Docker 23 may drop the unread rest of a
// file that rotates (max-size) under a reader lagging behind, so a follower catches up with
// plain reads (since the position, no follow: every rotated file is read whole), and
// follows only once it is less than caughtUp behind. A followed message more than
// maxLag old means it fell behind again: it stops, and the next run catches up.
const (
	caughtUp = 500 * time.Millisecond
	maxLag   = 5 * time.Second
)

// errLag ends a follow that fell behind; the follow restarts at once.
var errLag = errors.New("fell behind")

// read reads the log from pos into msgs until the container stops, ctx is done, or a
// follow falls behind or goes silent.
func (fl *follower) read(ctx context.Context, pos Position, msgs chan<- []message) error {
	follow := false
	for {
		rc, err := fl.f.docker.ContainerLogs(ctx, fl.id, container.LogsOptions{ShowStdout: true, ShowStderr: true,
			Follow: follow, Timestamps: true, Since: pos.since()})
		if err != nil {
			return err
		}
		stop := context.AfterFunc(ctx, func() { rc.Close() })
		n, last, err := fl.readStream(ctx, rc, &pos, follow, msgs)
		stop()
		rc.Close()
		fl.f.opts.Log.WithField("container", fl.name).WithField("follow", follow).WithField("messages", n).
			WithError(err).Debug("logs: read ended")
		if follow || !errors.Is(err, io.EOF) {
			return err
		}
		follow = n == 0 || time.Since(last) < caughtUp
	}
}

// readStream reads one logs API response, advancing pos past each message it passes on.
// Messages go out in groups: all those already complete in the read buffer, their lines
// in shared slabs (read there, or copied for a TTY), so that a flood costs one hand-over
// and few allocations per group rather than per line.
func (fl *follower) readStream(ctx context.Context, r io.Reader, pos *Position, follow bool, msgs chan<- []message) (int, time.Time, error) {
	since, skip := *pos, 0
	sr := newStreamReader(r, fl.tty, Position{TimeNS: since.TimeNS})
	n := 0
	var last time.Time
	var group []message
	var slab []byte
	send := func() error {
		if len(group) == 0 {
			return nil
		}
		select {
		case msgs <- group:
			group = nil // the slab goes on: what was sent of it is never written again
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for {
		if !sr.ready() || len(group) >= maxGroup {
			if err := send(); err != nil {
				return n, last, err
			}
		}
		m, err := sr.next()
		if errors.Is(err, errBadMessage) {
			fl.cnt.dropped.Add(1)
			fl.f.total.dropped.Add(1)
			continue
		}
		if err != nil {
			if serr := send(); serr != nil {
				return n, last, serr
			}
			return n, last, err
		}
		if m.ts.UnixNano() < since.TimeNS && n == 0 {
			continue // Docker's since filters these out; never expected
		}
		if skip < since.N {
			skip++ // passed on before: the first N messages since since.TimeNS
			continue
		}
		if follow && time.Since(m.ts) > maxLag {
			if err := send(); err != nil {
				return n, last, err
			}
			return n, last, errLag
		}
		*pos = m.after
		n++
		last = m.ts
		if !sr.owned() {
			if len(slab)+len(m.line) > cap(slab) {
				slab = make([]byte, 0, max(slabSize, len(m.line)))
			}
			start := len(slab)
			slab = append(slab, m.line...)
			m.line = slab[start:len(slab):len(slab)]
		}
		group = append(group, m)
	}
}

// A group holds at most maxGroup messages; lines are copied into slabs of slabSize bytes.
const (
	maxGroup = 256
	slabSize = 64 << 10
)

// inFlight is a batch in the window: read, maybe sent, not yet passed by the position.
type inFlight struct {
	b      *batch
	chunk  string
	msg    []byte
	onConn bool // written on the current connection
	tried  bool // written, or waiting for the connection being opened: counted as retried if that fails
	acked  bool
}

// deliver sends the batches read, up to the window's size of them on the connection before
// their acks, until batches is closed and everything is acknowledged, or ctx is done. The
// position advances, in reading order, to the end of the last batch that was acknowledged
// along with every batch before it: an ack that arrives early for a later batch moves
// nothing, so a crash resends at most the batches of the window. On a failed connection
// the batches not acknowledged are sent again, in order, on a new one, after a backoff.
func (fl *follower) deliver(ctx context.Context, batches <-chan *batch) error {
	f, c := fl.f, fl.conn
	var win []*inFlight
	in := batches
	failures, sent := 0, 0 // sent: batches written on the connection and not acknowledged
	var retry <-chan time.Time
	var lastProgress time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	fail := func(err error) {
		c.close()
		for _, w := range win {
			if w.tried && !w.acked {
				n := uint64(len(w.b.records))
				fl.cnt.retried.Add(n)
				f.total.retried.Add(n)
			}
			w.onConn, w.tried = false, false
		}
		sent = 0
		if failures == 0 {
			f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: Fluentd did not acknowledge; retrying")
		}
		wait := min(250*time.Millisecond<<min(failures, 6), 10*time.Second)
		retry = time.After(time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64())))
		failures++
	}
	for {
		if in == nil && len(win) == 0 {
			return nil
		}
		limit := f.opts.InFlight
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
					c.close()
					return ctx.Err()
				}
				fail(err)
				continue
			}
		}
		var recv <-chan *batch
		if len(win) < f.opts.InFlight {
			recv = in
		}
		var timeout <-chan time.Time
		if sent > 0 {
			timer.Reset(time.Until(lastProgress.Add(c.timeout)))
			timeout = timer.C
		}
		select {
		case <-ctx.Done():
			c.close()
			return ctx.Err()
		case b, ok := <-recv:
			if !ok {
				in = nil
				continue
			}
			w := &inFlight{b: b, chunk: newChunkID()}
			w.msg = encodeForward(b, fl.meta, fl.metaPairs, w.chunk)
			win = append(win, w)
		case a := <-c.acks:
			if a.err != nil {
				fail(a.err)
				continue
			}
			if !fl.acked(win, a.chunk) {
				fail(fmt.Errorf("forward protocol: ack %q for no chunk in flight", a.chunk))
				continue
			}
			sent--
			failures = 0
			lastProgress = time.Now()
			if c.oneShot {
				c.close()
			}
			win = fl.advance(win)
		case <-timeout:
			fail(fmt.Errorf("forward protocol: no ack within %s", c.timeout))
		case <-retry:
			retry = nil
		}
	}
}

// acked marks the batch of chunk acknowledged and counts it; false if no batch on the
// connection waits for that ack.
func (fl *follower) acked(win []*inFlight, chunk string) bool {
	for _, w := range win {
		if w.chunk == chunk && w.onConn && !w.acked {
			w.acked = true
			n := uint64(len(w.b.records))
			fl.cnt.lines.Add(n)
			fl.f.total.lines.Add(n)
			fl.cnt.bytes.Add(uint64(w.b.bytes))
			fl.f.total.bytes.Add(uint64(w.b.bytes))
			return true
		}
	}
	return false
}

// advance drops the acknowledged batches at the head of the window and saves the position
// after the last of them; it returns the rest of the window.
func (fl *follower) advance(win []*inFlight) []*inFlight {
	n := 0
	for n < len(win) && win[n].acked {
		n++
	}
	if n == 0 {
		return win
	}
	last := win[n-1].b
	pos := last.records[len(last.records)-1].Pos
	if err := fl.f.store.save(fl.id, pos); err != nil {
		// Delivered, but a restart now would send these batches again: counted, logged once.
		if fl.cnt.positionErrors.Add(1) == 1 {
			fl.f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: cannot save the position")
		}
		fl.f.total.positionErrors.Add(1)
	} else if fl.f.saved != nil {
		fl.f.saved(fl.id, pos)
	}
	clear(win[:n])
	return win[n:]
}
