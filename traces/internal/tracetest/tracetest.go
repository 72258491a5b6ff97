// Package tracetest has what the span packages' tests share: a recording sink, a test
// container and readers of the span model.
package tracetest

import (
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
)

// Sink keeps what it is given; Full makes it refuse.
type Sink struct {
	mu   sync.Mutex
	rss  []*tracepb.ResourceSpans
	Full bool
}

// ExportSpans implements traces.Sink.
func (s *Sink) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Full {
		return false
	}
	s.rss = append(s.rss, rss...)
	return true
}

// SetFull makes the sink refuse (or take again).
func (s *Sink) SetFull(full bool) {
	s.mu.Lock()
	s.Full = full
	s.mu.Unlock()
}

// Resources returns what the sink took, one ResourceSpans per resource given.
func (s *Sink) Resources() []*tracepb.ResourceSpans {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*tracepb.ResourceSpans(nil), s.rss...)
}

// Spans returns every span the sink took, in order.
func (s *Sink) Spans() []*tracepb.Span {
	var out []*tracepb.Span
	for _, rs := range s.Resources() {
		for _, ss := range rs.ScopeSpans {
			out = append(out, ss.Spans...)
		}
	}
	return out
}

// Container is a Swarm task on two networks with a lookout.tags label.
func Container() *inventory.Container {
	return &inventory.Container{ID: "c0ffee", Name: "api-1", ImageName: "example/api", ImageVersion: "1.2",
		Service: "shop_api", Stack: "shop", Slot: "1", TaskID: "task1", NodeID: "node1", Monitored: true,
		Networks: map[string]string{"bridge": "172.17.0.5", "shop_net": "10.0.1.7"}, BridgeIP: "172.18.0.4",
		Config: labels.Config{Tags: map[string]string{"team": "payments"}}}
}

// ResourceTags returns the resource's string attributes but service.name (a process's
// tags, as Jaeger shows them); a key given twice reads DUPLICATE.
func ResourceTags(rs *tracepb.ResourceSpans) map[string]string {
	m := map[string]string{}
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == "service.name" {
			continue
		}
		if _, dup := m[kv.Key]; dup {
			m[kv.Key] = "DUPLICATE"
			continue
		}
		if v, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_StringValue); ok {
			m[kv.Key] = v.StringValue
		}
	}
	return m
}

// ServiceName is the resource's service.name.
func ServiceName(rs *tracepb.ResourceSpans) string {
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.Key == "service.name" {
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// KV is an attribute.
func KV(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}

// String is a string value.
func String(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

// IDs of Request's spans.
var (
	TraceID = []byte{0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 2}
	RootID  = []byte{0, 0, 0, 0, 0, 0, 0, 0x0a}
	ChildID = []byte{0xff, 0, 0, 0, 0, 0, 0, 0x0b}
)

// Request is what an SDK exports: a service with a server span and a client child
// that failed, with attributes of every type and an event.
func Request() *collectorpb.ExportTraceServiceRequest {
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			KV("service.name", String("orders")), KV("deployment.environment", String("prod")), KV("container.name", String("spoofed")),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "orders/db", Version: "0.1"},
			Spans: []*tracepb.Span{
				{TraceId: TraceID, SpanId: RootID, Name: "GET /orders", Kind: tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: 1_700_000_000_123_456_789, EndTimeUnixNano: 1_700_000_000_125_456_789,
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}},
				{TraceId: TraceID, SpanId: ChildID, ParentSpanId: RootID, Name: "SELECT", Kind: tracepb.Span_SPAN_KIND_CLIENT,
					StartTimeUnixNano: 1_700_000_000_124_000_000, EndTimeUnixNano: 1_700_000_000_124_500_000,
					TraceState: "vendor=x",
					Attributes: []*commonpb.KeyValue{
						KV("db.system", String("postgresql")),
						KV("db.rows", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -3}}),
						KV("db.cached", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}),
						KV("db.ratio", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.5}}),
						KV("db.raw", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2}}}),
						KV("db.hosts", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
							Values: []*commonpb.AnyValue{String("a"), {Value: &commonpb.AnyValue_IntValue{IntValue: 2}}}}}}),
						KV("db.opts", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
							Values: []*commonpb.KeyValue{KV("ssl", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: false}})}}}}),
						{Key: "no.value"},
					},
					Events: []*tracepb.Span_Event{{TimeUnixNano: 1_700_000_000_124_100_000, Name: "exception",
						Attributes: []*commonpb.KeyValue{KV("exception.message", String("row not found"))}}},
					Links:  []*tracepb.Span_Link{{TraceId: []byte{15: 9}, SpanId: []byte{7: 7}}},
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "row not found"}},
				// Invalid IDs: skipped and counted.
				{TraceId: []byte{1, 2, 3}, SpanId: RootID, Name: "short trace id"},
				{TraceId: TraceID, SpanId: make([]byte, 8), Name: "zero span id"},
			},
		}},
	}}}
}

// Eventually polls cond until it holds, for 15 seconds at most.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}
