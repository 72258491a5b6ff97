package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/collectors"
	"github.com/lookout-agent/lookout/config"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/labels"
	"github.com/lookout-agent/lookout/traces"
	"github.com/lookout-agent/lookout/traces/checkspans"
	jaegerexp "github.com/lookout-agent/lookout/traces/exporter/jaeger"
	otlpexp "github.com/lookout-agent/lookout/traces/exporter/otlp"
	"github.com/lookout-agent/lookout/traces/receiver/jaegerudp"
	"github.com/lookout-agent/lookout/traces/receiver/otlp"
)

// spanPipeline wires spans: check spans and the receivers into one queue, sent by one
// exporter. Every part is nil when its configuration leaves it off.
type spanPipeline struct {
	queue    *traces.Queue
	checks   *checkSpans
	relay    *jaegerudp.Relay
	otlp     *otlp.HTTP
	otlpGRPC *otlp.GRPC
	// senders maps container addresses to their tags for every receiver: one map,
	// subscribed once.
	senders *traces.Senders
}

// The protocols spans leave in.
const (
	protocolThrift = "thrift" // jaeger.thrift binary over HTTP, to Jaeger's /api/traces
	protocolOTLP   = "otlp"   // OTLP/HTTP protobuf (gzip), to /v1/traces
)

// newSpanExporter returns the exporter of the configured protocol.
func newSpanExporter(cfg config.Traces, log logrus.FieldLogger) (traces.Exporter, error) {
	switch cfg.Protocol {
	case protocolThrift, "":
		return jaegerexp.New(traces.HTTPConfig{Endpoint: cfg.JaegerEndpoint, Timeout: time.Duration(cfg.Timeout), Log: log})
	case protocolOTLP:
		return otlpexp.New(traces.HTTPConfig{Endpoint: cfg.JaegerEndpoint, Timeout: time.Duration(cfg.Timeout), Log: log})
	}
	return nil, fmt.Errorf("spans protocol %q: want %q (jaeger.thrift over HTTP) or %q (OTLP/HTTP protobuf)", cfg.Protocol, protocolThrift, protocolOTLP)
}

func newTraces(cfg config.Traces, log logrus.FieldLogger) (*spanPipeline, error) {
	t := &spanPipeline{}
	if !cfg.Enabled() {
		return t, nil
	}
	exp, err := newSpanExporter(cfg, log)
	if err != nil {
		return nil, err
	}
	t.queue, err = traces.NewQueue(traces.QueueConfig{BatchSize: cfg.BatchSize, Interval: time.Duration(cfg.FlushInterval),
		Limit: cfg.QueueLimit, LimitBytes: cfg.QueueLimitBytes, Timeout: time.Duration(cfg.Timeout), Log: log}, exp)
	if err != nil {
		return nil, err
	}
	t.senders = traces.NewSenders()
	if cfg.ProbeSpans() {
		t.checks = newCheckSpans(checkspans.New(t.queue, version))
	}
	if cfg.CompactListen != "" || cfg.BinaryListen != "" {
		t.relay, err = jaegerudp.New(jaegerudp.Config{CompactAddr: cfg.CompactListen, BinaryAddr: cfg.BinaryListen,
			MaxPacketSize: cfg.MaxPacketSize, Senders: t.senders, Log: log}, t.queue)
		if err != nil {
			return nil, err
		}
		log.WithField("addresses", t.relay.Addrs()).Info("span relay listening")
	}
	maxRequest := cfg.OTLPMaxRequestSize
	if maxRequest <= 0 {
		maxRequest = otlp.DefaultMaxRequestSize
	}
	// One budget of request bytes for both receivers.
	ocfg := otlp.Config{MaxRequestSize: maxRequest, Senders: t.senders, Log: log,
		Budget: otlp.NewBudget(otlp.BudgetRequests * int64(maxRequest))}
	if cfg.OTLPListen != "" {
		ocfg.Addr = cfg.OTLPListen
		t.otlp, err = otlp.NewHTTP(ocfg, t.queue)
		if err != nil {
			return nil, err
		}
		log.WithField("address", t.otlp.Addr().String()).Info("OTLP receiver listening")
	}
	if cfg.OTLPGRPCListen != "" {
		ocfg.Addr = cfg.OTLPGRPCListen
		t.otlpGRPC, err = otlp.NewGRPC(ocfg, t.queue)
		if err != nil {
			return nil, err
		}
		log.WithField("address", t.otlpGRPC.Addr().String()).Info("OTLP/gRPC receiver listening")
	}
	return t, nil
}

