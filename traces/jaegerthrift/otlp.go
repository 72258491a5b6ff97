package jaegerthrift

import (
	"encoding/binary"
	"strings"
	"unicode/utf8"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// sampled is the sampled bit of both jaeger.thrift's and OTLP's (W3C) trace flags.
const sampled = 1

// ToOTLP converts jaeger.thrift to the agent's span model. It follows the OpenTelemetry
// Collector's jaeger translator (pkg/translator/jaeger, jaegerthrift_to_traces.go), the
// inverse of FromOTLP: the tags that FromOTLP (or an OpenTelemetry SDK's Jaeger
// exporter) makes of OTLP fields become those fields again: span.kind, error and
// otel.status_code / otel.status_description (the status), w3c.tracestate,
// otel.scope.name and otel.scope.version (the instrumentation scope), a log's "event"
// field (the event's name). The process's service name becomes service.name; its tags,
// the resource's attributes. Of the thrift flags only "sampled" is kept (OTLP's flags
// have no debug or firehose bit).
// ToOTLP converts one batch (a process and its spans) to a ResourceSpans, its spans
// grouped by instrumentation scope in the order the scopes first appear.
func ToOTLP(b *jaeger.Batch) *tracepb.ResourceSpans {
	res := &resourcepb.Resource{}
	service := "unknown_service"
	if p := b.GetProcess(); p != nil {
		if p.ServiceName != "" {
			service = p.ServiceName
		}
		res.Attributes = make([]*commonpb.KeyValue, 0, len(p.Tags)+1)
		for _, t := range p.Tags {
			if kv := tagAttr(t); kv != nil && kv.Key != "service.name" {
				res.Attributes = append(res.Attributes, kv)
			}
		}
	}
	res.Attributes = append([]*commonpb.KeyValue{strAttr("service.name", service)}, res.Attributes...)
	rs := &tracepb.ResourceSpans{Resource: res}
	scopes := map[[2]string]*tracepb.ScopeSpans{}
	for _, s := range b.Spans {
		if s == nil {
			continue
		}
		sp, scope := toOTLPSpan(s)
		ss := scopes[scope]
		if ss == nil {
			ss = &tracepb.ScopeSpans{}
			if scope != ([2]string{}) {
				ss.Scope = &commonpb.InstrumentationScope{Name: scope[0], Version: scope[1]}
			}
			scopes[scope] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, sp)
	}
	return rs
}

var otlpKinds = map[string]tracepb.Span_SpanKind{
	"internal": tracepb.Span_SPAN_KIND_INTERNAL,
	"server":   tracepb.Span_SPAN_KIND_SERVER,
	"client":   tracepb.Span_SPAN_KIND_CLIENT,
	"producer": tracepb.Span_SPAN_KIND_PRODUCER,
	"consumer": tracepb.Span_SPAN_KIND_CONSUMER,
}

// toOTLPSpan converts one span and returns the instrumentation scope (name, version) its
// tags named.
func toOTLPSpan(s *jaeger.Span) (*tracepb.Span, [2]string) {
	// The trace, span and parent IDs in one allocation (the relay converts every span).
	ids := make([]byte, 32)
	tid := ids[:16:16]
	binary.BigEndian.PutUint64(tid[:8], uint64(s.TraceIdHigh))
	binary.BigEndian.PutUint64(tid[8:], uint64(s.TraceIdLow))
	sid := ids[16:24:24]
	binary.BigEndian.PutUint64(sid, uint64(s.SpanId))
	sp := &tracepb.Span{TraceId: tid, SpanId: sid, Name: validUTF8(s.OperationName),
		Kind:              tracepb.Span_SPAN_KIND_UNSPECIFIED,
		StartTimeUnixNano: uint64(max(s.StartTime, 0)) * 1000,
		EndTimeUnixNano:   uint64(max(s.StartTime+s.Duration, 0)) * 1000,
		Flags:             uint32(s.Flags) & sampled}
	parent := s.ParentSpanId
	for _, r := range s.References {
		if r == nil {
			continue
		}
		sameTrace := r.TraceIdHigh == s.TraceIdHigh && r.TraceIdLow == s.TraceIdLow
		if parent == 0 && r.RefType == jaeger.SpanRefType_CHILD_OF && sameTrace {
			parent = r.SpanId
			continue
		}
		if r.SpanId == parent && r.RefType == jaeger.SpanRefType_CHILD_OF && sameTrace {
			continue // the parent, already set
		}
		lid := make([]byte, 16)
		binary.BigEndian.PutUint64(lid[:8], uint64(r.TraceIdHigh))
		binary.BigEndian.PutUint64(lid[8:], uint64(r.TraceIdLow))
		refType := "follows_from"
		if r.RefType == jaeger.SpanRefType_CHILD_OF {
			refType = "child_of"
		}
		sp.Links = append(sp.Links, &tracepb.Span_Link{TraceId: lid, SpanId: otlpSpanID(r.SpanId),
			Attributes: []*commonpb.KeyValue{strAttr("opentracing.ref_type", refType)}})
	}
	if parent != 0 {
		sp.ParentSpanId = ids[24:32:32]
		binary.BigEndian.PutUint64(sp.ParentSpanId, uint64(parent))
	}

	var scope [2]string
	var isError bool
	var statusCode string
	var desc *jaeger.Tag
	sp.Attributes = make([]*commonpb.KeyValue, 0, len(s.Tags))
	for _, t := range s.Tags {
		if t == nil {
			continue
		}
		switch t.Key {
		case "span.kind":
			if k, ok := otlpKinds[strings.ToLower(t.GetVStr())]; ok {
				sp.Kind = k
				continue
			}
		case "error":
			// As the Collector's translator: only a boolean true is the error status;
			// anything else stays an attribute.
			if t.GetVType() == jaeger.TagType_BOOL && t.GetVBool() {
				isError = true
				continue
			}
		case "otel.status_code":
			statusCode = strings.ToUpper(t.GetVStr())
			continue
		case "otel.status_description":
			desc = t // the status message if there is a status, else an attribute
			continue
		case "w3c.tracestate":
			sp.TraceState = validUTF8(t.GetVStr())
			continue
		case "otel.scope.name", "otel.library.name":
			scope[0] = validUTF8(t.GetVStr())
			continue
		case "otel.scope.version", "otel.library.version":
			scope[1] = validUTF8(t.GetVStr())
			continue
		}
		if kv := tagAttr(t); kv != nil {
			sp.Attributes = append(sp.Attributes, kv)
		}
	}
	// error=true is the last word, as in the Collector's translator; otherwise
	// otel.status_code says.
	msg := ""
	if desc != nil {
		msg = desc.GetVStr()
	}
	switch {
	case isError || statusCode == "ERROR":
		sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: validUTF8(msg)}
	case statusCode == "OK":
		sp.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK, Message: validUTF8(msg)}
	case statusCode == "" && desc != nil:
		if kv := tagAttr(desc); kv != nil {
			sp.Attributes = append(sp.Attributes, kv)
		}
	}
	for _, l := range s.Logs {
		if l == nil {
			continue
		}
		ev := &tracepb.Span_Event{TimeUnixNano: uint64(max(l.Timestamp, 0)) * 1000}
		for _, f := range l.Fields {
			if f != nil && f.Key == "event" && f.VStr != nil && ev.Name == "" {
				ev.Name = validUTF8(*f.VStr)
				continue
			}
			if kv := tagAttr(f); kv != nil {
				ev.Attributes = append(ev.Attributes, kv)
			}
		}
		sp.Events = append(sp.Events, ev)
	}
	return sp, scope
}

