// Package traces is the span model inside the agent and what every span goes through:
// spans are OpenTelemetry's protobuf types (tracepb.ResourceSpans and below) from the
// moment a receiver takes them or a check makes them until an exporter encodes them.
// Wire formats other than OTLP (jaeger.thrift) exist only at the edges, in
// traces/jaegerthrift.
//
// The data flow, one package per step:
//
//	traces/receiver/jaegerudp, traces/receiver/otlp, traces/checkspans  (producers)
//	        -> Sink: the Queue here (bounded in spans, drops counted)
//	        -> Exporter: traces/exporter/jaeger (jaeger.thrift over HTTP) or
//	           traces/exporter/otlp (OTLP/HTTP protobuf)
//
// A producer never imports another producer or an exporter; cmd/agent wires them.
package traces

import (
	"context"
	"fmt"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

// Sink takes resource spans all or none and never blocks (the Queue): false when it had
// no room. It owns what it is given: the caller must not change it afterwards.
type Sink interface {
	ExportSpans(rss []*tracepb.ResourceSpans) bool
}

// Exporter sends one request's worth of resource spans to a collector. It returns the
// spans the collector took the request but rejected (an OTLP partial success, spans the
// wire format cannot carry), a *RefusedError when the collector refused the spans for
// good (they are dropped and counted), a *RetryAfterError or any other error when they
// should be sent again later.
type Exporter interface {
	Export(ctx context.Context, rss []*tracepb.ResourceSpans) (rejected int, err error)
	// Requests returns how many requests were sent and how many of them failed.
	Requests() (sent, failed uint64)
}

// RetryAfterError is a failure the collector said when to try again after.
type RetryAfterError struct {
	Err   error
	After time.Duration
}

func (r *RetryAfterError) Error() string { return r.Err.Error() }
func (r *RetryAfterError) Unwrap() error { return r.Err }

// RefusedError is a request the collector refused: sending it again would not help.
type RefusedError struct {
	Status int // the HTTP status; 0 when the request could not even be encoded
	Body   string
}

func (r *RefusedError) Error() string {
	return fmt.Sprintf("collector answered %d: %s", r.Status, r.Body)
}

// CountSpans returns the number of spans in rss.
func CountSpans(rss []*tracepb.ResourceSpans) int {
	n := 0
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}
