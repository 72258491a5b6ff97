package shipper

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/metric"
)

// ---- helpers shared by the output tests ----

// eventually polls cond until it holds or timeout passes, then fails the test.
func eventually(t *testing.T, cond func() bool, timeout time.Duration, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

const waitLong = 10 * time.Second // generous: the race detector is slow

// settled reports whether o has written n lines and holds none. Written is counted
// before the lines leave the buffer, so waiting on Written alone is not enough before
// asserting on Buffered.
func settled(o *Output, n uint64) bool {
	st := o.Stats()
	return st.Written == n && st.Buffered == 0
}

func discardLogger() *logrus.Logger {
	l := logrus.New()
	l.SetOutput(io.Discard)
	l.SetLevel(logrus.DebugLevel) // exercise the log calls too
	return l
}

// fastConfig is a small, fast output configuration for tests.
func fastConfig() OutputConfig {
	return OutputConfig{Name: "test", Precision: "ns", BatchSize: 10, FlushInterval: 10 * time.Millisecond,
		BufferLimit: 1000, RetryMax: 50 * time.Millisecond}
}

var baseTime = time.Unix(1700000000, 0)

// pt returns the point numbered i of measurement name; wantLine is its encoding.
func pt(name string, i int) metric.Point {
	return metric.New(name, map[string]string{"host": "h1"}, []metric.Field{{Key: "v", Value: int64(i)}},
		baseTime.Add(time.Duration(i)))
}

func wantLine(name string, i int) string {
	return fmt.Sprintf("%s,host=h1 v=%di %d", name, i, baseTime.Add(time.Duration(i)).UnixNano())
}

func pts(name string, from, to int) []metric.Point {
	var out []metric.Point
	for i := from; i < to; i++ {
		out = append(out, pt(name, i))
	}
	return out
}

func wantLines(name string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, wantLine(name, i))
	}
	return out
}

// runShipper starts s.Run in a goroutine; stop cancels it and waits for Run to return.
// stop is also registered as a cleanup, so it runs before servers created earlier close.
func runShipper(t *testing.T, s *Shipper) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(waitLong):
				t.Errorf("Run did not return after its context was cancelled")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func equalLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("%s:\n got  %d lines %q\n want %d lines %q", what, len(got), got, len(want), want)
	}
}

// lockedWriter is an io.Writer safe to read while the shipper writes to it; it fails
// the first failN writes.
type lockedWriter struct {
	mu     sync.Mutex
	buf    bytes.Buffer
	failN  int
	writes int
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes++
	if w.writes <= w.failN {
		return 0, errors.New("disk full")
	}
	return w.buf.Write(p)
}

func (w *lockedWriter) lines() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return splitLines(w.buf.String())
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out
}

// ---- tests ----

func TestOutputBufferOverflowKeepsNewest(t *testing.T) {
	f := newFakeInflux(t)
	var up sync.Mutex // guards isUp
	isUp := false
	f.setHandler(func(*fakeReq) fakeResp {
		up.Lock()
		defer up.Unlock()
		if !isUp {
			return fakeResp{status: 503, body: `{"error":"down"}`}
		}
		return fakeResp{status: 204}
	})
	oc := fastConfig()
	oc.BatchSize, oc.BufferLimit = 5, 10
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	runShipper(t, s)

	s.Add(pts("m", 0, 5)...) // a full batch: flushed and failing
	eventually(t, func() bool { return f.count() >= 1 }, waitLong, "a first (failing) write")
	s.Add(pts("m", 5, 25)...)
	if st := o.Stats(); st.Dropped != 15 || st.Buffered != 10 {
		t.Fatalf("after overflow: dropped %d buffered %d, want 15 and 10", st.Dropped, st.Buffered)
	}
	// The batch in flight (0-4) counts toward the limit and is kept: of the 20 lines
	// added behind it, the newest 5 fit (memory only: no disk queue here).
	up.Lock()
	isUp = true
	up.Unlock()

	// The fake records lines before the shipper has read the answer: wait for both.
	eventually(t, func() bool { return len(f.accepted()) >= 10 && settled(o, 10) }, waitLong,
		"the buffered lines to arrive")
	equalLines(t, "delivered after recovery", f.accepted(), append(wantLines("m", 0, 5), wantLines("m", 20, 25)...))
	st := o.Stats()
	if st.Dropped != 15 || st.Written != 10 || st.Buffered != 0 || st.Rejected != 0 {
		t.Fatalf("stats = %+v, want dropped 15, written 10, buffered 0, rejected 0", st)
	}
	if st.Retries == 0 || st.WriteErrors == 0 {
		t.Fatalf("stats = %+v, want retries and write errors counted", st)
	}
}

