// Command otlpsender is a service that traces its work with the OpenTelemetry Go SDK and
// exports the spans with otlptracehttp (OTLP/HTTP, protobuf, gzip) or, with
// OTLP_PROTOCOL=grpc, otlptracegrpc (OTLP/gRPC, gzip, the SDKs' default), as services on a
// node do. Lookout's end-to-end tests run it FROM scratch with the agent's OTLP receiver
// as its collector; it knows nothing of Lookout. (A module of its own: grpc-go stays out
// of the agent's module.)
//
//	OTLP_ENDPOINT   host:port of the receiver (required; plain HTTP /v1/traces, or HTTP/2 without TLS for gRPC)
//	OTLP_PROTOCOL   http (default) or grpc
//	SERVICE         service name (default otlpsender)
//	RATE            traces per second (default 10)
//	COUNT           when above 0: no traces at RATE; COUNT traces each time SIGUSR1 arrives
//	                (a test sends once the agent knows the container), after it printed
//	                "otlpsender: ready"
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.37.0"
	"go.opentelemetry.io/otel/trace"
)

func main() {
	service, rate := cmp.Or(os.Getenv("SERVICE"), "otlpsender"), 10
	if n, err := strconv.Atoi(os.Getenv("RATE")); err == nil && n > 0 {
		rate = n
	}
	ctx := context.Background()
	var exp sdktrace.SpanExporter
	var err error
	if os.Getenv("OTLP_PROTOCOL") == "grpc" {
		exp, err = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpoint(os.Getenv("OTLP_ENDPOINT")), otlptracegrpc.WithInsecure(),
			otlptracegrpc.WithCompressor("gzip"))
	} else {
		exp, err = otlptracehttp.New(ctx, otlptracehttp.WithEndpoint(os.Getenv("OTLP_ENDPOINT")), otlptracehttp.WithInsecure(),
			otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpsender:", err)
		os.Exit(1)
	}
	res := resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service), attribute.String("deployment.environment", "e2e"))
	tp := sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(100*time.Millisecond)))
	defer func() { _ = tp.Shutdown(context.Background()) }()
	tracer := tp.Tracer("otlpsender")

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, os.Interrupt)
	defer stop()
	if count, _ := strconv.Atoi(os.Getenv("COUNT")); count > 0 {
		onSignal(ctx, tp, tracer, count)
		return
	}
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	for i := 0; ctx.Err() == nil; i++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
			trace2(ctx, tracer, i)
		}
	}
}

// trace2 makes a trace of two spans: a server span and its failed client child.
func trace2(ctx context.Context, tracer trace.Tracer, i int) {
	pctx, parent := tracer.Start(ctx, "handle", trace.WithSpanKind(trace.SpanKindServer),
		trace.WithAttributes(attribute.Int("seq", i)))
	_, child := tracer.Start(pctx, "query", trace.WithSpanKind(trace.SpanKindClient))
	child.RecordError(errors.New("row not found"))
	child.SetStatus(codes.Error, "row not found")
	child.End()
	parent.End()
}

// onSignal sends count traces, flushed at once, each time SIGUSR1 arrives, until ctx ends.
func onSignal(ctx context.Context, tp *sdktrace.TracerProvider, tracer trace.Tracer, count int) {
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	fmt.Println("otlpsender: ready") // a SIGUSR1 sent before it would be lost
	for seq := 0; ; {
		select {
		case <-ctx.Done():
			return
		case <-usr1:
			for range count {
				trace2(ctx, tracer, seq)
				seq++
			}
			if err := tp.ForceFlush(ctx); err != nil {
				fmt.Fprintln(os.Stderr, "otlpsender:", err)
			}
		}
	}
}
