package collectors

import (
	"context"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/metric"
)

// Source is anything that reports its own counters as points.
type Source interface {
	Points(now time.Time, tags map[string]string) []metric.Point
}

// Named is a Source with the name its gathers are reported under
// (lookout_scrape_collector_*{collector="<Name>"} on /metrics): by convention its
// measurement without "lookout_", and "output:<name>" for an output.
type Named struct {
	Name string
	Source
}

// MeasurementScrape is the measurement of the points saying, for each source, how long its
// Points took at the last report and whether it gave them (as node_exporter's
// node_scrape_collector_*). They are for /metrics only: they are not shipped.
const MeasurementScrape = "lookout_scrape_collector"

// sourceFunc is a function as a Source.
type sourceFunc func(now time.Time, tags map[string]string) []metric.Point

func (f sourceFunc) Points(now time.Time, tags map[string]string) []metric.Point { return f(now, tags) }

// agentSource is the name of the agent's own lookout_agent point among the sources.
const agentSource = "agent"

// Self reports the agent's own counters every interval: lookout_agent (uptime, memory,
// goroutines) and the points of each source (outputs, inventory, …). Each source's Points
// is timed, and a panic in one is recovered: Observe is told both (lookout_scrape_collector
// on /metrics). After each report it calls Beat, which the agent uses to touch its
// heartbeat file.
type Self struct {
	sink     metric.Sink
	interval time.Duration
	tags     func() map[string]string
	sources  []Named
	started  time.Time
	version  string
	reports  int64 // reports made, the one being made included (lookout_agent's reports)
	Beat     func()
	// Observe, if set, is given the points of every report and the MeasurementScrape
	// points of that report (the /metrics endpoint).
	Observe func(points, scrape []metric.Point)
	// Log is told of a source that panicked (recovered: its points are missing from that
	// report and its lookout_scrape_collector_success is 0). Nil is logrus' standard logger.
	Log logrus.FieldLogger
}

// NewSelf returns a collector; tags is asked for the current host tags at each report.
func NewSelf(sink metric.Sink, interval time.Duration, version string, tags func() map[string]string, sources ...Named) *Self {
	return &Self{sink: sink, interval: interval, tags: tags, sources: sources, started: time.Now(), version: version}
}

// Run reports until ctx is done.
func (s *Self) Run(ctx context.Context) {
	t := time.NewTicker(s.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			s.report(now)
		}
	}
}

// agentPoints is the agent's own lookout_agent point (uptime, memory, goroutines, the
// heap the last garbage collection found live and the collections so far, and
// reports: 1, 2, 3, … in the points one process makes, so that a hole in it at the
// database shows points lost on the way).
func (s *Self) agentPoints(now time.Time, tags map[string]string) []metric.Point {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gc := []metrics.Sample{{Name: "/gc/heap/live:bytes"}, {Name: "/gc/cycles/total:gc-cycles"}}
	metrics.Read(gc)
	return []metric.Point{metric.New("lookout_agent", metric.WithTag(tags, "version", s.version), []metric.Field{
		{Key: "uptime_ns", Value: now.Sub(s.started).Nanoseconds()},
		{Key: "goroutines", Value: int64(runtime.NumGoroutine())},
		{Key: "heap_alloc_bytes", Value: ms.HeapAlloc},
		{Key: "heap_live_bytes", Value: gcUint(gc[0])},
		{Key: "gc_cycles", Value: gcUint(gc[1])},
		{Key: "sys_bytes", Value: ms.Sys},
		{Key: "pid", Value: int64(os.Getpid())},
		{Key: "reports", Value: s.reports},
	}, now)}
}

// gcUint is a runtime/metrics sample as a number, 0 when this Go does not have it.
func gcUint(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

func (s *Self) report(now time.Time) {
	s.reports++
	tags := s.tags()
	var points, scrape []metric.Point
	for _, src := range append([]Named{{agentSource, sourceFunc(s.agentPoints)}}, s.sources...) {
		start := time.Now()
		ps, ok := s.gather(src, now, tags)
		took := time.Since(start)
		points = append(points, ps...)
		scrape = append(scrape, metric.New(MeasurementScrape, metric.WithTag(tags, "collector", src.Name), []metric.Field{
			{Key: "duration_seconds", Value: took.Seconds()},
			{Key: "success", Value: ok},
		}, now))
	}
	s.sink.Add(points...)
	if s.Observe != nil {
		s.Observe(points, scrape)
	}
	if s.Beat != nil {
		s.Beat()
	}
}

// gather asks src for its points; a panic is recovered and logged, and gives none.
func (s *Self) gather(src Named, now time.Time, tags map[string]string) (points []metric.Point, ok bool) {
	defer func() {
		if v := recover(); v != nil {
			log := s.Log
			if log == nil {
				log = logrus.StandardLogger()
			}
			log.WithField("source", src.Name).WithField("panic", v).WithField("stack", string(debug.Stack())).
				Error("self counters: a source panicked; its points are left out of this report")
			points, ok = nil, false
		}
	}()
	return src.Points(now, tags), true
}
