package jaeger

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	jaeger "github.com/uber/jaeger-client-go/thrift-gen/jaeger"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
	"github.com/lookout-agent/lookout/traces/receiver/jaegerudp"
)

// BenchmarkRelayQueueThrift is the whole path of a relayed span but the sockets: a
// packet of 10 jaeger-client spans from a known container read by the relay, queued, and
// sent in batches of 500 as jaeger.thrift to a collector that reads and discards them.
func BenchmarkRelayQueueThrift(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	exp, err := New(traces.HTTPConfig{Endpoint: srv.URL + "/api/traces"})
	if err != nil {
		b.Fatal(err)
	}
	q, err := traces.NewQueue(traces.QueueConfig{BatchSize: 500, Limit: 50000, Interval: time.Hour}, exp)
	if err != nil {
		b.Fatal(err)
	}
	senders := traces.NewSenders()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: tracetest.Container()})
	r, err := jaegerudp.New(jaegerudp.Config{Senders: senders}, q)
	if err != nil {
		b.Fatal(err)
	}
	pkt := packet(b)
	from := netip.MustParseAddr("10.0.1.7")
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		r.Handle(pkt, jaegerudp.Compact, from)
		if n++; n%50 == 0 {
			for q.Flush(context.Background()) == nil && q.Stats().Queued > 0 {
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*10), "ns/span")
	sent, _ := exp.Requests()
	b.ReportMetric(float64(b.N*10)/float64(sent), "spans/request")
}

// packet is an emitBatch of 10 spans as jaeger-client-go sends it.
func packet(b *testing.B) []byte {
	s := func(k, v string) *jaeger.Tag { return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v} }
	batch := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "svc", Tags: []*jaeger.Tag{s("hostname", "abc"), s("jaeger.version", "Go-2.30.0"), s("ip", "10.0.1.7")}}}
	for i := range 10 {
		batch.Spans = append(batch.Spans, &jaeger.Span{TraceIdLow: int64(i + 1), SpanId: int64(i + 1), ParentSpanId: 1, OperationName: "op",
			Flags: 1, StartTime: time.Now().UnixMicro(), Duration: 5, Tags: []*jaeger.Tag{s("span.kind", "server"), s("http.method", "GET")}})
	}
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	_ = p.WriteMessageBegin(ctx, "emitBatch", thrift.ONEWAY, 1)
	args := agent.NewAgentEmitBatchArgs()
	args.Batch = batch
	if err := args.Write(ctx, p); err != nil {
		b.Fatal(err)
	}
	_ = p.WriteMessageEnd(ctx)
	_ = p.Flush(ctx)
	return buf.Bytes()
}

// BenchmarkRelayQueueHeld is the memory a relayed span holds while it waits in the queue
// (the collector away): the heap after the relay queued 50,000 spans of packets of 10
// from a known container, per span; and what the queue's byte limit counts for it
// (traces.SpanBytes, the estimate), per span. The byte limit is raised out of the way.
func BenchmarkRelayQueueHeld(b *testing.B) {
	senders := traces.NewSenders()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: tracetest.Container()})
	pkt := packet(b)
	from := netip.MustParseAddr("10.0.1.7")
	exp, err := New(traces.HTTPConfig{Endpoint: "http://127.0.0.1:1/api/traces"})
	if err != nil {
		b.Fatal(err)
	}
	var held, estimated uint64
	for b.Loop() {
		q, err := traces.NewQueue(traces.QueueConfig{BatchSize: 500, Limit: 50000, LimitBytes: 1 << 30, Interval: time.Hour}, exp)
		if err != nil {
			b.Fatal(err)
		}
		r, err := jaegerudp.New(jaegerudp.Config{Senders: senders}, q)
		if err != nil {
			b.Fatal(err)
		}
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		for range 5000 {
			r.Handle(pkt, jaegerudp.Compact, from)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		if n := q.Stats().Queued; n != 50000 {
			b.Fatalf("%d spans queued, want 50000", n)
		}
		held += m1.HeapAlloc - m0.HeapAlloc
		estimated += uint64(q.Stats().QueuedBytes)
		runtime.KeepAlive(r)
	}
	b.ReportMetric(float64(held)/float64(b.N*50000), "heap-B/span")
	b.ReportMetric(float64(estimated)/float64(b.N*50000), "estimated-B/span")
}
