package logs

import (
	"bytes"
	"context"
	"errors"
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
	pos, ok := f.store.load(fl.id)
	if !ok && !f.opts.FromStart {
		pos = Position{TimeNS: f.started.UnixNano()}
		if err := f.store.save(fl.id, pos); err != nil {
			return err
		}
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	msgs := make(chan message, 64)
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(msgs)
		readErr = fl.read(rctx, pos, msgs)
	}()
	batches := make(chan *batch, max(1, f.opts.BufferLimit/f.opts.BatchSize-1))
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for b := range batches {
			if fl.deliver(ctx, b) != nil {
				for range batches { // stopping: the rest is read again next time
				}
				return
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
	tick := time.NewTicker(f.opts.Linger / 2)
	defer tick.Stop()
	ended := false
	for !ended {
		select {
		case m, ok := <-msgs:
			if !ok {
				asm.flush(!idled)
				ended = true
				break
			}
			lastMsg = time.Now()
			fl.got = true
			asm.add(m)
			if cur != nil && (len(cur.records) >= f.opts.BatchSize || cur.bytes >= 1<<20) && !flush() {
				ended = true
			}
		case <-tick.C:
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
func (fl *follower) read(ctx context.Context, pos Position, msgs chan<- message) error {
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
func (fl *follower) readStream(ctx context.Context, r io.Reader, pos *Position, follow bool, msgs chan<- message) (int, time.Time, error) {
	since, skip := *pos, 0
	sr := newStreamReader(r, fl.tty, Position{TimeNS: since.TimeNS})
	n := 0
	var last time.Time
	for {
		m, err := sr.next()
		if errors.Is(err, errBadMessage) {
			fl.cnt.dropped.Add(1)
			fl.f.total.dropped.Add(1)
			continue
		}
		if err != nil {
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
			return n, last, errLag
		}
		*pos = m.after
		n++
		last = m.ts
		m.line = bytes.Clone(m.line)
		select {
		case msgs <- m:
		case <-ctx.Done():
			return n, last, ctx.Err()
		}
	}
}

// deliver sends a batch until Fluentd acknowledges it, then saves the position it covers.
func (fl *follower) deliver(ctx context.Context, b *batch) error {
	f := fl.f
	chunk := newChunkID()
	msg := encodeForward(nil, b, fl.meta, fl.metaPairs, chunk)
	n := uint64(len(b.records))
	for failures := 0; ; failures++ {
		err := fl.conn.send(ctx, msg, chunk)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if failures == 0 {
			f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: Fluentd did not acknowledge; retrying")
		}
		fl.cnt.retried.Add(n)
		f.total.retried.Add(n)
		wait := min(250*time.Millisecond<<min(failures, 6), 10*time.Second)
		wait = time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
	fl.cnt.lines.Add(n)
	f.total.lines.Add(n)
	fl.cnt.bytes.Add(uint64(b.bytes))
	f.total.bytes.Add(uint64(b.bytes))
	pos := b.records[len(b.records)-1].Pos
	if err := f.store.save(fl.id, pos); err != nil {
		// Delivered, but a restart now would send this batch again: counted, logged once.
		if fl.cnt.positionErrors.Add(1) == 1 {
			f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: cannot save the position")
		}
		f.total.positionErrors.Add(1)
	}
	return nil
}
