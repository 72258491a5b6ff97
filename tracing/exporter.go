// Package tracing sends spans to Jaeger: a span for every check the agent runs or sees
// Docker run (Probes, Native), and the spans the node's services send to the agent's
// node-local relay (Relay), tagged with the sending container. All of them leave through
// one Exporter, which batches them to Jaeger's collector over jaeger.thrift HTTP or to
// any OTLP/HTTP endpoint (Jaeger's own, an OpenTelemetry Collector).
//
// The wire types are those of github.com/uber/jaeger-client-go/thrift-gen: the client is
// archived, but its generated thrift types are exactly what jaeger-agent's UDP ports and
// the collector's /api/traces endpoint speak, so there is nothing to convert.
package tracing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/uber/jaeger-client-go/thrift"
	"github.com/uber/jaeger-client-go/thrift-gen/jaeger"

	"github.com/lookout-agent/lookout/internal/retryafter"
	"github.com/lookout-agent/lookout/metric"
)

// The protocols the Exporter speaks.
const (
	ProtocolThrift = "thrift" // jaeger.thrift binary over HTTP, to Jaeger's /api/traces
	ProtocolOTLP   = "otlp"   // OTLP/HTTP protobuf (gzip), to /v1/traces
)

// ExporterConfig configures an Exporter.
type ExporterConfig struct {
	Endpoint   string        // http://host:14268/api/traces (thrift) or http://host:4318/v1/traces (otlp)
	Protocol   string        // ProtocolThrift (the default when empty) or ProtocolOTLP
	BatchSize  int           // spans per request at most; a full batch is sent at once
	Interval   time.Duration // a partial batch is sent after this long
	QueueLimit int           // spans held (waiting or being retried) at most; more are dropped and counted
	Timeout    time.Duration // of one request
	Log        logrus.FieldLogger
}

// Exporter queues spans (bounded, in spans) and sends them to the collector in batches:
// over jaeger.thrift one request per distinct process (a thrift Batch has one process),
// over OTLP one request with a ResourceSpans per process. A batch the collector did not take (no connection,
// 5xx, 429) stays at the head of the queue and is retried with backoff, so while the
// collector is away spans are held up to QueueLimit and later ones are dropped and
// counted; a batch it refused (another 4xx) is dropped and counted.
type Exporter struct {
	cfg    ExporterConfig
	client *http.Client
	wake   chan struct{}

	mu     sync.Mutex
	queue  []entry
	queued int // spans in queue

	forwarded, droppedFull, droppedSend, requests, failures atomic.Uint64
}

// entry is one process and some of its spans.
type entry struct {
	key   string
	proc  *jaeger.Process
	spans []*jaeger.Span
}

// NewExporter checks cfg and returns an exporter; Run sends.
func NewExporter(cfg ExporterConfig) (*Exporter, error) {
	if !strings.HasPrefix(cfg.Endpoint, "http://") && !strings.HasPrefix(cfg.Endpoint, "https://") {
		return nil, fmt.Errorf("spans endpoint %q: want http://host:port/api/traces (thrift) or http://host:port/v1/traces (otlp)", cfg.Endpoint)
	}
	if cfg.Protocol == "" {
		cfg.Protocol = ProtocolThrift
	}
	if cfg.Protocol != ProtocolThrift && cfg.Protocol != ProtocolOTLP {
		return nil, protocolError(cfg.Protocol)
	}
	if cfg.BatchSize < 1 || cfg.QueueLimit < cfg.BatchSize || cfg.Interval <= 0 {
		return nil, fmt.Errorf("spans: batch size %d, queue limit %d, interval %s: want batch size 1 or more, queue limit at least the batch size, interval above 0",
			cfg.BatchSize, cfg.QueueLimit, cfg.Interval)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	return &Exporter{cfg: cfg, client: &http.Client{Timeout: cfg.Timeout, Transport: &http.Transport{Proxy: nil,
		MaxIdleConnsPerHost: 2}}, wake: make(chan struct{}, 1)}, nil
}

// ExportBatches queues the spans of every batch, all or none. It never blocks: when they
// do not all fit, none is queued, they are counted as dropped (queue full) and it returns
// false.
func (e *Exporter) ExportBatches(batches []*jaeger.Batch) bool {
	n := spansIn(batches)
	if n == 0 {
		return true
	}
	keys := make([]string, len(batches))
	for i, b := range batches {
		keys[i] = processKey(b.Process)
	}
	e.mu.Lock()
	if e.queued+n > e.cfg.QueueLimit {
		e.mu.Unlock()
		e.droppedFull.Add(uint64(n))
		return false
	}
	// Entries are never appended to: the flusher may be sending one (flushOne groups
	// entries of equal processes into one request).
	for i, b := range batches {
		if len(b.Spans) > 0 {
			e.queue = append(e.queue, entry{key: keys[i], proc: b.Process, spans: b.Spans})
		}
	}
	e.queued += n
	full := e.queued >= e.cfg.BatchSize
	e.mu.Unlock()
	if full {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// processKey identifies a process: spans of equal processes go in one request.
func processKey(p *jaeger.Process) string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	b.WriteString(p.ServiceName)
	for _, t := range p.Tags {
		b.WriteByte(0)
		b.WriteString(t.Key)
		b.WriteByte('=')
		switch {
		case t.VStr != nil:
			b.WriteString(*t.VStr)
		case t.VLong != nil:
			fmt.Fprint(&b, *t.VLong)
		case t.VBool != nil:
			fmt.Fprint(&b, *t.VBool)
		case t.VDouble != nil:
			fmt.Fprint(&b, *t.VDouble)
		case t.VBinary != nil:
			fmt.Fprintf(&b, "%x", t.VBinary)
		}
	}
	return b.String()
}

// Run sends batches until ctx is done, then tries once more, for at most the timeout, to
// send what is queued.
func (e *Exporter) Run(ctx context.Context) {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	backoff := time.Duration(0)
	var retryAt time.Time
	partial := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
			for e.flushOne(fctx, true) == nil {
			}
			cancel()
			e.dropLeft()
			return
		case <-t.C:
			partial = true // a tick sends what waited, full batch or not
		case <-e.wake:
			partial = false
		}
		if time.Now().Before(retryAt) {
			continue
		}
		for {
			err := e.flushOne(ctx, partial)
			if err == nil {
				backoff = 0
				continue
			}
			if !errors.Is(err, errNothing) {
				backoff = min(max(2*backoff, 250*time.Millisecond), 5*time.Second)
				wait := backoff
				var ra *retryAfterError
				if errors.As(err, &ra) {
					wait = max(wait, ra.after) // the collector's Retry-After, if longer
				}
				retryAt = time.Now().Add(wait)
				e.cfg.Log.WithError(err).WithField("retry_in", wait).Warn("collector did not take spans; holding them")
			}
			break
		}
	}
}

