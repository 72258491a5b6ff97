package tracing

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/inventory"
)

func kv(k string, v *commonpb.AnyValue) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: v}
}
func sv(s string) *commonpb.AnyValue {
	return &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: s}}
}

var (
	traceIDBytes = []byte{0, 0, 0, 0, 0, 0, 0, 1, 0x80, 0, 0, 0, 0, 0, 0, 2}
	rootID       = []byte{0, 0, 0, 0, 0, 0, 0, 0x0a}
	childID      = []byte{0xff, 0, 0, 0, 0, 0, 0, 0x0b}
)

// otlpRequest is what an SDK exports: a service with a server span and a client child
// that failed, with attributes of every type and an event.
func otlpRequest() *collectorpb.ExportTraceServiceRequest {
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{
			kv("service.name", sv("orders")), kv("deployment.environment", sv("prod")), kv("container.name", sv("spoofed")),
		}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			Scope: &commonpb.InstrumentationScope{Name: "orders/db", Version: "0.1"},
			Spans: []*tracepb.Span{
				{TraceId: traceIDBytes, SpanId: rootID, Name: "GET /orders", Kind: tracepb.Span_SPAN_KIND_SERVER,
					StartTimeUnixNano: 1_700_000_000_123_456_789, EndTimeUnixNano: 1_700_000_000_125_456_789,
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}},
				{TraceId: traceIDBytes, SpanId: childID, ParentSpanId: rootID, Name: "SELECT", Kind: tracepb.Span_SPAN_KIND_CLIENT,
					StartTimeUnixNano: 1_700_000_000_124_000_000, EndTimeUnixNano: 1_700_000_000_124_500_000,
					TraceState: "vendor=x",
					Attributes: []*commonpb.KeyValue{
						kv("db.system", sv("postgresql")),
						kv("db.rows", &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: -3}}),
						kv("db.cached", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: true}}),
						kv("db.ratio", &commonpb.AnyValue{Value: &commonpb.AnyValue_DoubleValue{DoubleValue: 0.5}}),
						kv("db.raw", &commonpb.AnyValue{Value: &commonpb.AnyValue_BytesValue{BytesValue: []byte{1, 2}}}),
						kv("db.hosts", &commonpb.AnyValue{Value: &commonpb.AnyValue_ArrayValue{ArrayValue: &commonpb.ArrayValue{
							Values: []*commonpb.AnyValue{sv("a"), {Value: &commonpb.AnyValue_IntValue{IntValue: 2}}}}}}),
						kv("db.opts", &commonpb.AnyValue{Value: &commonpb.AnyValue_KvlistValue{KvlistValue: &commonpb.KeyValueList{
							Values: []*commonpb.KeyValue{kv("ssl", &commonpb.AnyValue{Value: &commonpb.AnyValue_BoolValue{BoolValue: false}})}}}}),
						{Key: "no.value"},
					},
					Events: []*tracepb.Span_Event{{TimeUnixNano: 1_700_000_000_124_100_000, Name: "exception",
						Attributes: []*commonpb.KeyValue{kv("exception.message", sv("row not found"))}}},
					Links:  []*tracepb.Span_Link{{TraceId: []byte{15: 9}, SpanId: []byte{7: 7}}},
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "row not found"}},
				// Invalid IDs: skipped and counted.
				{TraceId: []byte{1, 2, 3}, SpanId: rootID, Name: "short trace id"},
				{TraceId: traceIDBytes, SpanId: make([]byte, 8), Name: "zero span id"},
			},
		}},
	}}}
}

func tagMap(tags []*jaeger.Tag) map[string]*jaeger.Tag {
	m := map[string]*jaeger.Tag{}
	for _, t := range tags {
		m[t.Key] = t
	}
	return m
}