func TestOutputNaNAndInfFieldsNotSent(t *testing.T) {
	f := newFakeInflux(t)
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	runShipper(t, s)

	ts := time.Unix(1700000000, 42)
	s.Add(
		metric.New("cpu", map[string]string{"host": "a"}, []metric.Field{
			{Key: "nan", Value: math.NaN()},
			{Key: "usage", Value: 1.5},
			{Key: "pinf", Value: math.Inf(1)},
			{Key: "ninf", Value: math.Inf(-1)},
		}, ts),
		metric.New("mem", nil, []metric.Field{{Key: "x", Value: math.NaN()}}, ts), // nothing left
		metric.New("disk", nil, []metric.Field{{Key: "free", Value: int64(3)}}, ts),
	)
	eventually(t, func() bool { return len(f.accepted()) >= 2 }, waitLong, "two lines")
	equalLines(t, "lines sent", f.accepted(), []string{
		"cpu,host=a usage=1.5 1700000000000000042",
		"disk free=3i 1700000000000000042",
	})
	eventually(t, func() bool { return settled(o, 2) }, waitLong, "written == 2")
	st := o.Stats()
	if st.SkippedFields != 4 || st.Invalid != 1 || st.Rejected != 0 || st.Dropped != 0 {
		t.Fatalf("stats = %+v, want skipped fields 4 (3 on cpu, 1 on mem), invalid 1", st)
	}
	for _, r := range f.writes() {
		if strings.Contains(r.body, "mem") || strings.Contains(strings.ToLower(r.body), "nan") ||
			strings.Contains(strings.ToLower(r.body), "inf") {
			t.Fatalf("body carries a NaN/Inf field or the invalid point: %q", r.body)
		}
	}
}

func TestOutputShutdownFlushesBuffered(t *testing.T) {
	f := newFakeInflux(t)
	oc := fastConfig()
	oc.BatchSize, oc.FlushInterval = 100, time.Hour // nothing is sent before shutdown
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	stop := runShipper(t, s)

	s.Add(pts("m", 0, 7)...)
	if n := f.count(); n != 0 {
		t.Fatalf("%d writes before shutdown, want 0 (batch not full, linger 1h)", n)
	}
	stop()
	equalLines(t, "flushed on shutdown", f.accepted(), wantLines("m", 0, 7))
	if n := len(f.writes()); n != 1 {
		t.Fatalf("%d write requests, want 1", n)
	}
	if st := o.Stats(); st.Written != 7 || st.Buffered != 0 {
		t.Fatalf("stats = %+v, want written 7, buffered 0", st)
	}
}

func TestOutputShutdownWithServerDownReturns(t *testing.T) {
	f := newFakeInflux(t)
	f.setHandler(func(*fakeReq) fakeResp { return fakeResp{status: 503} })
	oc := fastConfig()
	oc.BatchSize, oc.FlushInterval = 100, time.Hour
	o := newInfluxOutput(t, oc, f.v1Config())
	s := New(o)
	stop := runShipper(t, s)

	s.Add(pts("m", 0, 3)...)
	start := time.Now()
	stop()
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Run took %v to return with the server down", d)
	}
	if n := len(f.writes()); n != 1 {
		t.Fatalf("%d final write attempts, want 1", n)
	}
	if st := o.Stats(); st.Buffered != 3 || st.Written != 0 || st.WriteErrors != 1 {
		t.Fatalf("stats = %+v, want buffered 3, written 0, write errors 1", st)
	}
}

func TestOutputShutdownDuringBackoffFlushesOnRecovery(t *testing.T) {
	f := newFakeInflux(t)
	f.enqueue(fakeResp{status: 503, header: map[string]string{"Retry-After": "600"}})
	o := newInfluxOutput(t, fastConfig(), f.v1Config())
	s := New(o)
	stop := runShipper(t, s)

	s.Add(pts("m", 0, 3)...)
	eventually(t, func() bool { return f.count() >= 1 }, waitLong, "the first write")
	// The output now waits 10 minutes; cancelling must end the wait and flush once more.
	start := time.Now()
	stop()
	if d := time.Since(start); d > 4*time.Second {
		t.Fatalf("Run took %v to return while backing off", d)
	}
	equalLines(t, "flushed on shutdown", f.accepted(), wantLines("m", 0, 3))
}

func TestWriterOutputWritesLines(t *testing.T) {
	var w lockedWriter
	oc := fastConfig()
	oc.Precision = "s"
	o, err := NewWriterOutput(oc, &w, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := New(o)
	runShipper(t, s)
	s.Add(metric.New("m", nil, []metric.Field{{Key: "a", Value: true}, {Key: "s", Value: "x y"}}, time.Unix(1700000000, 999)))
	eventually(t, func() bool { return len(w.lines()) == 1 }, waitLong, "one line")
	equalLines(t, "written", w.lines(), []string{`m a=true,s="x y" 1700000000`})
}

func TestWriterOutputRetriesFailedWrites(t *testing.T) {
	w := lockedWriter{failN: 2}
	o, err := NewWriterOutput(fastConfig(), &w, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 4)...)
	eventually(t, func() bool { return settled(o, 4) }, waitLong, "written == 4")
	equalLines(t, "written", w.lines(), wantLines("m", 0, 4))
	if st := o.Stats(); st.Retries != 2 || st.WriteErrors != 2 || st.Buffered != 0 {
		t.Fatalf("stats = %+v, want retries 2, write errors 2, buffered 0", st)
	}
}