var errNothing = errors.New("nothing to send")

// flushOne sends the next batch. With partial false, it sends only a full batch; it
// returns errNothing when there is nothing (or not enough) to send.
func (e *Exporter) flushOne(ctx context.Context, partial bool) error {
	e.mu.Lock()
	if e.queued == 0 || (!partial && e.queued < e.cfg.BatchSize) {
		e.mu.Unlock()
		return errNothing
	}
	// The head of the queue, up to BatchSize spans, grouped by process. The queue is only
	// shortened by this goroutine, so the head is still there after sending.
	n := 0
	groups := map[string]*jaeger.Batch{}
	var order []string
	taken := 0 // whole entries taken
	part := 0  // spans taken of entry [taken]
	for i := 0; i < len(e.queue) && n < e.cfg.BatchSize; i++ {
		en := e.queue[i]
		k := min(len(en.spans), e.cfg.BatchSize-n)
		g := groups[en.key]
		if g == nil {
			g = &jaeger.Batch{Process: en.proc}
			groups[en.key] = g
			order = append(order, en.key)
		}
		g.Spans = append(g.Spans, en.spans[:k]...)
		n += k
		if k == len(en.spans) {
			taken++
		} else {
			part = k
		}
	}
	e.mu.Unlock()
	if n == 0 {
		return errNothing
	}

	// One request per process over thrift, one for all over OTLP.
	var reqs [][]*jaeger.Batch
	for _, k := range order {
		if e.cfg.Protocol == ProtocolOTLP && len(reqs) > 0 {
			reqs[0] = append(reqs[0], groups[k])
		} else {
			reqs = append(reqs, []*jaeger.Batch{groups[k]})
		}
	}
	var sendErr error
	refused := 0
	for _, r := range reqs {
		rejected, err := e.send(ctx, r)
		var re *refusedError
		if errors.As(err, &re) {
			rejected = spansIn(r)
			e.cfg.Log.WithError(err).Warn("collector refused spans; dropped")
		} else if err != nil {
			sendErr = err
			break
		}
		refused += rejected
	}
	if sendErr != nil {
		return sendErr // keep them all: groups already sent are sent again (at-least-once)
	}
	e.mu.Lock()
	if part > 0 {
		e.queue[taken].spans = e.queue[taken].spans[part:]
	}
	clear(e.queue[:taken])
	e.queue = e.queue[taken:]
	e.queued -= n
	e.mu.Unlock()
	e.droppedSend.Add(uint64(refused))
	e.forwarded.Add(uint64(n - refused))
	return nil
}

// retryAfterError is a failure the collector said when to try again after.
type retryAfterError struct {
	err   error
	after time.Duration
}

func (r *retryAfterError) Error() string { return r.err.Error() }
func (r *retryAfterError) Unwrap() error { return r.err }

type refusedError struct {
	status int
	body   string
}

func (r *refusedError) Error() string {
	return fmt.Sprintf("collector answered %d: %s", r.status, r.body)
}

