package churn

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

const (
	cycleTimeout = 3 * time.Minute
	logBurst     = 50 // lines each container writes at start
	warmup       = 16 // lifecycles before the baseline: pools, connections and caches filled once
)

// The margins within which the agent must come back to its baseline after the cycles.
// Goroutines and open files are counts the agent holds at rest: besides what it keeps per
// running container, a few idle connections (Docker's pool, the outputs) come and go. The
// live heap is the heap the last garbage collection found live: 1 MiB plus 10% allows for
// the runtime's own caches and the outputs' buffers, and is below what a leak of 1 KiB per
// lifecycle would add over 1,000.
const (
	marginGoroutines = 10
	marginFDs        = 5
	marginHeapBytes  = 1 << 20
	marginHeapRatio  = 0.10
)

func TestChurn(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	influx, err := testpeer.StartInflux(filepath.Join(dir, "influx"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(influx.Stop)
	fbin, err := testpeer.FluentdBin(root)
	if err != nil {
		t.Fatal(err)
	}
	fluentd, err := testpeer.StartFluentd(fbin, filepath.Join(dir, "fluentd"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(fluentd.Stop)
	jbin, err := testpeer.JaegerBin(root, "jaeger-all-in-one")
	if err != nil {
		t.Fatal(err)
	}
	jaeger, err := testpeer.StartJaeger(jbin, filepath.Join(dir, "jaeger"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(jaeger.Stop)
	gw, err := testpeer.BridgeGateway()
	if err != nil {
		t.Fatal(err)
	}
	dc, err := client.New(client.FromEnv)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()

	otlp := fmt.Sprintf("%s:%d", gw, testpeer.FreePort())
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort())
	agentDir := filepath.Join(dir, "agent")
	a, err := testpeer.StartAgent(agentBin, agentDir, []string{
		"LOOKOUT_LOG_LEVEL=info", "LOOKOUT_INTERVAL=1s", "LOOKOUT_STDOUT=true",
		"LOOKOUT_INFLUXDB_URL=" + influx.URL, "LOOKOUT_INFLUXDB_DATABASE=churn",
		"LOOKOUT_FLUENTD_ADDRESS=" + fluentd.Addr,
		"LOOKOUT_JAEGER_ENDPOINT=" + jaeger.CollectorURL, "LOOKOUT_OTLP_LISTEN=" + otlp,
		fmt.Sprintf("LOOKOUT_JAEGER_COMPACT_LISTEN=%s:%d", gw, testpeer.FreeUDPPort()),
		"LOOKOUT_METRICS_ADDRESS=" + metricsAddr, "LOOKOUT_RESOURCES=auto",
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := a.Stop(30 * time.Second); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			logs := a.Logs()
			t.Logf("agent stderr (last 8 KiB):\n%s", logs[max(0, len(logs)-8192):])
		}
	})
	m := &monitor{a: a, url: "http://" + metricsAddr + "/metrics", stateDir: filepath.Join(agentDir, "state")}
	testpeer.Eventually(t, time.Minute, "the agent's /metrics", func() bool { _, err := m.scrape(); return err == nil })

	h := &harness{dc: dc, otlpURL: "http://" + otlp + "/v1/traces", fluentd: fluentd}
	h.events = newEventWatch(ctx, dc)
	defer h.events.stop()
	go h.tailFluentd(ctx)

	// One container lives through the whole test, so that the baseline has a container in
	// every feature, as a node has.
	anchor, err := h.create(ctx, fmt.Sprintf("lkchurn-%s-anchor", runID))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.startAndWaitHealthy(ctx, anchor); err != nil {
		t.Fatal(err)
	}

	run := func(from, n int) (failed int) {
		var next, bad atomic.Int64
		next.Store(int64(from))
		var wg sync.WaitGroup
		for range *parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= from+n {
						return
					}
					if err := h.cycle(ctx, i); err != nil {
						if bad.Add(1) <= 10 {
							t.Errorf("cycle %d: %v", i, err)
						}
					}
				}
			}()
		}
		wg.Wait()
		return int(bad.Load())
	}

	if failed := run(0, warmup); failed > 0 {
		t.Fatalf("%d of %d warm-up lifecycles failed", failed, warmup)
	}
	h.phases.reset()
	base := m.settle(t, "baseline")
	t.Logf("baseline: %s", base)

	start := time.Now()
	lagCtx, stopLag := context.WithCancel(ctx)
	lag := m.watchLag(lagCtx)
	failed := run(warmup, *cycles)
	stopLag()
	took := time.Since(start)
	peak := <-lag
	t.Logf("the agent's event loop during the lifecycles (read every 2 s): at most %d events queued, an event handled at most %s late",
		peak.queued, peak.late)
	t.Logf("%d lifecycles, %d at a time, in %s (%.1f a second)", *cycles, *parallel, took.Round(time.Second), float64(*cycles)/took.Seconds())
	t.Logf("a lifecycle's steps on average: %s", &h.phases)
	if failed > 0 {
		t.Errorf("%d of %d lifecycles failed", failed, *cycles)
	}
	after := m.settle(t, "after the cycles")
	t.Logf("after:    %s", after)
	m.compare(t, base, after)

	// What the lifecycles sent reached the peers: every container's log burst, its span
	// tagged with it, its flip to unhealthy.
	total := warmup + *cycles
	h.checkDelivered(t, total)
	rows, err := influx.Query("churn", `SELECT count("health_code") FROM "docker_container_health" WHERE "health_status" = 'unhealthy' GROUP BY "container_name"`)
	if err != nil {
		t.Error(err)
	}
	unhealthy := 0
	got := map[string]bool{}
	for _, r := range rows {
		if strings.HasPrefix(r.Str("container_name"), "lkchurn-"+runID+"-c") {
			unhealthy++
			got[r.Str("container_name")] = true
		}
	}
	for i := range total {
		if name := fmt.Sprintf("lkchurn-%s-c%d", runID, i); !got[name] {
			var lines []string
			for _, l := range strings.Split(a.Out(), "\n") {
				if (strings.HasPrefix(l, "docker_container_") || strings.HasPrefix(l, "lookout_container_event,")) && strings.Contains(l, "container_name="+name+",") {
					lines = append(lines, l)
				}
			}
			t.Logf("%s: no unhealthy point in InfluxDB; its health, status and events on stdout:\n%s", name, strings.Join(lines, "\n"))
			break
		}
	}
	if g, err := m.scrape(); err == nil {
		t.Logf("agent: %d Docker events, %d dropped; %d lines written to InfluxDB, %d dropped, %d rejected; %d check runs, %d skipped while a container was being stopped",
			g["lookout_inventory_events"], g["lookout_inventory_events_dropped"], g["lookout_output_written"], g["lookout_output_dropped"],
			g["lookout_output_rejected"], g["lookout_probes_runs"], g["lookout_probes_skipped_stopping"])
	}
	t.Logf("InfluxDB: %d of %d containers reported unhealthy", unhealthy, total)
	if unhealthy != total {
		t.Errorf("InfluxDB has an unhealthy docker_container_health point of %d containers, want all %d", unhealthy, total)
	}
	traces, err := jaeger.Traces("testsvc", total+100)
	if err != nil {
		t.Error(err)
	}
	tagged := map[string]bool{}
	for _, tr := range traces {
		for _, sp := range tr.Spans {
			if name := testpeer.Tag(tr.Processes[sp.ProcessID].Tags, "container.name"); sp.OperationName == "churn" &&
				strings.HasPrefix(name, "lkchurn-"+runID+"-c") {
				tagged[name] = true
			}
		}
	}
	t.Logf("Jaeger: spans relayed from %d of %d containers, tagged with them", len(tagged), total)
	if len(tagged) != total {
		t.Errorf("Jaeger has the span of %d containers tagged with their container, want all %d", len(tagged), total)
	}
}

// ---- the lifecycles ----------------------------------------------------------------------

type harness struct {
	phases  phases
	dc      *client.Client
	otlpURL string
	fluentd *testpeer.Fluentd
	events  *eventWatch

	mu    sync.Mutex
	burst map[string]int // burst lines received by Fluentd, by container name
}

// create makes a container of the test service with every feature on: Docker's
// HEALTHCHECK (healthy once the agent's HTTP and exec checks have run), an HTTP and an
// exec check, a tag, logs (a burst at start), resources.
func (h *harness) create(ctx context.Context, name string) (string, error) {
	r, err := h.dc.ContainerCreate(ctx, client.ContainerCreateOptions{Name: name, Config: &container.Config{
		Image: testImage,
		Env:   []string{fmt.Sprintf("TESTSVC_LOG_BURST=%d", logBurst), "TESTSVC_HEALTHY_AFTER=http,exec"},
		Labels: map[string]string{
			"lookout-test.run":           runID,
			"lookout.enable":             "true",
			"lookout.check.web":          "http://:8080/health",
			"lookout.check.web.interval": "1s",
			"lookout.check.cmd":          "exec:/testsvc mark exec",
			"lookout.check.cmd.interval": "2s", // the timeout may not exceed the interval
			"lookout.check.cmd.timeout":  "2s", // an exec waits for runc on a busy machine
			"lookout.tags.suite":         "churn",
		},
		// The start period ends with the first success: then one failure is unhealthy.
		Healthcheck: &container.HealthConfig{Test: []string{"CMD", "/testsvc", "health"}, Interval: 500 * time.Millisecond,
			Timeout: 5 * time.Second, StartPeriod: 5 * time.Minute, Retries: 1},
	}})
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

func (h *harness) startAndWaitHealthy(ctx context.Context, id string) error {
	if _, err := h.dc.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		return err
	}
	return h.events.wait(id, "health_status: healthy", 2*time.Minute)
}

// cycle is one lifecycle: create, start, healthy once the agent's checks ran, the log
// burst at Fluentd, a span sent to the agent's OTLP receiver, unhealthy, stop, remove.
//
// A lifecycle takes seconds; it fails after cycleTimeout, so that an engine that stops
// answering (one run saw Docker 20.10 hang stopping containers) fails the test rather
// than hanging it, with dockerd's goroutines dumped to its log for the next look.
func (h *harness) cycle(parent context.Context, i int) (err error) {
	ctx, cancel := context.WithTimeout(parent, cycleTimeout)
	defer cancel()
	defer func() {
		if err != nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (the lifecycle's %s ran out; %s)", err, cycleTimeout, dumpDockerd())
		}
	}()
	name := fmt.Sprintf("lkchurn-%s-c%d", runID, i)
	lap := h.phases.start()
	id, err := h.create(ctx, name)
	if err != nil {
		return err
	}
	lap("create")
	defer h.events.forget(id)
	remove := func() error {
		rctx, cancel := context.WithTimeout(parent, time.Minute)
		defer cancel()
		_, err := h.dc.ContainerRemove(rctx, id, client.ContainerRemoveOptions{Force: true})
		return err
	}
	if err := h.startAndWaitHealthy(ctx, id); err != nil {
		_ = remove()
		return fmt.Errorf("healthy: %w", err)
	}
	lap("start, healthy")
	if err := h.waitBurst(name, time.Minute); err != nil {
		_ = remove()
		return err
	}
	lap("log burst at Fluentd")
	// The agent has followed the container (its logs arrived): it knows its address, so
	// the span is tagged with it. The test service sends the span and flips to unhealthy
	// when asked over HTTP: a docker exec each would cost runc twice a lifecycle.
	ins, err := h.dc.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		_ = remove()
		return err
	}
	var ip string
	if n := ins.Container.NetworkSettings.Networks["bridge"]; n != nil {
		ip = n.IPAddress.String()
	}
	if err := h.control(ctx, ip, "/span?url="+url.QueryEscape(h.otlpURL)); err != nil {
		_ = remove()
		return fmt.Errorf("span: %w", err)
	}
	lap("span")
	if err := h.control(ctx, ip, "/set?health=unhealthy"); err != nil {
		_ = remove()
		return fmt.Errorf("set unhealthy: %w", err)
	}
	lap("set unhealthy")
	if err := h.events.wait(id, "health_status: unhealthy", time.Minute); err != nil {
		_ = remove()
		return err
	}
	lap("unhealthy")
	timeout := 5
	if _, err := h.dc.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		_ = remove()
		return fmt.Errorf("stop: %w", err)
	}
	lap("stop")
	err = remove()
	lap("remove")
	return err
}

