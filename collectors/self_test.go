package collectors

import (
	"context"
	"os"
	"reflect"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logrustest "github.com/sirupsen/logrus/hooks/test"

	"github.com/lookout-agent/lookout/metric"
)

// source returns one point named after it and records what it was asked.
type source struct {
	name string

	mu   sync.Mutex
	nows []time.Time
	tags []map[string]string
}

func (s *source) Points(now time.Time, tags map[string]string) []metric.Point {
	s.mu.Lock()
	s.nows = append(s.nows, now)
	s.tags = append(s.tags, tags)
	s.mu.Unlock()
	return []metric.Point{metric.New(s.name, tags, []metric.Field{{Key: "n", Value: int64(1)}}, now)}
}

func TestSelfReport(t *testing.T) {
	out := &sink{}
	host := "node-1"
	tags := func() map[string]string { return map[string]string{"host": host} }
	a, b := &source{name: "lookout_output"}, &source{name: "lookout_inventory"}
	s := NewSelf(out, time.Minute, "1.2.3", tags, Named{"output", a}, Named{"inventory", b})
	s.started = time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC)
	beats, pointsAtBeat := 0, 0
	s.Beat = func() {
		beats++
		out.mu.Lock()
		pointsAtBeat = len(out.points)
		out.mu.Unlock()
	}
	var observed []metric.Point
	s.Observe = func(p, _ []metric.Point) { observed = p }

	now := s.started.Add(90 * time.Second)
	s.report(now)
	got := out.take()
	if len(got) != 3 {
		t.Fatalf("report added %d points, want lookout_agent and one per source: %v", len(got), got)
	}
	agent := got[0]
	wantTags := []metric.Tag{{Key: "host", Value: "node-1"}, {Key: "version", Value: "1.2.3"}}
	if agent.Name != "lookout_agent" || !reflect.DeepEqual(agent.Tags, wantTags) || !agent.Time.Equal(now) {
		t.Errorf("agent point = %s", fmtPoint(agent))
	}
	var keys []string
	for _, f := range agent.Fields {
		keys = append(keys, f.Key)
	}
	if want := []string{"uptime_ns", "goroutines", "heap_alloc_bytes", "heap_live_bytes", "gc_cycles", "sys_bytes", "pid", "reports"}; !reflect.DeepEqual(keys, want) {
		t.Errorf("agent fields %v, want %v", keys, want)
	}
	if v := agent.Field("reports"); v != int64(1) {
		t.Errorf("reports = %#v at the first report, want 1", v)
	}
	if v := agent.Field("uptime_ns"); v != int64(90*time.Second) {
		t.Errorf("uptime_ns = %#v, want %d", v, int64(90*time.Second))
	}
	if v, ok := agent.Field("goroutines").(int64); !ok || v < 1 {
		t.Errorf("goroutines = %#v", agent.Field("goroutines"))
	}
	if v, ok := agent.Field("heap_alloc_bytes").(uint64); !ok || v == 0 {
		t.Errorf("heap_alloc_bytes = %#v", agent.Field("heap_alloc_bytes"))
	}
	runtime.GC() // at least one collection: its live heap is not 0
	if p := s.agentPoints(now, nil)[0]; p.Field("heap_live_bytes").(uint64) == 0 || p.Field("gc_cycles").(uint64) == 0 {
		t.Errorf("after a GC: heap_live_bytes = %#v, gc_cycles = %#v", p.Field("heap_live_bytes"), p.Field("gc_cycles"))
	}
	if v, ok := agent.Field("sys_bytes").(uint64); !ok || v == 0 {
		t.Errorf("sys_bytes = %#v", agent.Field("sys_bytes"))
	}
	if v := agent.Field("pid"); v != int64(os.Getpid()) {
		t.Errorf("pid = %#v, want %d", v, os.Getpid())
	}

	// The sources' points follow, in order, with the host tags (no version) and the time.
	if got[1].Name != "lookout_output" || got[2].Name != "lookout_inventory" {
		t.Errorf("source points %s, %s", got[1].Name, got[2].Name)
	}
	for _, src := range []*source{a, b} {
		if len(src.nows) != 1 || !src.nows[0].Equal(now) || !reflect.DeepEqual(src.tags[0], map[string]string{"host": "node-1"}) {
			t.Errorf("%s asked with %v %v", src.name, src.nows, src.tags)
		}
	}
	if len(observed) != 3 || observed[0].Name != "lookout_agent" {
		t.Errorf("Observe given %d points, want the 3 of the report", len(observed))
	}
	if beats != 1 || pointsAtBeat != 3 {
		t.Errorf("Beat called %d times, with %d points added before it; want once, after all 3", beats, pointsAtBeat)
	}

	// The tags are asked again at each report.
	host = "node-2"
	s.report(now.Add(time.Minute))
	got = out.take()
	if len(got) != 3 || got[0].Tag("host") != "node-2" || got[1].Tag("host") != "node-2" || beats != 2 {
		t.Errorf("second report: %d points, host %q, %d beats", len(got), got[0].Tag("host"), beats)
	}
	if v := got[0].Field("reports"); v != int64(2) {
		t.Errorf("reports = %#v at the second report, want 2", v)
	}

	// No Beat, no sources: still the agent's own point.
	bare := NewSelf(out, time.Minute, "dev", func() map[string]string { return nil })
	bare.report(now)
	if got := out.take(); len(got) != 1 || got[0].Name != "lookout_agent" || got[0].Tag("version") != "dev" {
		t.Errorf("bare report: %v", got)
	}
}

