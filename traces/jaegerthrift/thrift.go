package jaegerthrift

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// FromOTLP turns the agent's spans into jaeger.thrift batches, one per resource:
// service.name becomes the process's service name and the other resource attributes its
// tags. Spans without a valid trace or span ID are skipped and counted in bad; n is the
// number of spans converted.
func FromOTLP(rss []*tracepb.ResourceSpans) (batches []*jaeger.Batch, n, bad int) {
	for _, rs := range rss {
		if rs == nil {
			continue
		}
		proc := &jaeger.Process{ServiceName: "unknown_service"}
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() == "service.name" && kv.GetValue().GetStringValue() != "" {
				proc.ServiceName = kv.GetValue().GetStringValue()
				continue
			}
			if t := attrTag(kv); t != nil {
				proc.Tags = append(proc.Tags, t)
			}
		}
		b := &jaeger.Batch{Process: proc}
		for _, ss := range rs.ScopeSpans {
			var scope []*jaeger.Tag
			if name := ss.GetScope().GetName(); name != "" {
				scope = append(scope, strTag("otel.scope.name", name))
			}
			if v := ss.GetScope().GetVersion(); v != "" {
				scope = append(scope, strTag("otel.scope.version", v))
			}
			for _, sp := range ss.GetSpans() {
				js, ok := convertSpan(sp, scope)
				if !ok {
					bad++
					continue
				}
				b.Spans = append(b.Spans, js)
			}
		}
		n += len(b.Spans)
		if len(b.Spans) > 0 {
			batches = append(batches, b)
		}
	}
	return batches, n, bad
}

var spanKinds = map[tracepb.Span_SpanKind]string{
	tracepb.Span_SPAN_KIND_INTERNAL: "internal",
	tracepb.Span_SPAN_KIND_SERVER:   "server",
	tracepb.Span_SPAN_KIND_CLIENT:   "client",
	tracepb.Span_SPAN_KIND_PRODUCER: "producer",
	tracepb.Span_SPAN_KIND_CONSUMER: "consumer",
}

// convertSpan converts one span; false when its IDs are not valid.
func convertSpan(sp *tracepb.Span, scope []*jaeger.Tag) (*jaeger.Span, bool) {
	if sp == nil {
		return nil, false
	}
	hi, lo, ok := traceID(sp.TraceId)
	id, idOK := spanID(sp.SpanId)
	if !ok || !idOK {
		return nil, false
	}
	// Every span the agent exports is sampled: jaeger.thrift's flags say so whatever
	// OTLP's said (a span whose flags are unknown, 0, was sampled too, or it would not be here).
	js := &jaeger.Span{TraceIdHigh: hi, TraceIdLow: lo, SpanId: id, OperationName: sp.Name, Flags: sampled,
		StartTime: int64(sp.StartTimeUnixNano / 1000)}
	if sp.EndTimeUnixNano > sp.StartTimeUnixNano {
		js.Duration = int64((sp.EndTimeUnixNano - sp.StartTimeUnixNano) / 1000)
	}
	if p, ok := spanID(sp.ParentSpanId); ok {
		js.ParentSpanId = p
		js.References = append(js.References, &jaeger.SpanRef{RefType: jaeger.SpanRefType_CHILD_OF,
			TraceIdHigh: hi, TraceIdLow: lo, SpanId: p})
	}
	for _, l := range sp.Links {
		lhi, llo, ok := traceID(l.GetTraceId())
		lid, idOK := spanID(l.GetSpanId())
		if ok && idOK {
			// A link ToOTLP made of a second CHILD_OF reference is one again.
			ref := jaeger.SpanRefType_FOLLOWS_FROM
			for _, kv := range l.Attributes {
				if kv.GetKey() == "opentracing.ref_type" && kv.GetValue().GetStringValue() == "child_of" {
					ref = jaeger.SpanRefType_CHILD_OF
				}
			}
			js.References = append(js.References, &jaeger.SpanRef{RefType: ref,
				TraceIdHigh: lhi, TraceIdLow: llo, SpanId: lid})
		}
	}
	tags := make([]*jaeger.Tag, 0, len(sp.Attributes)+len(scope)+4)
	for _, kv := range sp.Attributes {
		if t := attrTag(kv); t != nil {
			tags = append(tags, t)
		}
	}
	tags = append(tags, scope...)
	if k, ok := spanKinds[sp.Kind]; ok {
		tags = append(tags, strTag("span.kind", k))
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		tags = append(tags, boolTag("error", true), strTag("otel.status_code", "ERROR"))
		if m := sp.GetStatus().GetMessage(); m != "" {
			tags = append(tags, strTag("otel.status_description", m))
		}
	case tracepb.Status_STATUS_CODE_OK:
		tags = append(tags, strTag("otel.status_code", "OK"))
	}
	if sp.TraceState != "" {
		tags = append(tags, strTag("w3c.tracestate", sp.TraceState))
	}
	js.Tags = tags
	for _, ev := range sp.Events {
		if ev == nil {
			continue
		}
		var fields []*jaeger.Tag
		if ev.Name != "" {
			fields = append(fields, strTag("event", ev.Name))
		}
		for _, kv := range ev.Attributes {
			if t := attrTag(kv); t != nil {
				fields = append(fields, t)
			}
		}
		js.Logs = append(js.Logs, &jaeger.Log{Timestamp: int64(ev.TimeUnixNano / 1000), Fields: fields})
	}
	return js, true
}