// phases adds up the time the lifecycles spend in each step, to show where it goes.
type phases struct {
	mu    sync.Mutex
	order []string
	total map[string]time.Duration
	n     map[string]int
}

// start returns a function that charges the time since the previous call (or start) to
// the step named.
func (p *phases) start() func(step string) {
	last := time.Now()
	return func(step string) {
		now := time.Now()
		p.mu.Lock()
		defer p.mu.Unlock()
		if p.total == nil {
			p.total, p.n = map[string]time.Duration{}, map[string]int{}
		}
		if _, ok := p.total[step]; !ok {
			p.order = append(p.order, step)
		}
		p.total[step] += now.Sub(last)
		p.n[step]++
		last = now
	}
}

func (p *phases) reset() {
	p.mu.Lock()
	p.order, p.total, p.n = nil, nil, nil
	p.mu.Unlock()
}

func (p *phases) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, step := range p.order {
		out = append(out, fmt.Sprintf("%s %.2f s", step, p.total[step].Seconds()/float64(p.n[step])))
	}
	return strings.Join(out, ", ")
}

// control asks the test service at ip to do what path says (POST /set, /span).
func (h *harness) control(ctx context.Context, ip, path string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ip+":8080"+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s %s", path, resp.Status, b)
	}
	return nil
}

