package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func attrMap(kvs []*commonpb.KeyValue) map[string]*commonpb.AnyValue {
	m := map[string]*commonpb.AnyValue{}
	for _, kv := range kvs {
		m[kv.Key] = kv.Value
	}
	return m
}

// An SDK's request, converted to jaeger.thrift by the receiver (with the sender's
// container tags) and back to OTLP by the exporter, keeps every field the thrift model
// can carry.
func TestOTLPRoundTrip(t *testing.T) {
	in := otlpRequest()
	batches, _, _ := convertOTLP(in.ResourceSpans, nil)
	batches[0].Process.Tags = append(batches[0].Process.Tags, strTag("container.name", "web.1"))
	rs := toOTLP(batches[0])

	res := attrMap(rs.Resource.Attributes)
	if res["service.name"].GetStringValue() != "orders" || res["deployment.environment"].GetStringValue() != "prod" ||
		rs.Resource.Attributes[0].Key != "service.name" {
		t.Errorf("resource %v", rs.Resource.Attributes)
	}
	if len(rs.ScopeSpans) != 1 || rs.ScopeSpans[0].Scope.GetName() != "orders/db" || rs.ScopeSpans[0].Scope.GetVersion() != "0.1" {
		t.Fatalf("scopes %v", rs.ScopeSpans)
	}
	want := in.ResourceSpans[0].ScopeSpans[0].Spans[:2]
	got := rs.ScopeSpans[0].Spans
	if len(got) != 2 {
		t.Fatalf("%d spans, want 2", len(got))
	}
	for i := range got {
		w, g := want[i], got[i]
		if !bytes.Equal(g.TraceId, w.TraceId) || !bytes.Equal(g.SpanId, w.SpanId) || !bytes.Equal(g.ParentSpanId, w.ParentSpanId) ||
			g.Name != w.Name || g.Kind != w.Kind || g.TraceState != w.TraceState {
			t.Errorf("span %d: got %v\nwant %v", i, g, w)
		}
		// Times keep microseconds (jaeger.thrift's precision).
		if g.StartTimeUnixNano != w.StartTimeUnixNano/1000*1000 || g.EndTimeUnixNano-g.StartTimeUnixNano != (w.EndTimeUnixNano-w.StartTimeUnixNano)/1000*1000 {
			t.Errorf("span %d times: %d..%d, want %d..%d", i, g.StartTimeUnixNano, g.EndTimeUnixNano, w.StartTimeUnixNano, w.EndTimeUnixNano)
		}
		if g.GetStatus().GetCode() != w.GetStatus().GetCode() || g.GetStatus().GetMessage() != w.GetStatus().GetMessage() {
			t.Errorf("span %d status %v, want %v", i, g.Status, w.Status)
		}
		for _, k := range []string{"span.kind", "error", "otel.status_code", "otel.status_description", "otel.scope.name", "w3c.tracestate"} {
			if _, ok := attrMap(g.Attributes)[k]; ok {
				t.Errorf("span %d: %s left as an attribute", i, k)
			}
		}
	}
	child := attrMap(got[1].Attributes)
	if child["db.rows"].GetIntValue() != -3 || !child["db.cached"].GetBoolValue() || child["db.ratio"].GetDoubleValue() != 0.5 ||
		!bytes.Equal(child["db.raw"].GetBytesValue(), []byte{1, 2}) || child["db.system"].GetStringValue() != "postgresql" {
		t.Errorf("child attributes %v", got[1].Attributes)
	}
	if len(got[1].Links) != 1 || got[1].Links[0].TraceId[15] != 9 || got[1].Links[0].SpanId[7] != 7 {
		t.Errorf("links %v", got[1].Links)
	}
	if len(got[1].Events) != 1 || got[1].Events[0].Name != "exception" || got[1].Events[0].TimeUnixNano != 1_700_000_000_124_100_000 ||
		attrMap(got[1].Events[0].Attributes)["exception.message"].GetStringValue() != "row not found" {
		t.Errorf("events %v", got[1].Events)
	}
}

