// Command spansender is a service that traces its work with jaeger-client-go and sends
// the spans over UDP (jaeger.thrift compact) to a jaeger-agent, as services on a node
// do. Lookout's end-to-end tests run it FROM scratch with the agent's span relay as its
// "jaeger-agent"; it knows nothing of Lookout.
//
//	JAEGER_AGENT    host:port of the agent (required)
//	SERVICE         service name (default spansender)
//	RATE            spans per second (default 10)
//
// It also answers HTTP on :8080 and traces each request as a server span, a child of
// the caller's span when the request carries an uber-trace-id header (a Lookout check).
package main

import (
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/uber/jaeger-client-go"
)

func main() {
	target := os.Getenv("JAEGER_AGENT")
	service := os.Getenv("SERVICE")
	if service == "" {
		service = "spansender"
	}
	rate, _ := strconv.Atoi(os.Getenv("RATE"))
	if rate <= 0 {
		rate = 10
	}
	transport, err := jaeger.NewUDPTransport(target, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "spansender:", err)
		os.Exit(1)
	}
	tracer, closer := jaeger.NewTracer(service, jaeger.NewConstSampler(true),
		jaeger.NewRemoteReporter(transport, jaeger.ReporterOptions.BufferFlushInterval(100*time.Millisecond)))
	defer closer.Close()
	go serve(tracer)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, os.Interrupt)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ; i++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		parent := tracer.StartSpan("handle")
		parent.SetTag("seq", i)
		child := tracer.StartSpan("query", opentracing.ChildOf(parent.Context()))
		child.Finish()
		parent.Finish()
	}
}

func serve(tracer opentracing.Tracer) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var opts []opentracing.StartSpanOption
		if parent, err := tracer.Extract(opentracing.HTTPHeaders, opentracing.HTTPHeadersCarrier(r.Header)); err == nil {
			opts = append(opts, opentracing.ChildOf(parent))
		}
		span := tracer.StartSpan(r.Method+" "+r.URL.Path, opts...)
		ext.SpanKindRPCServer.Set(span)
		ext.HTTPStatusCode.Set(span, 200)
		_, _ = w.Write([]byte("ok\n"))
		span.Finish()
	})
	if err := http.ListenAndServe(":8080", h); err != nil {
		fmt.Fprintln(os.Stderr, "spansender:", err)
	}
}