func TestConvertOTLP(t *testing.T) {
	batches, n, bad := convertOTLP(otlpRequest().ResourceSpans, nil)
	if len(batches) != 1 || n != 2 || bad != 2 {
		t.Fatalf("convertOTLP: %d batches, %d spans, %d bad; want 1, 2, 2", len(batches), n, bad)
	}
	b := batches[0]
	if b.Process.ServiceName != "orders" {
		t.Errorf("service %q, want orders", b.Process.ServiceName)
	}
	pt := tagMap(b.Process.Tags)
	if pt["deployment.environment"].GetVStr() != "prod" || pt["service.name"] != nil || pt["container.name"].GetVStr() != "spoofed" {
		t.Errorf("process tags %v", b.Process.Tags)
	}
	root, child := b.Spans[0], b.Spans[1]
	if root.TraceIdHigh != 1 || root.TraceIdLow != -0x7ffffffffffffffe || root.SpanId != 10 || root.ParentSpanId != 0 || len(root.References) != 0 {
		t.Errorf("root IDs: %+v", root)
	}
	if root.StartTime != 1_700_000_000_123_456 || root.Duration != 2000 || root.OperationName != "GET /orders" || root.Flags != 1 {
		t.Errorf("root times/name: start %d duration %d name %q", root.StartTime, root.Duration, root.OperationName)
	}
	rt := tagMap(root.Tags)
	if rt["span.kind"].GetVStr() != "server" || rt["otel.status_code"].GetVStr() != "OK" || rt["error"] != nil ||
		rt["otel.scope.name"].GetVStr() != "orders/db" || rt["otel.scope.version"].GetVStr() != "0.1" {
		t.Errorf("root tags %v", root.Tags)
	}
	if child.SpanId != -0x00fffffffffffff5 || child.ParentSpanId != 10 || len(child.References) != 2 ||
		child.References[0].RefType != jaeger.SpanRefType_CHILD_OF || child.References[0].SpanId != 10 ||
		child.References[0].TraceIdHigh != 1 || child.References[0].TraceIdLow != root.TraceIdLow ||
		child.References[1].RefType != jaeger.SpanRefType_FOLLOWS_FROM || child.References[1].TraceIdLow != 9 || child.References[1].SpanId != 7 {
		t.Errorf("child IDs/references: %+v %+v", child, child.References)
	}
	if child.StartTime != 1_700_000_000_124_000 || child.Duration != 500 {
		t.Errorf("child times: %d %d", child.StartTime, child.Duration)
	}
	ct := tagMap(child.Tags)
	checks := map[string]bool{
		"string":         ct["db.system"].GetVType() == jaeger.TagType_STRING && ct["db.system"].GetVStr() == "postgresql",
		"int":            ct["db.rows"].GetVType() == jaeger.TagType_LONG && ct["db.rows"].GetVLong() == -3,
		"bool":           ct["db.cached"].GetVType() == jaeger.TagType_BOOL && ct["db.cached"].GetVBool(),
		"double":         ct["db.ratio"].GetVType() == jaeger.TagType_DOUBLE && ct["db.ratio"].GetVDouble() == 0.5,
		"bytes":          ct["db.raw"].GetVType() == jaeger.TagType_BINARY && bytes.Equal(ct["db.raw"].GetVBinary(), []byte{1, 2}),
		"array":          ct["db.hosts"].GetVStr() == `["a",2]`,
		"kvlist":         ct["db.opts"].GetVStr() == `{"ssl":false}`,
		"no value":       ct["no.value"] == nil,
		"kind":           ct["span.kind"].GetVStr() == "client",
		"error":          ct["error"].GetVType() == jaeger.TagType_BOOL && ct["error"].GetVBool(),
		"status code":    ct["otel.status_code"].GetVStr() == "ERROR",
		"status message": ct["otel.status_description"].GetVStr() == "row not found",
		"tracestate":     ct["w3c.tracestate"].GetVStr() == "vendor=x",
	}
	for what, ok := range checks {
		if !ok {
			t.Errorf("child tag (%s) wrong: %v", what, child.Tags)
		}
	}
	if len(child.Logs) != 1 || child.Logs[0].Timestamp != 1_700_000_000_124_100 ||
		tagMap(child.Logs[0].Fields)["event"].GetVStr() != "exception" ||
		tagMap(child.Logs[0].Fields)["exception.message"].GetVStr() != "row not found" {
		t.Errorf("child logs %+v", child.Logs)
	}

	// No service.name: unknown_service, as the SDKs' default; an end before the start: 0.
	rs := []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{
		{TraceId: traceIDBytes, SpanId: rootID, StartTimeUnixNano: 5000, EndTimeUnixNano: 1000}}}}}}
	batches, _, _ = convertOTLP(rs, nil)
	if len(batches) != 1 || batches[0].Process.ServiceName != "unknown_service" || batches[0].Spans[0].Duration != 0 {
		t.Errorf("defaults: %+v", batches)
	}
}

func newTestOTLP(t *testing.T, sink Sink) *OTLPReceiver {
	t.Helper()
	senders := NewSenders()
	o, err := NewOTLPReceiver(OTLPConfig{Addr: "127.0.0.1:0", MaxRequestSize: 4096, Senders: senders}, sink)
	if err != nil {
		t.Fatal(err)
	}
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: testContainer(), Engine: inventory.Engine{Host: "node-a"}})
	return o
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func post(o *OTLPReceiver, from, ctype, enc string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, OTLPPath, bytes.NewReader(body))
	r.RemoteAddr = from
	r.Header.Set("Content-Type", ctype)
	if enc != "" {
		r.Header.Set("Content-Encoding", enc)
	}
	w := httptest.NewRecorder()
	o.ServeHTTP(w, r)
	return w
}

