package jaegerudp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

// thriftOut encodes what the relay hands on as the thrift exporter does: the path of a
// relayed span through the agent to Jaeger's /api/traces, but the network.
type thriftOut struct{ n int }

func (o *thriftOut) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	for _, rs := range rss {
		body, _, _ := jaegerthrift.AppendBatch(nil, rs)
		o.n += len(body)
	}
	return true
}

// BenchmarkRelayToThrift is one packet of 10 jaeger-client spans from a known container,
// read, converted to the span model, tagged, converted back and encoded for /api/traces.
func BenchmarkRelayToThrift(b *testing.B) {
	senders := traces.NewSenders()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: tracetest.Container()})
	r, err := New(Config{Senders: senders}, &thriftOut{})
	if err != nil {
		b.Fatal(err)
	}
	batch := testBatch("svc", 10)
	for _, s := range batch.Spans {
		s.Tags = []*jaeger.Tag{strTag("http.method", "GET"), strTag("span.kind", "server")}
	}
	pkt := encodeEmitBatch(b, batch, Compact)
	from := netip.MustParseAddr("10.0.1.7")
	b.ReportAllocs()
	for b.Loop() {
		r.Handle(pkt, Compact, from)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10), "ns/span")
}