func TestSelfRunReportsUntilCancelled(t *testing.T) {
	out := &sink{}
	s := NewSelf(out, 5*time.Millisecond, "1.2.3", func() map[string]string { return nil })
	var mu sync.Mutex
	beats := 0
	s.Beat = func() { mu.Lock(); beats++; mu.Unlock() }
	count := func() int { mu.Lock(); defer mu.Unlock(); return beats }

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for count() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("timed out waiting for two reports")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := len(out.take()); got < count() {
		t.Errorf("%d points, want one per report", got)
	}
}

// slowSource takes at least d to give its points.
type slowSource struct{ d time.Duration }

func (s slowSource) Points(now time.Time, tags map[string]string) []metric.Point {
	time.Sleep(s.d) // the duration measured, not a wait for a condition
	return []metric.Point{metric.New("lookout_slow", tags, []metric.Field{{Key: "n", Value: int64(1)}}, now)}
}

type panicSource struct{}

func (panicSource) Points(time.Time, map[string]string) []metric.Point { panic("broken source") }

func TestSelfScrapePoints(t *testing.T) {
	out := &sink{}
	tags := func() map[string]string { return map[string]string{"engine_host": "node-1"} }
	const slow = 20 * time.Millisecond
	s := NewSelf(out, time.Minute, "1.2.3", tags, Named{"slow", slowSource{slow}}, Named{"broken", panicSource{}},
		Named{"inventory", &source{name: "lookout_inventory"}})
	logger, hook := logrustest.NewNullLogger()
	s.Log = logger
	var observed, scrape []metric.Point
	s.Observe = func(p, sc []metric.Point) { observed, scrape = p, sc }
	now := time.Now()
	s.report(now)

	// The broken source is left out; the report goes on with the others.
	shipped := out.take()
	var names []string
	for _, p := range shipped {
		names = append(names, p.Name)
	}
	if want := []string{"lookout_agent", "lookout_slow", "lookout_inventory"}; !reflect.DeepEqual(names, want) {
		t.Errorf("shipped %v, want %v (no scrape points, nothing from the broken source)", names, want)
	}
	if len(observed) != len(shipped) {
		t.Errorf("Observe given %d points, shipped %d", len(observed), len(shipped))
	}
	if len(hook.Entries) != 1 || hook.Entries[0].Data["source"] != "broken" || hook.Entries[0].Level != logrus.ErrorLevel {
		t.Errorf("log entries %v, want one error naming the broken source", hook.Entries)
	}

	want := map[string]bool{"agent": true, "slow": true, "broken": false, "inventory": true}
	if len(scrape) != len(want) {
		t.Fatalf("%d scrape points, want one per source and the agent's own: %v", len(scrape), scrape)
	}
	for _, p := range scrape {
		c := p.Tag("collector")
		ok, known := want[c]
		if p.Name != MeasurementScrape || !known || p.Tag("engine_host") != "node-1" || !p.Time.Equal(now) {
			t.Errorf("scrape point %s", fmtPoint(p))
			continue
		}
		if p.Field("success") != ok {
			t.Errorf("%s success = %v, want %v", c, p.Field("success"), ok)
		}
		d, isFloat := p.Field("duration_seconds").(float64)
		if !isFloat || d < 0 || (c == "slow" && d < slow.Seconds()) {
			t.Errorf("%s duration_seconds = %#v", c, p.Field("duration_seconds"))
		}
	}
}
