package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

// shape is what a set of points says about one measurement: its tag keys and its field
// names with their line-protocol types.
type shape struct {
	tags   map[string]bool
	fields map[string]string
	points int
}

// lastValue returns the last value of field in measurement m for the container named
// container, formatted without its type suffix ("" when there is none).
func lastValue(lp []byte, m, container, field string) string {
	last := ""
	for _, line := range bytes.Split(lp, []byte("\n")) {
		dec := lineprotocol.NewDecoderWithBytes(line)
		if !dec.Next() {
			continue
		}
		if name, err := dec.Measurement(); err != nil || string(name) != m {
			continue
		}
		ours := false
		for {
			k, v, err := dec.NextTag()
			if err != nil || k == nil {
				break
			}
			ours = ours || (string(k) == "container_name" && string(v) == container)
		}
		for ours {
			k, v, err := dec.NextField()
			if err != nil || k == nil {
				break
			}
			if string(k) == field {
				last = fmt.Sprint(v.Interface())
			}
		}
	}
	return last
}

// shapes parses line protocol and returns the shape of each measurement, counting only
// the points keep accepts (given the measurement and tags).
func shapes(t *testing.T, lp []byte, keep func(m string, tags map[string]string) bool) map[string]*shape {
	t.Helper()
	out := map[string]*shape{}
	for _, line := range bytes.Split(lp, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 || line[0] == '{' { // log lines mixed into stdout are JSON
			continue
		}
		dec := lineprotocol.NewDecoderWithBytes(line)
		if !dec.Next() {
			continue
		}
		m, err := dec.Measurement()
		if err != nil {
			continue // a partial last line
		}
		tags := map[string]string{}
		for {
			k, v, err := dec.NextTag()
			if err != nil || k == nil {
				break
			}
			tags[string(k)] = string(v)
		}
		fields := map[string]string{}
		ok := true
		for {
			k, v, err := dec.NextField()
			if err != nil {
				ok = false
				break
			}
			if k == nil {
				break
			}
			fields[string(k)] = v.Kind().String()
		}
		if !ok || !keep(string(m), tags) {
			continue
		}
		s := out[string(m)]
		if s == nil {
			s = &shape{tags: map[string]bool{}, fields: map[string]string{}}
			out[string(m)] = s
		}
		s.points++
		for k := range tags {
			s.tags[k] = true
		}
		for k, v := range fields {
			s.fields[k] = v
		}
	}
	return out
}

func keys[V any](m map[string]V) string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// telegrafProc runs the real Telegraf built by `make peers` with conf until the test ends.
func telegrafProc(t *testing.T, conf string) {
	t.Helper()
	root, _ := filepath.Abs("..")
	bin, err := testpeer.PeerBin(root, "telegraf", "telegraf")
	if err != nil {
		t.Fatal(err)
	}
	tg, err := testpeer.StartTelegraf(bin, t.TempDir(), conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		tg.Stop()
		if t.Failed() {
			t.Logf("telegraf log:\n%s", tg.Logs())
		}
	})
}