// tailFluentd counts the burst lines Fluentd receives, by container.
func (h *harness) tailFluentd(ctx context.Context) {
	var off int64
	for ctx.Err() == nil {
		recs, next, err := h.fluentd.RecordsFrom(off)
		if err == nil {
			off = next
			h.mu.Lock()
			if h.burst == nil {
				h.burst = map[string]int{}
			}
			for _, r := range recs {
				if strings.HasPrefix(string(r.Log()), "burst ") {
					h.burst[strings.TrimPrefix(r.Str("container_name"), "/")]++
				}
			}
			h.mu.Unlock()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (h *harness) burstOf(name string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.burst[name]
}

func (h *harness) waitBurst(name string, timeout time.Duration) error {
	for deadline := time.Now().Add(timeout); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if h.burstOf(name) >= logBurst {
			return nil
		}
	}
	return fmt.Errorf("Fluentd has %d of the %d burst lines after %s", h.burstOf(name), logBurst, timeout)
}

// checkDelivered checks that Fluentd has every container's burst; more than once is
// allowed (at least once), and counted.
func (h *harness) checkDelivered(t *testing.T, total int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	complete, extra := 0, 0
	for i := range total {
		n := h.burst[fmt.Sprintf("lkchurn-%s-c%d", runID, i)]
		if n >= logBurst {
			complete++
		}
		extra += max(0, n-logBurst)
	}
	t.Logf("Fluentd: the %d-line burst of %d of %d containers (%d lines more than once)", logBurst, complete, total, extra)
	if complete != total {
		t.Errorf("Fluentd has the whole burst of %d containers, want all %d", complete, total)
	}
}

// ---- Docker's events, for the health transitions ------------------------------------------

// eventWatch follows the engine's container events of this run and lets a lifecycle wait
// for one of its container's, whether it came before or after it began waiting.
type eventWatch struct {
	cancel context.CancelFunc
	mu     sync.Mutex
	seen   map[string]map[string]bool // container ID -> actions
	wake   map[string]chan struct{}
	err    error
}

func newEventWatch(ctx context.Context, dc *client.Client) *eventWatch {
	ctx, cancel := context.WithCancel(ctx)
	w := &eventWatch{cancel: cancel, seen: map[string]map[string]bool{}, wake: map[string]chan struct{}{}}
	res := dc.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").
		Add("label", "lookout-test.run="+runID)})
	go func() {
		for {
			select {
			case m := <-res.Messages:
				w.mu.Lock()
				if w.seen[m.Actor.ID] == nil {
					w.seen[m.Actor.ID] = map[string]bool{}
				}
				w.seen[m.Actor.ID][string(m.Action)] = true
				if ch := w.wake[m.Actor.ID]; ch != nil {
					close(ch)
					delete(w.wake, m.Actor.ID)
				}
				w.mu.Unlock()
			case err := <-res.Err:
				w.mu.Lock()
				w.err = err
				for id, ch := range w.wake {
					close(ch)
					delete(w.wake, id)
				}
				w.mu.Unlock()
				return
			}
		}
	}()
	return w
}

