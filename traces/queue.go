package traces

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/internal/backoff"
	"github.com/lookout-agent/lookout/metric"
)

// QueueConfig configures a Queue.
type QueueConfig struct {
	BatchSize int           // spans per request at most; a full batch is sent at once
	Interval  time.Duration // a partial batch is sent after this long
	Limit     int           // spans held (waiting or being retried) at most; more are dropped and counted
	// LimitBytes bounds the memory the held spans take (SpanBytes, an estimate): spans
	// that would pass it are dropped and counted as for Limit. 0 means DefaultLimitBytes.
	LimitBytes int
	Timeout    time.Duration // of the last flush at shutdown
	Log        logrus.FieldLogger
}

// DefaultLimitBytes is QueueConfig.LimitBytes's default: the memory of the spans held.
const DefaultLimitBytes = 16 << 20

// MaxBatchBytes bounds a batch in SpanBytes as BatchSize bounds it in spans (a span
// larger than that goes alone): a flood of big spans makes requests of a few MiB, not of
// BatchSize times the largest span.
const MaxBatchBytes = 4 << 20

// Queue holds spans (bounded in spans and in bytes of memory) and hands them to the
// Exporter in batches of up to BatchSize spans (and about MaxBatchBytes), the spans of one
// resource (and one scope) grouped. A batch the
// exporter could not send (no connection, 5xx, 429) stays at the head of the queue and
// is retried with backoff (internal/backoff, at least the collector's Retry-After), so
// while the collector is away spans are held up to Limit and later ones are dropped and
// counted; a batch it refused is dropped and counted.
type Queue struct {
	cfg  QueueConfig
	exp  Exporter
	wake chan struct{}

	mu     sync.Mutex
	queue  []entry
	queued int // spans in queue
	bytes  int // their SpanBytes

	keysMu sync.Mutex
	keys   [16]resourceKey // see resourceKey
	next   int

	forwarded, droppedFull, droppedSend atomic.Uint64
}

// resourceKey is a resource and its key.
type resourceKey struct {
	res         *resourcepb.Resource
	schema, key string
}

// entry is one resource, one of its scopes and some of that scope's spans.
type entry struct {
	rkey, skey string
	rs         *tracepb.ResourceSpans // the resource and its schema (no scope spans)
	ss         *tracepb.ScopeSpans    // the scope and its schema (no spans)
	spans      []*tracepb.Span
	sizes      []int // SpanBytes of each of spans
}

