// Package otlp exports spans over OTLP/HTTP (protobuf, gzip) to /v1/traces: Jaeger's own
// OTLP receiver or an OpenTelemetry Collector. The agent's spans are OTLP already, so
// what a receiver took leaves as it came, with the sender's resource attributes added.
package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"net/http"

	"github.com/sirupsen/logrus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/traces"
)

// Exporter sends all the resources of a batch in one ExportTraceServiceRequest.
type Exporter struct {
	*traces.Poster
	log logrus.FieldLogger
}

// New checks cfg and returns an exporter.
func New(cfg traces.HTTPConfig) (*Exporter, error) {
	// OTLP/HTTP: only 429, 502, 503 and 504 are worth another try.
	p, err := traces.NewPoster(&cfg, func(status int) bool {
		return status == http.StatusTooManyRequests || status == http.StatusBadGateway ||
			status == http.StatusServiceUnavailable || status == http.StatusGatewayTimeout
	})
	if err != nil {
		return nil, err
	}
	return &Exporter{Poster: p, log: cfg.Log}, nil
}

var _ traces.Exporter = (*Exporter)(nil)

// Export sends rss in one request; rejected is what the answer's partial success says.
func (e *Exporter) Export(ctx context.Context, rss []*tracepb.ResourceSpans) (rejected int, err error) {
	body, err := Encode(rss)
	if err != nil {
		return 0, &traces.RefusedError{Body: "cannot encode the batch: " + err.Error()}
	}
	msg, err := e.Post(ctx, "application/x-protobuf", "gzip", body)
	if err != nil {
		return 0, err
	}
	n, why := otlpRejected(msg)
	if n > 0 {
		e.log.WithField("spans", n).WithField("reason", why).Warn("collector rejected some spans (OTLP partial success); dropped")
	}
	return int(min(max(n, 0), int64(traces.CountSpans(rss)))), nil
}

// Encode encodes rss as one OTLP ExportTraceServiceRequest (the same message on the wire
// as TracesData), gzip-compressed.
func Encode(rss []*tracepb.ResourceSpans) ([]byte, error) {
	raw, err := proto.Marshal(&tracepb.TracesData{ResourceSpans: rss})
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
