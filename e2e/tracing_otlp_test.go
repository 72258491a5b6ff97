package e2e

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// otlpGRPCSender is testdata/otlpsender under a tag of its own, run with
// OTLP_PROTOCOL=grpc: the OpenTelemetry Go SDK with otlptracegrpc.
var otlpGRPCSender = &senderImage{dir: "testdata/otlpsender", tag: "lookout-otlpgrpcsender:e2e"}

// An OpenTelemetry SDK's gRPC exporter, pointed at the agent's OTLP/gRPC address, needs
// nothing else: its spans reach Jaeger tagged with the sending container.
func TestTracesOTLPGRPCTagsTheSendingContainer(t *testing.T) {
	j := startJaeger(t)
	gw := bridgeGateway(t)
	listen := net.JoinHostPort(gw, strconv.Itoa(testpeer.FreePort()))
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.OTLPURL, "LOOKOUT_JAEGER_PROTOCOL=otlp",
		"LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s", "LOOKOUT_PROBE_SPANS=false", "LOOKOUT_OTLP_GRPC_LISTEN="+listen)
	eventually(t, 20*time.Second, "the OTLP/gRPC receiver listening", func() bool {
		return strings.Contains(a.logs(), "OTLP/gRPC receiver listening")
	})
	name := "lk-trace-otlpgrpc-" + runID
	service := "billing-grpc-" + runID
	otlpGRPCSender.run(t, name, []string{"OTLP_ENDPOINT=" + listen, "OTLP_PROTOCOL=grpc", "SERVICE=" + service, "RATE=5"})
	id := docker(t, "inspect", "-f", "{{.Id}}", name)

	var seen string
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("last seen in Jaeger: %s", seen)
		}
	})
	eventually(t, 60*time.Second, "the SDK's spans in Jaeger, tagged with the container, service and parent links kept", func() bool {
		spans, procs := spansOf(t, j, service)
		byID := map[string]testpeer.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		if len(spans) > 0 {
			seen = fmt.Sprintf("%d spans; %+v of %+v", len(spans), spans[0], procs[0])
		}
		for i, s := range spans {
			p := procs[i]
			if p.ServiceName != service || testpeer.Tag(p.Tags, "container.name") != name ||
				testpeer.Tag(p.Tags, "container.id") != id || testpeer.Tag(p.Tags, "container.image.name") != "lookout-otlpgrpcsender" ||
				testpeer.Tag(p.Tags, "host.name") == "" || testpeer.Tag(p.Tags, "deployment.environment") != "e2e" {
				continue
			}
			var parent testpeer.Span
			if len(s.References) == 1 && s.References[0].RefType == "CHILD_OF" {
				parent = byID[s.References[0].SpanID]
			}
			if s.OperationName == "query" && parent.OperationName == "handle" &&
				testpeer.Tag(s.Tags, "span.kind") == "client" && testpeer.Tag(s.Tags, "error") == "true" &&
				testpeer.Tag(s.Tags, "otel.status_description") == "row not found" &&
				testpeer.Tag(s.Tags, "otel.scope.name") == "otlpsender" && testpeer.Tag(parent.Tags, "span.kind") == "server" {
				return true
			}
		}
		return false
	})
	eventually(t, 20*time.Second, "lookout_spans_otlp_grpc counting the calls", func() bool {
		return lastField(a, "lookout_spans_otlp_grpc", "spans_received") > 0 &&
			lastField(a, "lookout_spans_otlp_grpc", "requests_malformed") == 0
	})
}

// everyField is an OTLP request with links and their attributes, trace flags, dropped
// counts, events, a trace state, status, scope and schema URLs, in trace trace.
func everyField(trace []byte, service string, start time.Time) *collectorpb.ExportTraceServiceRequest {
	str := func(k, v string) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
	}
	num := func(k string, v int64) *commonpb.KeyValue {
		return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}}
	}
	ns := uint64(start.UnixNano())
	root, child := []byte{1, 2, 3, 4, 5, 6, 7, 8}, []byte{9, 10, 11, 12, 13, 14, 15, 16}
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		SchemaUrl: "https://opentelemetry.io/schemas/1.26.0",
		Resource: &resourcepb.Resource{DroppedAttributesCount: 1,
			Attributes: []*commonpb.KeyValue{str("service.name", service), str("deployment.environment", "e2e")}},
		ScopeSpans: []*tracepb.ScopeSpans{{
			SchemaUrl: "https://opentelemetry.io/schemas/1.25.0",
			Scope:     &commonpb.InstrumentationScope{Name: "fields", Version: "1.0", Attributes: []*commonpb.KeyValue{str("scope.attr", "s")}},
			Spans: []*tracepb.Span{
				{TraceId: trace, SpanId: root, Name: "root", Kind: tracepb.Span_SPAN_KIND_SERVER, Flags: 0x301,
					TraceState: "vendor=a", StartTimeUnixNano: ns, EndTimeUnixNano: ns + 5e6,
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}},
				{TraceId: trace, SpanId: child, ParentSpanId: root, Name: "child", Kind: tracepb.Span_SPAN_KIND_CLIENT, Flags: 0x101,
					TraceState: "vendor=b,other=c", StartTimeUnixNano: ns + 1e6, EndTimeUnixNano: ns + 4e6,
					Attributes:             []*commonpb.KeyValue{str("db.system", "postgresql"), num("db.rows", 3)},
					DroppedAttributesCount: 2, DroppedEventsCount: 3, DroppedLinksCount: 4,
					Events: []*tracepb.Span_Event{{TimeUnixNano: ns + 2e6, Name: "retry", DroppedAttributesCount: 5,
						Attributes: []*commonpb.KeyValue{num("attempt", 2)}}},
					Links: []*tracepb.Span_Link{
						{TraceId: bytes.Repeat([]byte{0x42}, 16), SpanId: bytes.Repeat([]byte{0x43}, 8), TraceState: "linked=1",
							Flags: 0x301, DroppedAttributesCount: 6, Attributes: []*commonpb.KeyValue{str("link.reason", "retry-of")}},
						{TraceId: trace, SpanId: root, Attributes: []*commonpb.KeyValue{str("opentracing.ref_type", "follows_from")}},
					},
					Status: &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "timeout"}},
			},
		}},
	}}}
}