func (w *eventWatch) stop() { w.cancel() }

func (w *eventWatch) wait(id, action string, timeout time.Duration) error {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		if w.seen[id][action] {
			w.mu.Unlock()
			return nil
		}
		if w.err != nil {
			err := w.err
			w.mu.Unlock()
			return fmt.Errorf("docker events: %w", err)
		}
		ch := w.wake[id]
		if ch == nil {
			ch = make(chan struct{})
			w.wake[id] = ch
		}
		w.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			return fmt.Errorf("no %q event within %s", action, timeout)
		}
	}
}

func (w *eventWatch) forget(id string) {
	w.mu.Lock()
	delete(w.seen, id)
	w.mu.Unlock()
}

// ---- the agent's own figures ---------------------------------------------------------------

type monitor struct {
	a        *testpeer.Agent
	url      string
	stateDir string
}

// snapshot is what the agent holds at one time.
type snapshot struct {
	goroutines int64
	fds        int
	heapLive   int64
	positions  int              // log position files in the state directory
	gauges     map[string]int64 // per-container state the agent reports (see stateGauges)
	series     map[string]bool  // the series it reported over a few intervals
	samples    int              // samples on /metrics
}

func (s snapshot) String() string {
	keys := make([]string, 0, len(s.gauges))
	for k := range s.gauges {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var g []string
	for _, k := range keys {
		g = append(g, fmt.Sprintf("%s=%d", strings.TrimPrefix(k, "lookout_"), s.gauges[k]))
	}
	return fmt.Sprintf("goroutines %d, open files %d, live heap %.2f MiB, %d series reported in %d intervals, %d samples on /metrics, %d log position files; %s",
		s.goroutines, s.fds, float64(s.heapLive)/(1<<20), len(s.series), seriesIntervals, s.samples, s.positions, strings.Join(g, " "))
}

// stateGauges are the agent's gauges of per-container state: the containers it knows, the
// logs it follows, the checks it runs, the containers it reads and the cgroup files it
// keeps open.
var stateGauges = []string{"lookout_inventory_containers", "lookout_inventory_monitored", "lookout_logs_total_followed",
	"lookout_probes_checks", "lookout_resources_containers", "lookout_resources_cgroup_files_open"}

// scrape reads /metrics: each sample's value summed by family name, and the number of samples.
func (m *monitor) scrape() (map[string]int64, error) {
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(m.url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", m.url, resp.Status)
	}
	out := map[string]int64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(l, ' ')
		name := l[:sp]
		if i := strings.IndexByte(name, '{'); i >= 0 {
			name = name[:i]
		}
		v, _ := strconv.ParseFloat(l[sp+1:], 64)
		out[name] += int64(v)
		out["_samples"]++
	}
	return out, sc.Err()
}

