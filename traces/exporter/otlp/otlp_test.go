package otlp

import (
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// export queues spans of one service (the tests' shorthand for ExportSpans).
func export(q *traces.Queue, service string, spans ...*tracepb.Span) bool {
	return q.ExportSpans([]*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{traces.StringAttr("service.name", service)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}})
}

func span(trace, id byte) *tracepb.Span {
	return &tracepb.Span{TraceId: []byte{15: trace}, SpanId: []byte{7: id}}
}

func newQueue(t *testing.T, url string, cfg traces.QueueConfig) *traces.Queue {
	t.Helper()
	exp, err := New(traces.HTTPConfig{Endpoint: url})
	if err != nil {
		t.Fatal(err)
	}
	q, err := traces.NewQueue(cfg, exp)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

var eventually = tracetest.Eventually

// otlpCollector is an OTLP/HTTP endpoint that decodes requests with the real
// ExportTraceServiceRequest type and answers with the real response type.
type otlpCollector struct {
	mu       sync.Mutex
	requests []*collectorpb.ExportTraceServiceRequest
	reject   int64 // spans to reject per request (partial success)
	status   int   // answer this status when not 0
}

func (c *otlpCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != 0 {
		w.WriteHeader(c.status)
		return
	}
	if r.URL.Path != "/v1/traces" || r.Header.Get("Content-Type") != "application/x-protobuf" || r.Header.Get("Content-Encoding") != "gzip" {
		http.Error(w, "bad request line or headers", http.StatusBadRequest)
		return
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, _ := io.ReadAll(zr)
	req := &collectorpb.ExportTraceServiceRequest{}
	if err := proto.Unmarshal(raw, req); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.requests = append(c.requests, req)
	resp := &collectorpb.ExportTraceServiceResponse{}
	if c.reject > 0 {
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: c.reject, ErrorMessage: "too old"}
	}
	out, _ := proto.Marshal(resp)
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func TestExporterOTLPOneRequestForEveryProcess(t *testing.T) {
	c := &otlpCollector{reject: 1}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e := newQueue(t, srv.URL+"/v1/traces", traces.QueueConfig{BatchSize: 4, Limit: 100, Interval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	export(e, "a", span(1, 1), span(1, 2))
	export(e, "b", span(2, 3), span(2, 4))
	eventually(t, "a request", func() bool { return e.Stats().Requests == 1 && e.Stats().Queued == 0 })
	cancel()
	<-done
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.requests) != 1 || len(c.requests[0].ResourceSpans) != 2 {
		t.Fatalf("requests %v, want one with two resources", c.requests)
	}
	for i, svc := range []string{"a", "b"} {
		rs := c.requests[0].ResourceSpans[i]
		if attrMap(rs.Resource.Attributes)["service.name"].GetStringValue() != svc || len(rs.ScopeSpans) != 1 || len(rs.ScopeSpans[0].Spans) != 2 {
			t.Errorf("resource %d: %v", i, rs)
		}
	}
	if s := e.Stats(); s.Forwarded != 3 || s.DroppedSend != 1 {
		t.Errorf("forwarded %d, dropped %d: want 3 and the 1 the partial success rejected", s.Forwarded, s.DroppedSend)
	}
}

func TestExporterOTLPStatus(t *testing.T) {
	for _, tc := range []struct {
		status        int
		held, dropped bool
	}{{http.StatusServiceUnavailable, true, false}, {http.StatusTooManyRequests, true, false}, {http.StatusBadGateway, true, false},
		{http.StatusGatewayTimeout, true, false}, {http.StatusBadRequest, false, true},
		{http.StatusInternalServerError, false, true}} { // OTLP/HTTP: 500 is not retryable
		c := &otlpCollector{status: tc.status}
		srv := httptest.NewServer(c)
		e := newQueue(t, srv.URL+"/v1/traces", traces.QueueConfig{BatchSize: 1, Limit: 10, Interval: time.Hour})
		export(e, "a", span(1, 1))
		err := e.Flush(context.Background())
		s := e.Stats()
		if (s.Queued == 1) != tc.held || (s.DroppedSend == 1) != tc.dropped || (err == nil) == tc.held {
			t.Errorf("status %d: err %v, queued %d, dropped %d; want held %v, dropped %v", tc.status, err, s.Queued, s.DroppedSend, tc.held, tc.dropped)
		}
		srv.Close()
	}
}

func TestOTLPRejectedReadsTheResponse(t *testing.T) {
	b, _ := proto.Marshal(&collectorpb.ExportTraceServiceResponse{PartialSuccess: &collectorpb.ExportTracePartialSuccess{RejectedSpans: 42, ErrorMessage: "why"}})
	if n, msg := otlpRejected(b); n != 42 || msg != "why" {
		t.Errorf("got %d %q", n, msg)
	}
	for _, body := range [][]byte{nil, []byte("ok"), {0x0a, 0xff}, []byte(`{"partialSuccess":{}}`)} {
		if n, _ := otlpRejected(body); n != 0 {
			t.Errorf("%q: %d rejected, want 0", body, n)
		}
	}
}

func TestExporterHonoursRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	e := newQueue(t, srv.URL+"/v1/traces", traces.QueueConfig{BatchSize: 1, Limit: 10, Interval: time.Hour})
	export(e, "a", span(1, 1))
	err := e.Flush(context.Background())
	var ra *traces.RetryAfterError
	if !errors.As(err, &ra) || ra.After != 7*time.Second || e.Stats().Queued != 1 {
		t.Errorf("err %v (%T), queued %d: want a retry after 7s, the span held", err, err, e.Stats().Queued)
	}
}

// Nothing an OTLP span carries is lost between the queue and the collector: links and
// their attributes, flags, dropped counts, events, trace state, status, scope, schema
// URLs and resource attributes arrive as they were given.
func TestExporterOTLPKeepsEveryField(t *testing.T) {
	c := &otlpCollector{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	e := newQueue(t, srv.URL+"/v1/traces", traces.QueueConfig{BatchSize: 100, Limit: 100, Interval: time.Hour})
	in := tracetest.Request().ResourceSpans
	in[0].ScopeSpans[0].Spans = in[0].ScopeSpans[0].Spans[:2] // the spans with valid IDs
	in[0].SchemaUrl = "https://opentelemetry.io/schemas/1.26.0"
	in[0].Resource.DroppedAttributesCount = 3
	in[0].ScopeSpans[0].SchemaUrl = "https://opentelemetry.io/schemas/1.25.0"
	in[0].ScopeSpans[0].Scope.Attributes = []*commonpb.KeyValue{traces.StringAttr("scope.attr", "x")}
	child := in[0].ScopeSpans[0].Spans[1]
	child.Flags = 0x301
	child.DroppedAttributesCount, child.DroppedEventsCount, child.DroppedLinksCount = 1, 2, 3
	child.Events[0].DroppedAttributesCount = 4
	child.Links[0].TraceState = "other=y"
	child.Links[0].Flags = 0x101
	child.Links[0].Attributes = []*commonpb.KeyValue{traces.StringAttr("link.kind", "retry-of")}
	child.Links[0].DroppedAttributesCount = 5
	want := proto.Clone(&tracepb.TracesData{ResourceSpans: in})
	if !e.ExportSpans(in) {
		t.Fatal("queue full")
	}
	if err := e.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.requests) != 1 {
		t.Fatalf("%d requests", len(c.requests))
	}
	got := &tracepb.TracesData{ResourceSpans: c.requests[0].ResourceSpans}
	if !proto.Equal(got, want) {
		t.Errorf("the collector got\n%v\nwant\n%v", got, want)
	}
}
