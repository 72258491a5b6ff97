// Package jaeger exports spans to a Jaeger collector as jaeger.thrift (binary) over HTTP,
// to its /api/traces endpoint: one request per resource (a thrift Batch has one process).
package jaeger

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

// Exporter sends spans as jaeger.thrift over HTTP. Spans jaeger.thrift cannot carry (no
// valid trace or span ID: a relayed span with zero IDs) are rejected, so counted as
// dropped_send_failure.
type Exporter struct {
	*traces.Poster
	log     logrus.FieldLogger
	invalid atomic.Uint64
}

// New checks cfg and returns an exporter.
func New(cfg traces.HTTPConfig) (*Exporter, error) {
	// jaeger.thrift over HTTP: any 5xx and 429 are worth another try.
	p, err := traces.NewPoster(&cfg, func(status int) bool {
		return status == http.StatusTooManyRequests || status >= 500
	})
	if err != nil {
		return nil, err
	}
	return &Exporter{Poster: p, log: cfg.Log}, nil
}

var _ traces.Exporter = (*Exporter)(nil)

// Export sends one request per resource of rss. A refused request's spans are rejected
// and the others still sent; any other failure returns the error (all are sent again,
// those already taken too: at least once).
func (e *Exporter) Export(ctx context.Context, rss []*tracepb.ResourceSpans) (rejected int, err error) {
	for _, rs := range rss {
		// jaeger.thrift written straight from the span model, a new buffer per request
		// (the HTTP client may still read a body after Post returned).
		body, n, skipped := jaegerthrift.AppendBatch(nil, rs)
		if skipped > 0 && e.invalid.Add(uint64(skipped)) == uint64(skipped) {
			e.log.WithField("spans", skipped).Warn("spans without a valid trace or span ID cannot go over jaeger.thrift; dropped (counted in dropped_send_failure; logged once)")
		}
		rejected += skipped
		if n == 0 {
			continue
		}
		_, err := e.Post(ctx, "application/vnd.apache.thrift.binary", "", body)
		var re *traces.RefusedError
		if errors.As(err, &re) {
			rejected += n
			e.log.WithError(err).Warn("collector refused spans; dropped")
			continue
		}
		if err != nil {
			return 0, err
		}
	}
	return rejected, nil
}
