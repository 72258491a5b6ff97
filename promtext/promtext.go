// Package promtext serves the agent's own counters, the same points it ships as line
// protocol (lookout_agent, lookout_inventory, lookout_output, …), as Prometheus text on
// /metrics, and its health on /healthz. Each numeric field of a point becomes the sample
// <measurement>_<field> with the point's tags as labels; booleans are 1 or 0; text fields
// are left out. The exposition format is written by hand: a few lines do not need
// client_golang.
package promtext

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

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

// Update replaces the points served (collectors.Self calls it after every report).
func (s *Server) Update(points []metric.Point) {
	cp := append([]metric.Point(nil), points...)
	s.mu.Lock()
	s.points = cp
	s.mu.Unlock()
}

// Handler serves /metrics and /healthz.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		points := s.points
		s.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		_, _ = w.Write(Encode(points))
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

// Run listens on addr and serves until ctx is done, then shuts the server down and
// returns. A listen error is returned at once.
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

type sample struct {
	labels string
	value  float64
}

// Encode writes points in the Prometheus text format (version 0.0.4), families sorted by
// name, each with a TYPE line (untyped: the fields mix counters and gauges).
func Encode(points []metric.Point) []byte {
	families := map[string][]sample{}
	for _, p := range points {
		labels := labelText(p.Tags)
		for _, f := range p.Fields {
			v, ok := number(f.Value)
			if !ok {
				continue
			}
			name := Name(p.Name + "_" + f.Key)
			families[name] = append(families[name], sample{labels, v})
		}
	}
	names := make([]string, 0, len(families))
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	var b bytes.Buffer
	for _, n := range names {
		fmt.Fprintf(&b, "# TYPE %s untyped\n", n)
		for _, s := range families[n] {
			b.WriteString(n)
			b.WriteString(s.labels)
			b.WriteByte(' ')
			b.WriteString(strconv.FormatFloat(s.value, 'g', -1, 64))
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
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

func labelText(tags []metric.Tag) string {
	if len(tags) == 0 {
		return ""
	}
	var b strings.Builder
	b.WriteByte('{')
	for i, t := range tags {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Name(t.Key))
		b.WriteString(`="`)
		b.WriteString(escapeValue(t.Value))
		b.WriteByte('"')
	}
	b.WriteByte('}')
	return b.String()
}

var valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)

func escapeValue(s string) string { return valueEscaper.Replace(s) }

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
