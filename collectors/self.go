package collectors

import (
	"context"
	"os"
	"runtime"
	"time"

	"github.com/lookout-agent/lookout/metric"
)

// Source is anything that reports its own counters as points.
type Source interface {
	Points(now time.Time, tags map[string]string) []metric.Point
}

// Self reports the agent's own counters every interval: lookout_agent (uptime, memory,
// goroutines) and the points of each source (outputs, inventory, …). After each report it
// calls Beat, which the agent uses to touch its heartbeat file.
type Self struct {
	sink     metric.Sink
	interval time.Duration
	tags     func() map[string]string
	sources  []Source
	started  time.Time
	version  string
	Beat     func()
	// Observe, if set, is given the points of every report (the /metrics endpoint).
	Observe func([]metric.Point)
}

// NewSelf returns a collector; tags is asked for the current host tags at each report.
func NewSelf(sink metric.Sink, interval time.Duration, version string, tags func() map[string]string, sources ...Source) *Self {
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

func (s *Self) report(now time.Time) {
	tags := s.tags()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	agentTags := metric.WithTag(tags, "version", s.version)
	points := []metric.Point{metric.New("lookout_agent", agentTags, []metric.Field{
		{Key: "uptime_ns", Value: now.Sub(s.started).Nanoseconds()},
		{Key: "goroutines", Value: int64(runtime.NumGoroutine())},
		{Key: "heap_alloc_bytes", Value: ms.HeapAlloc},
		{Key: "sys_bytes", Value: ms.Sys},
		{Key: "pid", Value: int64(os.Getpid())},
	}, now)}
	for _, src := range s.sources {
		points = append(points, src.Points(now, tags)...)
	}
	s.sink.Add(points...)
	if s.Observe != nil {
		s.Observe(points)
	}
	if s.Beat != nil {
		s.Beat()
	}
}
