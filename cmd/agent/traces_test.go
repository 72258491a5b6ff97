package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/traces/checkspans"
	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

// recordingSink keeps the spans it is given as Jaeger would show them (jaeger.thrift).
type recordingSink struct {
	batches []*jaeger.Batch
}

func (s *recordingSink) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	b, _, _ := jaegerthrift.FromOTLP(rss)
	s.batches = append(s.batches, b...)
	return true
}

func testContainer() *inventory.Container {
	return &inventory.Container{ID: "c0ffee", Name: "api-1", ImageName: "example/api", ImageVersion: "1.2",
		Service: "shop_api", Stack: "shop", Slot: "1", TaskID: "task1", NodeID: "node1", Monitored: true,
		Networks: map[string]string{"bridge": "172.17.0.5", "shop_net": "10.0.1.7"}, BridgeIP: "172.18.0.4",
		Config: labels.Config{Tags: map[string]string{"team": "payments"}}}
}

func spanTags(s *jaeger.Span) map[string]string {
	m := map[string]string{}
	for _, t := range s.Tags {
		switch {
		case t.VStr != nil:
			m[t.Key] = *t.VStr
		case t.VLong != nil:
			m[t.Key] = fmt.Sprint(*t.VLong)
		case t.VBool != nil:
			m[t.Key] = fmt.Sprint(*t.VBool)
		}
	}
	return m
}

func TestHTTPCheckSpanCarriesTraceContext(t *testing.T) {
	got := make(chan http.Header, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()

	sink := &recordingSink{}
	p := newCheckSpans(checkspans.New(sink, "v1"))
	c := testContainer()
	chk := labels.Check{Name: "web", Type: labels.CheckHTTP, Interval: time.Second, Timeout: time.Second}
	ctx, end := p.StartCheck(context.Background(), c, inventory.Engine{Host: "node-a"}, chk)
	res := checks.ProbeHTTP(ctx, chk, strings.TrimPrefix(srv.URL, "http://"))
	end(res)

	h := <-got
	if len(sink.batches) != 1 || len(sink.batches[0].Spans) != 1 {
		t.Fatalf("want one span, got %+v", sink.batches)
	}
	b := sink.batches[0]
	s := b.Spans[0]
	trace := fmt.Sprintf("%016x%016x", uint64(s.TraceIdHigh), uint64(s.TraceIdLow))
	span := fmt.Sprintf("%016x", uint64(s.SpanId))
	if want := "00-" + trace + "-" + span + "-01"; h.Get("Traceparent") != want {
		t.Errorf("traceparent %q, want %q", h.Get("Traceparent"), want)
	}
	if want := trace + ":" + span + ":0:1"; h.Get("Uber-Trace-Id") != want {
		t.Errorf("uber-trace-id %q, want %q", h.Get("Uber-Trace-Id"), want)
	}
	if b.Process.ServiceName != "lookout" || s.OperationName != "check web" {
		t.Errorf("service %q operation %q", b.Process.ServiceName, s.OperationName)
	}
	tags := spanTags(s)
	for k, v := range map[string]string{"container.name": "api-1", "container.id": "c0ffee", "docker.swarm.service.name": "shop_api",
		"lookout.check.result": "failure", "http.status_code": "503", "error": "true", "span.kind": "client", "team": "payments"} {
		if tags[k] != v {
			t.Errorf("tag %s=%q, want %q (all %v)", k, tags[k], v, tags)
		}
	}
	if s.StartTime != res.Start.UnixMicro() || s.Duration < 1 {
		t.Errorf("start %d duration %d, want start %d", s.StartTime, s.Duration, res.Start.UnixMicro())
	}
}

func TestHealthLogRunsBecomeSpansOnce(t *testing.T) {
	sink := &recordingSink{}
	p := newCheckSpans(checkspans.New(sink, "v1"))
	c := testContainer()
	t0 := time.Now().Add(-time.Minute)
	run := func(i, code int) *container.HealthcheckResult {
		start := t0.Add(time.Duration(i) * time.Second)
		return &container.HealthcheckResult{Start: start, End: start.Add(20 * time.Millisecond), ExitCode: code, Output: "out"}
	}
	c.State.Health = &container.Health{Log: []*container.HealthcheckResult{run(0, 0), run(1, 1)}}
	p.HandleChange(context.Background(), inventory.Change{Kind: inventory.Event, Container: c})
	c2 := *c
	c2.State.Health = &container.Health{Log: []*container.HealthcheckResult{run(0, 0), run(1, 1), run(2, 0)}}
	p.HandleChange(context.Background(), inventory.Change{Kind: inventory.Event, Container: &c2})

	var results []string
	for _, b := range sink.batches {
		for _, s := range b.Spans {
			tags := spanTags(s)
			results = append(results, tags["lookout.check.result"]+"/"+tags["process.exit.code"]+"/"+tags["error"])
			if s.OperationName != "check healthcheck" || s.Duration != 20000 {
				t.Errorf("span %s duration %d", s.OperationName, s.Duration)
			}
		}
	}
	if got := strings.Join(results, " "); got != "success/0/ failure/1/true success/0/" {
		t.Errorf("spans %s", got)
	}
}
