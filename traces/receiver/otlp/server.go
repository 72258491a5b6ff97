package otlp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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
	Log            logrus.FieldLogger
}

// server is what the HTTP and gRPC receivers share: the listener, the counters and the
// path of a decoded request to the sink.
type server struct {
	cfg  Config
	name string // for the log
	sink traces.Sink
	ln   net.Listener
	srv  *http.Server

	requests, spans, malformed, tooLarge, unsupported, queueFull, badSpans, unknown atomic.Uint64
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
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("%s on %s: %w", name, cfg.Addr, err)
	}
	return &server{cfg: cfg, name: name, sink: sink, ln: ln, srv: srv}, nil
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
	Requests, Spans, Malformed, TooLarge, Unsupported, QueueFull, BadSpans, UnknownSender uint64
}

// Stats returns the counters.
func (o *server) Stats() Stats {
	return Stats{Requests: o.requests.Load(), Spans: o.spans.Load(), Malformed: o.malformed.Load(),
		TooLarge: o.tooLarge.Load(), Unsupported: o.unsupported.Load(), QueueFull: o.queueFull.Load(),
		BadSpans: o.badSpans.Load(), UnknownSender: o.unknown.Load()}
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
		{Key: "spans_dropped_malformed", Value: s.BadSpans},
		{Key: "requests_unknown_sender", Value: s.UnknownSender},
	}, now)}
}

// Points reports lookout_spans_otlp.
func (o *HTTP) Points(now time.Time, tags map[string]string) []metric.Point {
	return o.points("lookout_spans_otlp", now, tags)
}
