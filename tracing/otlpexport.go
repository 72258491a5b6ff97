package tracing

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The conversion from jaeger.thrift to OTLP follows the OpenTelemetry Collector's
// jaeger translator (pkg/translator/jaeger, jaegerthrift_to_traces.go), the inverse of
// convertOTLP: the tags that convertOTLP (or an OpenTelemetry SDK's Jaeger exporter)
// makes of OTLP fields become those fields again: span.kind, error and otel.status_code
// / otel.status_description (the status), w3c.tracestate, otel.scope.name and
// otel.scope.version (the instrumentation scope), a log's "event" field (the event's
// name). The process's service name becomes service.name; its tags, the resource's
// attributes (the container metadata the relay added among them).

// encodeOTLP encodes batches as one OTLP ExportTraceServiceRequest (the same message
// on the wire as TracesData), gzip-compressed, with one ResourceSpans per batch.
func encodeOTLP(batches []*jaeger.Batch) ([]byte, error) {
	td := &tracepb.TracesData{ResourceSpans: make([]*tracepb.ResourceSpans, 0, len(batches))}
	for _, b := range batches {
		td.ResourceSpans = append(td.ResourceSpans, toOTLP(b))
	}
	raw, err := proto.Marshal(td)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// toOTLP converts one batch (a process and its spans) to a ResourceSpans, its spans
// grouped by instrumentation scope in the order the scopes first appear.
func toOTLP(b *jaeger.Batch) *tracepb.ResourceSpans {
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
	tid := make([]byte, 16)
	binary.BigEndian.PutUint64(tid[:8], uint64(s.TraceIdHigh))
	binary.BigEndian.PutUint64(tid[8:], uint64(s.TraceIdLow))
	sp := &tracepb.Span{TraceId: tid, SpanId: otlpSpanID(s.SpanId), Name: validUTF8(s.OperationName),
		Kind:              tracepb.Span_SPAN_KIND_UNSPECIFIED,
		StartTimeUnixNano: uint64(max(s.StartTime, 0)) * 1000,
		EndTimeUnixNano:   uint64(max(s.StartTime+s.Duration, 0)) * 1000}
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
		sp.ParentSpanId = otlpSpanID(parent)
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

// otlpRejected reads an ExportTraceServiceResponse: the spans its partial_success
// (field 1) says were rejected (field 1 of that) and why (field 2). A body that is not
// such a message reads as nothing rejected: the status code said the request was taken.
func otlpRejected(body []byte) (rejected int64, msg string) {
	for len(body) > 0 {
		num, typ, n := protowire.ConsumeTag(body)
		if n < 0 {
			return 0, ""
		}
		body = body[n:]
		if num == 1 && typ == protowire.BytesType {
			ps, n := protowire.ConsumeBytes(body)
			if n < 0 {
				return 0, ""
			}
			body = body[n:]
			for len(ps) > 0 {
				pnum, ptyp, m := protowire.ConsumeTag(ps)
				if m < 0 {
					return rejected, msg
				}
				ps = ps[m:]
				switch {
				case pnum == 1 && ptyp == protowire.VarintType:
					v, m := protowire.ConsumeVarint(ps)
					if m < 0 {
						return rejected, msg
					}
					rejected, ps = int64(v), ps[m:]
				case pnum == 2 && ptyp == protowire.BytesType:
					v, m := protowire.ConsumeBytes(ps)
					if m < 0 {
						return rejected, msg
					}
					msg, ps = string(v), ps[m:]
				default:
					m := protowire.ConsumeFieldValue(pnum, ptyp, ps)
					if m < 0 {
						return rejected, msg
					}
					ps = ps[m:]
				}
			}
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, body)
		if n < 0 {
			return 0, ""
		}
		body = body[n:]
	}
	return rejected, msg
}

// protocolError names a protocol the exporter does not speak.
func protocolError(p string) error {
	return fmt.Errorf("spans protocol %q: want %q (jaeger.thrift over HTTP) or %q (OTLP/HTTP protobuf)", p, ProtocolThrift, ProtocolOTLP)
}
