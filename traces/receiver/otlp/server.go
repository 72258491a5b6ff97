package otlp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/traces"
)

// DefaultMaxRequestSize is the largest OTLP request taken by default, after
// decompression.
const DefaultMaxRequestSize = 4 << 20

// Config configures a receiver.
type Config struct {
	Addr           string          // "host:port" to listen on (plain HTTP, or HTTP/2 without TLS for gRPC)
	MaxRequestSize int             // request bytes at most, compressed and decompressed; 0 means DefaultMaxRequestSize
	Senders        *traces.Senders // who sent a request (subscribe it to the inventory); nil: no one is known
	// Budget is the request bytes the receiver may hold at once, shared with the other
	// receiver; nil: a budget of its own of BudgetRequests maximal requests.
	Budget *Budget
	Log    logrus.FieldLogger
}

// BudgetRequests is the default budget, in requests of the maximum size.
const BudgetRequests = 4

// Budget is the memory the receivers may hold in request bodies at once (read, and
// decompressed), shared by the receivers it is given to: a request is read into a buffer
// that grows as bytes come, each growth taken from the budget and given back when the
// request is answered, and a request that needs more than is left is answered 503
// (gRPC UNAVAILABLE), which the SDKs retry. So many requests at once, gzip bombs among
// them, hold at most the budget (and the garbage of the buffers they outgrew: as much
// again), however many connections send them.
type Budget struct{ left atomic.Int64 }

// NewBudget returns a budget of n bytes.
func NewBudget(n int64) *Budget {
	b := &Budget{}
	b.left.Store(n)
	return b
}

func (b *Budget) take(n int64) bool {
	for {
		l := b.left.Load()
		if l < n {
			return false
		}
		if b.left.CompareAndSwap(l, l-n) {
			return true
		}
	}
}

func (b *Budget) give(n int64) { b.left.Add(n) }

// errBusy: the budget has no room for the request.
var errBusy = errors.New("the agent holds as many request bytes as it may; retry later")

// readBody reads r into a buffer taken from the budget (held adds up what was taken;
// the caller gives it back), up to limit+1 bytes: more than limit read means too large.
// hint is the expected size (Content-Length, a gRPC message's length), or 0: a buffer of
// one more byte takes it and sees its end without growing.
func (o *server) readBody(r io.Reader, limit, hint int, held *int64) ([]byte, error) {
	var buf []byte
	grow := func() error {
		n := min(max(2*cap(buf), hint+1, 512), limit+1)
		if !o.cfg.Budget.take(int64(n - cap(buf))) {
			return errBusy
		}
		*held += int64(n - cap(buf))
		nb := make([]byte, len(buf), n)
		copy(nb, buf)
		buf = nb
		return nil
	}
	for {
		if len(buf) == cap(buf) {
			if len(buf) > limit {
				return buf, nil
			}
			if err := grow(); err != nil {
				return buf, err
			}
		}
		k, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+k]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// server is what the HTTP and gRPC receivers share: the listener, the counters and the
// path of a decoded request to the sink.
type server struct {
	cfg  Config
	name string // for the log
	sink traces.Sink
	ln   net.Listener
	srv  *http.Server

	requests, spans, malformed, tooLarge, unsupported, queueFull, badSpans, unknown, busy atomic.Uint64
}

func newServer(cfg Config, sink traces.Sink, name string, srv *http.Server) (*server, error) {
	if cfg.MaxRequestSize <= 0 {
		cfg.MaxRequestSize = DefaultMaxRequestSize
	}
	if cfg.Log == nil {
		cfg.Log = logrus.New()
	}
	if cfg.Senders == nil {
		cfg.Senders = traces.NewSenders()
	}
	if cfg.Budget == nil {
		cfg.Budget = NewBudget(BudgetRequests * int64(cfg.MaxRequestSize))
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", name, cfg.Addr, err)
	}
	limited := newConnLimit(ln, MaxConns)
	srv.ConnState = limited.connState
	return &server{cfg: cfg, name: name, sink: sink, ln: limited, srv: srv}, nil
}

// Addr is the address listened on.
func (o *server) Addr() net.Addr { return o.ln.Addr() }

// Run serves until ctx is done, then closes the listener and waits, a few seconds at
// most, for the requests being served.
func (o *server) Run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := o.srv.Serve(o.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.cfg.Log.WithError(err).Error(o.name + " stopped")
		}
	}()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := o.srv.Shutdown(sctx); err != nil {
		_ = o.srv.Close()
	}
	wg.Wait()
}

