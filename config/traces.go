package config

import (
	"fmt"
	"net"
	"net/url"
	"strconv"
	"time"
)

// Traces configures spans: the Jaeger collector they go to, the node-local relay that
// takes the node's services' spans, and the batching in between. Everything is off while
// JaegerEndpoint is empty.
type Traces struct {
	// JaegerEndpoint is where spans go: with Protocol "thrift" (the default) the
	// collector's jaeger.thrift HTTP endpoint (http://jaeger:14268/api/traces), with
	// "otlp" an OTLP/HTTP endpoint (http://jaeger:4318/v1/traces, or an OpenTelemetry
	// Collector's). A URL without a path gets the protocol's path.
	JaegerEndpoint string `yaml:"jaeger_endpoint"`
	Protocol       string `yaml:"jaeger_protocol"`
	// CompactListen and BinaryListen are the relay's UDP addresses for jaeger.thrift
	// compact (jaeger-agent's 6831) and binary (6832); empty: not listening.
	CompactListen string   `yaml:"compact_listen"`
	BinaryListen  string   `yaml:"binary_listen"`
	MaxPacketSize int      `yaml:"max_packet_size"`
	BatchSize     int      `yaml:"batch_size"`
	FlushInterval Duration `yaml:"flush_interval"`
	QueueLimit    int      `yaml:"queue_limit"`
	Timeout       Duration `yaml:"timeout"`
	// Probes makes a span of every check run (default true when an endpoint is set).
	Probes *bool `yaml:"probe_spans"`

	// OTLPListen is the TCP address of the OTLP/HTTP receiver (POST /v1/traces); empty:
	// not listening. OTLPMaxRequestSize bounds a request body (decompressed too).
	OTLPListen         string `yaml:"otlp_listen"`
	OTLPMaxRequestSize int    `yaml:"otlp_max_request_size"`
}

// Enabled says whether spans go anywhere.
func (t Traces) Enabled() bool { return t.JaegerEndpoint != "" }

// ProbeSpans says whether check runs become spans.
func (t Traces) ProbeSpans() bool { return t.Enabled() && (t.Probes == nil || *t.Probes) }

func defaultTraces(t *Traces) {
	if t.MaxPacketSize == 0 {
		t.MaxPacketSize = 65000
	}
	if t.OTLPMaxRequestSize == 0 {
		t.OTLPMaxRequestSize = 4 << 20
	}
	if t.BatchSize == 0 {
		t.BatchSize = 500
	}
	if t.FlushInterval == 0 {
		t.FlushInterval = Duration(time.Second)
	}
	if t.QueueLimit == 0 {
		t.QueueLimit = 50000
	}
	if t.Timeout == 0 {
		t.Timeout = Duration(5 * time.Second)
	}
	if t.Protocol == "" {
		t.Protocol = "thrift"
	}
	if u, err := url.Parse(t.JaegerEndpoint); err == nil && u.Host != "" && (u.Path == "" || u.Path == "/") {
		u.Path = "/api/traces"
		if t.Protocol == "otlp" {
			u.Path = "/v1/traces"
		}
		t.JaegerEndpoint = u.String()
	}
}

func (t Traces) validate(bad func(setting string, value any, allowed string)) {
	if t.JaegerEndpoint != "" {
		if u, err := url.Parse(t.JaegerEndpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("traces.jaeger_endpoint (LOOKOUT_JAEGER_ENDPOINT)", t.JaegerEndpoint, "want http://host:14268/api/traces (Jaeger collector, jaeger.thrift over HTTP), http://host:4318/v1/traces (OTLP/HTTP) or https://…")
		}
	}
	if t.Protocol != "thrift" && t.Protocol != "otlp" {
		bad("traces.jaeger_protocol (LOOKOUT_JAEGER_PROTOCOL)", t.Protocol, `want "thrift" (jaeger.thrift over HTTP, Jaeger's /api/traces) or "otlp" (OTLP/HTTP protobuf, /v1/traces)`)
	}
	for _, l := range []struct{ setting, addr, example string }{
		{"traces.compact_listen (LOOKOUT_JAEGER_COMPACT_LISTEN)", t.CompactListen, "172.17.0.1:6831"},
		{"traces.binary_listen (LOOKOUT_JAEGER_BINARY_LISTEN)", t.BinaryListen, "172.17.0.1:6832"},
		{"traces.otlp_listen (LOOKOUT_OTLP_LISTEN)", t.OTLPListen, "172.17.0.1:4318"},
	} {
		if l.addr == "" {
			continue
		}
		host, port, err := net.SplitHostPort(l.addr)
		if p, perr := strconv.Atoi(port); err != nil || perr != nil || p < 0 || p > 65535 {
			bad(l.setting, l.addr, "want host:port, such as "+l.example+" (an address only the node's containers reach)")
			continue
		}
		if host != "" && net.ParseIP(host) == nil {
			bad(l.setting, l.addr, "want an IP address as host (or none for every address)")
		}
		if t.JaegerEndpoint == "" {
			bad(l.setting, l.addr, "the relay forwards to Jaeger: set LOOKOUT_JAEGER_ENDPOINT too")
		}
	}
	if t.CompactListen != "" && t.CompactListen == t.BinaryListen {
		bad("traces.binary_listen (LOOKOUT_JAEGER_BINARY_LISTEN)", t.BinaryListen, "want another address than the compact one")
	}
	if t.MaxPacketSize < 512 || t.MaxPacketSize > 65507 {
		bad("traces.max_packet_size (LOOKOUT_JAEGER_MAX_PACKET_SIZE)", t.MaxPacketSize, "want 512 to 65507 bytes")
	}
	if t.OTLPMaxRequestSize < 1024 || t.OTLPMaxRequestSize > 64<<20 {
		bad("traces.otlp_max_request_size (LOOKOUT_OTLP_MAX_REQUEST_SIZE)", t.OTLPMaxRequestSize, "want 1024 to 67108864 bytes")
	}
	if t.BatchSize < 1 {
		bad("traces.batch_size (LOOKOUT_SPANS_BATCH_SIZE)", t.BatchSize, "want 1 or more")
	}
	if t.QueueLimit < t.BatchSize {
		bad("traces.queue_limit (LOOKOUT_SPANS_QUEUE_LIMIT)", t.QueueLimit, fmt.Sprintf("want at least the batch size (%d)", t.BatchSize))
	}
	if t.FlushInterval <= 0 {
		bad("traces.flush_interval (LOOKOUT_SPANS_FLUSH_INTERVAL)", time.Duration(t.FlushInterval), "want more than 0")
	}
	if t.Timeout <= 0 {
		bad("traces.timeout (LOOKOUT_JAEGER_TIMEOUT)", time.Duration(t.Timeout), "want more than 0")
	}
}
