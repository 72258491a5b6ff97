package otlp

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	collectorpb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

var (
	otlpRequest = tracetest.Request
	kv          = tracetest.KV
	sv          = tracetest.String
)

func newTestOTLP(t *testing.T, sink traces.Sink) *HTTP {
	t.Helper()
	o, err := NewHTTP(testConfig(), sink)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = o.ln.Close() })
	return o
}

// testConfig listens on a free port with a 4096-byte limit and knows tracetest.Container.
func testConfig() Config {
	senders := traces.NewSenders()
	senders.HandleChange(context.Background(), inventory.Change{Kind: inventory.Seen, Container: tracetest.Container(), Engine: inventory.Engine{Host: "node-a"}})
	return Config{Addr: "127.0.0.1:0", MaxRequestSize: 4096, Senders: senders}
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return buf.Bytes()
}

func post(o *HTTP, from, ctype, enc string, body []byte) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, Path, bytes.NewReader(body))
	r.RemoteAddr = from
	r.Header.Set("Content-Type", ctype)
	if enc != "" {
		r.Header.Set("Content-Encoding", enc)
	}
	w := httptest.NewRecorder()
	o.ServeHTTP(w, r)
	return w
}

func TestOTLPReceiverTagsTheSendingContainer(t *testing.T) {
	sink := &tracetest.Sink{}
	o := newTestOTLP(t, sink)
	body := marshal(t, otlpRequest())
	w := post(o, "10.0.1.7:40000", "application/x-protobuf", "gzip", gzipped(body))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/x-protobuf" {
		t.Fatalf("answer %d %q: %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	var resp collectorpb.ExportTraceServiceResponse
	if err := proto.Unmarshal(w.Body.Bytes(), &resp); err != nil || resp.PartialSuccess != nil {
		t.Errorf("response %v: %v", &resp, err)
	}
	if got := sink.Resources(); len(got) != 1 || len(sink.Spans()) != 2 {
		t.Fatalf("sink got %+v", got)
	}
	p := sink.Resources()[0]
	got := tracetest.ResourceTags(p)
	want := map[string]string{"deployment.environment": "prod", "container.id": "c0ffee", "container.name": "api-1",
		"container.image.name": "example/api", "container.image.tag": "1.2", "host.name": "node-a",
		"docker.swarm.service.name": "shop_api", "docker.swarm.stack.namespace": "shop", "docker.swarm.task.id": "task1",
		"docker.swarm.node.id": "node1", "team": "payments"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("process tag %s=%q, want %q (all: %v)", k, got[k], v, got)
		}
	}
	if sn := tracetest.ServiceName(p); sn != "orders" {
		t.Errorf("service %q changed", sn)
	}

	// Not from a container: forwarded untagged, counted.
	if w := post(o, "[::1]:5000", "application/x-protobuf; charset=binary", "", body); w.Code != 200 {
		t.Errorf("unknown sender: %d", w.Code)
	}
	if got := tracetest.ResourceTags(sink.Resources()[1]); got["container.name"] != "spoofed" || got["container.id"] != "" {
		t.Errorf("unknown sender tagged: %v", got)
	}
	if st := o.Stats(); st.Requests != 2 || st.Spans != 8 || st.BadSpans != 4 || st.UnknownSender != 1 {
		t.Errorf("stats %+v", st)
	}
}

func TestOTLPReceiverRefusals(t *testing.T) {
	sink := &tracetest.Sink{}
	o := newTestOTLP(t, sink)
	good := marshal(t, otlpRequest())
	big := marshal(t, &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{kv("blob", sv(strings.Repeat("x", 5000)))}}}}})
	cases := []struct {
		name, ctype, enc string
		body             []byte
		status           int
		says             string
	}{
		{"garbage", "application/x-protobuf", "", []byte("\xff\xff\xff not protobuf"), 400, "malformed"},
		{"truncated", "application/x-protobuf", "", good[:len(good)-5], 400, "malformed"},
		{"bad gzip", "application/x-protobuf", "gzip", good, 400, "gzip"},
		{"too large", "application/x-protobuf", "", big, 413, "at most 4096"},
		{"too large once unzipped", "application/x-protobuf", "gzip", gzipped(big), 413, "decompressed"},
		{"text", "text/plain", "", []byte(`resourceSpans`), 415, "want application/x-protobuf or application/json"},
		{"bad json", "application/json", "", []byte(`{"resourceSpans":[`), 400, `"code":3`},
		{"json and more", "application/json", "", []byte(`{"resourceSpans":[]} {}`), 400, "data after the JSON document"},
		{"json with a base64 id", "application/json", "", []byte(`{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"AAAAAAAAAAEAAAAAAAAAAg==","spanId":"AAAAAAAAAAo="}]}]}]}`), 400, "want a hex string"},
		{"brotli", "application/x-protobuf", "br", good, 415, "want gzip"},
	}
	for _, c := range cases {
		w := post(o, "10.0.1.7:1", c.ctype, c.enc, c.body)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.says) {
			t.Errorf("%s: %d %q, want %d saying %q", c.name, w.Code, w.Body, c.status, c.says)
		}
	}
	st := o.Stats()
	if st.Malformed != 6 || st.TooLarge != 2 || st.Unsupported != 2 || len(sink.Resources()) != 0 {
		t.Errorf("stats %+v, %d batches", st, len(sink.Resources()))
	}

	sink.SetFull(true)
	if w := post(o, "10.0.1.7:1", "application/x-protobuf", "", good); w.Code != 503 || w.Header().Get("Retry-After") == "" {
		t.Errorf("queue full: %d %v", w.Code, w.Header())
	}
	if st := o.Stats(); st.QueueFull != 1 {
		t.Errorf("queue full not counted: %+v", st)
	}
	r := httptest.NewRequest(http.MethodGet, Path, nil)
	w := httptest.NewRecorder()
	o.ServeHTTP(w, r)
	if w.Code != 405 {
		t.Errorf("GET: %d", w.Code)
	}
}

func TestOTLPReceiverOverHTTP(t *testing.T) {
	sink := &tracetest.Sink{}
	o := newTestOTLP(t, sink)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { o.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	url := "http://" + o.Addr().String() + Path
	resp, err := http.Post(url, "application/x-protobuf", bytes.NewReader(marshal(t, otlpRequest())))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	n := len(sink.Resources())
	// From 127.0.0.1: no container, so forwarded untagged.
	if resp.StatusCode != 200 || n != 1 || o.Stats().UnknownSender != 1 {
		t.Errorf("POST %s: %d, %d batches, stats %+v", url, resp.StatusCode, n, o.Stats())
	}
	if resp, err := http.Post("http://"+o.Addr().String()+"/v1/metrics", "application/x-protobuf", nil); err != nil || resp.StatusCode != 404 {
		t.Errorf("/v1/metrics: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