func readFile(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// Lookout's fields that Telegraf's inputs.docker does not have, by measurement: each is
// listed in docs/measurements.md ("Differences from Telegraf's inputs.docker"). Any other
// extra field fails the test.
var lookoutExtraFields = map[string]string{
	"docker_container_status": "restart_count,running,task_id",
	"docker_container_health": "healthy,health_code,last_exit_code,last_response_time,last_output",
}

// TestResourcesMatchTelegrafAndDashboardsQuery runs Lookout, real Telegraf inputs.docker,
// and real Telegraf running `lookout execd` through inputs.execd on the same containers,
// compares the measurements' tag keys and field names and types, checks /metrics and
// /healthz, and then runs every query of the Grafana dashboards against what Lookout
// wrote to InfluxDB.
func TestResourcesMatchTelegrafAndDashboardsQuery(t *testing.T) {
	db := dbName(t)
	dir := t.TempDir()
	prefix := "lk-res-" + runID
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort())
	a := startAgent(t, influxEnv(db, "LOOKOUT_INTERVAL=2s", "LOOKOUT_STDOUT=true",
		"LOOKOUT_METRICS_ADDRESS="+metricsAddr)...)
	eventually(t, 30*time.Second, "the agent to connect", func() bool { return strings.Contains(a.logs(), "watching the Docker Engine") })

	names := []string{prefix + "-a", prefix + "-b"}
	runContainer(t, names[0], "--label", "lookout.enable=true", "--memory", "64m", "--pids-limit", "50",
		"--label", "lookout.check.web=http://:8080/health", "--label", "lookout.check.web.interval=1s",
		"--label", "lookout.check.closed=tcp://:9999", "--label", "lookout.check.closed.interval=1s")
	runContainer(t, names[1], "--label", "lookout.enable=true")
	ours := func(m string, tags map[string]string) bool {
		return m == "docker" || strings.HasPrefix(tags["container_name"], prefix)
	}

	telegrafOut := filepath.Join(dir, "telegraf.out")
	telegrafProc(t, fmt.Sprintf(`[agent]
  interval = "2s"
  flush_interval = "1s"
  omit_hostname = true
[[inputs.docker]]
  endpoint = "unix://%s"
  container_name_include = ["%s*"]
  docker_label_exclude = ["*"]
  tag_env = []
[[outputs.file]]
  files = ["%s"]
  data_format = "influx"
`, testpeer.EngineSocket(), prefix, telegrafOut))

	execdOut := filepath.Join(dir, "execd.out")
	telegrafProc(t, fmt.Sprintf(`[agent]
  interval = "2s"
  flush_interval = "1s"
  omit_hostname = true
[[inputs.execd]]
  command = ["%s", "execd"]
  environment = ["PATH=%s", "LOOKOUT_RESOURCES=api", "LOOKOUT_LOG_LEVEL=warn"%s]
  signal = "STDIN"
  restart_delay = "2s"
  data_format = "influx"
[[outputs.file]]
  files = ["%s"]
  data_format = "influx"
`, agentBin, os.Getenv("PATH"), execdDockerEnv(), execdOut))

	want := []string{"docker", "docker_container_status", "docker_container_health", "docker_container_cpu",
		"docker_container_mem", "docker_container_net", "docker_container_blkio"}
	complete := func(s map[string]*shape) bool {
		for _, m := range want {
			if s[m] == nil || s[m].points < 4 {
				return false
			}
		}
		return s["docker_container_cpu"].fields["usage_percent"] != ""
	}
	var tg, lk, ex map[string]*shape
	eventually(t, 90*time.Second, "Telegraf, Lookout and Lookout under execd to report every measurement", func() bool {
		tg = shapes(t, readFile(telegrafOut), ours)
		lk = shapes(t, []byte(a.out()), ours)
		ex = shapes(t, readFile(execdOut), ours)
		return complete(tg) && complete(lk) && complete(ex)
	})

	// Lookout against Telegraf: same tag keys, Telegraf's fields with the same types, and
	// no extra field docs/measurements.md does not list.
	for _, m := range want {
		if got, want := keys(lk[m].tags), keys(tg[m].tags); got != want {
			t.Errorf("%s tag keys: lookout %s, telegraf %s", m, got, want)
		}
		for f, typ := range tg[m].fields {
			if lk[m].fields[f] != typ {
				t.Errorf("%s field %s: lookout %q, telegraf %q", m, f, lk[m].fields[f], typ)
			}
		}
		allowed := map[string]bool{}
		for _, f := range strings.Split(lookoutExtraFields[m], ",") {
			allowed[f] = true
		}
		for f := range lk[m].fields {
			if _, ok := tg[m].fields[f]; !ok && !allowed[f] {
				t.Errorf("%s field %s: Lookout has it, Telegraf does not, and it is not a documented difference", m, f)
			}
		}
	}
	if lk["lookout_container_pids"] == nil || lk["lookout_container_pids"].fields["limit"] != "int" {
		t.Errorf("lookout_container_pids %+v: want current and limit (the container has --pids-limit 50)", lk["lookout_container_pids"])
	}
	// Values, not only names and types: the limits the container was started with, read
	// from cgroup files (Lookout), the stats API (execd) and by Telegraf alike.
	for _, src := range []struct {
		name string
		lp   []byte
	}{{"telegraf", readFile(telegrafOut)}, {"lookout", []byte(a.out())}, {"execd", readFile(execdOut)}} {
		if v := lastValue(src.lp, "docker_container_mem", names[0], "limit"); v != "67108864" {
			t.Errorf("%s: docker_container_mem limit of %s = %q, want 67108864 (--memory 64m)", src.name, names[0], v)
		}
		if src.name != "telegraf" {
			if v := lastValue(src.lp, "lookout_container_pids", names[0], "limit"); v != "50" {
				t.Errorf("%s: lookout_container_pids limit of %s = %q, want 50 (--pids-limit 50)", src.name, names[0], v)
			}
		}
	}

	// Lookout under Telegraf's execd (reading the stats API) against Lookout shipping
	// directly (reading cgroup files): the same measurements, tags and fields.
	for m, s := range lk {
		if m == "lookout_check" || m == "lookout_container_event" || m == "lookout_label_problem" {
			continue // event-driven: the agent only
		}
		e := ex[m]
		if e == nil {
			t.Errorf("%s: shipped by Lookout, not by Lookout under execd", m)
			continue
		}
		if keys(e.tags) != keys(s.tags) {
			t.Errorf("%s tag keys: execd %s, lookout %s", m, keys(e.tags), keys(s.tags))
		}
		for f, typ := range e.fields {
			if s.fields[f] != typ {
				t.Errorf("%s field %s: execd %q, lookout %q", m, f, typ, s.fields[f])
			}
		}
		if strings.HasPrefix(m, "docker_container_") && m != "docker_container_status" && m != "docker_container_health" || m == "docker" {
			if keys(e.fields) != keys(s.fields) {
				t.Errorf("%s fields: execd %s, lookout %s", m, keys(e.fields), keys(s.fields))
			}
		}
	}

	// The agent's own counters on /metrics, and /healthz.
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + metricsAddr + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually(t, 30*time.Second, "/healthz to answer 200", func() bool { code, _ := get("/healthz"); return code == 200 })
	_, body := get("/metrics")
	for _, re := range []string{`(?m)^lookout_agent_goroutines\{.*\} \d+$`, `(?m)^lookout_output_written\{.*output="influxdb".*\} \d+$`,
		`(?m)^lookout_inventory_connected\{.*\} 1$`, `(?m)^lookout_resources_reads\{.*\} [1-9]\d*$`, `(?m)^# TYPE lookout_probes_runs counter$`,
		`(?m)^lookout_resources_cgroup_files_open\{.*\} [1-9]\d*$`} { // the cgroup files of the running containers, kept open
		if !regexp.MustCompile(re).MatchString(body) {
			t.Errorf("/metrics does not match %s:\n%s", re, body)
		}
	}

	dashboardQueriesReturnData(t, db)
}

