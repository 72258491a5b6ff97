package checks

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/labels"
)

// BenchmarkHTTPProberProbe is one run of an HTTP check on its kept-alive connection, the
// work a scheduled check does each interval (go test -bench HTTPProberProbe -benchmem).
func BenchmarkHTTPProberProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	c := labels.Check{Name: "web", Type: labels.CheckHTTP, Scheme: "http", Port: 8080, Path: "/health",
		Interval: time.Second, Timeout: 900 * time.Millisecond}
	p := NewHTTPRunner(c)
	defer p.Close()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(ctx, c, addr); r.Result != Success {
			b.Fatalf("%s: %s", r.Result, r.Reason)
		}
	}
}

// BenchmarkResultPoint renders one HTTP result as a lookout_check point.
func BenchmarkResultPoint(b *testing.B) {
	tags := map[string]string{"engine_host": "node-1", "server_version": "28.0.1", "container_name": "web-1",
		"container_image": "example/web", "container_version": "1.2.3"}
	r := Result{Check: "web", Type: labels.CheckHTTP, Result: Success, Start: time.Now(), Duration: 812 * time.Microsecond,
		Target: "172.17.0.9:8080", StatusCode: 200, Phases: Phases{FirstByte: 700 * time.Microsecond}}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.Point(tags)
	}
}
