package checkspans

import (
	"fmt"
	"testing"
	"time"

	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/traces/jaegerthrift"
)

func spanTags(s *jaeger.Span) map[string]string {
	m := map[string]string{}
	for _, t := range s.Tags {
		switch {
		case t.VStr != nil:
			m[t.Key] = *t.VStr
		case t.VLong != nil:
			m[t.Key] = fmt.Sprint(*t.VLong)
		case t.VBool != nil:
			m[t.Key] = fmt.Sprint(*t.VBool)
		}
	}
	return m
}

func TestSuccessfulCheckSpanHasNoErrorTag(t *testing.T) {
	r := Run{Check: "db", Type: "tcp", Result: "success", Start: time.Now(), Duration: time.Millisecond}
	s := Span(NewSpanContext(), map[string]string{"container.name": "api-1"}, r, tracepb.Span_SPAN_KIND_CLIENT)
	b, _, _ := jaegerthrift.FromOTLP([]*tracepb.ResourceSpans{{ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{s}}}}})
	tags := spanTags(b[0].Spans[0])
	if _, ok := tags["error"]; ok || tags["lookout.check.result"] != "success" {
		t.Errorf("tags %v", tags)
	}
}
