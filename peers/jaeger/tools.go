//go:build tools

// Package tools pins the Jaeger version used as a test peer (all-in-one: collector and
// query API; agent: the anchor of the span relay benchmark). Build it with
// scripts/peers.sh jaeger (see peers/jaeger/build.sh for the exact command).
package tools

import (
	_ "github.com/jaegertracing/jaeger/cmd/agent"
	_ "github.com/jaegertracing/jaeger/cmd/all-in-one"
)