// Spans from jaeger.thrift clients: the parent comes from the CHILD_OF reference when
// ParentSpanId is 0, error=true without otel.status_code is an error status, a process
// without a service name is unknown_service, and spans of other scopes go apart.
func TestToOTLPFromJaegerClients(t *testing.T) {
	b := &jaeger.Batch{Process: &jaeger.Process{Tags: []*jaeger.Tag{longTag("pid", 7)}}, Spans: []*jaeger.Span{
		{TraceIdLow: 5, SpanId: 2, OperationName: "a", StartTime: 10, Duration: 5,
			References: []*jaeger.SpanRef{{RefType: jaeger.SpanRefType_CHILD_OF, TraceIdLow: 5, SpanId: 1}},
			Tags:       []*jaeger.Tag{boolTag("error", true), strTag("span.kind", "producer")}},
		{TraceIdLow: 5, SpanId: 3, OperationName: "b", Tags: []*jaeger.Tag{strTag("otel.library.name", "lib")}},
	}}
	rs := toOTLP(b)
	if attrMap(rs.Resource.Attributes)["service.name"].GetStringValue() != "unknown_service" || attrMap(rs.Resource.Attributes)["pid"].GetIntValue() != 7 {
		t.Errorf("resource %v", rs.Resource.Attributes)
	}
	if len(rs.ScopeSpans) != 2 || rs.ScopeSpans[0].Scope != nil || rs.ScopeSpans[1].Scope.GetName() != "lib" {
		t.Fatalf("scopes %v", rs.ScopeSpans)
	}
	a := rs.ScopeSpans[0].Spans[0]
	if a.ParentSpanId[7] != 1 || len(a.Links) != 0 || a.Kind != tracepb.Span_SPAN_KIND_PRODUCER ||
		a.Status.GetCode() != tracepb.Status_STATUS_CODE_ERROR || a.StartTimeUnixNano != 10_000 || a.EndTimeUnixNano != 15_000 {
		t.Errorf("span a %v", a)
	}
}

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
	e, err := NewExporter(ExporterConfig{Endpoint: srv.URL + "/v1/traces", Protocol: ProtocolOTLP, BatchSize: 4, QueueLimit: 100, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	e.Export(&jaeger.Process{ServiceName: "a"}, []*jaeger.Span{{TraceIdLow: 1, SpanId: 1}, {TraceIdLow: 1, SpanId: 2}})
	e.Export(&jaeger.Process{ServiceName: "b"}, []*jaeger.Span{{TraceIdLow: 2, SpanId: 3}, {TraceIdLow: 2, SpanId: 4}})
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
		e, err := NewExporter(ExporterConfig{Endpoint: srv.URL + "/v1/traces", Protocol: ProtocolOTLP, BatchSize: 1, QueueLimit: 10, Interval: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		e.Export(&jaeger.Process{ServiceName: "a"}, []*jaeger.Span{{TraceIdLow: 1, SpanId: 1}})
		err = e.flushOne(context.Background(), true)
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

func TestNewExporterRejectsUnknownProtocol(t *testing.T) {
	_, err := NewExporter(ExporterConfig{Endpoint: "http://x/v1/traces", Protocol: "grpc", BatchSize: 1, QueueLimit: 1, Interval: time.Second})
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte(`want "thrift"`)) {
		t.Errorf("err %v", err)
	}
}

// otlpJSON is what an SDK's OTLP/HTTP JSON exporter sends for req: protobuf's JSON
// mapping, with trace and span IDs in hex.
func otlpJSON(t *testing.T, req proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					raw, _ := base64.StdEncoding.DecodeString(s)
					x[k] = hex.EncodeToString(raw)
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	out, _ := json.Marshal(doc)
	return out
}

// The same request as JSON and as protobuf makes the same batches; the answer is JSON.
func TestOTLPReceiverTakesJSON(t *testing.T) {
	viaProto, viaJSON := &recordingSink{}, &recordingSink{}
	req := otlpRequest()
	if w := post(newTestOTLP(t, viaProto), "10.0.1.7:1", "application/x-protobuf", "", marshal(t, req)); w.Code != 200 {
		t.Fatalf("protobuf: %d %s", w.Code, w.Body)
	}
	body := otlpJSON(t, req)
	if !bytes.Contains(body, []byte(`"spanId":"000000000000000a"`)) {
		t.Fatalf("the JSON fixture has no hex span ID: %s", body)
	}
	w := post(newTestOTLP(t, viaJSON), "10.0.1.7:1", "application/json", "gzip", gzipped(body))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != "{}" {
		t.Fatalf("JSON: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	a, _ := json.Marshal(viaProto.batches)
	b, _ := json.Marshal(viaJSON.batches)
	if len(viaJSON.batches) != 1 || !bytes.Equal(a, b) {
		t.Errorf("JSON made\n%s\nprotobuf made\n%s", b, a)
	}
}

// The status and link rules of the Collector's jaeger translator: error=true wins over
// otel.status_code; error that is not a boolean true, and a description without a status,
// stay attributes; links say their reference type.
func TestToOTLPStatusAndLinksAsTheCollector(t *testing.T) {
	b := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "s"}, Spans: []*jaeger.Span{
		{TraceIdLow: 1, SpanId: 1, Tags: []*jaeger.Tag{boolTag("error", true), strTag("otel.status_code", "OK"), strTag("otel.status_description", "boom")}},
		{TraceIdLow: 1, SpanId: 2, Tags: []*jaeger.Tag{boolTag("error", false), strTag("otel.status_description", "kept")},
			References: []*jaeger.SpanRef{{RefType: jaeger.SpanRefType_CHILD_OF, TraceIdLow: 1, SpanId: 1},
				{RefType: jaeger.SpanRefType_CHILD_OF, TraceIdLow: 9, SpanId: 7}, {RefType: jaeger.SpanRefType_FOLLOWS_FROM, TraceIdLow: 1, SpanId: 3}}},
		{TraceIdLow: 1, SpanId: 3, Tags: []*jaeger.Tag{strTag("error", "true")}},
	}}
	spans := toOTLP(b).ScopeSpans[0].Spans
	if st := spans[0].Status; st.GetCode() != tracepb.Status_STATUS_CODE_ERROR || st.GetMessage() != "boom" || len(spans[0].Attributes) != 0 {
		t.Errorf("error=true with status OK: %v, attributes %v", st, spans[0].Attributes)
	}
	a := attrMap(spans[1].Attributes)
	if spans[1].Status != nil || a["error"] == nil || a["error"].GetBoolValue() || a["otel.status_description"].GetStringValue() != "kept" {
		t.Errorf("error=false: status %v, attributes %v", spans[1].Status, spans[1].Attributes)
	}
	if l := spans[1].Links; len(l) != 2 || attrMap(l[0].Attributes)["opentracing.ref_type"].GetStringValue() != "child_of" ||
		attrMap(l[1].Attributes)["opentracing.ref_type"].GetStringValue() != "follows_from" || spans[1].ParentSpanId[7] != 1 {
		t.Errorf("links %v, parent %x", l, spans[1].ParentSpanId)
	}
	if spans[2].Status != nil || attrMap(spans[2].Attributes)["error"].GetStringValue() != "true" {
		t.Errorf("string error tag: status %v, attributes %v", spans[2].Status, spans[2].Attributes)
	}
}

// jaeger.thrift strings are any bytes; a protobuf string must be UTF-8 or the whole
// request fails to encode. One client's bad bytes must not cost the other spans.
func TestEncodeOTLPRepairsInvalidUTF8(t *testing.T) {
	bad := "op\xff\xfe"
	good := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "good"}, Spans: []*jaeger.Span{{TraceIdLow: 1, SpanId: 1, OperationName: "fine"}}}
	evil := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "svc\xff", Tags: []*jaeger.Tag{strTag("k\xff", bad)}},
		Spans: []*jaeger.Span{{TraceIdLow: 2, SpanId: 2, OperationName: bad,
			Tags: []*jaeger.Tag{strTag("a", bad), strTag("otel.scope.name", bad), strTag("w3c.tracestate", bad)},
			Logs: []*jaeger.Log{{Fields: []*jaeger.Tag{strTag("event", bad), strTag("f", bad)}}}}}}
	body, err := encodeOTLP([]*jaeger.Batch{good, evil})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	zr, _ := gzip.NewReader(bytes.NewReader(body))
	raw, _ := io.ReadAll(zr)
	var req collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil || len(req.ResourceSpans) != 2 {
		t.Fatalf("decode: %v, %d resources", err, len(req.ResourceSpans))
	}
	if n := req.ResourceSpans[1].ScopeSpans[0].Spans[0].Name; n != "op\uFFFD" {
		t.Errorf("name %q", n)
	}
}

func TestExporterHonoursRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "7")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	e, err := NewExporter(ExporterConfig{Endpoint: srv.URL + "/v1/traces", Protocol: ProtocolOTLP, BatchSize: 1, QueueLimit: 10, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.Export(&jaeger.Process{ServiceName: "a"}, []*jaeger.Span{{TraceIdLow: 1, SpanId: 1}})
	err = e.flushOne(context.Background(), true)
	var ra *retryAfterError
	if !errors.As(err, &ra) || ra.after != 7*time.Second || e.Stats().Queued != 1 {
		t.Errorf("err %v (%T), queued %d: want a retry after 7s, the span held", err, err, e.Stats().Queued)
	}
}
