package otlp

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"testing"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/traces/internal/tracetest"
)

// otlpJSON is what an SDK's OTLP/HTTP JSON exporter sends for req: protobuf's JSON
// mapping, with trace and span IDs in hex.
func otlpJSON(t testing.TB, req proto.Message) []byte {
	t.Helper()
	b, err := protojson.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "traceId" || k == "spanId" || k == "parentSpanId") {
					raw, _ := base64.StdEncoding.DecodeString(s)
					x[k] = hex.EncodeToString(raw)
					continue
				}
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(doc)
	out, _ := json.Marshal(doc)
	return out
}

// The same request as JSON and as protobuf makes the same batches; the answer is JSON.
func TestOTLPReceiverTakesJSON(t *testing.T) {
	viaProto, viaJSON := &tracetest.Sink{}, &tracetest.Sink{}
	req := otlpRequest()
	if w := post(newTestOTLP(t, viaProto), "10.0.1.7:1", "application/x-protobuf", "", marshal(t, req)); w.Code != 200 {
		t.Fatalf("protobuf: %d %s", w.Code, w.Body)
	}
	body := otlpJSON(t, req)
	if !bytes.Contains(body, []byte(`"spanId":"000000000000000a"`)) {
		t.Fatalf("the JSON fixture has no hex span ID: %s", body)
	}
	w := post(newTestOTLP(t, viaJSON), "10.0.1.7:1", "application/json", "gzip", gzipped(body))
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" || w.Body.String() != "{}" {
		t.Fatalf("JSON: %d %q %s", w.Code, w.Header().Get("Content-Type"), w.Body)
	}
	a := &tracepb.TracesData{ResourceSpans: viaProto.Resources()}
	b := &tracepb.TracesData{ResourceSpans: viaJSON.Resources()}
	if len(b.ResourceSpans) != 1 || !proto.Equal(a, b) {
		t.Errorf("JSON made\n%s\nprotobuf made\n%s", b, a)
	}
}
