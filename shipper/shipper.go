// Package shipper encodes points as InfluxDB line protocol and delivers them to one or
// more outputs (InfluxDB v1, InfluxDB v2, a writer such as stdout). Each output has its
// own bounded queue (in memory, and on disk when it has a queue directory: see queue.go
// and package diskqueue), batches by size and by a linger interval, retries with backoff
// and jitter, honours Retry-After, splits a batch on 413, isolates and drops the points
// that a 400/422 rejects, and counts every point it drops.
package shipper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/internal/backoff"
	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metric/lineproto"
	"github.com/lookout-agent/lookout/shipper/diskqueue"
)

// OutputConfig holds what every output has.
type OutputConfig struct {
	Name          string        // names the output in logs and in the agent's own metrics
	Precision     string        // ns, us, ms or s
	BatchSize     int           // lines per write
	FlushInterval time.Duration // how long a line may wait for its batch to fill
	BufferLimit   int           // lines held in memory
	RetryMax      time.Duration // longest wait between two tries

	// QueueDir, when set, holds the output's disk queue: every line is appended there
	// before Add returns and kept until the output is finished with it, across restarts.
	// A directory that cannot be used is logged and the output runs on memory.
	QueueDir     string
	DiskLimit    int64         // bytes of the disk queue; past it the oldest go, counted
	SyncInterval time.Duration // how often the disk queue is synced (what a power loss may cost)
}

// DefaultOutputConfig returns the defaults: nanoseconds, 1000 lines a batch, 200 ms
// linger, 10000 lines of buffer, at most 10 s between retries.
func DefaultOutputConfig(name string) OutputConfig {
	return OutputConfig{Name: name, Precision: "ns", BatchSize: 1000, FlushInterval: 200 * time.Millisecond,
		BufferLimit: 10000, RetryMax: 10 * time.Second}
}

var precisions = map[string]lineprotocol.Precision{
	"ns": lineprotocol.Nanosecond, "us": lineprotocol.Microsecond,
	"ms": lineprotocol.Millisecond, "s": lineprotocol.Second,
}

type writer interface {
	write(ctx context.Context, body []byte) error
}

// Output is one destination with its buffer and counters.
type Output struct {
	cfg OutputConfig
	w   writer
	log logrus.FieldLogger

	encMu sync.Mutex
	enc   *lineproto.Encoder
	q     *queue

	written, rejected, invalid, skippedFields, retries, writeErrors atomic.Uint64
}

// NewInfluxOutput returns an output writing to InfluxDB.
func NewInfluxOutput(oc OutputConfig, ic InfluxConfig, log logrus.FieldLogger) (*Output, error) {
	if err := oc.validate(); err != nil {
		return nil, err
	}
	w, err := newInfluxWriter(ic, oc.Precision)
	if err != nil {
		return nil, err
	}
	return newOutput(oc, w, log), nil
}

// NewWriterOutput returns an output writing line protocol to w (stdout by default).
func NewWriterOutput(oc OutputConfig, w io.Writer, log logrus.FieldLogger) (*Output, error) {
	if err := oc.validate(); err != nil {
		return nil, err
	}
	return newOutput(oc, &streamWriter{w: w}, log), nil
}

func newOutput(oc OutputConfig, w writer, log logrus.FieldLogger) *Output {
	l := log.WithField("output", oc.Name)
	var disk *diskqueue.Queue
	var diskErr uint64
	if oc.QueueDir != "" {
		var err error
		disk, err = diskqueue.Open(oc.QueueDir, diskqueue.Options{MaxBytes: oc.DiskLimit})
		if err != nil {
			diskErr = 1
			l.WithError(err).WithField("dir", oc.QueueDir).Error("disk queue unavailable: this output keeps its lines in memory" +
				" only (lost on a crash or restart, at most buffer_limit lines in an outage); make the state directory writable")
			disk = nil
		}
	}
	o := &Output{cfg: oc, w: w, log: l, enc: lineproto.NewEncoder(precisions[oc.Precision]), q: newQueue(oc.BufferLimit, disk, l)}
	o.q.diskErr = diskErr
	return o
}

func (oc OutputConfig) validate() error {
	if _, ok := precisions[oc.Precision]; !ok {
		return fmt.Errorf("output %s: precision %q: want ns, us, ms or s", oc.Name, oc.Precision)
	}
	if oc.BatchSize < 1 || oc.BufferLimit < oc.BatchSize {
		return fmt.Errorf("output %s: batch size %d and buffer limit %d: want 1 <= batch size <= buffer limit",
			oc.Name, oc.BatchSize, oc.BufferLimit)
	}
	if oc.FlushInterval <= 0 || oc.RetryMax <= 0 {
		return fmt.Errorf("output %s: flush interval and retry max must be positive", oc.Name)
	}
	if oc.QueueDir != "" && (oc.DiskLimit < minDiskLimit || oc.SyncInterval <= 0) {
		return fmt.Errorf("output %s: disk limit %d and sync interval %v: want at least %d bytes and more than 0",
			oc.Name, oc.DiskLimit, oc.SyncInterval, minDiskLimit)
	}
	return nil
}

