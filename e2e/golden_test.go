package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// goldenFile holds what one agent produced for a fixed scenario, normalized: see
// TestGoldenScenario. LOOKOUT_GOLDEN_UPDATE=1 rewrites it.
const goldenFile = "testdata/golden/scenario.txt"

// goldenBurst is the number of numbered lines the log container writes.
const goldenBurst = 20

// TestGoldenScenario runs one agent through a fixed scenario (a container whose Docker
// HEALTHCHECK flips from healthy to unhealthy, an HTTP check label that fails, a burst of
// numbered log lines, one OTLP trace sent by a container) with every output on: line
// protocol (its standard output), the real Fluentd forward receiver and the real Jaeger
// (OTLP). What they got is normalized (see goldenLines) and compared with goldenFile line
// by line, so a change in what the agent writes, whatever its cause, fails here.
// LOOKOUT_E2E_AGENT runs another build, e.g. the one from before a restructure:
//
//	LOOKOUT_E2E_AGENT=$PWD/bin/lookout-baseline LOOKOUT_GOLDEN_UPDATE=1 go test -run TestGoldenScenario ./e2e/
func TestGoldenScenario(t *testing.T) {
	j := startJaeger(t)
	f := startFluentd(t) // builds the log container's image too
	otlp := net.JoinHostPort(bridgeGateway(t), strconv.Itoa(testpeer.FreePort()))
	a := startAgent(t, "LOOKOUT_INTERVAL=1s", "LOOKOUT_FLUENTD_ADDRESS="+f.Addr,
		"LOOKOUT_JAEGER_ENDPOINT="+j.OTLPURL, "LOOKOUT_JAEGER_PROTOCOL=otlp", "LOOKOUT_SPANS_FLUSH_INTERVAL=200ms",
		"LOOKOUT_OTLP_LISTEN="+otlp)
	eventually(t, 20*time.Second, "the OTLP receiver listening", func() bool { return strings.Contains(a.logs(), "OTLP receiver listening") })

	web, logs, sender := "golden-web-"+runID, "golden-logs-"+runID, "golden-otlp-"+runID
	// The HEALTHCHECK runs every 2 s, so the agent sees the container starting first
	// however busy the machine; one failure makes it unhealthy.
	docker(t, "run", "-d", "--name", web, "--label", "lookout-test.run="+runID, "--label", "lookout.enable=true",
		"--label", "lookout.tags.team=golden", "--health-interval", "2s", "--health-retries", "1", "--health-timeout", "2s",
		"--label", "lookout.check.strict=http://:8080/health", "--label", "lookout.check.strict.interval=1s",
		"--label", "lookout.check.strict.status=201", testImage)
	t.Cleanup(func() { _, _ = exec.Command("docker", "rm", "-f", web).CombinedOutput() })
	runLogContainer(t, logs, []string{"--label", "lookout.enable=true"}, "seq", "burst", strconv.Itoa(goldenBurst), "1ms")
	otlpSender.run(t, sender, []string{"OTLP_ENDPOINT=" + otlp, "SERVICE=golden-otlp", "COUNT=1"})

	// Healthy, the check failing, every log line delivered.
	has := func(measurement, container string, parts ...string) bool {
		return hasPoint(a.out(), measurement, container, parts...)
	}
	eventually(t, 60*time.Second, "web healthy", func() bool {
		return has("lookout_container_event", web, "action=health_status", `health_status="healthy"`)
	})
	eventually(t, 60*time.Second, "the strict check failing", func() bool {
		return has("lookout_container_event", web, "action=check", "check=strict", `status="failing"`)
	})
	eventually(t, 60*time.Second, "the log burst delivered", func() bool { return len(recordsOf(t, f, logs)) >= goldenBurst })
	// One trace, sent when the agent knows its sender (so it is tagged with it) and the
	// sender listens for the signal (it says so in its log).
	eventually(t, 60*time.Second, "the OTLP sender reported", func() bool { return has("docker_container_status", sender) })
	eventually(t, 60*time.Second, "the OTLP sender ready", func() bool {
		return countLines(recordsOf(t, f, sender))["otlpsender: ready"] == 1
	})
	docker(t, "kill", "-s", "USR1", sender)
	eventually(t, 60*time.Second, "the OTLP trace in Jaeger", func() bool { s, _ := spansOf(t, j, "golden-otlp"); return len(s) == 2 })
	waitIntervals(t, a, 3)

	// The flip.
	docker(t, "exec", web, "/testsvc", "set", "unhealthy")
	eventually(t, 60*time.Second, "web unhealthy", func() bool {
		return has("lookout_container_event", web, "action=health_status", `health_status="unhealthy"`)
	})
	eventually(t, 60*time.Second, "a failing HEALTHCHECK span", func() bool {
		spans, _ := spansOf(t, j, "lookout")
		for _, s := range spans {
			if s.OperationName == "check healthcheck" && testpeer.Tag(s.Tags, "lookout.check.result") == "failure" {
				return true
			}
		}
		return false
	})
	// Every container's resources read twice at least (the CPU percentage needs two).
	for _, c := range []string{web, logs, sender} {
		eventually(t, 60*time.Second, c+"'s CPU percentage", func() bool { return has("docker_container_cpu", c, "usage_percent=") })
	}
	waitIntervals(t, a, 3)
	a.stop(t)

	records, err := f.Records()
	if err != nil {
		t.Fatal(err)
	}
	var traces []testpeer.Trace
	for _, service := range []string{"lookout", "golden-otlp"} {
		tr, err := j.Traces(service, 10000)
		if err != nil {
			t.Fatal(err)
		}
		traces = append(traces, tr...)
	}
	n := newNormalizer(t, map[string]string{web: "golden-web", logs: "golden-logs", sender: "golden-otlp"})
	got := goldenLines(n, a.out(), records, traces)
	compareGolden(t, got, map[string]any{"stdout": a.out(), "stderr": a.logs(), "records.json": records, "traces.json": traces})
}

