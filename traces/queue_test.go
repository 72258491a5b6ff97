package traces

import (
	"context"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// recorder is an Exporter that keeps every request.
type recorder struct{ requests [][]*tracepb.ResourceSpans }

func (r *recorder) Export(_ context.Context, rss []*tracepb.ResourceSpans) (int, error) {
	r.requests = append(r.requests, rss)
	return 0, nil
}
func (r *recorder) Requests() (uint64, uint64) { return uint64(len(r.requests)), 0 }

func TestQueueTellsBinaryResourceAttributesApart(t *testing.T) {
	rec := &recorder{}
	q, err := NewQueue(QueueConfig{BatchSize: 10, Limit: 10, Interval: time.Hour}, rec)
	if err != nil {
		t.Fatal(err)
	}
	res := func(b byte) *tracepb.ResourceSpans {
		return &tracepb.ResourceSpans{Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			{Key: "k", Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{b}}}}}},
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "s"}}}}}
	}
	q.ExportSpans([]*tracepb.ResourceSpans{res(1), res(2), res(1)})
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.requests) != 1 || len(rec.requests[0]) != 2 || len(rec.requests[0][0].ScopeSpans[0].Spans) != 2 {
		t.Errorf("processes with other binary resource attributes share a resource: %v", rec.requests)
	}
}
