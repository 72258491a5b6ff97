package traces

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/internal/retryafter"
)

// Poster sends an exporter's requests to a collector over HTTP, counts them and sorts the
// answers: taken, to be sent again (a *RetryAfterError when the collector said when) or
// refused (a *RefusedError). The exporters embed one.
type Poster struct {
	url       string
	client    *http.Client
	retryable func(status int) bool

	requests, failures atomic.Uint64
}

// HTTPConfig configures an exporter that posts to a collector.
type HTTPConfig struct {
	Endpoint string        // http://host:14268/api/traces (thrift) or http://host:4318/v1/traces (otlp)
	Timeout  time.Duration // of one request; 0 means 5s
	Log      logrus.FieldLogger
}

// NewPoster checks the endpoint; retryable tells which error statuses are worth another
// try. It fills in cfg's defaults.
func NewPoster(cfg *HTTPConfig, retryable func(status int) bool) (*Poster, error) {
	if !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("spans endpoint %q: want http://host:port/api/traces (thrift) or http://host:port/v1/traces (otlp)", cfg.Endpoint)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	return &Poster{url: cfg.Endpoint, retryable: retryable,
		client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 2}}}, nil
}

// Post sends body and returns the answer's body (up to 1 MiB) when the status is 2xx.
func (p *Poster) Post(ctx context.Context, contentType, contentEncoding string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", contentType)
	if contentEncoding != "" {
		req.Header.Set("Content-Encoding", contentEncoding)
	}
	p.requests.Add(1)
	resp, err := p.client.Do(req)
	if err != nil {
		p.failures.Add(1)
		return nil, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode < 300:
		return msg, nil
	case p.retryable(resp.StatusCode):
		p.failures.Add(1)
		err := fmt.Errorf("collector answered %d: %s", resp.StatusCode, errorBody(msg))
		if after := retryafter.Parse(resp.Header.Get("Retry-After"), time.Now()); after > 0 {
			return nil, &RetryAfterError{Err: err, After: min(after, time.Minute)}
		}
		return nil, err
	default:
		p.failures.Add(1)
		return nil, &RefusedError{Status: resp.StatusCode, Body: errorBody(msg)}
	}
}

// Requests returns how many requests were sent and how many failed.
func (p *Poster) Requests() (sent, failed uint64) { return p.requests.Load(), p.failures.Load() }

// errorBody is what an error answer says, for the log: text as it is (up to 512 bytes),
// anything else (an OTLP google.rpc.Status in protobuf) by its printable runs.
func errorBody(msg []byte) string {
	msg = msg[:min(len(msg), 512)]
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == 0xfffd {
			return ' '
		}
		return r
	}, string(msg)))
}
