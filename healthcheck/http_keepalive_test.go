package healthcheck

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

	p := NewHTTPProber(c)
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
