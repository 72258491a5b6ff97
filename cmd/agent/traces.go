package main

import (
	"context"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/collectors"
	"github.com/lookout-agent/lookout/config"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/tracing"
)

// traces wires spans: check spans and the span relay into one exporter to Jaeger. Every
// part is nil when its configuration leaves it off.
type traces struct {
	exp    *tracing.Exporter
	probes *tracing.Probes
	relay  *tracing.Relay
	otlp   *tracing.OTLPReceiver
	// senders maps container addresses to their tags for the relay and the OTLP
	// receiver alike: one map, subscribed once.
	senders *tracing.Senders
}

func newTraces(cfg config.Traces, log logrus.FieldLogger) (*traces, error) {
	t := &traces{}
	if !cfg.Enabled() {
		return t, nil
	}
	var err error
	t.senders = tracing.NewSenders()
	t.exp, err = tracing.NewExporter(tracing.ExporterConfig{Endpoint: cfg.JaegerEndpoint, Protocol: cfg.Protocol, BatchSize: cfg.BatchSize,
		Interval: time.Duration(cfg.FlushInterval), QueueLimit: cfg.QueueLimit, Timeout: time.Duration(cfg.Timeout), Log: log})
	if err != nil {
		return nil, err
	}
	if cfg.ProbeSpans() {
		t.probes = tracing.NewProbes(t.exp, version)
	}
	if cfg.CompactListen != "" || cfg.BinaryListen != "" {
		t.relay, err = tracing.NewRelay(tracing.RelayConfig{CompactAddr: cfg.CompactListen, BinaryAddr: cfg.BinaryListen,
			MaxPacketSize: cfg.MaxPacketSize, Senders: t.senders, Log: log}, t.exp)
		if err != nil {
			return nil, err
		}
		log.WithField("addresses", t.relay.Addrs()).Info("span relay listening")
	}
	if cfg.OTLPListen != "" {
		t.otlp, err = tracing.NewOTLPReceiver(tracing.OTLPConfig{Addr: cfg.OTLPListen, MaxRequestSize: cfg.OTLPMaxRequestSize, Senders: t.senders, Log: log}, t.exp)
		if err != nil {
			return nil, err
		}
		log.WithField("address", t.otlp.Addr().String()).Info("OTLP receiver listening")
	}
	return t, nil
}

// wire subscribes the span makers to the inventory and the probes.
func (t *traces) wire(inv *inventory.Inventory, popts *checks.Options) {
	if t.probes != nil {
		inv.Subscribe(t.probes)
		popts.Tracer = t.probes
	}
	if t.relay != nil || t.otlp != nil {
		inv.Subscribe(t.senders)
	}
}

// sources are the counters reported as lookout_spans_* points.
func (t *traces) sources() []collectors.Source {
	var out []collectors.Source
	if t.exp != nil {
		out = append(out, t.exp)
	}
	if t.probes != nil {
		out = append(out, t.probes)
	}
	if t.relay != nil {
		out = append(out, t.relay)
	}
	if t.otlp != nil {
		out = append(out, t.otlp)
	}
	return out
}

// start runs the relay as a producer and the exporter as an output, which outlives the
// producers so that their last spans are sent.
func (t *traces) start(producers context.Context, producersWG *sync.WaitGroup, output context.Context, outputWG *sync.WaitGroup) {
	if t.relay != nil {
		producersWG.Add(1)
		go func() { defer producersWG.Done(); t.relay.Run(producers) }()
	}
	if t.otlp != nil {
		producersWG.Add(1)
		go func() { defer producersWG.Done(); t.otlp.Run(producers) }()
	}
	if t.exp != nil {
		outputWG.Add(1)
		go func() { defer outputWG.Done(); t.exp.Run(output) }()
	}
}
