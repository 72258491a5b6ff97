package traces

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// recorder is an Exporter that keeps every request.
type recorder struct {
	mu       sync.Mutex
	requests [][]*tracepb.ResourceSpans
}

func (r *recorder) Export(_ context.Context, rss []*tracepb.ResourceSpans) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, rss)
	return 0, nil
}

func (r *recorder) Requests() (uint64, uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return uint64(len(r.requests)), 0
}

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

// bigSpans is one resource with n spans, each with an attribute of size bytes.
func bigSpans(n, size int) []*tracepb.ResourceSpans {
	ss := &tracepb.ScopeSpans{}
	for range n {
		ss.Spans = append(ss.Spans, &tracepb.Span{Name: "big", Attributes: []*commonpb.KeyValue{StringAttr("payload", strings.Repeat("x", size))}})
	}
	return []*tracepb.ResourceSpans{{Resource: &resourcepb.Resource{}, ScopeSpans: []*tracepb.ScopeSpans{ss}}}
}

// The queue holds at most LimitBytes of spans (SpanBytes), however few spans that is:
// more are dropped and counted as for the span limit; sending makes room again.
func TestQueueLimitBytes(t *testing.T) {
	rec := &recorder{}
	q, err := NewQueue(QueueConfig{BatchSize: 500, Limit: 50000, LimitBytes: 1 << 20, Interval: time.Hour}, rec)
	if err != nil {
		t.Fatal(err)
	}
	one := SpanBytes(bigSpans(1, 60000)[0].ScopeSpans[0].Spans[0])
	if one < 60000 || one > 61000 {
		t.Fatalf("SpanBytes of a span with a 60,000-byte attribute: %d", one)
	}
	fit := (1 << 20) / one // 17
	taken := 0
	for range 100 {
		if q.ExportSpans(bigSpans(1, 60000)) {
			taken++
		}
	}
	s := q.Stats()
	if taken != fit || s.Queued != fit || s.QueuedBytes != fit*one || s.DroppedFull != uint64(100-fit) {
		t.Fatalf("100 spans of %d bytes into 1 MiB: %d taken, stats %+v; want %d taken, the rest dropped", one, taken, s, fit)
	}
	if p := q.Points(time.Now(), nil)[0]; p.Field("queued_bytes") != int64(fit*one) {
		t.Errorf("lookout_spans_export queued_bytes = %v, want %d", p.Field("queued_bytes"), fit*one)
	}
	for q.Flush(context.Background()) == nil {
	}
	if s := q.Stats(); s.Queued != 0 || s.QueuedBytes != 0 || s.Forwarded != uint64(fit) {
		t.Errorf("after sending: %+v", s)
	}
	if !q.ExportSpans(bigSpans(1, 60000)) {
		t.Error("a span refused after the queue was emptied")
	}
}

// A batch holds at most MaxBatchBytes of spans (a larger span goes alone), and a queue
// holding that much wakes the sender without waiting for BatchSize spans or the interval:
// only the last, smaller part waits (here until the shutdown's flush).
func TestQueueBatchBytes(t *testing.T) {
	rec := &recorder{}
	q, err := NewQueue(QueueConfig{BatchSize: 500, Limit: 50000, LimitBytes: 64 << 20, Interval: time.Hour}, rec)
	if err != nil {
		t.Fatal(err)
	}
	q.ExportSpans(bigSpans(1, MaxBatchBytes+10)) // alone, larger than a batch
	q.ExportSpans(bigSpans(200, 60000))          // 200 spans: about 12 MiB, three batches
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { q.Run(ctx); close(done) }()
	deadline := time.Now().Add(10 * time.Second)
	for q.Stats().QueuedBytes >= MaxBatchBytes && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if s := q.Stats(); s.QueuedBytes >= MaxBatchBytes || s.Forwarded < 100 {
		t.Errorf("stats %+v: want full batches (in bytes) sent at once, before the interval", s)
	}
	cancel()
	<-done
	if s := q.Stats(); s.Forwarded != 201 {
		t.Fatalf("stats %+v: want 201 spans sent without waiting for the interval", s)
	}
	for i, req := range rec.requests {
		n, size := 0, 0
		for _, rs := range req {
			for _, ss := range rs.ScopeSpans {
				for _, sp := range ss.Spans {
					n++
					size += SpanBytes(sp)
				}
			}
		}
		if size > MaxBatchBytes && n > 1 {
			t.Errorf("request %d: %d spans of %d bytes, above MaxBatchBytes %d", i, n, size, MaxBatchBytes)
		}
	}
	if len(rec.requests) < 4 {
		t.Errorf("%d requests for 4 MiB + 12 MiB of spans", len(rec.requests))
	}
}
