package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

const db = "lookout" // LOOKOUT_INFLUXDB_DATABASE of the stack

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// query runs q for polling: an error is logged and gives no rows.
func query(t testing.TB, q string) []testpeer.Row {
	t.Helper()
	rows, err := c.influx.Query(db, q)
	if err != nil {
		t.Logf("%v", err)
	}
	return rows
}

// mustQuery runs q for an assertion: an error fails the test (no rows must not pass for
// "nothing there").
func mustQuery(t testing.TB, q string) []testpeer.Row {
	t.Helper()
	rows, err := c.influx.Query(db, q)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

func ts(ns int64) time.Time { return time.Unix(0, ns).UTC() }

func influxTime(t time.Time) string { return fmt.Sprintf("%d", t.UnixNano()) }

// manager runs the docker CLI on the swarm's manager and fails the test on an error.
func manager(t testing.TB, args ...string) string {
	t.Helper()
	out, err := c.nodes[0].docker(2*time.Minute, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The test services, created once: "web", global, and "api", three replicas, both the
// test service with its HEALTHCHECK and an HTTP check; "orders", global, sending spans to
// its node's agent; "logger", global, writing numbered lines.
var apps struct {
	once sync.Once
	err  error
}

func startApps(t *testing.T) {
	apps.once.Do(func() {
		common := []string{"--detach", "--network", appNet, "--container-label", "lookout.enable=true"}
		check := []string{"--container-label", "lookout.check.web=http://:8080/health",
			"--container-label", "lookout.check.web.interval=" + interval.String(), "--health-interval", "1s"}
		specs := [][]string{
			append(append(append([]string{"--name", "web", "--mode", "global"}, common...), check...), testImage),
			append(append(append([]string{"--name", "api", "--replicas", "3"}, common...), check...), testImage),
			append(append([]string{"--name", "orders", "--mode", "global", "-e", "JAEGER_AGENT=" + c.spanRelay,
				"-e", "SERVICE=orders", "-e", "RATE=5"}, common...), spanImage),
		}
		for _, s := range specs {
			if _, apps.err = c.nodes[0].docker(2*time.Minute, append([]string{"service", "create"}, s...)...); apps.err != nil {
				return
			}
		}
		deadline := time.Now().Add(5 * time.Minute)
		for _, svc := range []string{"web", "api", "orders"} {
			for len(runningTasks(svc)) < 3 {
				if time.Now().After(deadline) {
					out, _ := c.nodes[0].docker(time.Minute, "service", "ps", "--no-trunc", svc)
					apps.err = fmt.Errorf("service %s: not 3 tasks running after 5 minutes:\n%s", svc, out)
					return
				}
				time.Sleep(time.Second)
			}
		}
	})
	if apps.err != nil {
		t.Fatal(apps.err)
	}
}

// runningTasks returns the running tasks of a service: the agent's container_name for
// each (<service>.<slot>, or <service>.<node ID> for a global service) and its node.
func runningTasks(service string) map[string]string {
	out, _ := c.nodes[0].docker(time.Minute, "service", "ps", "--filter", "desired-state=running",
		"--format", "{{.Name}} {{.Node}} {{.CurrentState}}", service)
	tasks := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "Running" {
			tasks[f[0]] = f[1]
		}
	}
	return tasks
}

func nodeByName(name string) *node {
	for _, n := range c.nodes {
		if n.name == name {
			return n
		}
	}
	return nil
}

// TestEveryNodeReportsItsOwnTasks: one agent per node; each task of a global and of a
// replicated service is reported by the agent of its own node only, with its node's
// node and engine_host tags; the status wall's query (deploy/grafana) returns every
// node x service x check.
func TestEveryNodeReportsItsOwnTasks(t *testing.T) {
	if got := c.agentsRunning(agentImages[0]); len(got) != 3 {
		t.Fatalf("agents running on %v, want one on each of the 3 nodes", got)
	}
	startApps(t)
	type key struct{ host, container, check string }
	want := map[key]bool{}
	owner := map[string]string{} // a replicated task's container_name (<service>.<slot>) -> its node
	for svc, global := range map[string]bool{"web": true, "api": false} {
		for task, nodeName := range runningTasks(svc) {
			// A global service's task is named <service> in the series (docs/measurements.md):
			// one a node, told apart by the node tag.
			name := svc
			if !global {
				name, owner[task] = task, nodeName
			}
			for _, chk := range []string{"healthcheck", "web"} {
				want[key{nodeName, name, chk}] = true
			}
		}
	}
	if len(want) != 12 {
		t.Fatalf("%d node x task x check, want 12 (web on each node, 3 api replicas, 2 checks each): %v", len(want), want)
	}
	t.Logf("api tasks: %v", owner)

	var seen map[key]bool
	eventually(t, 2*time.Minute, "every task's checks reported by its node's agent", func() bool {
		seen = map[key]bool{}
		for _, r := range query(t, `SELECT last("success") FROM "lookout_check" WHERE time > now() - 1m AND "container_name" =~ /^(web|api)/ GROUP BY "engine_host", "node", "container_name", "check"`) {
			seen[key{r.Str("engine_host"), r.Str("container_name"), r.Str("check")}] = true
		}
		for k := range want {
			if !seen[k] {
				return false
			}
		}
		return true
	})
	// Nothing from another node's agent: every series of a task is its node's.
	// (The last minute: a replica that moved earlier, after a health flap, left a series
	// on its former node.)
	for _, r := range mustQuery(t, `SELECT count("success") FROM "lookout_check" WHERE time > now() - 1m AND "container_name" =~ /^(web|api)/ GROUP BY "engine_host", "node", "container_name"`) {
		name, host, nodeTag := r.Str("container_name"), r.Str("engine_host"), r.Str("node")
		if nodeTag != host || nodeByName(host) == nil || (name != "web" && host != owner[name]) {
			t.Errorf("%s (on %s) reported with engine_host=%q node=%q", name, owner[name], host, nodeTag)
		}
	}

	// Each agent talks to its own node's engine: 20.10 or 29.
	engines := map[string]string{}
	for _, r := range query(t, `SELECT last("n_containers") FROM "docker" WHERE time > now() - 1m GROUP BY "engine_host", "server_version"`) {
		engines[r.Str("engine_host")] = r.Str("server_version")
	}
	for i, n := range c.nodes {
		want := "20.10."
		if nodeImages[i] == nodeImage29 {
			want = "29"
		}
		if !strings.HasPrefix(engines[n.name], want) {
			t.Errorf("node %s: its agent reports engine %q, want %s…", n.name, engines[n.name], want)
		}
	}
	t.Logf("engines: %v", engines)

	// Each agent as the stack runs it: non-root in the socket's group, a read-only root
	// filesystem, no capabilities, no_new_privs on every thread; and the runtime's soft
	// memory limit at 3/4 of the stack's 128M, which the agent reads from its cgroup.
	for _, n := range c.nodes {
		for _, a := range agentContainers(t, n) {
			if !a.running {
				continue
			}
			hc, _ := n.docker(time.Minute, "inspect", "-f", "{{.Config.User}} {{.HostConfig.ReadonlyRootfs}} {{.HostConfig.CapDrop}}", a.id)
			if want := "65532:" + c.dockerGID + " true [ALL]"; hc != want {
				t.Errorf("node %s: the agent's container runs as %q (user, read-only, dropped), want %q", n.name, hc, want)
			}
			logs, _ := n.docker(time.Minute, "logs", a.id)
			start := ""
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, `"msg":"lookout starting"`) {
					start = l
				}
			}
			for _, want := range []string{`"uid":65532`, `"gid":` + c.dockerGID + `,`, `"cap_eff":"0000000000000000"`, `"no_new_privs":true`,
				`"memory_limit":100663296,`} {
				if !strings.Contains(start, want) {
					t.Errorf("node %s: the agent's start line %q lacks %s", n.name, start, want)
				}
			}
		}
	}

	// The status wall, as the dashboard asks it.
	wall := dashboardQuery(t, "health-wall.json", `last("success") FROM "lookout_check"`)
	wall = strings.NewReplacer("$timeFilter", "time > now() - 1m", "/^$host$/", "/.*/").Replace(wall)
	got := map[key]bool{}
	for _, r := range query(t, wall) {
		got[key{r.Str("engine_host"), r.Str("container_name"), r.Str("check")}] = true
	}
	var missing []string
	for k := range want {
		if !got[k] {
			missing = append(missing, fmt.Sprint(k))
		}
	}
	sort.Strings(missing)
	if len(missing) > 0 {
		t.Errorf("the status wall (%s) lacks %v", wall, missing)
	}
	hosts := map[string]bool{}
	for k := range got {
		hosts[k.host] = true
	}
	if len(hosts) != 3 {
		t.Errorf("the status wall has the nodes %v, want 3", hosts)
	}
}

