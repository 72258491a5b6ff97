// Package metrics serves the agent's own counters, the same points it ships as line
// protocol (lookout_agent, lookout_inventory, lookout_output, …), in the Prometheus
// exposition format on /metrics, and its health on /healthz. Each numeric field of a point
// becomes the sample <measurement>_<field> with the point's tags as labels; booleans are 1
// or 0; text fields are left out. Every family is typed (counter or gauge) and has HELP
// text, both from the table in families.go. The format is written by
// github.com/prometheus/common/expfmt: text by default, protobuf when the scraper asks.
package metrics

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"google.golang.org/protobuf/proto"

	"github.com/lookout-agent/lookout/metric"
)

// Server keeps the latest points it was given and serves them.
type Server struct {
	healthy func() error

	mu     sync.Mutex
	points []metric.Point
}

// New returns a server; healthy says whether the agent is well (nil) or why not.
func New(healthy func() error) *Server { return &Server{healthy: healthy} }

// Update replaces the points served: those of a report, and the scrape points saying how
// each source was gathered (collectors.Self calls it after every report).
func (s *Server) Update(points, scrape []metric.Point) {
	cp := append(append(make([]metric.Point, 0, len(points)+len(scrape)), points...), scrape...)
	s.mu.Lock()
	s.points = cp
	s.mu.Unlock()
}

// Handler serves /metrics and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		points := s.points
		s.mu.Unlock()
		format := expfmt.Negotiate(r.Header)
		body, err := encode(Families(points), format)
		if err != nil {
			http.Error(w, "encoding the metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", string(format))
		_, _ = w.Write(body)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.healthy(); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// Run serves on l until ctx is done, then shuts the server down and returns. A serve
// error is returned at once.
func (s *Server) Run(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Encode writes points in the Prometheus text format (version 0.0.4), families sorted by
// name, each with its HELP and TYPE lines.
func Encode(points []metric.Point) []byte {
	b, _ := encode(Families(points), expfmt.NewFormat(expfmt.TypeTextPlain))
	return b
}

func encode(families []*dto.MetricFamily, format expfmt.Format) ([]byte, error) {
	var b bytes.Buffer
	enc := expfmt.NewEncoder(&b, format)
	for _, mf := range families {
		if err := enc.Encode(mf); err != nil {
			return nil, err
		}
	}
	if c, ok := enc.(expfmt.Closer); ok {
		if err := c.Close(); err != nil {
			return nil, err
		}
	}
	return b.Bytes(), nil
}

// Families turns points into metric families sorted by name; within a family the samples
// keep the order of the points. A field missing from the table is served untyped, with a
// HELP line saying so (a test keeps the table complete).
func Families(points []metric.Point) []*dto.MetricFamily {
	byName := map[string]*dto.MetricFamily{}
	for _, p := range points {
		var labels []*dto.LabelPair
		for _, t := range p.Tags {
			labels = append(labels, &dto.LabelPair{Name: proto.String(Name(t.Key)), Value: proto.String(t.Value)})
		}
		for _, f := range p.Fields {
			v, ok := number(f.Value)
			if !ok {
				continue
			}
			name := Name(p.Name + "_" + f.Key)
			mf := byName[name]
			if mf == nil {
				d, known := Describe(p.Name, f.Key)
				if !known {
					d = Desc{Kind: Untyped, Help: "field " + f.Key + " of " + p.Name + " (not described in the metrics table)"}
				}
				mf = &dto.MetricFamily{Name: proto.String(name), Help: proto.String(d.Help), Type: d.Kind.dto().Enum()}
				byName[name] = mf
			}
			m := &dto.Metric{Label: labels}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				m.Counter = &dto.Counter{Value: proto.Float64(v)}
			case dto.MetricType_GAUGE:
				m.Gauge = &dto.Gauge{Value: proto.Float64(v)}
			default:
				m.Untyped = &dto.Untyped{Value: proto.Float64(v)}
			}
			mf.Metric = append(mf.Metric, m)
		}
	}
	out := make([]*dto.MetricFamily, 0, len(byName))
	for _, mf := range byName {
		out = append(out, mf)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].GetName() < out[j].GetName() })
	return out
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case uint64:
		return float64(x), true
	case float64:
		return x, true
	case bool:
		if x {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}

// Name turns a measurement or field name into a valid metric or label name: every
// character other than [a-zA-Z0-9_] becomes '_', and a leading digit gets a '_' before it.
func Name(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '_' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z'):
		case r >= '0' && r <= '9':
			if i == 0 {
				b.WriteByte('_')
			}
		default:
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}
