package logs

import (
	"context"
	"errors"
	"io"
	"regexp"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/logs/forward"
)

// batch is a Forward-mode message in the making: records of one container under one tag.
type batch struct {
	tag     string
	records []Record
	bytes   int
}

// follower reads one container's log and delivers it: a reader goroutine parses the
// Docker stream, run assembles records and batches, a sender goroutine delivers them.
type follower struct {
	f         *Forwarder
	id, name  string
	tty       bool
	tag       string
	multiline *regexp.Regexp
	meta      forward.Meta // the container's fields, in every record
	cnt       *counters
	cancel    context.CancelFunc
	client    *forward.Client
	// idle is how long the stream may stay silent before the follow is restarted (see
	// errIdle); got says whether this follow read anything.
	idle time.Duration
	got  bool
	// file is the file source's reader; nil: the Docker API. stopping is closed when the
	// container stopped or was removed (the file source then reads to the end and stops;
	// the API's stream ends by itself).
	file     *fileReader
	stopping chan struct{}
	stopOnce sync.Once
}

// stop says the container stopped or was removed.
func (fl *follower) stop() { fl.stopOnce.Do(func() { close(fl.stopping) }) }

// source is the follower's source, as metrics and logs name it.
func (fl *follower) source() string {
	if fl.file != nil {
		return SourceFile
	}
	return SourceAPI
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
		if r.Split {
			fl.cnt.split.Add(1)
			f.total.split.Add(1)
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
		// Nothing waits: the ticker stops (the file source) or wakes at the idle time.
		if idle := cur == nil && !asm.waiting() && !idled; idle && (!slow || ticked) {
			if fl.idle > 0 {
				tick.Reset(max(fast, time.Until(lastMsg.Add(fl.idle))))
			} else {
				tick.Stop()
			}
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
	if fl.file != nil {
		return fl.file.read(ctx, pos, msgs)
	}
	follow := false
	for {
		rc, err := fl.f.docker.ContainerLogs(ctx, fl.id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true,
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
			if m.ts.UnixNano() == since.TimeNS {
				skip++ // passed on before: the first N messages stamped since.TimeNS
				continue
			}
			// A newer message was never passed on, however few messages stamped
			// since.TimeNS came before it: Docker's log rotation may have removed some
			// (the start of a long line, whose pieces all carry its first one's time).
			skip = since.N
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

// deliver sends the batches read through the container's connection (forward.Deliver:
// a window of them before their acks) until batches is closed and everything is
// acknowledged, or ctx is done. The position advances, in reading order, to the end of the
// last batch acknowledged along with every batch before it, so a crash resends at most the
// batches of the window; batches sent again on a new connection count as retried.
func (fl *follower) deliver(ctx context.Context, batches <-chan *batch) error {
	f := fl.f
	return forward.Deliver(ctx, fl.client, batches, forward.Hooks[*batch]{
		Encode: func(b *batch, chunk string) []byte {
			return forward.AppendForward(nil, b.tag, fl.meta, len(b.records), func(i int) forward.Entry {
				r := &b.records[i]
				return forward.Entry{Time: r.Time, Source: r.Source, Log: r.Log}
			}, chunk)
		},
		Acked: func(b *batch) {
			n := uint64(len(b.records))
			fl.cnt.lines.Add(n)
			f.total.lines.Add(n)
			if fl.file != nil {
				fl.cnt.linesFile.Add(n)
				f.total.linesFile.Add(n)
			} else {
				fl.cnt.linesAPI.Add(n)
				f.total.linesAPI.Add(n)
			}
			fl.cnt.bytes.Add(uint64(b.bytes))
			f.total.bytes.Add(uint64(b.bytes))
		},
		Passed: fl.passed,
		Retried: func(b *batch) {
			n := uint64(len(b.records))
			fl.cnt.retried.Add(n)
			f.total.retried.Add(n)
		},
		Failed: func(err error) {
			f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: Fluentd did not acknowledge; retrying")
		},
	})
}

// passed saves the position after b: b and every batch before it are acknowledged.
func (fl *follower) passed(b *batch) {
	pos := b.records[len(b.records)-1].Pos
	if err := fl.f.store.save(fl.id, pos); err != nil {
		// Delivered, but a restart now would send these batches again: counted, logged once.
		if fl.cnt.positionErrors.Add(1) == 1 {
			fl.f.opts.Log.WithError(err).WithField("container", fl.name).Warn("logs: cannot save the position")
		}
		fl.f.total.positionErrors.Add(1)
	} else if fl.f.saved != nil {
		fl.f.saved(fl.id, pos)
	}
}