type lagPeak struct {
	queued int64
	late   time.Duration
}

// watchLag scrapes the agent every 2 s until ctx ends, then sends the highest
// events_queued and event_lag_ms it saw.
func (m *monitor) watchLag(ctx context.Context) <-chan lagPeak {
	out := make(chan lagPeak, 1)
	go func() {
		var p lagPeak
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- p
				return
			case <-tick.C:
			}
			if g, err := m.scrape(); err == nil {
				p.queued = max(p.queued, g["lookout_inventory_events_queued"])
				p.late = max(p.late, time.Duration(g["lookout_inventory_event_lag_ms"])*time.Millisecond)
			}
		}
	}()
	return out
}

// seriesIntervals is how many of the agent's reports a snapshot's series are taken over.
const seriesIntervals = 3

// settle waits until the agent holds no more per-container state than for the anchor
// (the containers removed are gone from every gauge, no update pending), and until it
// has collected garbage twice since, then takes a snapshot.
func (m *monitor) settle(t *testing.T, what string) snapshot {
	t.Helper()
	var g map[string]int64
	testpeer.Eventually(t, 2*time.Minute, what+": the agent holding only the anchor container", func() bool {
		var err error
		g, err = m.scrape()
		return err == nil && g["lookout_inventory_containers"] == 1 && g["lookout_inventory_monitored"] == 1 &&
			g["lookout_logs_total_followed"] == 1 && g["lookout_probes_checks"] == 2 &&
			g["lookout_resources_containers"] == 1
	})
	gc := g["lookout_agent_gc_cycles"]
	var s snapshot
	testpeer.Eventually(t, 4*time.Minute, what+": two garbage collections", func() bool {
		g, _ = m.scrape()
		return g["lookout_agent_gc_cycles"] >= gc+2
	})
	s.heapLive = g["lookout_agent_heap_live_bytes"]
	s.gauges = map[string]int64{}
	for _, k := range stateGauges {
		s.gauges[k] = g[k]
	}
	s.samples = int(g["_samples"])
	// The fewest goroutines and open files of three reports: a probe or a request
	// under way at one instant is not held.
	s.goroutines, s.fds = 1<<62, 1<<30
	_, off := m.a.OutFrom(0)
	for range 3 {
		s.goroutines = min(s.goroutines, g["lookout_agent_goroutines"])
		s.fds = min(s.fds, countFDs(t, m.a.Cmd.Process.Pid))
		reports := g["lookout_agent_reports"]
		testpeer.Eventually(t, time.Minute, "the next report", func() bool {
			g, _ = m.scrape()
			return g["lookout_agent_reports"] > reports
		})
	}
	s.series = m.series(t, off)
	ents, err := os.ReadDir(filepath.Join(m.stateDir, "logs"))
	if err != nil {
		t.Fatal(err)
	}
	s.positions = len(ents)
	return s
}

