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
//
// With the arguments `flood PACKETS SPANS TAGBYTES` it is a hostile sender instead: it
// writes PACKETS jaeger.thrift compact emitBatch packets to JAEGER_AGENT as fast as the
// socket takes them, each of SPANS spans carrying a tag of TAGBYTES bytes, every tenth
// one garbage instead, prints what it sent and exits.
package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/opentracing/opentracing-go"
	"github.com/opentracing/opentracing-go/ext"
	"github.com/uber/jaeger-client-go"
	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/agent"
	jaegerpb "github.com/uber/jaeger-client-go/thrift-gen/jaeger"
)

func main() {
	target := os.Getenv("JAEGER_AGENT")
	if len(os.Args) == 5 && os.Args[1] == "flood" {
		if err := flood(target, os.Getenv("SERVICE"), os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "spansender flood:", err)
			os.Exit(1)
		}
		return
	}
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

// flood sends args[0] packets of args[1] spans with a tag of args[2] bytes each, every
// tenth packet garbage, as fast as the socket takes them.
func flood(target, service string, args []string) error {
	var n [3]int
	for i, a := range args {
		v, err := strconv.Atoi(a)
		if err != nil || v < 0 {
			return fmt.Errorf("flood %q: want PACKETS SPANS TAGBYTES", args)
		}
		n[i] = v
	}
	packets, spans, tagBytes := n[0], n[1], n[2]
	if service == "" {
		service = "flood"
	}
	big := string(bytes.Repeat([]byte{'x'}, tagBytes))
	b := &jaegerpb.Batch{Process: &jaegerpb.Process{ServiceName: service}}
	now := time.Now().UnixMicro()
	for i := range spans {
		b.Spans = append(b.Spans, &jaegerpb.Span{TraceIdLow: int64(i + 1), SpanId: int64(i + 1), OperationName: "flood",
			StartTime: now, Duration: 1, Tags: []*jaegerpb.Tag{{Key: "payload", VType: jaegerpb.TagType_STRING, VStr: &big}}})
	}
	ctx := context.Background()
	buf := thrift.NewTMemoryBuffer()
	p := thrift.NewTCompactProtocolConf(buf, &thrift.TConfiguration{})
	emit := agent.NewAgentEmitBatchArgs()
	emit.Batch = b
	if err := p.WriteMessageBegin(ctx, "emitBatch", thrift.ONEWAY, 1); err != nil {
		return err
	}
	if err := emit.Write(ctx, p); err != nil {
		return err
	}
	_ = p.WriteMessageEnd(ctx)
	_ = p.Flush(ctx)
	good := buf.Bytes()
	garbage := bytes.Repeat([]byte("not thrift "), 100)
	c, err := net.Dial("udp", target)
	if err != nil {
		return err
	}
	defer c.Close()
	var sent, malformed, failed, total int
	for i := range packets {
		pkt := good
		if i%10 == 9 {
			pkt = garbage
		}
		if _, err := c.Write(pkt); err != nil {
			failed++ // e.g. ECONNREFUSED from an ICMP error of an earlier packet
			continue
		}
		sent++
		total += len(pkt)
		if i%10 == 9 {
			malformed++
		}
	}
	fmt.Printf("flood: sent %d packets (%d malformed, %d bytes of %d per good packet), %d writes failed\n", sent, malformed, total, len(good), failed)
	return nil
}