// wire subscribes the span makers to the inventory and the checks.
func (t *spanPipeline) wire(inv *inventory.Inventory, popts *checks.Options) {
	if t.checks != nil {
		inv.Subscribe(t.checks)
		popts.Tracer = t.checks
	}
	if t.relay != nil || t.otlp != nil || t.otlpGRPC != nil {
		inv.Subscribe(t.senders)
	}
}

// sources are the counters reported as lookout_spans_* points.
func (t *spanPipeline) sources() []collectors.Named {
	var out []collectors.Named
	if t.queue != nil {
		out = append(out, collectors.Named{Name: "spans_export", Source: t.queue})
	}
	if t.checks != nil {
		out = append(out, collectors.Named{Name: "spans_probes", Source: t.checks.maker})
	}
	if t.relay != nil {
		out = append(out, collectors.Named{Name: "spans_relay", Source: t.relay})
	}
	if t.otlp != nil {
		out = append(out, collectors.Named{Name: "spans_otlp", Source: t.otlp})
	}
	if t.otlpGRPC != nil {
		out = append(out, collectors.Named{Name: "spans_otlp_grpc", Source: t.otlpGRPC})
	}
	return out
}

// start runs the receivers as producers and the queue as an output, which outlives the
// producers so that their last spans are sent.
func (t *spanPipeline) start(producers context.Context, producersWG *sync.WaitGroup, output context.Context, outputWG *sync.WaitGroup) {
	produce := func(run func(context.Context)) {
		producersWG.Add(1)
		go func() { defer producersWG.Done(); run(producers) }()
	}
	if t.relay != nil {
		produce(t.relay.Run)
	}
	if t.otlp != nil {
		produce(t.otlp.Run)
	}
	if t.otlpGRPC != nil {
		produce(t.otlpGRPC.Run)
	}
	if t.queue != nil {
		outputWG.Add(1)
		go func() { defer outputWG.Done(); t.queue.Run(output) }()
	}
}

// checkSpans adapts the checks to the span maker: a span for every run the scheduler
// makes (StartCheck, a checks.Tracer) and for every run of Docker's own HEALTHCHECK,
// read from the health log (HandleChange, an inventory.Handler).
type checkSpans struct {
	maker *checkspans.Maker

	mu       sync.Mutex
	lastRuns map[string]time.Time // container ID -> start of the newest health log run made a span
}

func newCheckSpans(m *checkspans.Maker) *checkSpans {
	return &checkSpans{maker: m, lastRuns: map[string]time.Time{}}
}

var _ checks.Tracer = (*checkSpans)(nil)

// StartCheck is called before a check runs: it returns the context to probe with, which
// makes an HTTP check send the span's trace context, and the function to call with the
// result, which makes the span.
func (p *checkSpans) StartCheck(ctx context.Context, c *inventory.Container, eng inventory.Engine, chk labels.Check) (context.Context, func(checks.Result)) {
	sc := checkspans.NewSpanContext()
	if chk.Type == labels.CheckHTTP {
		ctx = checks.WithRequestHeaders(ctx, sc.Headers())
	}
	return ctx, func(r checks.Result) {
		p.maker.Emit(sc, traces.ContainerTags(c, eng), checkRun(r), tracepb.Span_SPAN_KIND_CLIENT)
	}
}

// checkRun is what a span tells of a check's result.
func checkRun(r checks.Result) checkspans.Run {
	run := checkspans.Run{Check: r.Check, Type: r.Type, Result: r.Result, Reason: r.Reason, Target: r.Target,
		Failed: r.Result != checks.Success, StatusCode: r.StatusCode, ExitCode: r.ExitCode, Start: r.Start, Duration: r.Duration}
	if run.Failed {
		run.Output = checks.Truncate(r.Output, 1024)
	}
	return run
}

var _ inventory.Handler = (*checkSpans)(nil)

// HandleChange implements inventory.Handler: every HEALTHCHECK run in the health log not
// seen before becomes a span, from the run's start and end times.
func (p *checkSpans) HandleChange(_ context.Context, ch inventory.Change) {
	c := ch.Container
	if ch.Kind == inventory.Gone {
		p.mu.Lock()
		delete(p.lastRuns, c.ID)
		p.mu.Unlock()
		return
	}
	if !c.Monitored || c.State.Health == nil {
		return
	}
	p.mu.Lock()
	runs, last := checks.NewRuns(c.State.Health.Log, p.lastRuns[c.ID])
	p.lastRuns[c.ID] = last
	p.mu.Unlock()
	for _, run := range runs {
		r := checks.NativeResult(run)
		p.maker.Emit(checkspans.NewSpanContext(), traces.ContainerTags(c, ch.Engine), checkRun(r), tracepb.Span_SPAN_KIND_UNSPECIFIED)
	}
}
