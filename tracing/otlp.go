package tracing

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/metric"
)

// DefaultMaxOTLPRequestSize is the largest OTLP request body taken by default, after
// decompression.
const DefaultMaxOTLPRequestSize = 4 << 20

// OTLPPath is where the receiver takes spans, as an OpenTelemetry collector does.
const OTLPPath = "/v1/traces"

// OTLPConfig configures an OTLPReceiver.
type OTLPConfig struct {
	Addr           string   // "host:port" to listen on (plain HTTP)
	MaxRequestSize int      // body bytes at most, compressed and decompressed; 0 means DefaultMaxOTLPRequestSize
	Senders        *Senders // who sent a request (subscribe it to the inventory); nil: no one is known
	Log            logrus.FieldLogger
}

// OTLPReceiver takes spans over OTLP/HTTP (POST /v1/traces, protobuf, optionally gzip),
// as OpenTelemetry SDKs export them, adds to each resource the metadata of the container
// that sent the request (found by the connection's source address among the inventory's
// containers, as the Relay does), converts them to jaeger.thrift and hands them to the
// sink. Bad requests are answered with a 4xx and counted; a full queue is a 503, which
// the SDKs retry.
type OTLPReceiver struct {
	cfg     OTLPConfig
	sink    Sink
	ln      net.Listener
	srv     *http.Server
	senders *Senders

	requests, spans, malformed, tooLarge, unsupported, queueFull, badSpans, unknown atomic.Uint64
}

// NewOTLPReceiver listens on cfg.Addr; Run serves. Close it with Run's context.
func NewOTLPReceiver(cfg OTLPConfig, sink Sink) (*OTLPReceiver, error) {
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = DefaultMaxOTLPRequestSize
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("OTLP receiver on %s: %w", cfg.Addr, err)
	}
	if cfg.Senders == nil {
		cfg.Senders = NewSenders()
	}
	o := &OTLPReceiver{cfg: cfg, sink: sink, ln: ln, senders: cfg.Senders}
	mux := http.NewServeMux()
	mux.Handle(OTLPPath, o)
	o.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10}
	return o, nil
}

// Addr is the address listened on.
func (o *OTLPReceiver) Addr() net.Addr { return o.ln.Addr() }

// Run serves until ctx is done, then closes the listener and waits, a few seconds at
// most, for the requests being served.
func (o *OTLPReceiver) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.cfg.Log.WithError(err).Error("OTLP receiver stopped")
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(sctx); err != nil {
		_ = o.srv.Close()
	}
	wg.Wait()
}

// ServeHTTP takes one export request.
func (o *OTLPReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		otlpError(w, false, http.StatusMethodNotAllowed, "want POST")
		return
	}
	o.requests.Add(1)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	asJSON := mt == "application/json"
	if mt != "application/x-protobuf" && !asJSON {
		o.unsupported.Add(1)
		otlpError(w, false, http.StatusUnsupportedMediaType, fmt.Sprintf("content type %q: want application/x-protobuf or application/json", mt))
		return
	}
	limit := int64(o.cfg.MaxRequestSize)
	if r.ContentLength > limit {
		o.tooLarge.Add(1)
		otlpError(w, asJSON, http.StatusRequestEntityTooLarge, fmt.Sprintf("request of %d bytes: at most %d are taken", r.ContentLength, limit))
		return
	}
	var body io.Reader = http.MaxBytesReader(w, r.Body, limit)
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(body)
		if err != nil {
			o.malformedRequest(w, r, asJSON, fmt.Errorf("gzip: %w", err))
			return
		}
		body = zr
	default:
		o.unsupported.Add(1)
		otlpError(w, asJSON, http.StatusUnsupportedMediaType, fmt.Sprintf("content encoding %q: want gzip or none", enc))
		return
	}
	buf, err := io.ReadAll(io.LimitReader(body, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(buf)) > limit {
		o.tooLarge.Add(1)
		otlpError(w, asJSON, http.StatusRequestEntityTooLarge, fmt.Sprintf("request above %d bytes (decompressed too)", limit))
		return
	}
	if err != nil {
		o.malformedRequest(w, r, asJSON, err)
		return
	}
	// ExportTraceServiceRequest and TracesData are the same message on the wire (field 1:
	// repeated ResourceSpans) and in JSON (resourceSpans); TracesData's package spares the
	// gRPC dependencies.
	var req tracepb.TracesData
	if asJSON {
		err = decodeOTLPJSON(buf, &req)
	} else {
		err = proto.Unmarshal(buf, &req)
	}
	if err != nil {
		o.malformedRequest(w, r, asJSON, err)
		return
	}
	var s *sender
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		s = o.senders.lookup(ap.Addr())
	}
	if s == nil {
		o.unknown.Add(1)
	}
	batches, n, bad := convertOTLP(req.ResourceSpans, s)
	o.spans.Add(uint64(n + bad))
	o.badSpans.Add(uint64(bad))
	if !o.sink.ExportBatches(batches) {
		o.queueFull.Add(1)
		w.Header().Set("Retry-After", "1")
		otlpError(w, asJSON, http.StatusServiceUnavailable, "the agent's span queue is full; retry later")
		return
	}
	if asJSON {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte("{}")) // an empty ExportTraceServiceResponse
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK) // an empty ExportTraceServiceResponse: no bytes
}