// dashboardQuery returns the InfluxQL query of deploy/grafana/dashboards/<file> that
// contains part.
func dashboardQuery(t *testing.T, file, part string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.root, "deploy/grafana/dashboards", file))
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	var found string
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if q, ok := v["query"].(string); ok && strings.Contains(q, part) && found == "" {
				found = q
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(doc)
	if found == "" {
		t.Fatalf("%s has no query with %q", file, part)
	}
	return found
}

// TestSpansTaggedWithTheirNode: a global service sends spans to the span relay of its
// node's agent (on the node's docker_gwbridge gateway); in Jaeger each node's spans carry
// that node's task.
func TestSpansTaggedWithTheirNode(t *testing.T) {
	startApps(t)
	tasks := runningTasks("orders")
	var seen string
	eventually(t, 2*time.Minute, "spans of every node's orders task, tagged with it", func() bool {
		traces, err := c.jaeger.Traces("orders", 1000)
		if err != nil {
			seen = err.Error()
			return false
		}
		byNode := map[string]bool{}
		for _, tr := range traces {
			for _, p := range tr.Processes {
				host, name := testpeer.Tag(p.Tags, "host.name"), testpeer.Tag(p.Tags, "container.name")
				n := nodeByName(host)
				if n == nil || testpeer.Tag(p.Tags, "docker.swarm.node.id") != n.id || testpeer.Tag(p.Tags, "docker.swarm.service.name") != "orders" {
					continue
				}
				// container.name is the container's own name: <task name>.<task ID>.
				if task := "orders." + n.id; tasks[task] == host && strings.HasPrefix(name, task+".") {
					byNode[host] = true
				}
			}
		}
		seen = fmt.Sprintf("%d traces; nodes with their own task's spans: %v", len(traces), byNode)
		return len(byNode) == 3
	})
	t.Log(seen)
}

