package jaegerthrift

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"slices"

	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// FromOTLP turns the agent's spans into jaeger.thrift batches, one per resource, as
// AppendBatch writes them (read back with the generated thrift code). n is the number of
// spans converted, bad the spans skipped (no valid trace or span ID).
func FromOTLP(rss []*tracepb.ResourceSpans) (batches []*jaeger.Batch, n, bad int) {
	for _, rs := range rss {
		body, k, skipped := AppendBatch(nil, rs)
		bad += skipped
		if k == 0 {
			continue
		}
		buf := thrift.NewTMemoryBufferLen(len(body))
		_, _ = buf.Write(body)
		b := &jaeger.Batch{}
		cfg := &thrift.TConfiguration{MaxMessageSize: int32(min(len(body), math.MaxInt32))}
		if err := b.Read(context.Background(), thrift.NewTBinaryProtocolConf(buf, cfg)); err != nil {
			bad += k // not seen: AppendBatch writes what the generated code reads
			continue
		}
		n += k
		batches = append(batches, b)
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

// AppendBatch appends rs as one jaeger.thrift Batch in thrift's binary protocol (what a
// collector's /api/traces takes) to buf, written straight from the span model (the
// exporter converts every span it sends): service.name becomes the process's service
// name (unknown_service without one) and the other resource attributes its tags. The
// bytes are those the generated thrift code writes for the same Batch. Spans without a
// valid trace or span ID are skipped and counted in bad; n is the number of spans
// written. With n 0 buf is returned as it was.
func AppendBatch(buf []byte, rs *tracepb.ResourceSpans) (out []byte, n, bad int) {
	if rs == nil {
		return buf, 0, 0
	}
	spans := 0
	for _, ss := range rs.ScopeSpans {
		spans += len(ss.GetSpans())
	}
	// A jaeger-client span with a few tags takes about 200 bytes: grown once, not by doubling.
	w := binWriter{b: slices.Grow(buf, 512+256*spans)}
	// Batch field 1: the process.
	w.field(tStruct, 1)
	service, ptags := "unknown_service", 0
	for _, kv := range rs.GetResource().GetAttributes() {
		if kv.GetKey() == "service.name" && kv.GetValue().GetStringValue() != "" {
			service = kv.GetValue().GetStringValue()
		} else if tagValue(kv) {
			ptags++
		}
	}
	w.field(tString, 1)
	w.str(service)
	if ptags > 0 {
		w.field(tList, 2)
		w.list(tStruct, ptags)
		for _, kv := range rs.GetResource().GetAttributes() {
			if kv.GetKey() != "service.name" || kv.GetValue().GetStringValue() == "" {
				w.attr(kv)
			}
		}
	}
	w.stop()
	// Batch field 2: the spans; their number is written when known.
	w.field(tList, 2)
	count := w.list(tStruct, 0)
	for _, ss := range rs.ScopeSpans {
		name, version := ss.GetScope().GetName(), ss.GetScope().GetVersion()
		for _, sp := range ss.GetSpans() {
			if w.span(sp, name, version) {
				n++
			} else {
				bad++
			}
		}
	}
	if n == 0 {
		return buf, 0, bad
	}
	binary.BigEndian.PutUint32(w.b[count:], uint32(n))
	w.stop()
	return w.b, n, bad
}

// Thrift types and jaeger.thrift's tag types, as the binary protocol writes them.
const (
	tBool   = 2
	tDouble = 4
	tI32    = 8
	tI64    = 10
	tString = 11
	tStruct = 12
	tList   = 15

	tagString = int32(jaeger.TagType_STRING)
	tagDouble = int32(jaeger.TagType_DOUBLE)
	tagBool   = int32(jaeger.TagType_BOOL)
	tagLong   = int32(jaeger.TagType_LONG)
	tagBinary = int32(jaeger.TagType_BINARY)
)

// binWriter appends thrift's binary protocol.
type binWriter struct{ b []byte }

func (w *binWriter) field(t byte, id int16) { w.b = append(w.b, t, byte(id>>8), byte(id)) }
func (w *binWriter) stop()                  { w.b = append(w.b, 0) }
func (w *binWriter) i32(v int32)            { w.b = binary.BigEndian.AppendUint32(w.b, uint32(v)) }
func (w *binWriter) i64(v int64)            { w.b = binary.BigEndian.AppendUint64(w.b, uint64(v)) }
func (w *binWriter) str(s string)           { w.i32(int32(len(s))); w.b = append(w.b, s...) }

func (w *binWriter) i64Field(id int16, v int64) {
	w.field(tI64, id)
	w.i64(v)
}

// list writes a list header and returns where its size is, to be written again when the
// size was not known.
func (w *binWriter) list(elem byte, size int) int {
	w.b = append(w.b, elem)
	at := len(w.b)
	w.i32(int32(size))
	return at
}

// tag writes a Tag's key and type; the caller writes its value field and the stop.
func (w *binWriter) tag(k string, typ int32) {
	w.field(tString, 1)
	w.str(k)
	w.field(tI32, 2)
	w.i32(typ)
}

func (w *binWriter) strTag(k, v string) {
	w.tag(k, tagString)
	w.field(tString, 3)
	w.str(v)
	w.stop()
}

func (w *binWriter) boolTag(k string, v bool) {
	w.tag(k, tagBool)
	w.field(tBool, 5)
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
	w.stop()
}

// tagValue tells whether attr writes a tag: not without a key or a value.
func tagValue(kv *commonpb.KeyValue) bool {
	return kv.GetKey() != "" && kv.GetValue().GetValue() != nil
}

// attr writes an attribute as a tag if tagValue says it is one: strings, booleans,
// integers, doubles and bytes as the tag of that type; arrays and maps as a JSON string.
func (w *binWriter) attr(kv *commonpb.KeyValue) {
	if !tagValue(kv) {
		return
	}
	switch v := kv.Value.Value.(type) {
	case *commonpb.AnyValue_StringValue:
		w.strTag(kv.Key, v.StringValue)
	case *commonpb.AnyValue_BoolValue:
		w.boolTag(kv.Key, v.BoolValue)
	case *commonpb.AnyValue_IntValue:
		w.tag(kv.Key, tagLong)
		w.i64Field(6, v.IntValue)
		w.stop()
	case *commonpb.AnyValue_DoubleValue:
		w.tag(kv.Key, tagDouble)
		w.field(tDouble, 4)
		w.i64(int64(math.Float64bits(v.DoubleValue)))
		w.stop()
	case *commonpb.AnyValue_BytesValue:
		w.tag(kv.Key, tagBinary)
		if v.BytesValue != nil {
			w.field(tString, 7)
			w.i32(int32(len(v.BytesValue)))
			w.b = append(w.b, v.BytesValue...)
		}
		w.stop()
	default: // arrays and maps (tagValue saw a value)
		j, err := json.Marshal(anyValue(kv.Value))
		if err != nil {
			j = []byte("null") // plain values in lists and maps always marshal
		}
		w.strTag(kv.Key, string(j))
	}
}

// span writes one span with its scope's tags; false, writing nothing, when its IDs are
// not valid.
func (w *binWriter) span(sp *tracepb.Span, scopeName, scopeVersion string) bool {
	if sp == nil {
		return false
	}
	hi, lo, ok := traceID(sp.TraceId)
	id, idOK := spanID(sp.SpanId)
	if !ok || !idOK {
		return false
	}
	parent, hasParent := spanID(sp.ParentSpanId)
	w.i64Field(1, lo)
	w.i64Field(2, hi)
	w.i64Field(3, id)
	w.i64Field(4, parent)
	w.field(tString, 5)
	w.str(sp.Name)
	// References: the parent as CHILD_OF, links as FOLLOWS_FROM (CHILD_OF again for a link
	// ToOTLP made of a second CHILD_OF reference).
	refs := 0
	if hasParent {
		refs++
	}
	for _, l := range sp.Links {
		if validLink(l) {
			refs++
		}
	}
	if refs > 0 {
		w.field(tList, 6)
		w.list(tStruct, refs)
		if hasParent {
			w.ref(jaeger.SpanRefType_CHILD_OF, hi, lo, parent)
		}
		for _, l := range sp.Links {
			if !validLink(l) {
				continue
			}
			lhi, llo, _ := traceID(l.TraceId)
			lid, _ := spanID(l.SpanId)
			ref := jaeger.SpanRefType_FOLLOWS_FROM
			for _, kv := range l.Attributes {
				if kv.GetKey() == "opentracing.ref_type" && kv.GetValue().GetStringValue() == "child_of" {
					ref = jaeger.SpanRefType_CHILD_OF
				}
			}
			w.ref(ref, lhi, llo, lid)
		}
	}
	// Every span the agent exports is sampled: jaeger.thrift's flags say so whatever
	// OTLP's said (a span whose flags are unknown, 0, was sampled too, or it would not be here).
	w.field(tI32, 7)
	w.i32(sampled)
	w.i64Field(8, int64(sp.StartTimeUnixNano/1000))
	var d int64
	if sp.EndTimeUnixNano > sp.StartTimeUnixNano {
		d = int64((sp.EndTimeUnixNano - sp.StartTimeUnixNano) / 1000)
	}
	w.i64Field(9, d)

	// Tags: the attributes, the scope, the kind, the status, the trace state.
	w.field(tList, 10)
	count := w.list(tStruct, 0)
	tags := 0
	for _, kv := range sp.Attributes {
		if tagValue(kv) {
			w.attr(kv)
			tags++
		}
	}
	str := func(k, v string) {
		w.strTag(k, v)
		tags++
	}
	if scopeName != "" {
		str("otel.scope.name", scopeName)
	}
	if scopeVersion != "" {
		str("otel.scope.version", scopeVersion)
	}
	if k, ok := spanKinds[sp.Kind]; ok {
		str("span.kind", k)
	}
	switch sp.GetStatus().GetCode() {
	case tracepb.Status_STATUS_CODE_ERROR:
		w.boolTag("error", true)
		tags++
		str("otel.status_code", "ERROR")
		if m := sp.GetStatus().GetMessage(); m != "" {
			str("otel.status_description", m)
		}
	case tracepb.Status_STATUS_CODE_OK:
		str("otel.status_code", "OK")
	}
	if sp.TraceState != "" {
		str("w3c.tracestate", sp.TraceState)
	}
	binary.BigEndian.PutUint32(w.b[count:], uint32(tags))

	// Logs: the events, their name as the "event" field.
	events := 0
	for _, ev := range sp.Events {
		if ev != nil {
			events++
		}
	}
	if events > 0 {
		w.field(tList, 11)
		w.list(tStruct, events)
		for _, ev := range sp.Events {
			if ev != nil {
				w.event(ev)
			}
		}
	}
	w.stop()
	return true
}

// event writes an event as a span log.
func (w *binWriter) event(ev *tracepb.Span_Event) {
	w.i64Field(1, int64(ev.TimeUnixNano/1000))
	fields := 0
	if ev.Name != "" {
		fields++
	}
	for _, kv := range ev.Attributes {
		if tagValue(kv) {
			fields++
		}
	}
	w.field(tList, 2)
	w.list(tStruct, fields)
	if ev.Name != "" {
		w.strTag("event", ev.Name)
	}
	for _, kv := range ev.Attributes {
		w.attr(kv)
	}
	w.stop()
}

func validLink(l *tracepb.Span_Link) bool {
	_, _, ok := traceID(l.GetTraceId())
	_, idOK := spanID(l.GetSpanId())
	return ok && idOK
}

func (w *binWriter) ref(t jaeger.SpanRefType, hi, lo, id int64) {
	w.field(tI32, 1)
	w.i32(int32(t))
	w.i64Field(2, lo)
	w.i64Field(3, hi)
	w.i64Field(4, id)
	w.stop()
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
