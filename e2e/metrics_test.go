package e2e

import (
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// TestMetricsEndpointFamilies runs an agent with every source of self counters on (an
// output, the inventory, checks, logs, resources, the span exporter, relay, OTLP receiver
// and check spans; the Fluentd and Jaeger addresses answer nothing, which the counters
// only count) and one followed container, and reads /metrics with Prometheus' parser:
// every family is a counter or a gauge with HELP text, and each source has its
// lookout_scrape_collector_duration_seconds and _success.
func TestMetricsEndpointFamilies(t *testing.T) {
	port := func() string { return "127.0.0.1:" + strconv.Itoa(testpeer.FreePort()) }
	metricsAddr := port()
	startAgent(t, "LOOKOUT_INTERVAL=1s", "LOOKOUT_STDOUT=true", "LOOKOUT_METRICS_ADDRESS="+metricsAddr,
		"LOOKOUT_FLUENTD_ADDRESS="+port(), "LOOKOUT_JAEGER_ENDPOINT=http://"+port()+"/api/traces",
		"LOOKOUT_JAEGER_COMPACT_LISTEN="+port(), "LOOKOUT_OTLP_LISTEN="+port(), "LOOKOUT_PROBE_SPANS=true")
	runContainer(t, "lk-metrics-"+runID, "--label", "lookout.test=metrics", "--label", "lookout.enable=true")

	var families map[string]*dto.MetricFamily
	scrape := func() bool {
		c := http.Client{Timeout: 2 * time.Second}
		resp, err := c.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		p := expfmt.NewTextParser(model.LegacyValidation)
		if families, err = p.TextToMetricFamilies(strings.NewReader(string(b))); err != nil {
			t.Fatalf("/metrics does not parse: %v\n%s", err, b)
		}
		return families["lookout_logs_lines"] != nil // the container is followed
	}
	eventually(t, 30*time.Second, "/metrics with the followed container's lookout_logs", scrape)

	for name, mf := range families {
		if mf.GetHelp() == "" || (mf.GetType() != dto.MetricType_COUNTER && mf.GetType() != dto.MetricType_GAUGE) {
			t.Errorf("%s: type %v, help %q; want a counter or a gauge with help", name, mf.GetType(), mf.GetHelp())
		}
	}
	want := []string{"agent", "inventory", "logs", "output:stdout", "probes", "resources",
		"spans_export", "spans_otlp", "spans_probes", "spans_relay"}
	for _, fam := range []string{"lookout_scrape_collector_duration_seconds", "lookout_scrape_collector_success"} {
		var got []string
		for _, m := range families[fam].GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "collector" {
					got = append(got, l.GetValue())
				}
			}
			if fam == "lookout_scrape_collector_success" && m.GetGauge().GetValue() != 1 {
				t.Errorf("%s %v = %v, want 1", fam, m.GetLabel(), m.GetGauge().GetValue())
			}
		}
		sort.Strings(got)
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s for %v, want %v", fam, got, want)
		}
	}
}