// agentContainer is one agent container on a node, as the node's engine knows it.
type agentContainer struct {
	node              *node
	image             string
	started, finished time.Time
	running           bool
	id                string
}

// agentContainers lists the stack's agent containers on n, running or not.
func agentContainers(t *testing.T, n *node) []agentContainer {
	t.Helper()
	ids, err := n.docker(time.Minute, "ps", "-aq", "--filter", "label=com.docker.swarm.service.name="+stack+"_agent")
	if err != nil {
		t.Fatal(err)
	}
	var out []agentContainer
	for _, id := range strings.Fields(ids) {
		s, err := n.docker(time.Minute, "inspect", "-f", "{{.Config.Image}} {{.State.Running}} {{.State.StartedAt}} {{.State.FinishedAt}}", id)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(s)
		a := agentContainer{node: n, id: id, image: strings.SplitN(f[0], "@", 2)[0], running: f[1] == "true"}
		a.started, _ = time.Parse(time.RFC3339Nano, f[2])
		a.finished, _ = time.Parse(time.RFC3339Nano, f[3])
		out = append(out, a)
	}
	return out
}

// reportsOf returns the lookout_agent points of each agent process of version (all
// versions when ""), in time order, by "<engine_host>/<version>/<start>": the reports
// field counts 1, 2, 3, … in each process, so a hole shows points lost on the way. A
// process is told by its start (the point's time less its uptime_ns): in a container
// every agent is pid 1.
func reportsOf(t *testing.T, version string) map[string][]testpeer.Row {
	where := ""
	if version != "" {
		where = fmt.Sprintf(` WHERE "version" = '%s'`, version)
	}
	out := map[string][]testpeer.Row{}
	var k string
	var last time.Time // the start of the process of k
	for _, r := range query(t, `SELECT "reports", "uptime_ns" FROM "lookout_agent"`+where+` GROUP BY "engine_host", "version"`) {
		start := ts(r.Int("time") - r.Int("uptime_ns"))
		series := r.Str("engine_host") + "/" + r.Str("version") + "/"
		if !strings.HasPrefix(k, series) || start.Sub(last).Abs() > 500*time.Millisecond {
			k, last = series+start.Format("15:04:05.000"), start
		}
		out[k] = append(out[k], r)
	}
	return out
}

