package jaegerthrift

import (
	"bytes"
	"encoding/binary"
	"math"
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
	return SpansToOTLP(b, Resource(b.GetProcess()))
}

// Resource converts a process to a resource: its service name (unknown_service without
// one) as service.name first, its tags as the other attributes.
func Resource(p *jaeger.Process) *resourcepb.Resource {
	var n arenaSize
	n.add(nil)
	service := "unknown_service"
	var ptags []*jaeger.Tag
	if p != nil {
		if p.ServiceName != "" {
			service = p.ServiceName
		}
		ptags = p.Tags
		n.addAll(ptags)
	}
	a := newAttrArena(n)
	res := &resourcepb.Resource{Attributes: a.ptrs(len(ptags) + 1)}
	res.Attributes = append(res.Attributes, a.str("service.name", service))
	for _, t := range ptags {
		if kv := a.tagAttr(t); kv != nil && kv.Key != "service.name" {
			res.Attributes = append(res.Attributes, kv)
		}
	}
	return res
}

// SameProcess tells whether Resource makes the same resource of a and b: the relay
// shares one resource among the batches of a client whose process did not change.
func SameProcess(a, b *jaeger.Process) bool {
	if a == nil || b == nil || a.ServiceName != b.ServiceName || len(a.Tags) != len(b.Tags) {
		return a == nil && b == nil
	}
	for i, t := range a.Tags {
		u := b.Tags[i]
		if t == nil || u == nil {
			if t != u {
				return false
			}
			continue
		}
		if t.Key != u.Key || t.VType != u.VType || t.GetVStr() != u.GetVStr() || t.GetVBool() != u.GetVBool() ||
			t.GetVLong() != u.GetVLong() || math.Float64bits(t.GetVDouble()) != math.Float64bits(u.GetVDouble()) ||
			!bytes.Equal(t.GetVBinary(), u.GetVBinary()) {
			return false
		}
	}
	return true
}