var templateVar = regexp.MustCompile(`\$\{?(\w+)\}?`)

// dashboardQueriesReturnData runs every panel, annotation and variable query of every
// dashboard under deploy/grafana/dashboards, as Grafana would with the variables set to
// "all", and fails for each that returns nothing.
func dashboardQueriesReturnData(t *testing.T, db string) {
	files, _ := filepath.Glob(filepath.Join("..", "deploy", "grafana", "dashboards", "*.json"))
	if len(files) < 4 {
		t.Fatalf("dashboards %v: want the health wall, check details, resources and agent dashboards", files)
	}
	total := 0
	for _, f := range files {
		var d struct {
			Title  string
			Panels []struct {
				Title   string
				Targets []struct{ Query string }
			}
			Annotations struct {
				List []struct{ Name, Query string }
			}
			Templating struct {
				List []struct{ Name, Query string }
			}
		}
		b, err := os.ReadFile(f)
		if err == nil {
			err = json.Unmarshal(b, &d)
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		type q struct{ where, query string }
		var qs []q
		for _, p := range d.Panels {
			if len(p.Targets) == 0 {
				continue
			}
			for _, tg := range p.Targets {
				qs = append(qs, q{"panel " + p.Title, tg.Query})
			}
		}
		for _, a := range d.Annotations.List {
			if a.Query != "" {
				qs = append(qs, q{"annotation " + a.Name, a.Query})
			}
		}
		for _, v := range d.Templating.List {
			qs = append(qs, q{"variable " + v.Name, v.Query})
		}
		for _, x := range qs {
			if strings.TrimSpace(x.query) == "" {
				t.Errorf("%s %s: no query", d.Title, x.where)
				continue
			}
			query := strings.NewReplacer("$timeFilter", "time > now() - 1h", "$__interval", "5s").Replace(x.query)
			query = templateVar.ReplaceAllString(query, ".*")
			total++
			var rows []testpeer.Row
			eventually(t, 30*time.Second, fmt.Sprintf("%s / %s to return data: %s", d.Title, x.where, query), func() bool {
				rows, _ = sharedInflx.Query(db, query)
				return len(rows) > 0
			})
		}
	}
	t.Logf("%d dashboard queries in %d dashboards returned data", total, len(files))
}

// execdDockerEnv is the run's Docker host (agentDockerEnv) as more entries of a Telegraf
// execd environment list.
func execdDockerEnv() string {
	var b strings.Builder
	for _, e := range agentDockerEnv() {
		fmt.Fprintf(&b, ", %q", e)
	}
	return b.String()
}
