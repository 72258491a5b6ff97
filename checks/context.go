package checks

import (
	"context"
	"net/http"
)

type requestHeadersKey struct{}

// WithRequestHeaders returns a context that makes an HTTP probe run with it send headers
// h too (set after the check's own headers), such as the trace context of the probe's span.
func WithRequestHeaders(ctx context.Context, h http.Header) context.Context {
	return context.WithValue(ctx, requestHeadersKey{}, h)
}

func requestHeaders(ctx context.Context) http.Header {
	h, _ := ctx.Value(requestHeadersKey{}).(http.Header)
	return h
}
