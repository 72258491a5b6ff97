package tracing

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/metric"
)

// ServiceName is the Jaeger service of the spans Lookout makes itself.
const ServiceName = "lookout"

// Sink takes batches of spans all or none and never blocks (the Exporter): false when it
// had no room.
type Sink interface {
	ExportBatches(batches []*jaeger.Batch) bool
}

// Probes makes a span of every check run: those the agent runs (StartCheck, for the probes
// scheduler) and Docker's own HEALTHCHECK runs, read from the health log (HandleChange,
// an inventory.Handler). Spans go to sink under the process "lookout".
type Probes struct {
	sink Sink
	proc *jaeger.Process
	made atomic.Uint64

	mu       sync.Mutex
	lastRuns map[string]time.Time // container ID -> start of the newest health log run made a span
}

// NewProbes returns a span maker; version is the agent's (a tag of the process). Each
// span names the node in its own host.name tag.
func NewProbes(sink Sink, version string) *Probes {
	return &Probes{sink: sink, lastRuns: map[string]time.Time{}, proc: &jaeger.Process{ServiceName: ServiceName,
		Tags: sortedTags(map[string]string{"lookout.version": version})}}
}

// SpanContext identifies a span: a 128-bit trace ID and a 64-bit span ID.
type SpanContext struct {
	TraceHigh, TraceLow, SpanID uint64
}

// NewSpanContext returns random IDs for a new root span.
func NewSpanContext() SpanContext {
	return SpanContext{TraceHigh: rand.Uint64(), TraceLow: rand.Uint64(), SpanID: rand.Uint64() | 1}
}

// Headers returns the propagation headers of a sampled span: W3C traceparent and
// Jaeger's uber-trace-id.
func (sc SpanContext) Headers() http.Header {
	return http.Header{
		"Traceparent":   {fmt.Sprintf("00-%016x%016x-%016x-01", sc.TraceHigh, sc.TraceLow, sc.SpanID)},
		"Uber-Trace-Id": {fmt.Sprintf("%016x%016x:%016x:0:1", sc.TraceHigh, sc.TraceLow, sc.SpanID)},
	}
}

// StartCheck is called before a check runs: it returns the context to probe with, which
// makes an HTTP check send the span's trace context, and the function to call with the
// result, which makes the span.
func (p *Probes) StartCheck(ctx context.Context, c *inventory.Container, eng inventory.Engine, chk labels.Check) (context.Context, func(checks.Result)) {
	sc := NewSpanContext()
	if chk.Type == labels.CheckHTTP {
		ctx = checks.WithRequestHeaders(ctx, sc.Headers())
	}
	return ctx, func(r checks.Result) { p.emit(sc, c, eng, r, "client") }
}

func (p *Probes) emit(sc SpanContext, c *inventory.Container, eng inventory.Engine, r checks.Result, kind string) {
	s := CheckSpan(sc, c, eng, r, kind)
	p.made.Add(1)
	p.sink.ExportBatches([]*jaeger.Batch{{Process: p.proc, Spans: []*jaeger.Span{s}}})
}

// CheckSpan is the span of one check run r against container c: operation "check <name>",
// the container's tags, the result, the HTTP status or exit code, error=true unless it
// succeeded.
func CheckSpan(sc SpanContext, c *inventory.Container, eng inventory.Engine, r checks.Result, kind string) *jaeger.Span {
	tags := ContainerTags(c, eng)
	tags["lookout.check"] = r.Check
	tags["lookout.check.type"] = r.Type
	tags["lookout.check.result"] = r.Result
	tags["lookout.check.reason"] = r.Reason
	tags["lookout.check.target"] = r.Target
	if kind != "" {
		tags["span.kind"] = kind
	}
	if r.Result != checks.Success && r.Output != "" {
		tags["lookout.check.output"] = checks.Truncate(r.Output, 1024)
	}
	jt := sortedTags(tags)
	if r.StatusCode > 0 {
		jt = append(jt, longTag("http.status_code", int64(r.StatusCode)))
	}
	if r.ExitCode != nil {
		jt = append(jt, longTag("process.exit.code", int64(*r.ExitCode)))
	}
	if r.Result != checks.Success {
		jt = append(jt, boolTag("error", true))
	}
	dur := max(r.Duration.Microseconds(), 1)
	return &jaeger.Span{
		TraceIdLow: int64(sc.TraceLow), TraceIdHigh: int64(sc.TraceHigh), SpanId: int64(sc.SpanID),
		OperationName: "check " + r.Check, Flags: 1,
		StartTime: r.Start.UnixMicro(), Duration: dur, Tags: jt,
	}
}

// ContainerTags are the tags that say which container a span is about or came from:
// OpenTelemetry's container.* and host.name, Lookout's docker.swarm.* for Swarm tasks,
// and the container's lookout.tags.*.
func ContainerTags(c *inventory.Container, eng inventory.Engine) map[string]string {
	t := map[string]string{
		"container.id":         c.ID,
		"container.name":       c.Name,
		"container.image.name": c.ImageName,
		"container.image.tag":  c.ImageVersion,
		"container.runtime":    "docker",
		"host.name":            eng.Host,
	}
	if c.Service != "" {
		t["docker.swarm.service.name"] = c.Service
		t["docker.swarm.stack.namespace"] = c.Stack
		t["docker.swarm.task.id"] = c.TaskID
		t["docker.swarm.task.slot"] = c.Slot
		t["docker.swarm.node.id"] = c.NodeID
	}
	for k, v := range c.Config.Tags {
		t[k] = v
	}
	return t
}

var _ inventory.Handler = (*Probes)(nil)

// HandleChange implements inventory.Handler: every HEALTHCHECK run in the health log not
// seen before becomes a span, from the run's start and end times.
func (p *Probes) HandleChange(_ context.Context, ch inventory.Change) {
	c := ch.Container
	if ch.Kind == inventory.Gone {
		p.mu.Lock()
		delete(p.lastRuns, c.ID)
		p.mu.Unlock()
		return
	}
	if !c.Monitored || c.State.Health == nil {
		return
	}
	p.mu.Lock()
	runs, last := checks.NewRuns(c.State.Health.Log, p.lastRuns[c.ID])
	p.lastRuns[c.ID] = last
	p.mu.Unlock()
	for _, run := range runs {
		r := checks.NativeResult(run)
		p.emit(NewSpanContext(), c, ch.Engine, r, "")
	}
}

// Points reports lookout_spans_probes: how many check spans were made.
func (p *Probes) Points(now time.Time, tags map[string]string) []metric.Point {
	return []metric.Point{metric.New("lookout_spans_probes", tags, []metric.Field{
		{Key: "spans", Value: p.made.Load()},
	}, now)}
}