// holes returns what is wrong with one process's reports: each of 1..n exactly once.
func holes(rows []testpeer.Row) string {
	seen := map[int64]int{}
	var last int64
	for _, r := range rows {
		n := r.Int("reports")
		seen[n]++
		last = max(last, n)
	}
	var missing, twice []int64
	for i := int64(1); i <= last; i++ {
		if seen[i] == 0 {
			missing = append(missing, i)
		}
		if seen[i] > 1 {
			twice = append(twice, i)
		}
	}
	if len(missing)+len(twice) == 0 {
		return ""
	}
	return fmt.Sprintf("reports 1..%d: missing %v, twice %v", last, missing, twice)
}

// logRecords returns the records of the logger service's containers, by container ID.
func logRecords(t *testing.T) map[string][]testpeer.Record {
	all, err := c.fluentd.Records()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]testpeer.Record{}
	for _, r := range all {
		if strings.HasPrefix(r.Str("container_name"), "/logger.") {
			out[r.Str("container_id")] = append(out[r.Str("container_id")], r)
		}
	}
	return out
}

// TestRollingUpgrade deploys a new agent image with `docker stack deploy` while a service
// logs on every node and InfluxDB, Fluentd and Jaeger receive: every report each agent
// made reaches InfluxDB (lookout_agent's reports with no hole, up to the old agent's
// stop), every log line arrives, none is sent again beyond the in-flight window, and the
// checks resume within one interval of the new agent's start.
func TestRollingUpgrade(t *testing.T) {
	startApps(t)
	const lines = 8000 // at 10 ms each: about a minute and a half, through the upgrade
	manager(t, "service", "create", "--detach", "--name", "logger", "--mode", "global", "--network", appNet,
		"--container-label", "lookout.enable=true", logImage, "seq", "line", fmt.Sprint(lines), "10ms")
	eventually(t, 3*time.Minute, "the logger's lines from every node at Fluentd", func() bool { return len(logRecords(t)) == 3 })

	upgradeStart := time.Now()
	if err := c.deploy(agentImages[1]); err != nil {
		t.Fatal(err)
	}
	t.Logf("upgrade: every node's agent replaced in %.1f s", time.Since(upgradeStart).Seconds())

	// Each node: the old agent stopped, the new one running.
	type gen struct{ old, new agentContainer }
	gens := map[string]*gen{}
	for _, n := range c.nodes {
		g := &gen{}
		for _, a := range agentContainers(t, n) {
			switch {
			case a.image == agentImages[0] && !a.running && a.finished.After(upgradeStart):
				g.old = a
			case a.image == agentImages[1] && a.running:
				g.new = a
			}
		}
		if g.old.id == "" || g.new.id == "" {
			t.Fatalf("node %s: no stopped %s agent and running %s agent: %+v", n.name, agentImages[0], agentImages[1], agentContainers(t, n))
		}
		gens[n.name] = g
		t.Logf("node %s: the old agent stopped at %s, the new one started %.1f s later", n.name,
			g.old.finished.Format("15:04:05.000"), g.new.started.Sub(g.old.finished).Seconds())
	}

	// Metrics: each old agent's reports, 1 to its last, all at InfluxDB, the last made
	// within an interval of its stop; the new agents' too, so far.
	eventually(t, 2*time.Minute, "every report of the old and new agents at InfluxDB, without a hole", func() bool {
		reports := reportsOf(t, "")
		for name, g := range gens {
			var old []testpeer.Row
			for k, rows := range reports {
				if strings.HasPrefix(k, name+"/cluster-1/") && ts(rows[len(rows)-1].Int("time")).After(upgradeStart) {
					old = rows
				}
			}
			if len(old) == 0 || ts(old[len(old)-1].Int("time")).Before(g.old.finished.Add(-interval-time.Second)) {
				return false
			}
		}
		for _, rows := range reports {
			if holes(rows) != "" {
				return false
			}
		}
		return true
	})
	for k, rows := range reportsOf(t, "") {
		if h := holes(rows); h != "" {
			t.Errorf("agent %s: %s", k, h)
		}
		t.Logf("agent %s: reports 1..%d at InfluxDB, no hole", k, len(rows))
	}

	// Checks: the first check of each node's web task after the new agent started.
	for name, g := range gens {
		var first time.Time
		eventually(t, time.Minute, "the new agent's first check on "+name, func() bool {
			rows := query(t, fmt.Sprintf(`SELECT "success" FROM "lookout_check" WHERE "container_name" = 'web' AND "engine_host" = '%s' AND "check" = 'web' AND time > %s ORDER BY time LIMIT 1`,
				name, influxTime(g.new.started)))
			if len(rows) == 0 {
				return false
			}
			first = ts(rows[0].Int("time"))
			return true
		})
		// The agent starts, lists the containers and runs each check after a random part
		// of its interval (so that checks spread): one interval, plus the start.
		delay := first.Sub(g.new.started)
		t.Logf("node %s: the first check %.2f s after the new agent's start", name, delay.Seconds())
		if delay > interval+5*time.Second {
			t.Errorf("node %s: checks resumed %.1f s after the new agent started, want within one interval (%s) and its start", name, delay.Seconds(), interval)
		}
	}

	// Logs: every line of every node's logger, once, but for the in-flight window.
	const want = lines // every third on stderr, the others on stdout
	counts := ""
	defer func() {
		if t.Failed() {
			t.Logf("distinct lines per logger:%s", counts)
		}
	}()
	eventually(t, 3*time.Minute, "every logger line at Fluentd", func() bool {
		counts = ""
		done := true
		for id, recs := range logRecords(t) {
			distinct := map[string]bool{}
			for _, r := range recs {
				distinct[r.Str("source")+" "+string(r.Log())] = true
			}
			counts += fmt.Sprintf(" %.12s: %d;", id, len(distinct))
			done = done && len(distinct) >= want
		}
		return done
	})
	t.Logf("distinct lines per logger:%s", counts)
	const window = 4 * 1000 // docs/logs.md: at most 4 messages of LOOKOUT_FLUENTD_BATCH_SIZE records
	for id, recs := range logRecords(t) {
		distinct := map[string]bool{}
		for _, r := range recs {
			distinct[r.Str("source")+" "+string(r.Log())] = true
		}
		dups := len(recs) - len(distinct)
		t.Logf("logger %.12s: %d lines, %d records, %d sent twice", id, len(distinct), len(recs), dups)
		if len(distinct) != want {
			t.Errorf("logger %.12s: %d distinct lines, want %d", id, len(distinct), want)
		}
		if dups > window {
			t.Errorf("logger %.12s: %d lines sent twice, more than the in-flight window (%d)", id, dups, window)
		}
	}
}