func spansIn(bs []*jaeger.Batch) int {
	n := 0
	for _, b := range bs {
		n += len(b.Spans)
	}
	return n
}

// send makes one request of batches (one batch over thrift). It returns the spans the
// collector took the request but rejected (an OTLP partial success), a *refusedError
// when it refused the request (drop it), another error when it should be sent again.
func (e *Exporter) send(ctx context.Context, bs []*jaeger.Batch) (rejected int, err error) {
	var body []byte
	if e.cfg.Protocol == ProtocolOTLP {
		body, err = encodeOTLP(bs)
	} else {
		body, err = serializeBinary(ctx, bs[0])
	}
	if err != nil {
		return 0, &refusedError{status: 0, body: "cannot encode the batch: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.cfg.Endpoint, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	if e.cfg.Protocol == ProtocolOTLP {
		req.Header.Set("Content-Type", "application/x-protobuf")
		req.Header.Set("Content-Encoding", "gzip")
	} else {
		req.Header.Set("Content-Type", "application/vnd.apache.thrift.binary")
	}
	e.requests.Add(1)
	resp, err := e.client.Do(req)
	if err != nil {
		e.failures.Add(1)
		return 0, err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	// OTLP/HTTP: only 429, 502, 503 and 504 are worth another try; jaeger.thrift: any 5xx
	// and 429, as before.
	retry := resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusBadGateway ||
		resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout ||
		(e.cfg.Protocol != ProtocolOTLP && resp.StatusCode >= 500)
	switch {
	case resp.StatusCode < 300:
		if e.cfg.Protocol != ProtocolOTLP {
			return 0, nil
		}
		n, why := otlpRejected(msg)
		if n > 0 {
			e.cfg.Log.WithField("spans", n).WithField("reason", why).Warn("collector rejected some spans (OTLP partial success); dropped")
		}
		return int(min(max(n, 0), int64(spansIn(bs)))), nil
	case retry:
		e.failures.Add(1)
		err := fmt.Errorf("collector answered %d: %s", resp.StatusCode, errorBody(msg))
		if after := retryafter.Parse(resp.Header.Get("Retry-After"), time.Now()); after > 0 {
			return 0, &retryAfterError{err: err, after: min(after, time.Minute)}
		}
		return 0, err
	default:
		e.failures.Add(1)
		return 0, &refusedError{status: resp.StatusCode, body: errorBody(msg)}
	}
}

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

// serializeBinary encodes b with thrift's binary protocol, as /api/traces wants it.
func serializeBinary(ctx context.Context, b *jaeger.Batch) ([]byte, error) {
	buf := thrift.NewTMemoryBufferLen(1024)
	if err := b.Write(ctx, thrift.NewTBinaryProtocolConf(buf, &thrift.TConfiguration{})); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// dropLeft counts, as send failures, and logs the spans still queued when the last flush
// at shutdown ended (the collector was away, or the time ran out).
func (e *Exporter) dropLeft() {
	e.mu.Lock()
	n := e.queued
	e.queue, e.queued = nil, 0
	e.mu.Unlock()
	if n > 0 {
		e.droppedSend.Add(uint64(n))
		e.cfg.Log.WithField("spans", n).Warn("collector did not take the spans queued at shutdown; dropped")
	}
}

// Stats are the exporter's counters.
type Stats struct {
	Queued                              int
	Forwarded, DroppedFull, DroppedSend uint64
	Requests, Failures                  uint64
}

// Stats returns the counters.
func (e *Exporter) Stats() Stats {
	e.mu.Lock()
	q := e.queued
	e.mu.Unlock()
	return Stats{Queued: q, Forwarded: e.forwarded.Load(), DroppedFull: e.droppedFull.Load(),
		DroppedSend: e.droppedSend.Load(), Requests: e.requests.Load(), Failures: e.failures.Load()}
}

// Points reports the exporter's counters as lookout_spans_export.
func (e *Exporter) Points(now time.Time, tags map[string]string) []metric.Point {
	s := e.Stats()
	return []metric.Point{metric.New("lookout_spans_export", tags, []metric.Field{
		{Key: "queued", Value: int64(s.Queued)},
		{Key: "forwarded", Value: s.Forwarded},
		{Key: "dropped_queue_full", Value: s.DroppedFull},
		{Key: "dropped_send_failure", Value: s.DroppedSend},
		{Key: "requests", Value: s.Requests},
		{Key: "request_failures", Value: s.Failures},
	}, now)}
}

// sortedTags returns tags sorted by key (deterministic processes and test output).
func sortedTags(m map[string]string) []*jaeger.Tag {
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v != "" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	out := make([]*jaeger.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, strTag(k, m[k]))
	}
	return out
}

func strTag(k, v string) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_STRING, VStr: &v}
}

func longTag(k string, v int64) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_LONG, VLong: &v}
}

func boolTag(k string, v bool) *jaeger.Tag {
	return &jaeger.Tag{Key: k, VType: jaeger.TagType_BOOL, VBool: &v}
}
