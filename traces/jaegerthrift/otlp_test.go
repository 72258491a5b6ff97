package jaegerthrift

import (
	"bytes"
	"testing"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

var otlpRequest = tracetest.Request

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
	batches, _, _ := FromOTLP(in.ResourceSpans)
	batches[0].Process.Tags = append(batches[0].Process.Tags, strTag("container.name", "web.1"))
	rs := ToOTLP(batches[0])

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
	rs := ToOTLP(b)
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
	spans := ToOTLP(b).ScopeSpans[0].Spans
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
	raw, err := proto.Marshal(&tracepb.TracesData{ResourceSpans: []*tracepb.ResourceSpans{ToOTLP(good), ToOTLP(evil)}})
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	var req collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &req); err != nil || len(req.ResourceSpans) != 2 {
		t.Fatalf("decode: %v, %d resources", err, len(req.ResourceSpans))
	}
	if n := req.ResourceSpans[1].ScopeSpans[0].Spans[0].Name; n != "op\uFFFD" {
		t.Errorf("name %q", n)
	}
}

func TestConvertOTLP(t *testing.T) {
	batches, n, bad := FromOTLP(otlpRequest().ResourceSpans)
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
		{TraceId: tracetest.TraceID, SpanId: tracetest.RootID, StartTimeUnixNano: 5000, EndTimeUnixNano: 1000}}}}}}
	batches, _, _ = FromOTLP(rs)
	if len(batches) != 1 || batches[0].Process.ServiceName != "unknown_service" || batches[0].Spans[0].Duration != 0 {
		t.Errorf("defaults: %+v", batches)
	}
}

func tagMap(tags []*jaeger.Tag) map[string]*jaeger.Tag {
	m := map[string]*jaeger.Tag{}
	for _, t := range tags {
		m[t.Key] = t
	}
	return m
}