func (o *OTLPReceiver) malformedRequest(w http.ResponseWriter, r *http.Request, asJSON bool, err error) {
	if o.malformed.Add(1) == 1 {
		o.cfg.Log.WithError(err).WithField("from", r.RemoteAddr).Warn("OTLP receiver: malformed request dropped (counted; logged once)")
	}
	otlpError(w, asJSON, http.StatusBadRequest, "malformed OTLP request: "+err.Error())
}

// otlpError answers with a google.rpc.Status, as OTLP/HTTP wants, in the request's
// encoding (protobuf unless it came as JSON): field 1 the code (gRPC's, roughly), field
// 2 the message.
func otlpError(w http.ResponseWriter, asJSON bool, status int, msg string) {
	code := map[int]uint64{http.StatusBadRequest: 3, http.StatusRequestEntityTooLarge: 8, http.StatusServiceUnavailable: 14}[status]
	if code == 0 {
		code = 3 // INVALID_ARGUMENT
	}
	if asJSON {
		b, _ := json.Marshal(struct {
			Code    uint64 `json:"code"`
			Message string `json:"message"`
		}{code, msg})
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(b)
		return
	}
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.VarintType)
	b = protowire.AppendVarint(b, code)
	b = protowire.AppendTag(b, 2, protowire.BytesType)
	b = protowire.AppendString(b, msg)
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// convertOTLP turns OTLP resource spans into jaeger.thrift batches, one per resource:
// service.name becomes the process's service name and the other resource attributes its
// tags, followed by the sender's tags (which replace attributes of the same key; s may be
// nil). Spans without a valid trace or span ID are skipped and counted in bad; n is the
// number of spans converted.
func convertOTLP(rss []*tracepb.ResourceSpans, s *sender) (batches []*jaeger.Batch, n, bad int) {
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
		if s != nil {
			proc.Tags = s.retag(proc.Tags)
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
	js := &jaeger.Span{TraceIdHigh: hi, TraceIdLow: lo, SpanId: id, OperationName: sp.Name, Flags: 1,
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
			js.References = append(js.References, &jaeger.SpanRef{RefType: jaeger.SpanRefType_FOLLOWS_FROM,
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
		fields := []*jaeger.Tag{strTag("event", ev.Name)}
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

// OTLPStats are the receiver's counters.
type OTLPStats struct {
	Requests, Spans, Malformed, TooLarge, Unsupported, QueueFull, BadSpans, UnknownSender uint64
}

// Stats returns the counters.
func (o *OTLPReceiver) Stats() OTLPStats {
	return OTLPStats{Requests: o.requests.Load(), Spans: o.spans.Load(), Malformed: o.malformed.Load(),
		TooLarge: o.tooLarge.Load(), Unsupported: o.unsupported.Load(), QueueFull: o.queueFull.Load(),
		BadSpans: o.badSpans.Load(), UnknownSender: o.unknown.Load()}
}

// Points reports lookout_spans_otlp.
func (o *OTLPReceiver) Points(now time.Time, tags map[string]string) []metric.Point {
	s := o.Stats()
	return []metric.Point{metric.New("lookout_spans_otlp", tags, []metric.Field{
		{Key: "requests_received", Value: s.Requests},
		{Key: "spans_received", Value: s.Spans},
		{Key: "requests_malformed", Value: s.Malformed},
		{Key: "requests_too_large", Value: s.TooLarge},
		{Key: "requests_unsupported_media_type", Value: s.Unsupported},
		{Key: "requests_queue_full", Value: s.QueueFull},
		{Key: "spans_dropped_malformed", Value: s.BadSpans},
		{Key: "requests_unknown_sender", Value: s.UnknownSender},
	}, now)}
}