type streamWriter struct{ w io.Writer }

func (s *streamWriter) write(_ context.Context, body []byte) error {
	if _, err := s.w.Write(body); err != nil {
		return &writeError{kind: errRetry, msg: err.Error()}
	}
	return nil
}

// add encodes points and queues them; it never blocks on the destination.
func (o *Output) add(points []metric.Point) {
	lines := make([][]byte, 0, len(points))
	o.encMu.Lock()
	for _, p := range points {
		line, skipped, err := o.enc.Encode(p)
		o.skippedFields.Add(uint64(skipped))
		if err != nil {
			o.invalid.Add(1)
			o.log.WithError(err).Debug("point dropped: cannot encode")
			continue
		}
		lines = append(lines, line)
	}
	o.encMu.Unlock()
	o.q.add(lines, o.cfg.BatchSize, time.Now())
}

// run sends until ctx is done, then makes one last attempt bounded by 5 s. With a disk
// queue it first scans what the queue held at start (while Add goes on), and syncs the
// queue every SyncInterval.
func (o *Output) run(ctx context.Context) {
	if d := o.q.disk; d != nil {
		var wg sync.WaitGroup
		defer func() {
			wg.Wait()
			if err := d.Close(); err != nil {
				o.log.WithError(err).Warn("disk queue: closing")
			}
		}()
		d.Recover()
		st := d.Stats()
		l := o.log.WithField("lines", st.Lines).WithField("bytes", st.Bytes)
		if st.Corrupt > 0 {
			l.WithField("corrupt_records", st.Corrupt).WithField("corrupt_bytes", st.CorruptBytes).
				Warn("disk queue: damaged records skipped (counted in corrupt); delivering the rest")
		} else if st.Lines > 0 {
			l.Info("disk queue: delivering what was queued before the start")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(o.cfg.SyncInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := d.Sync(); err != nil {
						o.log.WithError(err).Warn("disk queue: sync failed")
					}
				}
			}
		}()
	}
	retry := backoff.Backoff{Min: 250 * time.Millisecond, Max: o.cfg.RetryMax}
	var b *batch
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if b == nil {
			var wait time.Duration
			b, wait = o.q.next(o.cfg.BatchSize, o.cfg.FlushInterval, time.Now(), false)
			if b == nil {
				if wait > 0 {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					o.final(nil)
					return
				case <-o.q.notify:
				case <-timer.C:
				}
				timer.Stop()
				continue
			}
		}
		err := o.flush(ctx, b)
		if err == nil {
			retry.Reset()
			b = nil
			continue
		}
		wait := o.backoff(&retry, err)
		o.log.WithError(err).WithField("retry_in", wait.String()).WithField("buffered", o.q.stats().lines).
			Warn("write failed; will retry")
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			o.final(b)
			return
		case <-timer.C:
		}
	}
}

// final sends b and what else is ready for at most 5 s, at shutdown. What is not sent
// stays in the disk queue, if there is one.
func (o *Output) final(b *batch) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if b == nil {
			if b, _ = o.q.next(o.cfg.BatchSize, o.cfg.FlushInterval, time.Now(), true); b == nil {
				return
			}
		}
		if o.flush(ctx, b) != nil {
			return
		}
		b = nil
	}
}

// flush sends what is left of b. On success every line of it is finished with; on an
// error b keeps the lines not yet finished with, to be sent again.
func (o *Output) flush(ctx context.Context, b *batch) error {
	n, err := o.send(ctx, b.lines)
	b.lines = b.lines[n:]
	if err != nil {
		o.retries.Add(1)
		return err
	}
	o.q.done(b)
	return nil
}

// backoff is the server's Retry-After when it gave one (never more than 10 minutes),
// else the loop's next exponential delay (250 ms to RetryMax, jittered).
func (o *Output) backoff(retry *backoff.Backoff, err error) time.Duration {
	var we *writeError
	if errors.As(err, &we) && we.retryAfter > 0 {
		retry.Next() // an answer that says when still counts as a failure
		return min(we.retryAfter, 10*time.Minute)
	}
	return retry.Next()
}

