package metrics_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/sirupsen/logrus"

	"github.com/lookout-agent/lookout/checks"
	"github.com/lookout-agent/lookout/collectors"
	"github.com/lookout-agent/lookout/inventory"
	"github.com/lookout-agent/lookout/logs"
	"github.com/lookout-agent/lookout/metric"
	"github.com/lookout-agent/lookout/metrics"
	"github.com/lookout-agent/lookout/resources"
	"github.com/lookout-agent/lookout/shipper"
)

type discard struct{}

func (discard) Add(...metric.Point) {}

// agentSources builds the sources the agent wires into collectors.Self (cmd/agent), the
// real ones, without Docker: their Points read counters only. The span sources
// (tracing) are covered by TestMetricsEndpointFamilies in e2e, with a fully wired agent.
func agentSources(t *testing.T) []collectors.Named {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	out, err := shipper.NewWriterOutput(shipper.DefaultOutputConfig("stdout"), io.Discard, log)
	if err != nil {
		t.Fatal(err)
	}
	inv := inventory.New(nil, inventory.Options{Log: log})
	fwd, err := logs.New(nil, inv.Mailbox("logs"), logs.Options{Address: "127.0.0.1:1", StateDir: t.TempDir(), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	// A cgroup v2 layout with nothing in it: the reader is real, and so is its count of
	// files kept open.
	host := t.TempDir()
	for name, body := range map[string]string{"cgroup/cgroup.controllers": "cpu memory\n", "proc/meminfo": "MemTotal: 1024 kB\n"} {
		p := filepath.Join(host, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cg, err := resources.NewCgroup(filepath.Join(host, "proc"), filepath.Join(host, "cgroup"), false)
	if err != nil {
		t.Fatal(err)
	}
	res := resources.New(discard{}, inv.Mailbox("resources"), nil, resources.Options{Log: log}, cg, resources.NewAPI(nil))
	return []collectors.Named{
		{Name: "output:" + out.Name(), Source: out},
		{Name: "inventory", Source: inv},
		{Name: "probes", Source: checks.New(discard{}, nil, checks.Options{Log: log})},
		{Name: "logs", Source: fwd},
		{Name: "resources", Source: res},
	}
}

// report runs a collectors.Self over sources until its first report and returns what it
// gave Observe.
func report(t *testing.T, sources []collectors.Named) (points, scrape []metric.Point) {
	t.Helper()
	self := collectors.NewSelf(discard{}, time.Millisecond, "1.2.3",
		func() map[string]string { return map[string]string{"engine_host": "node-1"} }, sources...)
	var once sync.Once
	got := make(chan struct{})
	self.Observe = func(p, s []metric.Point) {
		once.Do(func() { points, scrape = p, s; close(got) })
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); self.Run(ctx) }()
	select {
	case <-got:
	case <-time.After(10 * time.Second):
		t.Fatal("no report in 10 s")
	}
	cancel()
	<-done
	return points, scrape
}

// TestTableCoversEverySourceField fails when a field a source emits has no type and help
// in the table, or when the table describes a field no source emits.
func TestTableCoversEverySourceField(t *testing.T) {
	points, scrape := report(t, agentSources(t))
	emitted := map[string]map[string]bool{}
	for _, p := range append(points, scrape...) {
		for _, f := range p.Fields {
			if emitted[p.Name] == nil {
				emitted[p.Name] = map[string]bool{}
			}
			emitted[p.Name][f.Key] = true
			d, ok := metrics.Describe(p.Name, f.Key)
			if !ok {
				t.Errorf("%s field %s: not in the metrics table (metrics/families.go): give it a type and a help line", p.Name, f.Key)
				continue
			}
			if d.Kind != metrics.Counter && d.Kind != metrics.Gauge || d.Help == "" {
				t.Errorf("%s field %s: %v %q, want a counter or a gauge with help", p.Name, f.Key, d.Kind, d.Help)
			}
		}
	}
	// lookout_logs (per followed container) has the counters of lookout_logs_total
	// (the same function makes both) but for the two fields only the total has.
	for f := range emitted["lookout_logs_total"] {
		if f == "followed" || f == "followed_file" || f == "followed_api" {
			continue
		}
		if _, ok := metrics.Describe("lookout_logs", f); !ok {
			t.Errorf("lookout_logs field %s: not in the metrics table", f)
		}
	}
	spans := map[string]bool{"lookout_spans_export": true, "lookout_spans_relay": true, "lookout_spans_otlp": true, "lookout_spans_otlp_grpc": true, "lookout_spans_probes": true, "lookout_logs": true}
	for m, fields := range metrics.Measurements() {
		if spans[m] {
			continue // checked in e2e (spans) or above (lookout_logs)
		}
		for f := range fields {
			if !emitted[m][f] {
				t.Errorf("the metrics table describes %s field %s, which no source emits", m, f)
			}
		}
	}
}

// TestEndpointTypesAndHelp serves a real report on /metrics and reads it back with
// Prometheus' own parser.
func TestEndpointTypesAndHelp(t *testing.T) {
	points, scrape := report(t, agentSources(t))
	srv := metrics.New(func() error { return nil })
	srv.Update(points, scrape)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, l) }()
	defer func() { cancel(); <-done }()

	get := func(accept string) (*http.Response, map[string]*dto.MetricFamily) {
		req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/metrics", nil)
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		families := map[string]*dto.MetricFamily{}
		dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
		for {
			var mf dto.MetricFamily
			if err := dec.Decode(&mf); err == io.EOF {
				break
			} else if err != nil {
				t.Fatalf("decoding /metrics (%s): %v", resp.Header.Get("Content-Type"), err)
			}
			families[mf.GetName()] = &mf
		}
		return resp, families
	}

	resp, families := get("")
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
		t.Errorf("Content-Type %q, want the text format 0.0.4", ct)
	}
	check := func(name string, typ dto.MetricType) {
		t.Helper()
		if mf := families[name]; mf == nil || mf.GetType() != typ {
			t.Errorf("%s: %v, want type %v", name, mf, typ)
		}
	}
	check("lookout_output_written", dto.MetricType_COUNTER)
	check("lookout_inventory_events", dto.MetricType_COUNTER)
	check("lookout_output_buffered", dto.MetricType_GAUGE)
	check("lookout_agent_goroutines", dto.MetricType_GAUGE)
	check("lookout_inventory_connected", dto.MetricType_GAUGE)
	check("lookout_scrape_collector_duration_seconds", dto.MetricType_GAUGE)
	check("lookout_scrape_collector_success", dto.MetricType_GAUGE)
	for name, mf := range families {
		if mf.GetHelp() == "" || mf.GetType() == dto.MetricType_UNTYPED {
			t.Errorf("%s: help %q, type %v; want help and a counter or gauge", name, mf.GetHelp(), mf.GetType())
		}
	}

	// A duration and a success per collector: the agent's own and each source's.
	want := []string{"agent", "inventory", "logs", "output:stdout", "probes", "resources"}
	for _, fam := range []string{"lookout_scrape_collector_duration_seconds", "lookout_scrape_collector_success"} {
		var got []string
		for _, m := range families[fam].GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			got = append(got, labels["collector"])
			if labels["engine_host"] != "node-1" {
				t.Errorf("%s %v: want engine_host", fam, labels)
			}
			if v := m.GetGauge().GetValue(); v < 0 || fam == "lookout_scrape_collector_success" && v != 1 {
				t.Errorf("%s %v = %v", fam, labels, v)
			}
		}
		sort.Strings(got)
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s collectors %v, want %v", fam, got, want)
		}
	}

	// Prometheus asking for protobuf gets the same families.
	resp, proto := get(`application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3`)
	if expfmt.ResponseFormat(resp.Header).FormatType() != expfmt.TypeProtoDelim {
		t.Errorf("Content-Type %q, want delimited protobuf", resp.Header.Get("Content-Type"))
	}
	if len(proto) != len(families) || proto["lookout_output_written"].GetType() != dto.MetricType_COUNTER {
		t.Errorf("protobuf: %d families, text %d", len(proto), len(families))
	}
}