// hasPoint tells whether out has a point of measurement for container (any, if "") whose
// line contains each of parts.
func hasPoint(out, measurement, container string, parts ...string) bool {
	for _, l := range strings.Split(out, "\n") {
		if !strings.HasPrefix(l, measurement+",") || container != "" && !strings.Contains(l, ",container_name="+container+",") &&
			!strings.Contains(l, ",container_name="+container+" ") {
			continue
		}
		if containsAll(l, parts...) {
			return true
		}
	}
	return false
}

// waitIntervals waits until the agent has reported n more intervals (lookout_agent points):
// every periodic point of the state so far is then in its output.
func waitIntervals(t *testing.T, a *agent, n int) {
	t.Helper()
	count := func() int { return strings.Count(a.out(), "\nlookout_agent,") }
	want := count() + n
	eventually(t, time.Duration(n)*20*time.Second, fmt.Sprintf("%d more intervals", n), func() bool { return count() >= want })
}

// normalizer replaces what differs from run to run (container IDs and names, addresses,
// the host, versions) with fixed words.
type normalizer struct {
	names    map[string]string // container name -> its name in the golden file
	ids      map[string]string // container ID (full and short) -> <name-id>
	host     string
	engine   string
	dockerV  string
	replacer *strings.Replacer
}

func newNormalizer(t *testing.T, names map[string]string) *normalizer {
	n := &normalizer{names: names, ids: map[string]string{}}
	var pairs []string
	for name, as := range names {
		id := docker(t, "inspect", "-f", "{{.Id}}", name)
		n.ids[id], n.ids[id[:12]] = "<"+as+"-id>", "<"+as+"-id>"
		pairs = append(pairs, id, "<"+as+"-id>", id[:12], "<"+as+"-id>", name, as)
	}
	n.replacer = strings.NewReplacer(pairs...)
	n.host, _ = os.Hostname()
	n.engine = docker(t, "info", "-f", "{{.Name}}")
	n.dockerV = docker(t, "version", "-f", "{{.Server.Version}}")
	return n
}

