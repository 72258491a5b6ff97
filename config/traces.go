package config

import "net/url"

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
	// QueueLimitBytes bounds the memory of the spans held, as QueueLimit their number.
	QueueLimitBytes int      `yaml:"queue_limit_bytes"`
	Timeout         Duration `yaml:"timeout"`
	// Probes makes a span of every check run (default true when an endpoint is set).
	Probes *bool `yaml:"probe_spans"`

	// OTLPListen is the TCP address of the OTLP/HTTP receiver (POST /v1/traces); empty:
	// not listening. OTLPMaxRequestSize bounds a request body (decompressed too).
	OTLPListen string `yaml:"otlp_listen"`
	// OTLPGRPCListen is the TCP address of the OTLP/gRPC receiver (TraceService/Export,
	// HTTP/2 without TLS); empty: not listening. OTLPMaxRequestSize bounds its messages.
	OTLPGRPCListen     string `yaml:"otlp_grpc_listen"`
	OTLPMaxRequestSize int    `yaml:"otlp_max_request_size"`
}

// Enabled says whether spans go anywhere.
func (t Traces) Enabled() bool { return t.JaegerEndpoint != "" }

// ProbeSpans says whether check runs become spans.
func (t Traces) ProbeSpans() bool { return t.Enabled() && (t.Probes == nil || *t.Probes) }

// addPath gives an endpoint without a path the protocol's path.
func (t *Traces) addPath() {
	if u, err := url.Parse(t.JaegerEndpoint); err == nil && u.Host != "" && (u.Path == "" || u.Path == "/") {
		u.Path = "/api/traces"
		if t.Protocol == "otlp" {
			u.Path = "/v1/traces"
		}
		t.JaegerEndpoint = u.String()
	}
}
