// Package checkspans makes a span of every check run: those the agent runs and Docker's
// own HEALTHCHECK runs. It knows nothing of the checks package: cmd/agent turns a check's
// result into a Run and the container into its tags (traces.ContainerTags).
package checkspans

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync/atomic"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/traces"
)

// ServiceName is the service of the spans Lookout makes itself.
const ServiceName = "lookout"

// Run is one check run, as a span tells it.
type Run struct {
	Check, Type, Result, Reason, Target string
	Output                              string // kept only when the run failed
	Failed                              bool
	StatusCode                          int  // an HTTP check's status; 0 for none
	ExitCode                            *int // an exec check's or HEALTHCHECK's exit code
	Start                               time.Time
	Duration                            time.Duration
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

// Maker hands the span of each run to the sink under the service "lookout".
type Maker struct {
	sink     traces.Sink
	resource *resourcepb.Resource
	made     atomic.Uint64
}

// New returns a span maker; version is the agent's (a resource attribute).
func New(sink traces.Sink, version string) *Maker {
	return &Maker{sink: sink, resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
		traces.StringAttr("service.name", ServiceName), traces.StringAttr("lookout.version", version)}}}
}

// Emit makes the span of run r, with the tags of the container it is about.
func (m *Maker) Emit(sc SpanContext, tags map[string]string, r Run, kind tracepb.Span_SpanKind) {
	s := Span(sc, tags, r, kind)
	m.made.Add(1)
	m.sink.ExportSpans([]*tracepb.ResourceSpans{{Resource: m.resource, ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{s}}}}})
}

// Span is the span of one check run r against the container of tags: name "check
// <name>", the container's tags, the result, the HTTP status or exit code, the error
// status unless it succeeded.
func Span(sc SpanContext, tags map[string]string, r Run, kind tracepb.Span_SpanKind) *tracepb.Span {
	t := make(map[string]string, len(tags)+6)
	for k, v := range tags {
		t[k] = v
	}
	t["lookout.check"] = r.Check
	t["lookout.check.type"] = r.Type
	t["lookout.check.result"] = r.Result
	t["lookout.check.reason"] = r.Reason
	t["lookout.check.target"] = r.Target
	if r.Failed && r.Output != "" {
		t["lookout.check.output"] = r.Output
	}
	attrs := traces.SortedAttrs(t)
	if r.StatusCode > 0 {
		attrs = append(attrs, traces.IntAttr("http.status_code", int64(r.StatusCode)))
	}
	if r.ExitCode != nil {
		attrs = append(attrs, traces.IntAttr("process.exit.code", int64(*r.ExitCode)))
	}
	trace, id := make([]byte, 16), make([]byte, 8)
	binary.BigEndian.PutUint64(trace[:8], sc.TraceHigh)
	binary.BigEndian.PutUint64(trace[8:], sc.TraceLow)
	binary.BigEndian.PutUint64(id, sc.SpanID)
	start := uint64(r.Start.UnixMicro()) * 1000
	s := &tracepb.Span{TraceId: trace, SpanId: id, Name: "check " + r.Check, Kind: kind, Flags: 1,
		StartTimeUnixNano: start, EndTimeUnixNano: start + uint64(max(r.Duration.Microseconds(), 1))*1000,
		Attributes: attrs}
	if r.Failed {
		s.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
	}
	return s
}

// Points reports lookout_spans_probes: how many check spans were made.
func (m *Maker) Points(now time.Time, tags map[string]string) []metric.Point {
	return []metric.Point{metric.New("lookout_spans_probes", tags, []metric.Field{
		{Key: "spans", Value: m.made.Load()},
	}, now)}
}
