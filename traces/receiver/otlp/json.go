package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// decodeOTLPJSON decodes an OTLP/HTTP JSON request (Content-Type application/json) into
// req. OTLP's JSON is protobuf's JSON mapping (protojson) with one exception: trace and
// span IDs are hex strings, not base64; they are rewritten before protojson reads the
// document. Unknown fields are ignored, as the OTLP specification asks of receivers.
func decodeOTLPJSON(b []byte, req *tracepb.TracesData) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber() // 64-bit integers stay exact
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("data after the JSON document")
	}
	for _, rs := range list(doc["resourceSpans"]) {
		for _, ss := range list(field(rs, "scopeSpans")) {
			for _, sp := range list(field(ss, "spans")) {
				if err := hexIDs(sp, "traceId", "spanId", "parentSpanId"); err != nil {
					return err
				}
				for _, l := range list(field(sp, "links")) {
					if err := hexIDs(l, "traceId", "spanId"); err != nil {
						return err
					}
				}
			}
		}
	}
	rewritten, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(rewritten, req)
}

func list(v any) []any {
	l, _ := v.([]any)
	return l
}

func field(v any, key string) any {
	m, _ := v.(map[string]any)
	return m[key]
}

// hexIDs rewrites the hex ID fields of object v as base64, as protojson reads bytes.
func hexIDs(v any, keys ...string) error {
	m, ok := v.(map[string]any)
	if !ok {
		return nil
	}
	for _, k := range keys {
		s, ok := m[k].(string)
		if !ok || s == "" {
			continue
		}
		raw, err := hex.DecodeString(s)
		if err != nil {
			return fmt.Errorf("%s %q: want a hex string (OTLP/HTTP JSON)", k, s)
		}
		m[k] = base64.StdEncoding.EncodeToString(raw)
	}
	return nil
}