// NewQueue checks cfg and returns a queue sending to exp; Run sends.
func NewQueue(cfg QueueConfig, exp Exporter) (*Queue, error) {
	if cfg.BatchSize < 1 || cfg.Limit < cfg.BatchSize || cfg.Interval <= 0 {
		return nil, fmt.Errorf("spans: batch size %d, queue limit %d, interval %s: want batch size 1 or more, queue limit at least the batch size, interval above 0",
			cfg.BatchSize, cfg.Limit, cfg.Interval)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.LimitBytes <= 0 {
		cfg.LimitBytes = DefaultLimitBytes
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	return &Queue{cfg: cfg, exp: exp, wake: make(chan struct{}, 1)}, nil
}

var _ Sink = (*Queue)(nil)

// ExportSpans queues every span of rss, all or none. It never blocks: when they do not
// all fit (in spans or in bytes), none is queued, they are counted as dropped (queue
// full) and it returns false.
func (q *Queue) ExportSpans(rss []*tracepb.ResourceSpans) bool {
	n := CountSpans(rss)
	if n == 0 {
		return true
	}
	q.mu.Lock()
	full := q.queued+n > q.cfg.Limit || q.bytes >= q.cfg.LimitBytes
	q.mu.Unlock()
	if full {
		q.droppedFull.Add(uint64(n))
		return false
	}
	// Sizes and keys are computed outside the lock; the limits are checked again under it.
	size := 0
	var entries []entry
	for _, rs := range rss {
		if rs == nil {
			continue
		}
		head := &tracepb.ResourceSpans{Resource: rs.Resource, SchemaUrl: rs.SchemaUrl}
		rkey := q.resourceKey(rs.Resource, rs.SchemaUrl)
		for _, ss := range rs.ScopeSpans {
			if len(ss.GetSpans()) == 0 {
				continue
			}
			sizes := make([]int, len(ss.Spans))
			for i, sp := range ss.Spans {
				sizes[i] = SpanBytes(sp)
				size += sizes[i]
			}
			entries = append(entries, entry{rkey: rkey, skey: key(ss.Scope, ss.SchemaUrl), rs: head,
				ss: &tracepb.ScopeSpans{Scope: ss.Scope, SchemaUrl: ss.SchemaUrl}, spans: ss.Spans, sizes: sizes})
		}
	}
	q.mu.Lock()
	if q.queued+n > q.cfg.Limit || q.bytes+size > q.cfg.LimitBytes {
		q.mu.Unlock()
		q.droppedFull.Add(uint64(n))
		return false
	}
	// Entries are never appended to: the flusher may be sending one.
	q.queue = append(q.queue, entries...)
	q.queued += n
	q.bytes += size
	full = q.queued >= q.cfg.BatchSize || q.bytes >= MaxBatchBytes
	q.mu.Unlock()
	if full {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return true
}

// resourceKey returns key(res, schema), remembered for the last few resources: a receiver
// may hand on many batches of one resource (the UDP relay shares a client's), and
// nobody changes a resource once it is in the model.
func (q *Queue) resourceKey(res *resourcepb.Resource, schema string) string {
	q.keysMu.Lock()
	for _, k := range q.keys {
		if k.res == res && k.res != nil && k.schema == schema {
			q.keysMu.Unlock()
			return k.key
		}
	}
	q.keysMu.Unlock()
	k := key(res, schema)
	q.keysMu.Lock()
	q.keys[q.next] = resourceKey{res: res, schema: schema, key: k}
	q.next = (q.next + 1) % len(q.keys)
	q.keysMu.Unlock()
	return k
}

// key identifies a resource or a scope: spans of equal ones go together.
func key[M interface {
	*resourcepb.Resource | *commonpb.InstrumentationScope
	proto.Message
}](m M, schema string) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	return schema + "\x00" + string(b)
}

// Run sends batches until ctx is done, then tries once more, for at most the timeout, to
// send what is queued.
func (q *Queue) Run(ctx context.Context) {
	t := time.NewTicker(q.cfg.Interval)
	defer t.Stop()
	bo := backoff.Backoff{Min: 250 * time.Millisecond, Max: 5 * time.Second}
	var retryAt time.Time
	partial := false
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), q.cfg.Timeout)
			for q.flushOne(fctx, true) == nil {
			}
			cancel()
			q.dropLeft()
			return
		case <-t.C:
			partial = true // a tick sends what waited, full batch or not
		case <-q.wake:
			partial = false
		}
		if time.Now().Before(retryAt) {
			continue
		}
		for {
			err := q.flushOne(ctx, partial)
			if err == nil {
				bo.Reset()
				continue
			}
			if !errors.Is(err, errNothing) {
				wait := bo.Next()
				var ra *RetryAfterError
				if errors.As(err, &ra) {
					wait = max(wait, ra.After) // the collector's Retry-After, if longer
				}
				retryAt = time.Now().Add(wait)
				q.cfg.Log.WithError(err).WithField("retry_in", wait).Warn("collector did not take spans; holding them")
			}
			break
		}
	}
}

var errNothing = errors.New("nothing to send")

