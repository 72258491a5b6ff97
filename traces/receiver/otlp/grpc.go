package otlp

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/traces"
)

// ExportMethod is the gRPC method the GRPC receiver serves: OTLP's
// TraceService/Export.
const ExportMethod = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"

// gRPC status codes (google.golang.org/grpc/codes) the receiver answers with.
const (
	codeOK                = 0
	codeInvalidArgument   = 3
	codeResourceExhausted = 8
	codeUnimplemented     = 12
	codeInternal          = 13
	codeUnavailable       = 14
)

// The HTTP/2 bounds of a gRPC connection: the calls it may have open at once (Go's
// default is 250), and the request bytes the server buffers for it before its handlers
// read them (Go's default is 1 MiB a connection): 64 connections at 256 KiB hold at most
// 16 MiB that the shared request budget does not see.
const (
	grpcMaxStreams    = 100
	grpcReceiveBuffer = 256 << 10
)

// GRPC takes spans over OTLP/gRPC: the unary call TraceService/Export over HTTP/2
// without TLS (h2c with prior knowledge, as the SDKs' insecure gRPC exporters dial), on
// Go's own HTTP/2 server: a gRPC message is a 5-byte prefix (compressed flag, length) and
// the protobuf, the status goes in the trailers. It tags and hands on the spans as the
// HTTP receiver does and answers the same way in gRPC's terms: INVALID_ARGUMENT for a
// malformed request, RESOURCE_EXHAUSTED above the size limit, UNAVAILABLE when the queue
// is full (which the SDKs retry), UNIMPLEMENTED for another method or an unknown
// grpc-encoding (gzip is served).
type GRPC struct {
	*server
}

// NewGRPC listens on cfg.Addr; Run serves. Close it with Run's context.
func NewGRPC(cfg Config, sink traces.Sink) (*GRPC, error) {
	g := &GRPC{}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv, err := newServer(cfg, sink, "OTLP/gRPC receiver", &http.Server{Handler: g, Protocols: &protocols,
		ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		HTTP2: &http.HTTP2Config{MaxConcurrentStreams: grpcMaxStreams,
			MaxReceiveBufferPerConnection: grpcReceiveBuffer, MaxReceiveBufferPerStream: grpcReceiveBuffer}})
	if err != nil {
		return nil, err
	}
	g.server = srv
	return g, nil
}

// ServeHTTP takes one gRPC call.
func (g *GRPC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ct := r.Header.Get("Content-Type")
	if r.Method != http.MethodPost || !(ct == "application/grpc" || ct == "application/grpc+proto" || strings.HasPrefix(ct, "application/grpc;")) {
		// Not gRPC at all: HTTP's answer, as the gRPC protocol asks.
		g.unsupported.Add(1)
		http.Error(w, "want a gRPC call (POST, application/grpc) of "+ExportMethod, http.StatusUnsupportedMediaType)
		return
	}
	g.requests.Add(1)
	if r.URL.Path != ExportMethod {
		g.unsupported.Add(1)
		grpcStatus(w, codeUnimplemented, "unknown method "+r.URL.Path+": this server has only "+ExportMethod)
		return
	}
	var held int64
	defer func() { g.cfg.Budget.give(held) }()
	msg, code, err := g.readMessage(r, &held)
	if err != nil {
		switch code {
		case codeResourceExhausted:
			g.tooLarge.Add(1)
		case codeUnavailable:
			g.busy.Add(1)
		case codeUnimplemented:
			g.unsupported.Add(1)
		default:
			g.malformedRequest(r.RemoteAddr, err)
		}
		grpcStatus(w, code, err.Error())
		return
	}
	// ExportTraceServiceRequest and TracesData are the same message on the wire.
	var req tracepb.TracesData
	if err := proto.Unmarshal(msg, &req); err != nil {
		g.malformedRequest(r.RemoteAddr, err)
		grpcStatus(w, codeInvalidArgument, "malformed OTLP request: "+err.Error())
		return
	}
	if !g.take(r.RemoteAddr, req.ResourceSpans) {
		grpcStatus(w, codeUnavailable, "the agent's span queue is full; retry later")
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Accept-Encoding", "gzip")
	h.Set("Trailer", "Grpc-Status, Grpc-Message")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte{0, 0, 0, 0, 0}) // an empty ExportTraceServiceResponse, uncompressed
	h.Set("Grpc-Status", strconv.Itoa(codeOK))
	h.Set("Grpc-Message", "")
}

// readMessage reads the request's one message: its bytes, or the status code to answer
// and why. The memory it holds is taken from the budget, and added to held.
func (g *GRPC) readMessage(r *http.Request, held *int64) ([]byte, int, error) {
	limit := g.cfg.MaxRequestSize
	var prefix [5]byte
	if _, err := io.ReadFull(r.Body, prefix[:]); err != nil {
		return nil, codeInvalidArgument, fmt.Errorf("malformed gRPC message: %w", err)
	}
	n := binary.BigEndian.Uint32(prefix[1:])
	if uint64(n) > uint64(limit) {
		return nil, codeResourceExhausted, fmt.Errorf("message of %d bytes: at most %d are taken", n, limit)
	}
	msg, err := g.readBody(io.LimitReader(r.Body, int64(n)), int(n), int(n), held)
	if errors.Is(err, errBusy) {
		return nil, codeUnavailable, err
	}
	if err == nil && len(msg) < int(n) {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, codeInvalidArgument, fmt.Errorf("malformed gRPC message: %w", err)
	}
	if k, _ := io.ReadFull(r.Body, prefix[:1]); k > 0 {
		return nil, codeInvalidArgument, errors.New("malformed gRPC call: more than one message for a unary method")
	}
	switch prefix[0] {
	case 0:
		return msg, codeOK, nil
	case 1:
	default:
		return nil, codeInvalidArgument, fmt.Errorf("malformed gRPC message: compressed flag %d", prefix[0])
	}
	switch enc := strings.TrimSpace(r.Header.Get("Grpc-Encoding")); enc {
	case "gzip":
	case "", "identity":
		return nil, codeInternal, errors.New("compressed message without a grpc-encoding")
	default:
		return nil, codeUnimplemented, fmt.Errorf("grpc-encoding %q: want gzip or none", enc)
	}
	zr, err := gzip.NewReader(bytes.NewReader(msg))
	if err != nil {
		return nil, codeInvalidArgument, fmt.Errorf("gzip: %w", err)
	}
	out, err := g.readBody(zr, limit, 0, held)
	if errors.Is(err, errBusy) {
		return nil, codeUnavailable, err
	}
	if err != nil {
		return nil, codeInvalidArgument, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > limit {
		return nil, codeResourceExhausted, fmt.Errorf("message above %d bytes decompressed", limit)
	}
	return out, codeOK, nil
}

// grpcStatus answers a call with a status and no message: gRPC's trailers-only response,
// the status in the headers of an HTTP 200.
func grpcStatus(w http.ResponseWriter, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "application/grpc")
	h.Set("Grpc-Accept-Encoding", "gzip")
	h.Set("Grpc-Status", strconv.Itoa(code))
	h.Set("Grpc-Message", percentEncode(msg))
	w.WriteHeader(http.StatusOK)
}

// percentEncode encodes a grpc-message as the gRPC protocol wants: bytes outside
// printable ASCII, and '%', as %XX.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Points reports lookout_spans_otlp_grpc.
func (g *GRPC) Points(now time.Time, tags map[string]string) []metric.Point {
	return g.points("lookout_spans_otlp_grpc", now, tags)
}
