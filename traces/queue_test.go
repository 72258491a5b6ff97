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

// Batches of one shared resource (its key remembered), of an equal resource and of
// another resource: the first two go together, the third apart, also once the shared
// resource's key has left the queue's memory.
func TestQueueGroupsASharedResource(t *testing.T) {
	rec := &recorder{}
	q, err := NewQueue(QueueConfig{BatchSize: 100, Limit: 100, Interval: time.Hour}, rec)
	if err != nil {
		t.Fatal(err)
	}
	res := func(v string) *resourcepb.Resource {
		return &resourcepb.Resource{Attributes: []*commonpb.KeyValue{StringAttr("service.name", v)}}
	}
	batch := func(r *resourcepb.Resource) []*tracepb.ResourceSpans {
		return []*tracepb.ResourceSpans{{Resource: r, ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "s"}}}}}}
	}
	shared := res("a")
	q.ExportSpans(batch(shared))
	q.ExportSpans(batch(res("b")))
	q.ExportSpans(batch(shared))
	q.ExportSpans(batch(res("a")))
	for i := range 20 { // more resources than the queue remembers keys of
		q.ExportSpans(batch(res(string(rune('c' + i)))))
	}
	q.ExportSpans(batch(shared))
	if err := q.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(rec.requests) != 1 || len(rec.requests[0]) != 22 || len(rec.requests[0][0].ScopeSpans[0].Spans) != 4 ||
		len(rec.requests[0][1].ScopeSpans[0].Spans) != 1 {
		t.Errorf("resources of the request: %d, want 22 (a with 4 spans, b with 1)", len(rec.requests[0]))
	}
}
