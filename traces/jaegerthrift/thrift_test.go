package jaegerthrift

import (
	"bytes"
	"context"
	"testing"

	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
)

func strTag(k, v string) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v}
}

func boolTag(k string, v bool) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_BOOL, VBool: &v}
}

func longTag(k string, v int64) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_LONG, VLong: &v}
}

// AppendBatch writes the bytes the generated thrift code writes for the Batch they
// decode to (field order, optional fields left out as it leaves them out), for every
// kind of attribute, reference, status and event.
func TestAppendBatchAsTheGeneratedCode(t *testing.T) {
	rich := &jaeger.Batch{Process: &jaeger.Process{ServiceName: "svc", Tags: []*jaeger.Tag{strTag("k", "x"), longTag("pid", 7)}},
		Spans: []*jaeger.Span{{TraceIdLow: 2, SpanId: 2, OperationName: "o",
			Tags: []*jaeger.Tag{strTag("a", "b"), strTag("otel.scope.name", "s"), strTag("w3c.tracestate", "t"), boolTag("b", false),
				{Key: "d", VType: jaeger.TagType_DOUBLE, VDouble: new(float64)}, {Key: "bin", VType: jaeger.TagType_BINARY}},
			Logs: []*jaeger.Log{{Fields: []*jaeger.Tag{strTag("event", "e"), strTag("f", "g")}}, {}}}}}
	noIDs := []*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{Name: "no IDs"}}}}}}
	for i, rss := range [][]*tracepb.ResourceSpans{otlpRequest().ResourceSpans, {ToOTLP(rich)}, noIDs} {
		var n, bad int
		for _, rs := range rss {
			body, k, skipped := AppendBatch([]byte("kept"), rs)
			n, bad = n+k, bad+skipped
			if !bytes.HasPrefix(body, []byte("kept")) {
				t.Fatalf("%d: AppendBatch did not append: %q", i, body)
			}
			if k == 0 {
				if len(body) != 4 {
					t.Errorf("%d: no spans written, yet %d bytes", i, len(body)-4)
				}
				continue
			}
			body = body[4:]
			buf := thrift.NewTMemoryBufferLen(len(body))
			_, _ = buf.Write(body)
			var b jaeger.Batch
			if err := b.Read(context.Background(), thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})); err != nil {
				t.Fatalf("%d: read: %v", i, err)
			}
			out := thrift.NewTMemoryBufferLen(len(body))
			_ = b.Write(context.Background(), thrift.NewTBinaryProtocolConf(out, &thrift.TConfiguration{}))
			if !bytes.Equal(out.Bytes(), body) || buf.Len() != 0 || len(b.Spans) != k {
				t.Errorf("%d: AppendBatch wrote\n%x\nthe generated code\n%x", i, body, out.Bytes())
			}
		}
		_, wantN, wantBad := FromOTLP(rss)
		if n != wantN || bad != wantBad || (i == 2 && bad != 1) {
			t.Errorf("%d: %d spans, %d bad; FromOTLP %d, %d", i, n, bad, wantN, wantBad)
		}
	}
}
