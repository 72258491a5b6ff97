// Package jaeger exports spans to a Jaeger collector as jaeger.thrift (binary) over HTTP,
// to its /api/traces endpoint: one request per resource (a thrift Batch has one process).
package jaeger

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"

	"github.com/sirupsen/logrus"
	"github.com/uber/jaeger-client-go/thrift"
	jaegerpb "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
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
	batches, _, bad := jaegerthrift.FromOTLP(rss)
	if bad > 0 && e.invalid.Add(uint64(bad)) == uint64(bad) {
		e.log.WithField("spans", bad).Warn("spans without a valid trace or span ID cannot go over jaeger.thrift; dropped (counted in dropped_send_failure; logged once)")
	}
	rejected = bad
	for _, b := range batches {
		body, err := serializeBinary(ctx, b)
		if err == nil {
			_, err = e.Post(ctx, "application/vnd.apache.thrift.binary", "", body)
		}
		var re *traces.RefusedError
		if errors.As(err, &re) {
			rejected += len(b.Spans)
			e.log.WithError(err).Warn("collector refused spans; dropped")
			continue
		}
		if err != nil {
			return 0, err
		}
	}
	return rejected, nil
}

// serializeBinary encodes b with thrift's binary protocol, as /api/traces wants it.
func serializeBinary(ctx context.Context, b *jaegerpb.Batch) ([]byte, error) {
	buf := thrift.NewTMemoryBufferLen(1024)
	if err := b.Write(ctx, thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})); err != nil {
		return nil, &traces.RefusedError{Body: "cannot encode the batch: " + err.Error()}
	}
	return buf.Bytes(), nil
}