// SpansToOTLP converts b's spans to a ResourceSpans of res (b's process as Resource
// converts it, maybe shared with other batches of the same process).
func SpansToOTLP(b *jaeger.Batch, res *resourcepb.Resource) *tracepb.ResourceSpans {
	// The relay converts every span it reads: the spans, their IDs and their attributes
	// are allocated per batch, not one by one.
	var n arenaSize
	for _, s := range b.Spans {
		if s != nil {
			n.addAll(s.Tags)
			n.slots += len(s.References)
			n.kvs += len(s.References)
			n.strs += len(s.References)
			for _, l := range s.Logs {
				if l != nil {
					n.addAll(l.Fields)
				}
			}
		}
	}
	a := newAttrArena(n)
	rs := &tracepb.ResourceSpans{Resource: res}
	spans := make([]tracepb.Span, len(b.Spans))
	ids := make([]byte, 32*len(b.Spans))
	type scoped struct {
		scope [2]string
		ss    *tracepb.ScopeSpans
	}
	var scopes []scoped // few: looked up in order
	for i, s := range b.Spans {
		if s == nil {
			continue
		}
		sp := &spans[i]
		scope := toOTLPSpan(s, sp, ids[32*i:32*i+32:32*i+32], &a)
		var ss *tracepb.ScopeSpans
		for _, x := range scopes {
			if x.scope == scope {
				ss = x.ss
				break
			}
		}
		if ss == nil {
			ss = &tracepb.ScopeSpans{}
			if scope != ([2]string{}) {
				ss.Scope = &commonpb.InstrumentationScope{Name: scope[0], Version: scope[1]}
			}
			if len(scopes) == 0 {
				ss.Spans = make([]*tracepb.Span, 0, len(b.Spans))
			}
			scopes = append(scopes, scoped{scope, ss})
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

// toOTLPSpan converts s into sp, its trace, span and parent IDs in ids (32 bytes), its
// attributes from a, and returns the instrumentation scope (name, version) its tags named.
func toOTLPSpan(s *jaeger.Span, sp *tracepb.Span, ids []byte, a *attrArena) [2]string {
	tid := ids[:16:16]
	binary.BigEndian.PutUint64(tid[:8], uint64(s.TraceIdHigh))
	binary.BigEndian.PutUint64(tid[8:], uint64(s.TraceIdLow))
	sid := ids[16:24:24]
	binary.BigEndian.PutUint64(sid, uint64(s.SpanId))
	sp.TraceId, sp.SpanId, sp.Name = tid, sid, validUTF8(s.OperationName)
	sp.Kind = tracepb.Span_SPAN_KIND_UNSPECIFIED
	sp.StartTimeUnixNano = uint64(max(s.StartTime, 0)) * 1000
	sp.EndTimeUnixNano = uint64(max(s.StartTime+s.Duration, 0)) * 1000
	sp.Flags = uint32(s.Flags) & sampled
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
		la := a.ptrs(1)
		sp.Links = append(sp.Links, &tracepb.Span_Link{TraceId: lid, SpanId: otlpSpanID(r.SpanId),
			Attributes: append(la, a.str("opentracing.ref_type", refType))})
	}
	if parent != 0 {
		sp.ParentSpanId = ids[24:32:32]
		binary.BigEndian.PutUint64(sp.ParentSpanId, uint64(parent))
	}

	var scope [2]string
	var isError bool
	var statusCode string
	var desc *jaeger.Tag
	sp.Attributes = a.ptrs(len(s.Tags)) // room for desc, one of them, below
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
		if kv := a.tagAttr(t); kv != nil {
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
		if kv := a.tagAttr(desc); kv != nil {
			sp.Attributes = append(sp.Attributes, kv)
		}
	}
	for _, l := range s.Logs {
		if l == nil {
			continue
		}
		ev := &tracepb.Span_Event{TimeUnixNano: uint64(max(l.Timestamp, 0)) * 1000, Attributes: a.ptrs(len(l.Fields))}
		for _, f := range l.Fields {
			if f != nil && f.Key == "event" && f.VStr != nil && ev.Name == "" {
				ev.Name = validUTF8(*f.VStr)
				continue
			}
			if kv := a.tagAttr(f); kv != nil {
				ev.Attributes = append(ev.Attributes, kv)
			}
		}
		sp.Events = append(sp.Events, ev)
	}
	return scope
}

func otlpSpanID(id int64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, uint64(id))
	return b
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

// attrArena hands out the attributes of one batch from a few slices (a relayed batch's
// spans travel through the agent together): each KeyValue with its AnyValue, string values
// with their wrapper, and the slices of pointers the spans, events and links hold.
type attrArena struct {
	kvs   []commonpb.KeyValue
	vals  []commonpb.AnyValue
	strs  []commonpb.AnyValue_StringValue
	slots []*commonpb.KeyValue
}

// arenaSize counts what an attrArena is made with: a slot for each tag, a KeyValue for
// each tag that is likely an attribute (not one of the tags that become span fields), a
// string value for each of those that is a string.
type arenaSize struct{ slots, kvs, strs int }

// add counts one tag; nil counts a string attribute (service.name).
func (n *arenaSize) add(t *jaeger.Tag) {
	n.slots++
	if t != nil {
		switch t.Key {
		case "span.kind", "otel.status_code", "w3c.tracestate", "otel.scope.name", "otel.library.name",
			"otel.scope.version", "otel.library.version":
			return
		}
	}
	n.kvs++
	if t == nil || t.VType == jaeger.TagType_STRING {
		n.strs++
	}
}

func (n *arenaSize) addAll(tags []*jaeger.Tag) {
	for _, t := range tags {
		n.add(t)
	}
}

func newAttrArena(n arenaSize) attrArena {
	return attrArena{kvs: make([]commonpb.KeyValue, n.kvs), vals: make([]commonpb.AnyValue, n.kvs),
		strs: make([]commonpb.AnyValue_StringValue, n.strs), slots: make([]*commonpb.KeyValue, n.slots)}
}

// kv returns a KeyValue with key k and an empty value.
func (a *attrArena) kv(k string) *commonpb.KeyValue {
	if len(a.kvs) == 0 {
		a.kvs, a.vals = make([]commonpb.KeyValue, 8), make([]commonpb.AnyValue, 8)
	}
	kv, v := &a.kvs[0], &a.vals[0]
	a.kvs, a.vals = a.kvs[1:], a.vals[1:]
	kv.Key, kv.Value = validUTF8(k), v
	return kv
}

// str returns a string attribute.
func (a *attrArena) str(k, v string) *commonpb.KeyValue {
	kv := a.kv(k)
	if len(a.strs) == 0 {
		a.strs = make([]commonpb.AnyValue_StringValue, 8)
	}
	sv := &a.strs[0]
	a.strs = a.strs[1:]
	sv.StringValue = validUTF8(v)
	kv.Value.Value = sv
	return kv
}

// ptrs returns an empty slice with room for n attributes; appending more copies it.
func (a *attrArena) ptrs(n int) []*commonpb.KeyValue {
	if n > len(a.slots) {
		return make([]*commonpb.KeyValue, 0, n)
	}
	p := a.slots[:0:n]
	a.slots = a.slots[n:]
	return p
}

// tagAttr converts a tag to the attribute of its type; nil for a tag without a key.
func (a *attrArena) tagAttr(t *jaeger.Tag) *commonpb.KeyValue {
	if t == nil || t.Key == "" {
		return nil
	}
	var kv *commonpb.KeyValue
	switch t.VType {
	case jaeger.TagType_BOOL:
		kv = a.kv(t.Key)
		kv.Value.Value = &commonpb.AnyValue_BoolValue{BoolValue: t.GetVBool()}
	case jaeger.TagType_LONG:
		kv = a.kv(t.Key)
		kv.Value.Value = &commonpb.AnyValue_IntValue{IntValue: t.GetVLong()}
	case jaeger.TagType_DOUBLE:
		kv = a.kv(t.Key)
		kv.Value.Value = &commonpb.AnyValue_DoubleValue{DoubleValue: t.GetVDouble()}
	case jaeger.TagType_BINARY:
		kv = a.kv(t.Key)
		kv.Value.Value = &commonpb.AnyValue_BytesValue{BytesValue: t.GetVBinary()}
	default:
		kv = a.str(t.Key, t.GetVStr())
	}
	return kv
}