// series returns the distinct series (measurement and tags) of the line protocol the agent
// printed in seriesIntervals whole intervals after stdout offset off: between its first
// and its (seriesIntervals+1)th lookout_agent line.
func (m *monitor) series(t *testing.T, off int) map[string]bool {
	t.Helper()
	var lines []string
	testpeer.Eventually(t, time.Minute, "reports on the agent's stdout", func() bool {
		out, _ := m.a.OutFrom(off)
		lines = strings.Split(out, "\n")
		n := 0
		for _, l := range lines {
			if strings.HasPrefix(l, "lookout_agent,") {
				n++
			}
		}
		return n > seriesIntervals
	})
	set := map[string]bool{}
	reports := 0
	for _, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "lookout_agent,") {
			if reports++; reports > seriesIntervals {
				break
			}
		}
		if reports == 0 || l == "" || l[0] == '#' {
			continue
		}
		set[seriesKey(l)] = true
	}
	return set
}

// seriesKey is a line protocol line's measurement and tags: up to its first unescaped space.
func seriesKey(l string) string {
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '\\':
			i++
		case ' ':
			return l[:i]
		}
	}
	return l
}

func countFDs(t *testing.T, pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatalf("the agent's open files: %v", err)
	}
	return len(ents)
}

// compare fails the test where the agent holds more after the cycles than before.
func (m *monitor) compare(t *testing.T, base, after snapshot) {
	t.Helper()
	if after.goroutines > base.goroutines+marginGoroutines {
		t.Errorf("goroutines: %d after the cycles, %d before (margin %d)", after.goroutines, base.goroutines, marginGoroutines)
	}
	if after.fds > base.fds+marginFDs {
		t.Errorf("open files: %d after the cycles, %d before (margin %d)", after.fds, base.fds, marginFDs)
	}
	if limit := base.heapLive + marginHeapBytes + int64(marginHeapRatio*float64(base.heapLive)); after.heapLive > limit {
		t.Errorf("live heap: %d bytes after the cycles, %d before (limit %d)", after.heapLive, base.heapLive, limit)
	}
	if after.positions != base.positions {
		t.Errorf("log position files: %d after the cycles, %d before", after.positions, base.positions)
	}
	for _, k := range stateGauges {
		if after.gauges[k] != base.gauges[k] {
			t.Errorf("%s: %d after the cycles, %d before", k, after.gauges[k], base.gauges[k])
		}
	}
	if after.samples != base.samples {
		t.Errorf("samples on /metrics: %d after the cycles, %d before", after.samples, base.samples)
	}
	var extra []string
	for k := range after.series {
		if !base.series[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(extra)
	if len(after.series) > len(base.series) || len(extra) > 0 {
		t.Errorf("series reported in %d intervals: %d after the cycles, %d before; new: %v", seriesIntervals,
			len(after.series), len(base.series), extra[:min(len(extra), 20)])
	}
}

// dumpDockerd asks the local dockerd, once, for a dump of its goroutines (SIGUSR1: it
// writes them to a file under its exec root and logs the path) and says what it did.
func dumpDockerd() string {
	dump.Do(func() {
		if out, err := exec.Command("pkill", "-USR1", "-x", "dockerd").CombinedOutput(); err != nil {
			dump.said = fmt.Sprintf("could not signal dockerd for a goroutine dump: %v %s", err, out)
		} else {
			dump.said = "dockerd's goroutines dumped (its log has the file's path)"
		}
	})
	return dump.said
}

var dump struct {
	sync.Once
	said string
}