func otlpSpanID(id int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(id))
	return b
}

func strAttr(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: validUTF8(k), Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: validUTF8(v)}}}
}

// validUTF8 returns s with invalid UTF-8 replaced: a protobuf string must be valid UTF-8,
// or the whole request fails to encode, while jaeger.thrift strings are any bytes a
// client sent.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// tagAttr converts a tag to the attribute of its type; nil for a tag without a key.
func tagAttr(t *jaeger.Tag) *commonpb.KeyValue {
	if t == nil || t.Key == "" {
		return nil
	}
	v := &commonpb.AnyValue{}
	switch t.VType {
	case jaeger.TagType_BOOL:
		v.Value = &commonpb.AnyValue_BoolValue{BoolValue: t.GetVBool()}
	case jaeger.TagType_LONG:
		v.Value = &commonpb.AnyValue_IntValue{IntValue: t.GetVLong()}
	case jaeger.TagType_DOUBLE:
		v.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: t.GetVDouble()}
	case jaeger.TagType_BINARY:
		v.Value = &commonpb.AnyValue_BytesValue{BytesValue: t.GetVBinary()}
	default:
		v.Value = &commonpb.AnyValue_StringValue{StringValue: validUTF8(t.GetVStr())}
	}
	return &commonpb.KeyValue{Key: validUTF8(t.Key), Value: v}
}