// send writes lines and returns how many of them, from the first, are finished with:
// written, or rejected by the server and counted.
func (o *Output) send(ctx context.Context, lines [][]byte) (int, error) {
	err := o.w.write(ctx, bytes.Join(lines, nil))
	if err == nil {
		o.written.Add(uint64(len(lines)))
		return len(lines), nil
	}
	o.writeErrors.Add(1)
	var we *writeError
	if !errors.As(err, &we) {
		return 0, err
	}
	switch we.kind {
	case errPartial:
		dropped := min(we.dropped, len(lines))
		o.rejected.Add(uint64(dropped))
		o.written.Add(uint64(len(lines) - dropped))
		o.log.WithField("rejected", dropped).WithField("reason", we.msg).Warn("points rejected by the server")
		return len(lines), nil
	case errTooLarge, errRejected:
		if len(lines) == 1 {
			o.rejected.Add(1)
			o.log.WithField("reason", we.Error()).Warn("point rejected by the server")
			return 1, nil
		}
		h := len(lines) / 2
		n, err := o.send(ctx, lines[:h])
		if err != nil {
			return n, err
		}
		m, err := o.send(ctx, lines[h:])
		return n + m, err
	default:
		return 0, err
	}
}

// Stats are an output's counters.
type Stats struct {
	Written, Dropped, Rejected, Invalid, SkippedFields, Retries, WriteErrors uint64
	// Buffered is the lines not yet finished with, in memory and on disk.
	Buffered int
	// BufferedBytes is the size of the disk queue; Oldest the time the oldest line
	// still held was queued (zero if none).
	BufferedBytes int64
	Oldest        time.Time
	// Corrupt counts disk queue records found damaged and skipped; DroppedDiskFull the
	// lines deleted to make room on a full disk; DiskErrors the batches the disk refused
	// (kept in memory only). Disk says whether the output has a disk queue.
	Corrupt, DroppedDiskFull, DiskErrors uint64
	Disk                                 bool
}

// Stats returns the output's counters.
func (o *Output) Stats() Stats {
	qs := o.q.stats()
	return Stats{Written: o.written.Load(), Dropped: qs.dropped, Rejected: o.rejected.Load(),
		Invalid: o.invalid.Load(), SkippedFields: o.skippedFields.Load(), Retries: o.retries.Load(),
		WriteErrors: o.writeErrors.Load(), Buffered: qs.lines, BufferedBytes: qs.bytes, Oldest: qs.oldest,
		Corrupt: qs.corrupt, DroppedDiskFull: qs.droppedDisk, DiskErrors: qs.diskErrors, Disk: qs.disk}
}

// Shipper fans points out to its outputs.
type Shipper struct {
	outputs []*Output
}

// New returns a shipper for outputs.
func New(outputs ...*Output) *Shipper { return &Shipper{outputs: outputs} }

// Add queues points on every output. It never blocks on a destination.
func (s *Shipper) Add(points ...metric.Point) {
	for _, o := range s.outputs {
		o.add(points)
	}
}

// Run delivers until ctx is done, then flushes what it can and returns.
func (s *Shipper) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, o := range s.outputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.run(ctx)
		}()
	}
	wg.Wait()
}

// Points returns the shipper's own counters as points of measurement lookout_output, one
// per output.
func (s *Shipper) Points(now time.Time, tags map[string]string) []metric.Point {
	var out []metric.Point
	for _, o := range s.outputs {
		out = append(out, o.Points(now, tags)...)
	}
	return out
}

// Name is the output's name (its tag output in lookout_output).
func (o *Output) Name() string { return o.cfg.Name }

// Points returns the output's counters as a lookout_output point.
func (o *Output) Points(now time.Time, tags map[string]string) []metric.Point {
	st := o.Stats()
	t := map[string]string{"output": o.cfg.Name}
	for k, v := range tags {
		t[k] = v
	}
	return []metric.Point{metric.New("lookout_output", t, []metric.Field{
		{Key: "written", Value: st.Written},
		{Key: "dropped", Value: st.Dropped},
		{Key: "rejected", Value: st.Rejected},
		{Key: "invalid", Value: st.Invalid},
		{Key: "skipped_fields", Value: st.SkippedFields},
		{Key: "retries", Value: st.Retries},
		{Key: "write_errors", Value: st.WriteErrors},
		{Key: "buffered", Value: int64(st.Buffered)},
		{Key: "buffered_bytes", Value: st.BufferedBytes},
		{Key: "oldest_seconds", Value: oldestSeconds(st.Oldest, now)},
		{Key: "corrupt", Value: st.Corrupt},
		{Key: "dropped_disk_full", Value: st.DroppedDiskFull},
		{Key: "disk_errors", Value: st.DiskErrors},
		{Key: "disk", Value: st.Disk},
	}, now)}
}

var _ metric.Sink = (*Shipper)(nil)

// minDiskLimit is the smallest disk queue: a few segments of the smallest size.
const minDiskLimit = 1 << 20

func oldestSeconds(t, now time.Time) float64 {
	if t.IsZero() || t.After(now) {
		return 0
	}
	return now.Sub(t).Seconds()
}