// take tags the spans of a request from remoteAddr with the container that sent it,
// skips (and counts) spans without a valid trace or span ID, and hands the rest to the
// sink: false when it had no room.
func (o *server) take(remoteAddr string, rss []*tracepb.ResourceSpans) bool {
	var s *traces.Sender
	if ap, err := netip.ParseAddrPort(remoteAddr); err == nil {
		s = o.cfg.Senders.Lookup(ap.Addr())
	}
	if s == nil {
		o.unknown.Add(1)
	} else {
		s.Tag(rss)
	}
	n, bad := 0, 0
	for _, rs := range rss {
		for _, ss := range rs.GetScopeSpans() {
			kept := ss.Spans[:0]
			for _, sp := range ss.Spans {
				if validIDs(sp) {
					kept = append(kept, sp)
				} else {
					bad++
				}
			}
			clear(ss.Spans[len(kept):])
			ss.Spans = kept
			n += len(kept)
		}
	}
	o.spans.Add(uint64(n + bad))
	o.badSpans.Add(uint64(bad))
	if !o.sink.ExportSpans(rss) {
		o.queueFull.Add(1)
		return false
	}
	return true
}

// validIDs: a 16-byte trace ID and an 8-byte span ID, neither all zero.
func validIDs(sp *tracepb.Span) bool {
	if sp == nil || len(sp.TraceId) != 16 || len(sp.SpanId) != 8 {
		return false
	}
	return (binary.BigEndian.Uint64(sp.TraceId[:8])|binary.BigEndian.Uint64(sp.TraceId[8:])) != 0 &&
		binary.BigEndian.Uint64(sp.SpanId) != 0
}

func (o *server) malformedRequest(from string, err error) {
	if o.malformed.Add(1) == 1 {
		o.cfg.Log.WithError(err).WithField("from", from).Warn(o.name + ": malformed request dropped (counted; logged once)")
	}
}

// Stats are a receiver's counters.
type Stats struct {
	Requests, Spans, Malformed, TooLarge, Unsupported, QueueFull, BadSpans, UnknownSender, Busy uint64
}

// Stats returns the counters.
func (o *server) Stats() Stats {
	return Stats{Requests: o.requests.Load(), Spans: o.spans.Load(), Malformed: o.malformed.Load(),
		TooLarge: o.tooLarge.Load(), Unsupported: o.unsupported.Load(), QueueFull: o.queueFull.Load(),
		BadSpans: o.badSpans.Load(), UnknownSender: o.unknown.Load(), Busy: o.busy.Load()}
}

func (o *server) points(measurement string, now time.Time, tags map[string]string) []metric.Point {
	s := o.Stats()
	return []metric.Point{metric.New(measurement, tags, []metric.Field{
		{Key: "requests_received", Value: s.Requests},
		{Key: "spans_received", Value: s.Spans},
		{Key: "requests_malformed", Value: s.Malformed},
		{Key: "requests_too_large", Value: s.TooLarge},
		{Key: "requests_unsupported_media_type", Value: s.Unsupported},
		{Key: "requests_queue_full", Value: s.QueueFull},
		{Key: "requests_busy", Value: s.Busy},
		{Key: "spans_dropped_malformed", Value: s.BadSpans},
		{Key: "requests_unknown_sender", Value: s.UnknownSender},
	}, now)}
}

// Points reports lookout_spans_otlp.
func (o *HTTP) Points(now time.Time, tags map[string]string) []metric.Point {
	return o.points("lookout_spans_otlp", now, tags)
}