// traceID splits a 16-byte trace ID; false unless it is 16 bytes and not all zero.
func traceID(b []byte) (hi, lo int64, ok bool) {
	if len(b) != 16 {
		return 0, 0, false
	}
	hi, lo = int64(binary.BigEndian.Uint64(b[:8])), int64(binary.BigEndian.Uint64(b[8:]))
	return hi, lo, hi != 0 || lo != 0
}

// spanID reads an 8-byte span ID; false unless it is 8 bytes and not zero.
func spanID(b []byte) (int64, bool) {
	if len(b) != 8 {
		return 0, false
	}
	id := int64(binary.BigEndian.Uint64(b))
	return id, id != 0
}

// attrTag converts an attribute: strings, booleans, integers, doubles and bytes to the
// tag of that type; arrays and maps to a JSON string. nil for no key or no value.
func attrTag(kv *commonpb.KeyValue) *jaeger.Tag {
	if kv.GetKey() == "" || kv.GetValue() == nil {
		return nil
	}
	switch v := kv.Value.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		return strTag(kv.Key, v.StringValue)
	case *commonpb.AnyValue_BoolValue:
		return boolTag(kv.Key, v.BoolValue)
	case *commonpb.AnyValue_IntValue:
		return longTag(kv.Key, v.IntValue)
	case *commonpb.AnyValue_DoubleValue:
		d := v.DoubleValue
		return &jaeger.Tag{Key: kv.Key, VType: jaeger.TagType_DOUBLE, VDouble: &d}
	case *commonpb.AnyValue_BytesValue:
		return &jaeger.Tag{Key: kv.Key, VType: jaeger.TagType_BINARY, VBinary: v.BytesValue}
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		j, err := json.Marshal(anyValue(kv.Value))
		if err != nil {
			return nil
		}
		return strTag(kv.Key, string(j))
	}
	return nil
}

// anyValue returns v as a plain Go value for JSON (bytes as base64).
func anyValue(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	case *commonpb.AnyValue_ArrayValue:
		out := make([]any, 0, len(x.ArrayValue.GetValues()))
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyValue(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := map[string]any{}
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = anyValue(kv.GetValue())
		}
		return out
	}
	return nil
}

func strTag(k, v string) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v}
}

func longTag(k string, v int64) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_LONG, VLong: &v}
}

func boolTag(k string, v bool) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_BOOL, VBool: &v}
}