// TestNodeLoss: one node cut off from InfluxDB and then stopped. The other agents go on
// without a hole; the node's series stop; its replicated task is rescheduled and keeps
// its <service>.<slot> name; when the node comes back its agent reports again and the
// points it queued while cut off arrive.
func TestNodeLoss(t *testing.T) {
	startApps(t)
	lost := c.nodes[2]
	var slot string
	for name, nodeName := range runningTasks("api") {
		if nodeName == lost.name {
			slot = name
		}
	}
	if slot == "" {
		t.Logf("no api task on %s: the api tasks are %v", lost.name, runningTasks("api"))
	}

	// Cut off from InfluxDB: the agent keeps its points in its disk queue.
	c.influxFw.Block(lost.ip)
	blocked := time.Now()
	time.Sleep(4 * interval) // the window of points the agent must keep
	stopping := time.Now()
	if _, err := sh(2*time.Minute, nil, "docker", "stop", "-t", "30", lost.name); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	c.influxFw.Unblock(lost.ip)
	t.Logf("%s: cut off from InfluxDB at %s, stopped at %s", lost.name, blocked.Format("15:04:05.000"), stopped.Format("15:04:05.000"))

	// The manager sees the node down and moves its api task to another node.
	eventually(t, 2*time.Minute, "the manager marking "+lost.name+" down", func() bool {
		s, _ := c.nodes[0].docker(time.Minute, "node", "inspect", "-f", "{{.Status.State}}", lost.id)
		return s == "down"
	})
	eventually(t, 2*time.Minute, "3 api tasks running on the other nodes", func() bool {
		tasks := runningTasks("api")
		for _, n := range tasks {
			if n == lost.name {
				return false
			}
		}
		return len(tasks) == 3
	})
	down := time.Now()
	// Let the others report for a while with the node gone.
	eventually(t, time.Minute, "3 intervals of the other nodes' reports with the node down", func() bool {
		return time.Since(down) > 3*interval
	})

	// Nothing from the lost node since it was cut off (its points are in its queue).
	lostSeries := func() int {
		rows := mustQuery(t, fmt.Sprintf(`SELECT count("reports") FROM "lookout_agent" WHERE "engine_host" = '%s' AND time > %s`,
			lost.name, influxTime(blocked.Add(interval))))
		if len(rows) == 0 {
			return 0
		}
		return int(rows[0].Int("count"))
	}
	if n := lostSeries(); n != 0 {
		t.Errorf("%d reports of %s at InfluxDB made after it was cut off, before it came back", n, lost.name)
	}
	// The other agents: reports without a hole through the loss, at most an interval
	// (and a second) apart.
	for _, n := range c.nodes[:2] {
		rows := mustQuery(t, fmt.Sprintf(`SELECT "reports", "pid" FROM "lookout_agent" WHERE "engine_host" = '%s' AND time > %s`,
			n.name, influxTime(blocked.Add(-interval))))
		if len(rows) < 3 {
			t.Errorf("%s: %d reports since the loss began", n.name, len(rows))
			continue
		}
		for i := 1; i < len(rows); i++ {
			// The same process throughout (every agent is pid 1 in its container: reports
			// going on by one tell it).
			if d := rows[i].Int("reports") - rows[i-1].Int("reports"); d != 1 {
				t.Errorf("%s: report %d after %d", n.name, rows[i].Int("reports"), rows[i-1].Int("reports"))
			}
			// A tick the ticker drops under load is a report not made, not one lost:
			// up to two intervals apart.
			if gap := ts(rows[i].Int("time")).Sub(ts(rows[i-1].Int("time"))); gap > 2*interval+time.Second {
				t.Errorf("%s: %.1f s between two reports during the loss", n.name, gap.Seconds())
			}
		}
	}
	// The rescheduled task keeps its name: the series of api are api.1 to api.3 only.
	var names []string
	for _, r := range query(t, `SHOW TAG VALUES FROM "docker_container_status" WITH KEY = "container_name" WHERE "container_name" =~ /^api\./`) {
		names = append(names, r.Str("value"))
	}
	sort.Strings(names)
	if strings.Join(names, " ") != "api.1 api.2 api.3" {
		t.Errorf("container_name of the api tasks: %v, want api.1 api.2 api.3 (a rescheduled task keeps its slot's name)", names)
	}
	if slot != "" {
		eventually(t, time.Minute, slot+" reported from another node", func() bool {
			rows := query(t, fmt.Sprintf(`SELECT count("uptime_ns") FROM "docker_container_status" WHERE "container_name" = '%s' AND "engine_host" != '%s' AND time > %s GROUP BY "engine_host"`,
				slot, lost.name, influxTime(stopped)))
			return len(rows) > 0
		})
	}

	// The node comes back: its agent reports again, and its queued points arrive.
	back := time.Now()
	if _, err := sh(time.Minute, nil, "docker", "start", lost.name); err != nil {
		t.Fatal(err)
	}
	if err := lost.waitEngine(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	eventually(t, 3*time.Minute, "the agent of "+lost.name+" reporting again", func() bool {
		rows := query(t, fmt.Sprintf(`SELECT count("reports") FROM "lookout_agent" WHERE "engine_host" = '%s' AND time > %s`,
			lost.name, influxTime(back)))
		return len(rows) > 0 && rows[0].Int("count") > 0
	})
	// Its reports, 1 to the last it made before it stopped, all at InfluxDB: those made
	// while cut off came from its disk queue, sent by the agent that started after.
	var proc []testpeer.Row
	eventually(t, 2*time.Minute, "every report "+lost.name+"'s agent made, those queued while cut off included", func() bool {
		for k, rows := range reportsOf(t, "") {
			if strings.HasPrefix(k, lost.name+"/") && !ts(rows[0].Int("time")).After(blocked) &&
				ts(rows[len(rows)-1].Int("time")).After(blocked) {
				proc = rows
			}
		}
		// Its last report made within an interval of the stop (the node's engine stops its
		// containers when it is told to stop; the node restarts the same container).
		return len(proc) > 0 && holes(proc) == "" && !ts(proc[len(proc)-1].Int("time")).Before(stopping.Add(-interval-time.Second))
	})
	queued := 0
	for _, r := range proc {
		if ts(r.Int("time")).After(blocked.Add(interval)) {
			queued++
		}
	}
	t.Logf("%s: its agent's last report %.1f s after the cut; reports 1..%d at InfluxDB, no hole, %d of them made while cut off",
		lost.name, ts(proc[len(proc)-1].Int("time")).Sub(blocked).Seconds(), len(proc), queued)
	if queued == 0 {
		t.Errorf("%s: no report made while cut off arrived", lost.name)
	}
}
