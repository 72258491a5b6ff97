package checks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

func TestHTTPProberKeepsOneConnection(t *testing.T) {
	var conns atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := labels.Check{Name: "web", Type: labels.CheckHTTP, Scheme: "http", Path: "/", Interval: time.Second, Timeout: time.Second}

	p := NewHTTPRunner(c)
	first := p.Probe(context.Background(), c, addr)
	second := p.Probe(context.Background(), c, addr)
	p.Close()
	if first.Result != Success || second.Result != Success {
		t.Fatalf("results %s %s", first.Result, second.Result)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("a prober made %d connections for two runs, want 1", n)
	}
	if first.Phases.Connect == 0 || second.Phases.Connect != 0 {
		t.Errorf("connect phase: first %v (want > 0), second %v (want 0: reused)", first.Phases.Connect, second.Phases.Connect)
	}
	conns.Store(0)
	ProbeHTTP(context.Background(), c, addr)
	ProbeHTTP(context.Background(), c, addr)
	if n := conns.Load(); n != 2 {
		t.Errorf("two one-shot probes made %d connections, want 2", n)
	}
}

// A prober makes its request once and reuses it: a run's own headers (a trace context)
// must not stay for the next run, and a new target must get the request.
func TestHTTPProberReusesItsRequestSafely(t *testing.T) {
	got := make(chan http.Header, 4)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Header.Clone(); _, _ = w.Write([]byte("ok")) })
	one, two := httptest.NewServer(h), httptest.NewServer(h)
	defer one.Close()
	defer two.Close()
	c := labels.Check{Name: "web", Type: labels.CheckHTTP, Path: "/", Interval: time.Second, Timeout: time.Second,
		Headers: http.Header{"X-Team": {"blue"}}}
	p := NewHTTPRunner(c)
	defer p.Close()
	traced := WithRequestHeaders(context.Background(), http.Header{"Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
	for i, run := range []struct {
		ctx    context.Context
		server *httptest.Server
		trace  bool
	}{{traced, one, true}, {context.Background(), one, false}, {context.Background(), two, false}, {traced, two, true}} {
		if r := p.Probe(run.ctx, c, strings.TrimPrefix(run.server.URL, "http://")); r.Result != Success {
			t.Fatalf("run %d: %s %s", i, r.Result, r.Reason)
		}
		hdr := <-got
		if hdr.Get("X-Team") != "blue" || hdr.Get("User-Agent") != userAgent {
			t.Errorf("run %d: the check's headers missing: %v", i, hdr)
		}
		if (hdr.Get("Traceparent") != "") != run.trace {
			t.Errorf("run %d: traceparent %q, want it: %v", i, hdr.Get("Traceparent"), run.trace)
		}
	}
}
