// Package otlp receives spans over OTLP, as OpenTelemetry SDKs export them: OTLP/HTTP
// (POST /v1/traces, protobuf or JSON, optionally gzip) and OTLP/gRPC
// (TraceService/Export). Both tag each request's resources with the container that sent
// it (traces.Senders) and hand the spans, unconverted, to the sink.
package otlp

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/traces"
)

// Path is where the HTTP receiver takes spans, as an OpenTelemetry collector does.
const Path = "/v1/traces"

// HTTP takes spans over OTLP/HTTP (POST /v1/traces, protobuf or JSON, optionally gzip),
// adds to each resource the metadata of the container that sent the request (found by
// the connection's source address among the inventory's containers, as the UDP relay
// does) and hands them to the sink. Bad requests are answered with a 4xx and counted; a
// full queue is a 503, which the SDKs retry.
type HTTP struct {
	*server
}

// NewHTTP listens on cfg.Addr; Run serves. Close it with Run's context.
func NewHTTP(cfg Config, sink traces.Sink) (*HTTP, error) {
	o := &HTTP{}
	mux := http.NewServeMux()
	mux.Handle(Path, o)
	srv, err := newServer(cfg, sink, "OTLP receiver", &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10})
	if err != nil {
		return nil, err
	}
	o.server = srv
	return o, nil
}

// ServeHTTP takes one export request.
func (o *HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
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
	hint := int(max(r.ContentLength, 0)) // of the buffer, when not compressed
	switch enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding"))); enc {
	case "", "identity":
	case "gzip":
		hint = 0
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
	var held int64
	defer func() { o.cfg.Budget.give(held) }()
	buf, err := o.readBody(body, int(limit), hint, &held)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || int64(len(buf)) > limit {
		o.tooLarge.Add(1)
		otlpError(w, asJSON, http.StatusRequestEntityTooLarge, fmt.Sprintf("request above %d bytes (decompressed too)", limit))
		return
	}
	if errors.Is(err, errBusy) {
		o.busy.Add(1)
		w.Header().Set("Retry-After", "1")
		otlpError(w, asJSON, http.StatusServiceUnavailable, err.Error())
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
	if !o.take(r.RemoteAddr, req.ResourceSpans) {
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

func (o *HTTP) malformedRequest(w http.ResponseWriter, r *http.Request, asJSON bool, err error) {
	o.server.malformedRequest(r.RemoteAddr, err)
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
