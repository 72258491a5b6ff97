package jaeger

import (
	"context"
	"encoding/binary"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/uber/jaeger-client-go/thrift"
	jaeger "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

// fakeCollector decodes what the exporter posts; status decides the answer. The real
// collector is exercised by the e2e tests; this one tests the edge cases.
type fakeCollector struct {
	mu      sync.Mutex
	batches []*jaeger.Batch
	status  atomic.Int32
	delay   time.Duration
}

// export queues the spans of one service (the tests' shorthand for ExportSpans).
func export(q *traces.Queue, service string, spans []*tracepb.Span) bool {
	return q.ExportSpans([]*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{traces.StringAttr("service.name", service)}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}}}})
}

// testSpans are n spans of trace 1 with span IDs first, first+1, ...
func testSpans(first, n int) []*tracepb.Span {
	var out []*tracepb.Span
	for i := range n {
		id := make([]byte, 8)
		binary.BigEndian.PutUint64(id, uint64(first+i))
		out = append(out, &tracepb.Span{TraceId: []byte{15: 1}, SpanId: id, Name: "op", StartTimeUnixNano: uint64(time.Now().UnixNano()), EndTimeUnixNano: uint64(time.Now().UnixNano()) + 5000})
	}
	return out
}

func (f *fakeCollector) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	time.Sleep(f.delay)
	if st := int(f.status.Load()); st != 0 {
		w.WriteHeader(st)
		return
	}
	if r.Header.Get("Content-Type") != "application/vnd.apache.thrift.binary" || r.URL.Path != "/api/traces" {
		w.WriteHeader(http.StatusUnsupportedMediaType)
		return
	}
	buf := thrift.NewTMemoryBuffer()
	_, _ = buf.Write(body)
	b := &jaeger.Batch{}
	if err := b.Read(context.Background(), thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.batches = append(f.batches, b)
	f.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

func (f *fakeCollector) spans() (n int, batches int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, b := range f.batches {
		n += len(b.Spans)
	}
	return n, len(f.batches)
}

func startExporter(t *testing.T, cfg traces.QueueConfig) (*traces.Queue, *fakeCollector) {
	return startExporterDelay(t, cfg, 0)
}

func startExporterDelay(t *testing.T, cfg traces.QueueConfig, delay time.Duration) (*traces.Queue, *fakeCollector) {
	t.Helper()
	fc := &fakeCollector{delay: delay}
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	exp, err := New(traces.HTTPConfig{Endpoint: srv.URL + "/api/traces"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := traces.NewQueue(cfg, exp)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return e, fc
}

var eventually = tracetest.Eventually

func TestExporterBatchesByProcess(t *testing.T) {
	e, fc := startExporter(t, traces.QueueConfig{BatchSize: 4, Interval: time.Hour, Limit: 100})
	export(e, "a", testSpans(1, 1))
	export(e, "b", testSpans(2, 1))
	export(e, "a", testSpans(3, 2)) // 4 spans: a full batch, sent without waiting for the interval
	eventually(t, "4 spans at the collector", func() bool { n, _ := fc.spans(); return n == 4 })
	_, reqs := fc.spans()
	if reqs != 2 {
		t.Errorf("%d requests for 2 processes, want 2", reqs)
	}
	fc.mu.Lock()
	for _, bt := range fc.batches {
		want := map[string]int{"a": 3, "b": 1}[bt.Process.ServiceName]
		if len(bt.Spans) != want {
			t.Errorf("process %s: %d spans, want %d", bt.Process.ServiceName, len(bt.Spans), want)
		}
	}
	fc.mu.Unlock()
	eventually(t, "4 spans counted forwarded", func() bool { st := e.Stats(); return st.Forwarded == 4 && st.Queued == 0 })
}

func TestExporterIntervalSendsPartialBatch(t *testing.T) {
	e, fc := startExporter(t, traces.QueueConfig{BatchSize: 100, Interval: 50 * time.Millisecond, Limit: 100})
	export(e, "a", testSpans(1, 3))
	eventually(t, "a partial batch after the interval", func() bool { n, _ := fc.spans(); return n == 3 })
}

func TestExporterHoldsWhileCollectorFailsThenDrops(t *testing.T) {
	e, fc := startExporter(t, traces.QueueConfig{BatchSize: 2, Interval: 20 * time.Millisecond, Limit: 6})
	fc.status.Store(http.StatusServiceUnavailable)
	for i := range 3 {
		if !export(e, "a", testSpans(1+2*i, 2)) {
			t.Fatal("spans within the queue limit were refused")
		}
	}
	if export(e, "a", testSpans(7, 1)) {
		t.Error("a span beyond the queue limit was taken")
	}
	eventually(t, "a failed request", func() bool { return e.Stats().Failures > 0 })
	if st := e.Stats(); st.Queued != 6 || st.DroppedFull != 1 || st.Forwarded != 0 {
		t.Errorf("while failing: %+v", st)
	}
	fc.status.Store(0)
	eventually(t, "the held spans delivered", func() bool { n, _ := fc.spans(); return n == 6 })
	eventually(t, "6 spans counted forwarded", func() bool { st := e.Stats(); return st.Forwarded == 6 && st.Queued == 0 })
}

func TestExporterDropsRefusedBatch(t *testing.T) {
	e, fc := startExporter(t, traces.QueueConfig{BatchSize: 1, Interval: 20 * time.Millisecond, Limit: 10})
	fc.status.Store(http.StatusBadRequest)
	export(e, "a", testSpans(1, 1))
	eventually(t, "the refused span counted", func() bool { return e.Stats().DroppedSend == 1 })
	if st := e.Stats(); st.Queued != 0 {
		t.Errorf("a refused batch stayed queued: %+v", st)
	}
}

func TestNewExporterRejectsBadConfig(t *testing.T) {
	if _, err := New(traces.HTTPConfig{Endpoint: "ftp://x"}); err == nil {
		t.Errorf("ftp://x: no error")
	}
	exp, _ := New(traces.HTTPConfig{Endpoint: "http://x/api/traces"})
	for _, cfg := range []traces.QueueConfig{
		{BatchSize: 10, Limit: 5, Interval: time.Second},
		{BatchSize: 1, Limit: 5},
	} {
		if _, err := traces.NewQueue(cfg, exp); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// Spans exported while a batch is being sent are neither lost nor sent twice, and the
// queue count stays true (a batch taken while more spans arrived once emptied the queue
// but not its count).
func TestExporterConcurrentExportsAllArrive(t *testing.T) {
	e, fc := startExporterDelay(t, traces.QueueConfig{BatchSize: 1000, Interval: 5 * time.Millisecond, Limit: 100000}, 2*time.Millisecond)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				export(e, "a", testSpans(w*1000+i+1, 1))
				if i%50 == 0 {
					time.Sleep(time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	eventually(t, "2000 spans at the collector", func() bool { n, _ := fc.spans(); return n >= 2000 })
	eventually(t, "the queue empty", func() bool { st := e.Stats(); return st.Queued == 0 && st.Forwarded == 2000 })
	seen := map[int64]bool{}
	fc.mu.Lock()
	for _, b := range fc.batches {
		for _, s := range b.Spans {
			if seen[s.SpanId] {
				t.Errorf("span %d sent twice", s.SpanId)
			}
			seen[s.SpanId] = true
		}
	}
	fc.mu.Unlock()
}

func TestExporterCountsSpansLeftAtShutdown(t *testing.T) {
	fc := &fakeCollector{}
	fc.status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	exp, err := New(traces.HTTPConfig{Endpoint: srv.URL + "/api/traces"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := traces.NewQueue(traces.QueueConfig{BatchSize: 100, Interval: time.Hour,
		Limit: 100, Timeout: 200 * time.Millisecond}, exp)
	if err != nil {
		t.Fatal(err)
	}
	export(e, "a", testSpans(1, 5))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stop at once: the last flush meets a collector that answers 503
	e.Run(ctx)
	if st := e.Stats(); st.Queued != 0 || st.DroppedSend != 5 || st.Forwarded != 0 {
		t.Errorf("after shutdown with the collector away: %+v, want the 5 spans counted as dropped", st)
	}
}

// jaeger.thrift cannot carry a span without IDs (a relayed span with zero IDs): it is
// dropped at export and counted as a send failure; the others of its batch go.
func TestExporterDropsSpansWithoutIDs(t *testing.T) {
	e, fc := startExporter(t, traces.QueueConfig{BatchSize: 2, Interval: 20 * time.Millisecond, Limit: 10})
	spans := testSpans(0, 2) // span IDs 0 and 1
	export(e, "a", spans)
	eventually(t, "one span sent, one dropped", func() bool {
		st := e.Stats()
		return st.Forwarded == 1 && st.DroppedSend == 1 && st.Queued == 0
	})
	if n, _ := fc.spans(); n != 1 {
		t.Errorf("%d spans at the collector, want 1", n)
	}
}