// normalized is a trace from the query API with its trace ID (in hex or base64) replaced
// and its spans in span ID order, as JSON.
func normalized(tr map[string]any, traceID []byte) string {
	b, _ := json.Marshal(tr)
	for _, id := range []string{hex.EncodeToString(traceID), base64.StdEncoding.EncodeToString(traceID)} {
		b = bytes.ReplaceAll(b, []byte(id), []byte("TRACE"))
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	sortSpans(m)
	out, _ := json.MarshalIndent(m, "", " ")
	return string(out)
}

// sortSpans puts every list of spans, at any depth (API v1's "spans"; v3's
// resourceSpans[].scopeSpans[].spans), in span ID order: Jaeger answers in no fixed order.
func sortSpans(v any) {
	switch v := v.(type) {
	case map[string]any:
		if spans, ok := v["spans"].([]any); ok {
			id := func(s any) string {
				m, _ := s.(map[string]any)
				return fmt.Sprint(m["spanID"], m["spanId"])
			}
			sort.SliceStable(spans, func(i, j int) bool { return id(spans[i]) < id(spans[j]) })
		}
		for _, e := range v {
			sortSpans(e)
		}
	case []any:
		for _, e := range v {
			sortSpans(e)
		}
	}
}

// Received over OTLP and exported over OTLP to the real Jaeger, a request with every
// field OTLP has arrives with every field Jaeger keeps: the same request sent straight to
// Jaeger is the reference.
func TestTracesOTLPToOTLPKeepsEveryField(t *testing.T) {
	j := startJaeger(t)
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testpeer.FreePort()))
	a := startAgent(t, "LOOKOUT_JAEGER_ENDPOINT="+j.OTLPURL, "LOOKOUT_JAEGER_PROTOCOL=otlp",
		"LOOKOUT_SPANS_FLUSH_INTERVAL=200ms", "LOOKOUT_INTERVAL=1s", "LOOKOUT_PROBE_SPANS=false", "LOOKOUT_OTLP_LISTEN="+listen)
	eventually(t, 20*time.Second, "the OTLP receiver listening", func() bool { return strings.Contains(a.logs(), "OTLP receiver listening") })

	service := "fields-" + runID
	start := time.Now()
	direct, viaAgent := bytes.Repeat([]byte{0xd1}, 16), bytes.Repeat([]byte{0xa9}, 16)
	post := func(url string, trace []byte) {
		body, err := proto.Marshal(everyField(trace, service, start))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("POST %s: %s", url, resp.Status)
		}
	}
	post(j.OTLPURL, direct)
	post("http://"+listen+"/v1/traces", viaAgent)

	get := func(trace []byte) (map[string]any, bool) {
		tr, err := j.RawTrace(hex.EncodeToString(trace))
		if err != nil {
			return nil, false
		}
		spans, _ := tr["spans"].([]any)
		return tr, len(spans) == 2
	}
	var want, got map[string]any
	eventually(t, 30*time.Second, "the reference trace in Jaeger", func() bool { var ok bool; want, ok = get(direct); return ok })
	eventually(t, 30*time.Second, "the trace sent through the agent in Jaeger", func() bool { var ok bool; got, ok = get(viaAgent); return ok })
	w, g := normalized(want, direct), normalized(got, viaAgent)
	// Not a comparison of two empty things: what Jaeger keeps is there.
	for _, s := range []string{`"w3c.tracestate"`, `"vendor=b,other=c"`, `"otel.status_description"`, `"timeout"`, `"retry"`, `"attempt"`,
		`"FOLLOWS_FROM"`, `"42424242424242424242424242424242"`, `"otel.scope.name"`, `"deployment.environment"`, `"db.rows"`} {
		if !strings.Contains(w, s) {
			t.Errorf("the reference trace lacks %s:\n%s", s, w)
		}
	}
	if w != g {
		t.Errorf("Jaeger has, for the request through the agent:\n%s\nand for the same request sent straight to it:\n%s", g, w)
	}
	// The API v3 answers in OTLP (as Jaeger stored it): the same comparison there.
	w3, err := j.RawTraceV3(hex.EncodeToString(direct))
	if err != nil {
		t.Logf("no API v3 comparison: %v", err)
		return
	}
	g3, err := j.RawTraceV3(hex.EncodeToString(viaAgent))
	if err != nil {
		t.Fatalf("API v3, the trace through the agent: %v", err)
	}
	if w3, g3 := normalized(w3, direct), normalized(g3, viaAgent); w3 != g3 {
		t.Errorf("Jaeger's API v3 has, for the request through the agent:\n%s\nand for the same request sent straight to it:\n%s", g3, w3)
	} else {
		t.Logf("what Jaeger kept (API v3):\n%s", w3)
	}
}