func TestShipperFansOutToEveryOutput(t *testing.T) {
	f := newFakeInflux(t)
	var w lockedWriter
	oi := newInfluxOutput(t, fastConfig(), f.v1Config())
	oc := fastConfig()
	oc.Name = "stdout"
	ow, err := NewWriterOutput(oc, &w, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := New(oi, ow)
	runShipper(t, s)
	s.Add(pts("m", 0, 25)...) // more than one batch
	eventually(t, func() bool { return len(f.accepted()) == 25 && len(w.lines()) == 25 }, waitLong, "25 lines on each output")
	equalLines(t, "influx", f.accepted(), wantLines("m", 0, 25))
	equalLines(t, "writer", w.lines(), wantLines("m", 0, 25))
	for _, r := range f.writes() {
		if len(r.lines) > 10 {
			t.Fatalf("a write carried %d lines, batch size is 10", len(r.lines))
		}
	}
}

func TestShipperPointsReportCounters(t *testing.T) {
	w := lockedWriter{failN: 1}
	oc := fastConfig()
	oc.Name = "out1"
	o, err := NewWriterOutput(oc, &w, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	s := New(o)
	runShipper(t, s)
	s.Add(pts("m", 0, 3)...)
	s.Add(metric.New("bad", nil, []metric.Field{{Key: "x", Value: math.Inf(1)}}, baseTime))
	eventually(t, func() bool { return settled(o, 3) }, waitLong, "written == 3")

	now := time.Unix(1800000000, 0)
	ps := s.Points(now, map[string]string{"agent": "a1"})
	if len(ps) != 1 {
		t.Fatalf("%d points, want 1", len(ps))
	}
	p := ps[0]
	if p.Name != "lookout_output" || p.Tag("output") != "out1" || p.Tag("agent") != "a1" || !p.Time.Equal(now) {
		t.Fatalf("point = %+v", p)
	}
	want := map[string]any{"written": uint64(3), "invalid": uint64(1), "skipped_fields": uint64(1),
		"retries": uint64(1), "write_errors": uint64(1), "dropped": uint64(0), "rejected": uint64(0),
		"buffered": int64(0)}
	for k, v := range want {
		if got := p.Field(k); got != v {
			t.Errorf("field %s = %#v, want %#v", k, got, v)
		}
	}
}

func TestOutputConfigValidation(t *testing.T) {
	ok := fastConfig()
	mod := func(f func(*OutputConfig)) OutputConfig { c := ok; f(&c); return c }
	bad := map[string]OutputConfig{
		"precision":           mod(func(c *OutputConfig) { c.Precision = "n" }),
		"empty precision":     mod(func(c *OutputConfig) { c.Precision = "" }),
		"batch size 0":        mod(func(c *OutputConfig) { c.BatchSize = 0 }),
		"buffer < batch":      mod(func(c *OutputConfig) { c.BufferLimit = c.BatchSize - 1 }),
		"flush interval 0":    mod(func(c *OutputConfig) { c.FlushInterval = 0 }),
		"negative retry max":  mod(func(c *OutputConfig) { c.RetryMax = -time.Second }),
		"zero retry max":      mod(func(c *OutputConfig) { c.RetryMax = 0 }),
		"negative batch size": mod(func(c *OutputConfig) { c.BatchSize = -1 }),
	}
	for name, c := range bad {
		if _, err := NewWriterOutput(c, io.Discard, discardLogger()); err == nil {
			t.Errorf("%s: NewWriterOutput accepted %+v", name, c)
		}
		if _, err := NewInfluxOutput(c, InfluxConfig{URL: "http://localhost:8086", Version: 1, Database: "db"}, discardLogger()); err == nil {
			t.Errorf("%s: NewInfluxOutput accepted %+v", name, c)
		}
	}
	if _, err := NewWriterOutput(ok, io.Discard, discardLogger()); err != nil {
		t.Errorf("valid config rejected: %v", err)
	}
	if _, err := NewWriterOutput(DefaultOutputConfig("d"), io.Discard, discardLogger()); err != nil {
		t.Errorf("default config rejected: %v", err)
	}
}

func TestInfluxConfigValidation(t *testing.T) {
	bad := []InfluxConfig{
		{URL: "localhost:8086", Version: 1},
		{URL: "ftp://host:21", Version: 1},
		{URL: "http://", Version: 1},
		{URL: "://x", Version: 1},
		{URL: "http://localhost:8086", Version: 3},
		{URL: "http://localhost:8086", Version: 0},
	}
	for _, ic := range bad {
		if _, err := NewInfluxOutput(fastConfig(), ic, discardLogger()); err == nil {
			t.Errorf("NewInfluxOutput accepted %+v", ic)
		}
	}
	for _, ic := range []InfluxConfig{
		{URL: "http://localhost:8086", Version: 1, Database: "db"},
		{URL: "https://influx.example.com/prefix/", Version: 2, Org: "o", Bucket: "b"},
	} {
		if _, err := NewInfluxOutput(fastConfig(), ic, discardLogger()); err != nil {
			t.Errorf("NewInfluxOutput(%+v): %v", ic, err)
		}
	}
}
