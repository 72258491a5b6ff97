package checks

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metric/lineproto"
)

// encodingSink encodes every point as the shipper does, and keeps nothing.
type encodingSink struct {
	enc   *lineproto.Encoder
	bytes int
}

func (s *encodingSink) Add(points ...metric.Point) {
	for _, p := range points {
		line, _, err := s.enc.Encode(p)
		if err != nil {
			panic(err)
		}
		s.bytes += len(line)
	}
}

// BenchmarkCheckRun is one scheduled run of an HTTP check as the benchmark's containers
// declare it (lookout.check.web=http://:8080/health, interval 1s, timeout 900ms): the
// target, the request on the kept-alive connection, the point and its line protocol
// (go test -bench CheckRun -benchmem ./checks).
func BenchmarkCheckRun(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok\n")) }))
	defer srv.Close()
	host, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	c := testContainer("0123456789ab", true, map[string]string{"lookout.enable": "true",
		"lookout.check.web": "http://:" + port + "/health", "lookout.check.web.interval": "1s", "lookout.check.web.timeout": "900ms"})
	c.Networks = map[string]string{"bridge": host}
	c.ImageName, c.ImageVersion = "lookout-testsvc", "bench"
	if len(c.Config.Checks) != 1 {
		b.Fatalf("checks: %+v, problems %v", c.Config.Checks, c.Config.Problems)
	}
	chk := c.Config.Checks[0]
	out := &encodingSink{enc: lineproto.NewEncoder(lineprotocol.Nanosecond)}
	s := New(out, nil, Options{})
	hp := NewHTTPRunner(chk)
	defer hp.Close()
	v := &view{c: c, eng: inventory.Engine{Host: "node-1", ServerVersion: "28.0.1"}}
	var st state
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		res := s.run(ctx, v.c, chk, &st, hp)
		if res.Result != Success {
			b.Fatalf("%s: %s", res.Result, res.Reason)
		}
		s.report(v, chk, res, &st)
	}
	b.ReportMetric(float64(out.bytes)/float64(b.N), "line-bytes/op")
}

// BenchmarkReport is the part of a run after the probe: rise/fall, the point and its
// line protocol.
func BenchmarkReport(b *testing.B) {
	c := testContainer("0123456789ab", true, map[string]string{"lookout.enable": "true", "lookout.check.web": "http://:8080/health"})
	c.ImageName, c.ImageVersion = "lookout-testsvc", "bench"
	chk := c.Config.Checks[0]
	out := &encodingSink{enc: lineproto.NewEncoder(lineprotocol.Nanosecond)}
	s := New(out, nil, Options{})
	v := &view{c: c, eng: inventory.Engine{Host: "node-1", ServerVersion: "28.0.1"}}
	res := Result{Check: chk.Name, Type: chk.Type, Result: Success, Start: time.Now(),
		Duration: 812 * time.Microsecond, Target: "172.17.0.9:" + strconv.Itoa(chk.Port), StatusCode: 200,
		Phases: Phases{FirstByte: 700 * time.Microsecond}}
	var st state
	b.ReportAllocs()
	for b.Loop() {
		s.report(v, chk, res, &st)
	}
}
