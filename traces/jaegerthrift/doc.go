// Package jaegerthrift converts between jaeger.thrift and the agent's span model (OTLP
// protobuf). It is used only at the edges: the UDP relay's input (ToOTLP) and the
// jaeger.thrift HTTP exporter's output (AppendBatch, which writes the thrift binary
// protocol straight from the model; FromOTLP reads it back as thrift structs).
//
// The wire types are those of github.com/uber/jaeger-client-go/thrift-gen: the client is
// archived, but its generated thrift types are exactly what jaeger-agent's UDP ports and
// the collector's /api/traces endpoint speak.
package jaegerthrift
