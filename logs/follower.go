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
}

// multilineWait is how long a multiline record waits for its next line.
const multilineWait = time.Second

// run follows the log until the stream ends (the container stopped) and everything read
// is acknowledged, or until ctx is done.
func (fl *follower) run(ctx context.Context) error {
	f := fl.f
	pos, ok := f.store.load(fl.id)
	if !ok && !f.opts.FromStart {
		pos = Position{TimeNS: time.Now().UnixNano()}
		if err := f.store.save(fl.id, pos); err != nil {
			return err
		}
	}
	rc, err := f.docker.ContainerLogs(ctx, fl.id, container.LogsOptions{ShowStdout: true, ShowStderr: true,
		Follow: true, Timestamps: true, Since: pos.since()})
	if err != nil {
		return err
	}
	defer rc.Close()
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { <-rctx.Done(); rc.Close() }() // unblocks the reader

	msgs := make(chan message, 64)
	var readErr error
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer close(msgs)
		readErr = fl.read(rctx, rc, pos, msgs)
	}()
	batches := make(chan *batch, max(1, f.opts.BufferLimit/f.opts.BatchSize-1))
	sendDone := make(chan struct{})
	go func() {
		defer close(sendDone)
		for b := range batches {
			if fl.deliver(rctx, b) != nil {
				for range batches { // stopping: the rest is read again next time
				}
				return
			}
		}
	}()

	var cur *batch
	var curSince, lastMsg time.Time
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
		case <-rctx.Done():
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
				asm.flush(true)
				ended = true
				break
			}
			lastMsg = time.Now()
			asm.add(m)
			if cur != nil && (len(cur.records) >= f.opts.BatchSize || cur.bytes >= 1<<20) && !flush() {
				ended = true
			}
		case <-tick.C:
			if fl.multiline != nil && time.Since(lastMsg) >= multilineWait {
				asm.flush(false)
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
	if readErr != nil && !errors.Is(readErr, io.EOF) {
		return readErr
	}
	return nil
}

// read parses the stream into msgs, skipping what pos says was acknowledged.
func (fl *follower) read(ctx context.Context, r io.Reader, pos Position, msgs chan<- message) error {
	sr := newStreamReader(r, fl.tty, Position{TimeNS: pos.TimeNS})
	skipped := 0
	for {
		m, err := sr.next()
		if errors.Is(err, errBadMessage) {
			fl.cnt.dropped.Add(1)
			fl.f.total.dropped.Add(1)
			continue
		}
		if err != nil {
			return err
		}
		if m.ts.UnixNano() < pos.TimeNS {
			continue // Docker's since filters these out; never expected
		}
		if skipped < pos.N {
			skipped++ // acknowledged before: the first N messages since pos.TimeNS
			continue
		}
		m.line = bytes.Clone(m.line)
		select {
		case msgs <- m:
		case <-ctx.Done():
			return ctx.Err()
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
		f.opts.Log.WithError(err).Warn("logs: cannot save the position")
	}
	return nil
}