func TestOTLPReceiverTagsTheSendingContainer(t *testing.T) {
	sink := &recordingSink{}
	o := newTestOTLP(t, sink)
	body := marshal(t, otlpRequest())
	w := post(o, "10.0.1.7:40000", "application/x-protobuf", "gzip", gzipped(body))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("answer %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var resp collectorpb.ExportTraceServiceResponse
	if err := proto.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.PartialSuccess != nil {
		t.Errorf("response %v: %v", &resp, err)
	}
	if len(sink.batches) != 1 || len(sink.batches[0].Spans) != 2 {
		t.Fatalf("sink got %+v", sink.batches)
	}
	p := sink.batches[0].Process
	got := processTags(p)
	want := map[string]string{"deployment.environment": "prod", "container.id": "c0ffee", "container.name": "api-1",
		"container.image.name": "example/api", "container.image.tag": "1.2", "host.name": "node-a",
		"docker.swarm.service.name": "shop_api", "docker.swarm.stack.namespace": "shop", "docker.swarm.task.id": "task1",
		"docker.swarm.node.id": "node1", "team": "payments"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("process tag %s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if p.ServiceName != "orders" {
		t.Errorf("service %q changed", p.ServiceName)
	}

	// Not from a container: forwarded untagged, counted.
	if w := post(o, "[::1]:5000", "application/x-protobuf; charset=binary", "", body); w.Code != 200 {
		t.Errorf("unknown sender: %d", w.Code)
	}
	if got := processTags(sink.batches[1].Process); got["container.name"] != "spoofed" || got["container.id"] != "" {
		t.Errorf("unknown sender tagged: %v", got)
	}
	if st := o.Stats(); st.Requests != 2 || st.Spans != 8 || st.BadSpans != 4 || st.UnknownSender != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestOTLPReceiverRefusals(t *testing.T) {
	sink := &recordingSink{}
	o := newTestOTLP(t, sink)
	good := marshal(t, otlpRequest())
	big := marshal(t, &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("blob", sv(strings.Repeat("x", 5000)))}}}}})
	cases := []struct {
		name, ctype, enc string
		body             []byte
		status           int
		says             string
	}{
		{"garbage", "application/x-protobuf", "", []byte("\xff\xff\xff not protobuf"), 400, "malformed"},
		{"truncated", "application/x-protobuf", "", good[:len(good)-5], 400, "malformed"},
		{"bad gzip", "application/x-protobuf", "gzip", good, 400, "gzip"},
		{"too large", "application/x-protobuf", "", big, 413, "at most 4096"},
		{"too large once unzipped", "application/x-protobuf", "gzip", gzipped(big), 413, "decompressed"},
		{"text", "text/plain", "", []byte(`resourceSpans`), 415, "want application/x-protobuf or application/json"},
		{"bad json", "application/json", "", []byte(`{"resourceSpans":[`), 400, `"code":3`},
		{"json and more", "application/json", "", []byte(`{"resourceSpans":[]} {}`), 400, "data after the JSON document"},
		{"json with a base64 id", "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAo="}]}]}]}`), 400, "want a hex string"},
		{"brotli", "application/x-protobuf", "br", good, 415, "want gzip"},
	}
	for _, c := range cases {
		w := post(o, "10.0.1.7:1", c.ctype, c.enc, c.body)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, w.Code, w.Body, c.status, c.says)
		}
	}
	st := o.Stats()
	if st.Malformed != 6 || st.TooLarge != 2 || st.Unsupported != 2 || len(sink.batches) != 0 {
		t.Errorf("stats %+v, %d batches", st, len(sink.batches))
	}

	sink.full = true
	if w := post(o, "10.0.1.7:1", "application/x-protobuf", "", good); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Errorf("queue full: %d %v", w.Code, w.Header())
	}
	if st := o.Stats(); st.QueueFull != 1 {
		t.Errorf("queue full not counted: %+v", st)
	}
	r := httptest.NewRequest(http.MethodGet, OTLPPath, nil)
	w := httptest.NewRecorder()
	o.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestOTLPReceiverOverHTTP(t *testing.T) {
	sink := &recordingSink{}
	o := newTestOTLP(t, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + o.Addr().String() + OTLPPath
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(marshal(t, otlpRequest())))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	sink.mu.Lock()
	n := len(sink.batches)
	sink.mu.Unlock()
	// From 127.0.0.1: no container, so forwarded untagged.
	if resp.StatusCode != 200 || n != 1 || o.Stats().UnknownSender != 1 {
		t.Errorf("POST %s: %d, %d batches, stats %+v", url, resp.StatusCode, n, o.Stats())
	}
	if resp, err := http.Post("http://"+o.Addr().String()+"/v1/metrics", "application/x-protobuf", nil); err != nil || resp.StatusCode != 404 {
		t.Errorf("/v1/metrics: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestProcessKeyTellsBinaryTagsApart(t *testing.T) {
	p := func(b byte) *jaeger.Process {
		return &jaeger.Process{ServiceName: "s", Tags: []*jaeger.Tag{{Key: "k", VType: jaeger.TagType_BINARY, VBinary: []byte{b}}}}
	}
	if processKey(p(1)) == processKey(p(2)) {
		t.Error("processes with other binary resource attributes share a request")
	}
}