var (
	ipv4     = regexp.MustCompile(`\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}(:\d+)?\b`)
	hexID    = regexp.MustCompile(`\b[0-9a-f]{64}\b`)
	duration = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|us|ms|s)\b`)
)

// text normalizes a string value.
func (n *normalizer) text(s string) string {
	s = n.replacer.Replace(s)
	s = hexID.ReplaceAllString(s, "<id>")
	s = ipv4.ReplaceAllString(s, "<addr>")
	return s
}

// value normalizes the value of tag or field key.
func (n *normalizer) value(key, v string) string {
	switch {
	case v == "":
		return v
	case key == "engine_host" && v == n.engine, key == "host.name" && v == n.host, key == "hostname" && v == n.host:
		return "<host>"
	case key == "server_version" && v == n.dockerV:
		return "<docker-version>"
	case key == "lookout.version":
		return "<version>" // the build's: dev, or a commit
	}
	return n.text(v)
}

// goldenPolicy says how the golden file keeps the points of a measurement.
type goldenPolicy struct {
	// varying are the fields whose values vary from run to run (times, process IDs):
	// written as their type. The rest keep their values.
	varying []string
	last    bool // only the last point of each series: counters, final once the scenario is over
	every   bool // every point, not one per distinct line: events, whose number is fixed
}

// goldenPolicies are the measurements whose values the golden file keeps. Every other one
// (resources) keeps its tags and its fields' names and types: one line per distinct set.
var goldenPolicies = map[string]goldenPolicy{
	"docker_container_status": {varying: []string{"pid", "started_at", "finished_at", "uptime_ns"}},
	// failing_streak grows while the container stays unhealthy: kept as 0 or above 0.
	"docker_container_health": {varying: []string{"last_response_time"}},
	"lookout_check":           {varying: []string{"response_time", "dns_time", "connect_time", "tls_time", "first_byte_time"}},
	"lookout_container_event": {every: true},
	"lookout_label_problem":   {},
	"lookout_logs":            {last: true},
}

// goldenLines normalizes the agent's line protocol, the Fluentd records and the spans in
// Jaeger of the scenario's containers, sorted. Points follow goldenPolicies; every record
// and every span of the OTLP sender is one line; check spans (one a run) one line per
// distinct normalized span. The agent's counters about itself (lookout_agent,
// lookout_inventory, lookout_probes, lookout_feature, lookout_output, lookout_logs_total,
// lookout_resources, lookout_spans_*) are left out: they describe the agent's insides,
// which a restructure changes on purpose; the engine summary (docker) is kept.
func goldenLines(n *normalizer, out string, records []testpeer.Record, traces []testpeer.Trace) []string {
	var lines []string
	seen := map[string]bool{}
	add := func(l string, every bool) {
		if !every && seen[l] {
			return
		}
		seen[l] = true
		lines = append(lines, l)
	}
	last := map[string]string{} // series -> its last point, for policies with last
	dec := lineprotocol.NewDecoderWithBytes([]byte(out))
	for dec.Next() {
		p, ok := n.point(dec)
		switch pol := goldenPolicies[p.measurement]; {
		case !ok:
		case p.measurement == "docker_container_status" && strings.Contains(p.series, ",container_status=created,"):
			// Whether the inspection on the create event still finds the container
			// created, or already running, is a matter of timing.
		case pol.last:
			last[p.series] = p.line
		default:
			add("lp "+p.line, pol.every)
		}
	}
	if err := dec.Err(); err != nil {
		lines = append(lines, "lp decode error: "+err.Error())
	}
	for _, l := range last {
		add("lp "+l, true)
	}
	for _, r := range records {
		if l, ok := n.record(r); ok {
			add("fluentd "+l, true)
		}
	}
	for _, tr := range traces {
		byID := map[string]testpeer.Span{}
		for _, s := range tr.Spans {
			byID[s.SpanID] = s
		}
		for _, s := range tr.Spans {
			p := tr.Processes[s.ProcessID]
			add("span "+n.span(s, p, byID), p.ServiceName != "lookout")
		}
	}
	slices.Sort(lines)
	return lines
}

// goldenPoint is a point normalized: its measurement, its series (measurement and tags) and
// its line.
type goldenPoint struct{ measurement, series, line string }

// point normalizes the decoder's next point; false when it is not of a scenario container.
func (n *normalizer) point(dec *lineprotocol.Decoder) (goldenPoint, bool) {
	failed := func(err error) (goldenPoint, bool) { return goldenPoint{line: "decode error: " + err.Error()}, true }
	m, err := dec.Measurement()
	if err != nil {
		return failed(err)
	}
	measurement := string(m)
	var tags []string
	ours := measurement == "docker" // the engine summary; else a scenario container's
	for {
		k, v, err := dec.NextTag()
		if err != nil {
			return failed(err)
		}
		if k == nil {
			break
		}
		if string(k) == "container_name" {
			_, ours = n.names[string(v)]
		}
		tags = append(tags, string(k)+"="+n.value(string(k), string(v)))
	}
	if !ours {
		return goldenPoint{}, false
	}
	pol, exact := goldenPolicies[measurement]
	var fields []string
	for {
		k, v, err := dec.NextField()
		if err != nil {
			return failed(err)
		}
		if k == nil {
			break
		}
		key := string(k)
		switch {
		case !exact || slices.Contains(pol.varying, key):
			fields = append(fields, key+"=<"+v.Kind().String()+">")
		case key == "failing_streak" && v.Kind() == lineprotocol.Int && v.IntV() > 0:
			fields = append(fields, key+"=<above 0>")
		case v.Kind() == lineprotocol.String:
			fields = append(fields, key+"="+strconv.Quote(n.value(key, v.StringV())))
		default:
			fields = append(fields, key+"="+v.String())
		}
	}
	slices.Sort(fields)
	series := measurement + "," + strings.Join(tags, ",")
	return goldenPoint{measurement, series, series + " " + strings.Join(fields, ",")}, true
}

// record normalizes a Fluentd record of a scenario container.
func (n *normalizer) record(r testpeer.Record) (string, bool) {
	if _, ok := n.names[strings.TrimPrefix(r.Str("container_name"), "/")]; !ok {
		return "", false
	}
	var fields []string
	for k, v := range r.Fields {
		if k == "log" {
			continue
		}
		fields = append(fields, k+"="+strconv.Quote(n.value(k, fmt.Sprint(v))))
	}
	slices.Sort(fields)
	return fmt.Sprintf("tag=%s log=%q %s", n.text(r.Tag), r.Log(), strings.Join(fields, " ")), true
}

// span normalizes a span from Jaeger: its parent by operation name, times and IDs left out.
func (n *normalizer) span(s testpeer.Span, p testpeer.TraceProcess, byID map[string]testpeer.Span) string {
	var b strings.Builder
	fmt.Fprintf(&b, "service=%s op=%q flags=%d", n.text(p.ServiceName), n.text(s.OperationName), s.Flags)
	for _, r := range s.References {
		parent, ok := byID[r.SpanID]
		op := "<not in trace>"
		if ok {
			op = parent.OperationName
		}
		fmt.Fprintf(&b, " ref=%s:%q", r.RefType, op)
	}
	fmt.Fprintf(&b, " tags{%s} process{%s}", n.keyValues(s.Tags), n.keyValues(p.Tags))
	for _, l := range s.Logs {
		fmt.Fprintf(&b, " log{%s}", n.keyValues(l.Fields))
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(&b, " warning=%q", n.text(w))
	}
	return b.String()
}

func (n *normalizer) keyValues(kvs []testpeer.KeyValue) string {
	var out []string
	for _, kv := range kvs {
		out = append(out, fmt.Sprintf("%s:%s=%q", kv.Key, kv.Type, n.value(kv.Key, fmt.Sprint(kv.Value))))
	}
	slices.Sort(out)
	return strings.Join(out, " ")
}

// compareGolden compares lines with goldenFile, or rewrites it on LOOKOUT_GOLDEN_UPDATE=1.
// On a difference, the lines and raw (file name -> text, or a value written as JSON) are
// kept in a directory under the system's temporary one.
func compareGolden(t *testing.T, lines []string, raw map[string]any) {
	t.Helper()
	var got bytes.Buffer
	got.WriteString("# TestGoldenScenario (e2e/golden_test.go): what the agent wrote for the scenario, normalized.\n")
	got.WriteString("# Rewrite with LOOKOUT_GOLDEN_UPDATE=1 only for a change of behaviour that is meant.\n")
	for _, l := range lines {
		got.WriteString(l + "\n")
	}
	if os.Getenv("LOOKOUT_GOLDEN_UPDATE") == "1" {
		if err := os.MkdirAll(filepath.Dir(goldenFile), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenFile, got.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s (%d lines)", goldenFile, len(lines))
		return
	}
	want, err := os.ReadFile(goldenFile)
	if err != nil {
		t.Fatalf("%v (LOOKOUT_GOLDEN_UPDATE=1 records it)", err)
	}
	if bytes.Equal(want, got.Bytes()) {
		return
	}
	wantLines, gotLines := strings.Split(strings.TrimSuffix(string(want), "\n"), "\n"), strings.Split(strings.TrimSuffix(got.String(), "\n"), "\n")
	for _, l := range diffSorted(wantLines, gotLines) {
		t.Error(l)
	}
	dir, err := os.MkdirTemp("", "lookout-golden-")
	if err != nil {
		t.Fatal(err)
	}
	raw["scenario.txt"] = got.String()
	for name, v := range raw {
		b, ok := v.(string)
		if !ok {
			j, _ := json.MarshalIndent(v, "", "  ")
			b = string(j)
		}
		_ = os.WriteFile(filepath.Join(dir, name), []byte(b), 0o644)
	}
	t.Errorf("the agent's output differs from %s (- there, + now); this run's scenario.txt and raw output: %s", goldenFile, dir)
}

// diffSorted lists the lines only in want ("- ") and only in got ("+ "), both sorted.
func diffSorted(want, got []string) []string {
	var out []string
	i, k := 0, 0
	for i < len(want) || k < len(got) {
		switch {
		case k == len(got) || i < len(want) && want[i] < got[k]:
			out = append(out, "- "+want[i])
			i++
		case i == len(want) || got[k] < want[i]:
			out = append(out, "+ "+got[k])
			k++
		default:
			i++
			k++
		}
	}
	return out
}