// flushOne sends the next batch. With partial false, it sends only a full batch; it
// returns errNothing when there is nothing (or not enough) to send.
func (q *Queue) flushOne(ctx context.Context, partial bool) error {
	q.mu.Lock()
	if q.queued == 0 || (!partial && q.queued < q.cfg.BatchSize && q.bytes < MaxBatchBytes) {
		q.mu.Unlock()
		return errNothing
	}
	// The head of the queue, up to BatchSize spans and about MaxBatchBytes, grouped by
	// resource and scope. The queue is only shortened by this goroutine, so the head is
	// still there after sending.
	n, size := 0, 0
	var rss []*tracepb.ResourceSpans
	resources := map[string]*tracepb.ResourceSpans{}
	scopes := map[[2]string]*tracepb.ScopeSpans{}
	taken := 0 // whole entries taken
	part := 0  // spans taken of entry [taken]
	for i := 0; i < len(q.queue) && n < q.cfg.BatchSize && size < MaxBatchBytes; i++ {
		en := q.queue[i]
		k := 0
		for k < min(len(en.spans), q.cfg.BatchSize-n) && (n+k == 0 || size+en.sizes[k] <= MaxBatchBytes) {
			size += en.sizes[k]
			k++
		}
		if k == 0 {
			break // the next span would pass MaxBatchBytes
		}
		rs := resources[en.rkey]
		if rs == nil {
			rs = &tracepb.ResourceSpans{Resource: en.rs.Resource, SchemaUrl: en.rs.SchemaUrl}
			resources[en.rkey] = rs
			rss = append(rss, rs)
		}
		ss := scopes[[2]string{en.rkey, en.skey}]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: en.ss.Scope, SchemaUrl: en.ss.SchemaUrl}
			scopes[[2]string{en.rkey, en.skey}] = ss
			rs.ScopeSpans = append(rs.ScopeSpans, ss)
		}
		ss.Spans = append(ss.Spans, en.spans[:k]...)
		n += k
		if k == len(en.spans) {
			taken++
		} else {
			part = k
			break // the batch is full
		}
	}
	q.mu.Unlock()
	if n == 0 {
		return errNothing
	}

	rejected, err := q.exp.Export(ctx, rss)
	var re *RefusedError
	if errors.As(err, &re) {
		rejected = n
		q.cfg.Log.WithError(err).Warn("collector refused spans; dropped")
	} else if err != nil {
		return err // keep them all: resources already sent are sent again (at-least-once)
	}
	rejected = min(max(rejected, 0), n)
	q.mu.Lock()
	if part > 0 {
		q.queue[taken].spans = q.queue[taken].spans[part:]
		q.queue[taken].sizes = q.queue[taken].sizes[part:]
	}
	clear(q.queue[:taken])
	q.queue = q.queue[taken:]
	q.queued -= n
	q.bytes -= size
	q.mu.Unlock()
	q.droppedSend.Add(uint64(rejected))
	q.forwarded.Add(uint64(n - rejected))
	return nil
}

// dropLeft counts, as send failures, and logs the spans still queued when the last flush
// at shutdown ended (the collector was away, or the time ran out).
func (q *Queue) dropLeft() {
	q.mu.Lock()
	n := q.queued
	q.queue, q.queued, q.bytes = nil, 0, 0
	q.mu.Unlock()
	if n > 0 {
		q.droppedSend.Add(uint64(n))
		q.cfg.Log.WithField("spans", n).Warn("collector did not take the spans queued at shutdown; dropped")
	}
}

// Stats are the queue's and its exporter's counters.
type Stats struct {
	Queued, QueuedBytes                 int
	Forwarded, DroppedFull, DroppedSend uint64
	Requests, Failures                  uint64
}

// Stats returns the counters.
func (q *Queue) Stats() Stats {
	q.mu.Lock()
	n, b := q.queued, q.bytes
	q.mu.Unlock()
	sent, failed := q.exp.Requests()
	return Stats{Queued: n, QueuedBytes: b, Forwarded: q.forwarded.Load(), DroppedFull: q.droppedFull.Load(),
		DroppedSend: q.droppedSend.Load(), Requests: sent, Failures: failed}
}

// Points reports the counters as lookout_spans_export.
func (q *Queue) Points(now time.Time, tags map[string]string) []metric.Point {
	s := q.Stats()
	return []metric.Point{metric.New("lookout_spans_export", tags, []metric.Field{
		{Key: "queued", Value: int64(s.Queued)},
		{Key: "queued_bytes", Value: int64(s.QueuedBytes)},
		{Key: "forwarded", Value: s.Forwarded},
		{Key: "dropped_queue_full", Value: s.DroppedFull},
		{Key: "dropped_send_failure", Value: s.DroppedSend},
		{Key: "requests", Value: s.Requests},
		{Key: "request_failures", Value: s.Failures},
	}, now)}
}

// Flush sends the next batch, full or not, now (Run does it on its own; tests of
// exporters call it).
func (q *Queue) Flush(ctx context.Context) error { return q.flushOne(ctx, true) }

// The memory a span takes in the agent beyond its protobuf encoding: Go's structures for
// the span and for each attribute, event and link (measured on spans decoded from
// jaeger.thrift: about 290 bytes a span and 160 an attribute).
const (
	spanOverhead = 300
	itemOverhead = 160
)

// SpanBytes estimates the memory sp takes: its protobuf size and the overhead of its
// structures. The queue's LimitBytes and MaxBatchBytes count in it.
func SpanBytes(sp *tracepb.Span) int {
	items := len(sp.GetAttributes()) + len(sp.GetEvents()) + len(sp.GetLinks())
	for _, e := range sp.GetEvents() {
		items += len(e.GetAttributes())
	}
	for _, l := range sp.GetLinks() {
		items += len(l.GetAttributes())
	}
	return proto.Size(sp) + spanOverhead + itemOverhead*items
}
