// Package execd runs Lookout's inputs under Telegraf's inputs.execd with signal = "STDIN":
// on each line of standard input every input gathers once, through a telegraf.Accumulator
// that writes InfluxDB line protocol to standard output, flushed at the end of the gather.
// Errors go to standard error, one line each, which Telegraf logs.
//
// It implements the root github.com/influxdata/telegraf interfaces (Input, Accumulator),
// which import nothing but the standard library, and not plugins/common/shim, which would
// add about 230 packages to the binary.
package execd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
	"github.com/influxdata/telegraf"

	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metric/lineproto"
)

// Run gathers every input once per line read from in, until in ends or ctx is done.
func Run(ctx context.Context, in io.Reader, out, errs io.Writer, inputs ...telegraf.Input) error {
	acc := NewAccumulator(out, errs)
	lines := make(chan struct{})
	readErr := make(chan error, 1)
	go func() { // ends when in ends; the caller owns in (os.Stdin is closed by Telegraf)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			select {
			case lines <- struct{}{}:
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case _, ok := <-lines:
			if !ok {
				return <-readErr
			}
			for _, in := range inputs {
				if err := in.Gather(acc); err != nil {
					acc.AddError(err)
				}
			}
			if err := acc.Flush(); err != nil {
				return fmt.Errorf("writing to standard output: %w", err)
			}
		}
	}
}

// Accumulator writes what it is given as line protocol. Points line protocol cannot carry
// are left out and reported on errs (Telegraf logs what a plugin writes there).
type Accumulator struct {
	mu   sync.Mutex
	enc  *lineproto.Encoder
	w    *bufio.Writer
	errs io.Writer
}

// NewAccumulator returns an accumulator writing line protocol (nanoseconds) to out.
func NewAccumulator(out, errs io.Writer) *Accumulator {
	return &Accumulator{enc: lineproto.NewEncoder(lineprotocol.Nanosecond), w: bufio.NewWriter(out), errs: errs}
}

var _ telegraf.Accumulator = (*Accumulator)(nil)

// Flush writes out what was added so far.
func (a *Accumulator) Flush() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.w.Flush()
}

func (a *Accumulator) add(name string, fields map[string]any, tags map[string]string, t []time.Time) {
	ts := time.Now()
	if len(t) > 0 {
		ts = t[0]
	}
	fl := make([]metric.Field, 0, len(fields))
	for k, v := range fields {
		switch x := v.(type) {
		case int:
			v = int64(x)
		case int32:
			v = int64(x)
		case uint32:
			v = uint64(x)
		case float32:
			v = float64(x)
		}
		fl = append(fl, metric.Field{Key: k, Value: v})
	}
	sort.Slice(fl, func(i, j int) bool { return fl[i].Key < fl[j].Key })
	line, _, err := a.enc.Encode(metric.New(name, tags, fl, ts))
	if err != nil {
		a.AddError(fmt.Errorf("point %s left out: %w", name, err))
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	_, _ = a.w.Write(line)
}

// AddFields implements telegraf.Accumulator.
func (a *Accumulator) AddFields(m string, f map[string]any, tags map[string]string, t ...time.Time) {
	a.add(m, f, tags, t)
}

// AddGauge implements telegraf.Accumulator.
func (a *Accumulator) AddGauge(m string, f map[string]any, tags map[string]string, t ...time.Time) {
	a.add(m, f, tags, t)
}

// AddCounter implements telegraf.Accumulator.
func (a *Accumulator) AddCounter(m string, f map[string]any, tags map[string]string, t ...time.Time) {
	a.add(m, f, tags, t)
}

// AddSummary implements telegraf.Accumulator.
func (a *Accumulator) AddSummary(m string, f map[string]any, tags map[string]string, t ...time.Time) {
	a.add(m, f, tags, t)
}

// AddHistogram implements telegraf.Accumulator.
func (a *Accumulator) AddHistogram(m string, f map[string]any, tags map[string]string, t ...time.Time) {
	a.add(m, f, tags, t)
}

// AddMetric implements telegraf.Accumulator.
func (a *Accumulator) AddMetric(m telegraf.Metric) {
	a.add(m.Name(), m.Fields(), m.Tags(), []time.Time{m.Time()})
}

// SetPrecision implements telegraf.Accumulator; timestamps are always nanoseconds.
func (a *Accumulator) SetPrecision(time.Duration) {}

// AddError implements telegraf.Accumulator: one line on standard error.
func (a *Accumulator) AddError(err error) {
	if err != nil {
		fmt.Fprintf(a.errs, "lookout execd: %v\n", err)
	}
}

// WithTracking implements telegraf.Accumulator. A metric counts as delivered once it is
// written to standard output.
func (a *Accumulator) WithTracking(maxTracked int) telegraf.TrackingAccumulator {
	return &tracking{Accumulator: a, delivered: make(chan telegraf.DeliveryInfo, maxTracked)}
}

type tracking struct {
	*Accumulator
	next      atomic.Uint64
	delivered chan telegraf.DeliveryInfo
}

type delivery telegraf.TrackingID

func (d delivery) ID() telegraf.TrackingID { return telegraf.TrackingID(d) }
func (delivery) Delivered() bool           { return true }

func (t *tracking) AddTrackingMetric(m telegraf.Metric) telegraf.TrackingID {
	return t.AddTrackingMetricGroup([]telegraf.Metric{m})
}

func (t *tracking) AddTrackingMetricGroup(group []telegraf.Metric) telegraf.TrackingID {
	for _, m := range group {
		t.AddMetric(m)
	}
	id := telegraf.TrackingID(t.next.Add(1))
	select {
	case t.delivered <- delivery(id):
	default: // more in flight than maxTracked: the caller does not read Delivered
	}
	return id
}

func (t *tracking) Delivered() <-chan telegraf.DeliveryInfo { return t.delivered }
