// Package shipper encodes points as InfluxDB line protocol and delivers them to one or
// more outputs (InfluxDB v1, InfluxDB v2, a writer such as stdout). Each output has its
// own bounded buffer, batches by size and by a linger interval, retries with backoff and
// jitter, honours Retry-After, splits a batch on 413, isolates and drops the points that
// a 400/422 rejects, and counts every point it drops.
package shipper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/metric"
)

// OutputConfig holds what every output has.
type OutputConfig struct {
	Name          string        // names the output in logs and in the agent's own metrics
	Precision     string        // ns, us, ms or s
	BatchSize     int           // lines per write
	FlushInterval time.Duration // how long a line may wait for its batch to fill
	BufferLimit   int           // lines held while the destination is unreachable
	RetryMax      time.Duration // longest wait between two tries
}

// DefaultOutputConfig returns the defaults: nanoseconds, 1000 lines a batch, 200 ms
// linger, 10000 lines of buffer, at most 30 s between retries.
func DefaultOutputConfig(name string) OutputConfig {
	return OutputConfig{Name: name, Precision: "ns", BatchSize: 1000, FlushInterval: 200 * time.Millisecond,
		BufferLimit: 10000, RetryMax: 30 * time.Second}
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
	enc   *Encoder
	buf   *buffer

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
	return &Output{cfg: oc, w: w, log: log.WithField("output", oc.Name),
		enc: NewEncoder(precisions[oc.Precision]), buf: newBuffer(oc.BufferLimit)}
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
	o.buf.add(lines...)
}

// run flushes until ctx is done, then makes one last attempt bounded by 5 s.
func (o *Output) run(ctx context.Context) {
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	lingering := false
	failures := 0
	for {
		select {
		case <-ctx.Done():
			final, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for o.buf.len() > 0 && o.flushOnce(final) == nil {
			}
			cancel()
			return
		case <-o.buf.notify:
			if o.buf.len() < o.cfg.BatchSize {
				if !lingering {
					linger.Reset(o.cfg.FlushInterval)
					lingering = true
				}
				continue
			}
		case <-linger.C:
			lingering = false
		}
		for o.buf.len() > 0 {
			err := o.flushOnce(ctx)
			if err == nil {
				failures = 0
				if o.buf.len() < o.cfg.BatchSize {
					break
				}
				continue
			}
			failures++
			wait := o.backoff(failures, err)
			o.log.WithError(err).WithField("retry_in", wait.String()).WithField("buffered", o.buf.len()).
				Warn("write failed; will retry")
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			if ctx.Err() != nil {
				break
			}
		}
		if o.buf.len() > 0 && !lingering {
			linger.Reset(o.cfg.FlushInterval)
			lingering = true
		}
	}
}

// backoff is exponential from 250 ms to RetryMax with ±20 % jitter, or the server's
// Retry-After when it gave one (never more than 10 minutes).
func (o *Output) backoff(failures int, err error) time.Duration {
	var we *writeError
	if errors.As(err, &we) && we.retryAfter > 0 {
		return min(we.retryAfter, 10*time.Minute)
	}
	d := 250 * time.Millisecond << min(failures-1, 16)
	d = min(d, o.cfg.RetryMax)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// flushOnce sends one batch from the head of the buffer.
func (o *Output) flushOnce(ctx context.Context) error {
	lines, seq := o.buf.batch(o.cfg.BatchSize)
	if len(lines) == 0 {
		return nil
	}
	done, err := o.send(ctx, lines)
	o.buf.accept(seq + uint64(done))
	if err != nil {
		o.retries.Add(1)
	}
	return err
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
	Buffered                                                                 int
}

// Stats returns the output's counters.
func (o *Output) Stats() Stats {
	return Stats{Written: o.written.Load(), Dropped: o.buf.droppedCount(), Rejected: o.rejected.Load(),
		Invalid: o.invalid.Load(), SkippedFields: o.skippedFields.Load(), Retries: o.retries.Load(),
		WriteErrors: o.writeErrors.Load(), Buffered: o.buf.len()}
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

// Points returns the shipper's own counters as points of measurement lookout_output.
func (s *Shipper) Points(now time.Time, tags map[string]string) []metric.Point {
	var out []metric.Point
	for _, o := range s.outputs {
		st := o.Stats()
		t := map[string]string{"output": o.cfg.Name}
		for k, v := range tags {
			t[k] = v
		}
		out = append(out, metric.New("lookout_output", t, []metric.Field{
			{Key: "written", Value: st.Written},
			{Key: "dropped", Value: st.Dropped},
			{Key: "rejected", Value: st.Rejected},
			{Key: "invalid", Value: st.Invalid},
			{Key: "skipped_fields", Value: st.SkippedFields},
			{Key: "retries", Value: st.Retries},
			{Key: "write_errors", Value: st.WriteErrors},
			{Key: "buffered", Value: int64(st.Buffered)},
		}, now))
	}
	return out
}

var _ metric.Sink = (*Shipper)(nil)
