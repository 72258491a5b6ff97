// Command outage measures what an InfluxDB outage costs two agents with a disk buffer:
// Lookout (its disk queue, LOOKOUT_BUFFER_STRATEGY=disk) and, in the same run, on the same
// containers, real Telegraf's inputs.docker with `buffer_strategy = "disk"`, both writing
// to one InfluxDB (databases "lookout" and "telegraf"). InfluxDB is stopped for -outage
// (10 minutes by default) and started again; the program then follows the drain. Run it
// with `make bench-outage` (OUTAGE=2m for a quick run).
//
// Load. N test containers (-containers, 100), each with K TCP checks (-checks, 12, every
// -interval), monitored by Lookout at LOOKOUT_INTERVAL=-interval (1 s) with per-device
// resource points: per container and interval Lookout writes K lookout_check points, its
// status and about 9 resource points, plus its own agent measurements; N and K set the
// rate (the rate actually produced is printed). Telegraf reads the same containers
// (container_name_include) at -telegraf-interval (10 s, its default: its docker input makes
// one stats API call per container per gather, which at 1 s would take the daemons more
// than the two cores), per-device points on as Lookout has them, and a 9 s stats timeout
// (-telegraf-timeout; its default 5 s lost every gather of 200 containers on the loaded
// machine). Lookout's disk queue has its default limit (1 GiB) unless -disk-limit.
//
// Produced and lost. After the drain, every series of each database (measurement and tag
// set, restricted to the benchmark's containers and to the agent's own measurements) is
// read back with all its timestamps, from before the outage to the end of the drain. Both
// agents write each series once per interval on a ticker, so a series' i-th point should
// be round((t_i - t_0)/interval) ticks after its first; the shortfall, taken as its
// minimum over the points that follow (a gather that waited for a busy daemon and the next
// one that came at once are not a hole), grows by one for every missing point, placed
// evenly in the gap where it grows. For each window (before the outage, the outage, the drain) "found" is the distinct
// (series, timestamp) pairs in InfluxDB, "lost" the missing points placed in the window,
// and "produced" their sum. A missing point is a hole on the dashboard whatever its cause:
// a point the agent dropped, or a gather it skipped; the holes in the window before the
// outage (InfluxDB up) show how many of the second kind the machine causes. Measurements
// that are not periodic (events, label problems) count in "found" only. Beside that, the
// agents' own counters: Lookout's lookout_output fields dropped, dropped_disk_full,
// corrupt and disk_errors (read from its /metrics endpoint), and every line of Telegraf's
// log that reports dropped metrics; and for Lookout, per window, the resource gathers it
// made (its lookout_resources gathers counter) against the docker_container_mem points
// each benchmark container has: equal means every gather made was delivered, and missing
// resource points are gathers that did not happen (a stalled collection), not the queue.
//
// Drain and lag. Every second the sampler asks each database for its newest
// docker_container_mem timestamp (lag = now - newest) and counts that measurement's points
// of the benchmark's containers inside the outage window. Reconnect is the time from
// InfluxDB's return to the first new point in the database (an agent retrying with
// backoff waits out its current delay); drain time is from InfluxDB's return to the first
// sample at which the outage window's count reached its final value; first new point is
// the first sample whose newest point is newer than InfluxDB's return (an agent that
// drains first-in first-out writes its whole backlog before it), and the lag figures are
// taken over the samples from then to the drain's end: how far "now" on a dashboard is
// behind while the backlog drains. (At the reconnect itself the newest point is whatever
// the first write held: an agent retrying the batch that failed at the outage's start
// shows the outage's length for that one sample.) A database's lag before the outage
// is printed for reference (Telegraf's is up to its interval plus its flush interval).
//
// Disk and CPU. write_bytes of /proc/PID/io of each agent (what it caused to be written
// to storage, charged when it dirties the page cache) over the outage, per point produced
// in the outage; the size of each queue directory when InfluxDB returns, per point queued;
// CPU is utime+stime of /proc/PID/stat per phase, in % of one core and in ms per 1,000
// points produced. Lookout monitors every opted-in container of the engine (on a shared
// engine, other users' test containers too, which Telegraf's container_name_include
// leaves out): its per-point figures divide by the lines it queued by its own counters
// (written + rejected + dropped + buffered, from /metrics), not by the benchmark's points.
package main

import (
	"bufio"
	"cmp"
	"flag"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

type options struct {
	containers, checks       int
	interval, tgInterval     time.Duration
	tgTimeout                time.Duration
	outage, baseline, settle time.Duration
	drainTimeout             time.Duration
	diskLimit                string
	lookoutBin, telegrafBin  string
	keep                     bool
	lookoutEnv               string
	checkType                string
	perDevice                bool
}

func main() {
	var o options
	flag.IntVar(&o.containers, "containers", 100, "test containers monitored by both agents")
	flag.IntVar(&o.checks, "checks", 12, "checks per container run by Lookout, each every -interval")
	flag.DurationVar(&o.tgTimeout, "telegraf-timeout", 9*time.Second, "inputs.docker timeout (Telegraf's default 5 s loses most gathers on a loaded machine)")
	flag.StringVar(&o.checkType, "check-type", "tcp", "tcp (connect to the container's port 9000) or http (GET :8080/health on a kept-alive connection)")
	flag.BoolVar(&o.perDevice, "per-device", true, "per-CPU, per-interface and per-device resource points too (both agents)")
	flag.DurationVar(&o.interval, "interval", time.Second, "LOOKOUT_INTERVAL and the checks' interval")
	flag.DurationVar(&o.tgInterval, "telegraf-interval", 10*time.Second, "Telegraf's interval and flush_interval")
	flag.DurationVar(&o.outage, "outage", 10*time.Minute, "how long InfluxDB is stopped")
	flag.DurationVar(&o.baseline, "baseline", time.Minute, "measured time before the outage (InfluxDB up)")
	flag.DurationVar(&o.settle, "settle", 40*time.Second, "an agent has drained when its count of outage points has not moved for this long")
	flag.DurationVar(&o.drainTimeout, "drain-timeout", 0, "give up waiting for the drain after this long (default: the outage plus 10 minutes)")
	flag.StringVar(&o.diskLimit, "disk-limit", "", "LOOKOUT_BUFFER_DISK_LIMIT, empty: Lookout's default (1GiB); Telegraf's disk buffer has no limit")
	flag.StringVar(&o.lookoutBin, "lookout", "bin/lookout", "the lookout binary")
	flag.StringVar(&o.telegrafBin, "telegraf", ".peers/bin/telegraf", "the telegraf binary")
	flag.StringVar(&o.lookoutEnv, "lookout-env", "", "more environment for Lookout, comma-separated NAME=VALUE")
	flag.BoolVar(&o.keep, "keep", false, "keep the work directory (queues, logs, InfluxDB data)")
	flag.Parse()
	if o.drainTimeout == 0 {
		o.drainTimeout = o.outage + 10*time.Minute
	}
	if o.settle < 3*o.tgInterval {
		o.settle = 3 * o.tgInterval
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench-outage:", err)
		os.Exit(1)
	}
}

// agent is one of the two agents under test and what the sampler saw of it.
type agent struct {
	name     string
	db       string
	interval time.Duration
	pid      int
	queueDir string
	samples  []sample
	res      result
}

type sample struct {
	at        time.Time
	ticks     int64 // CPU, 1/100 s
	wbytes    int64 // write_bytes
	qbytes    int64 // queue directory size
	newest    int64 // newest docker_container_mem timestamp in its database, 0 unknown
	outageCnt int64 // docker_container_mem points of the outage window in its database, -1 unknown
	metrics   map[string]float64
}

type window struct{ found, lost int64 }

type result struct {
	before, outage, drain window
	reconnect, drained    time.Duration // from InfluxDB's return; drained 0: not drained
	drainedAt             int           // sample index
	reconnectAt           int
	firstNewAt            int           // sample index of the first point newer than InfluxDB's return, -1 none
	firstNew              time.Duration // from InfluxDB's return
	lagP95                time.Duration
	lagMax, lagMed        time.Duration
	lagBaseMed, lagBaseMx time.Duration
	cpuBase, cpuOutage    float64 // % of one core
	cpuDrain, cpuAll      float64
	cpuPer1k              float64 // ms of CPU per 1,000 points produced, outage + drain
	wbOutage              int64
	qPeak                 int64
	reported              string // the agent's own drop counters
	// Lookout monitors every opted-in container of the shared engine, other users' test
	// containers too: the lines it queued by its own counters (written + rejected +
	// dropped + buffered), in the outage and from the outage to the end, -1 unknown.
	// Its disk bytes and CPU per point are per these lines.
	linesOutage, linesAll int64
	lostBy                map[string]*[3]int64 // measurement -> lost before, in the outage, in the drain
}

func run(o options) error {
	wb, err := testpeer.NewWorkbench("lookout-bench-outage-", true)
	if err != nil {
		return err
	}
	wb.Keep = o.keep
	defer wb.Close()
	work, image, ix := wb.Work, wb.Image, wb.Influx
	onSignal(func() { ix.Stop() })
	q := newInflux(ix.URL, 5*time.Second)

	prefix := fmt.Sprintf("lko%d-", time.Now().Unix()%100000)
	onSignal(func() { testpeer.RemoveContainers(prefix) })
	defer testpeer.RemoveContainers(prefix)
	fmt.Fprintf(os.Stderr, "starting %d containers with %d checks each…\n", o.containers, o.checks)
	if err := startContainers(o, image, prefix); err != nil {
		return err
	}

	// Lookout, disk queue in its state directory.
	lk := &agent{name: "lookout", db: "lookout", interval: o.interval, queueDir: filepath.Join(work, "lookout-state", "queue")}
	metricsAddr := fmt.Sprintf("127.0.0.1:%d", testpeer.FreePort())
	lcmd := exec.Command(o.lookoutBin, "run")
	lcmd.Env = append(os.Environ(), "LOOKOUT_INFLUXDB_URL="+ix.URL, "LOOKOUT_INFLUXDB_DATABASE=lookout",
		"LOOKOUT_INTERVAL="+o.interval.String(), "LOOKOUT_LOG_LEVEL=warn",
		"LOOKOUT_STATE_DIR="+filepath.Join(work, "lookout-state"), "LOOKOUT_BUFFER_STRATEGY=disk",
		"LOOKOUT_METRICS_ADDRESS="+metricsAddr,
		"LOOKOUT_HEARTBEAT_FILE="+filepath.Join(work, "heartbeat"), fmt.Sprintf("LOOKOUT_RESOURCES_PER_DEVICE=%t", o.perDevice))
	if o.diskLimit != "" {
		lcmd.Env = append(lcmd.Env, "LOOKOUT_BUFFER_DISK_LIMIT="+o.diskLimit)
	}
	if o.lookoutEnv != "" {
		lcmd.Env = append(lcmd.Env, strings.Split(o.lookoutEnv, ",")...)
	}
	lcmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	llog, err := os.Create(filepath.Join(work, "lookout.log"))
	if err != nil {
		return err
	}
	lcmd.Stdout, lcmd.Stderr = llog, llog
	if err := os.MkdirAll(filepath.Join(work, "lookout-state"), 0o755); err != nil {
		return err
	}
	if err := lcmd.Start(); err != nil {
		return err
	}
	lookoutDone := make(chan struct{})
	go func() { _ = lcmd.Wait(); close(lookoutDone) }()
	defer func() {
		_ = lcmd.Process.Signal(os.Interrupt)
		select {
		case <-lookoutDone:
		case <-time.After(15 * time.Second):
			_ = lcmd.Process.Kill()
			<-lookoutDone
		}
	}()
	lk.pid = lcmd.Process.Pid
	onSignal(func() { _ = lcmd.Process.Kill() })

	// Telegraf, disk buffer.
	tg := &agent{name: "telegraf", db: "telegraf", interval: o.tgInterval, queueDir: filepath.Join(work, "telegraf-buffer")}
	if err := os.MkdirAll(tg.queueDir, 0o755); err != nil {
		return err
	}
	perDevice := ""
	if o.perDevice {
		perDevice = `"cpu", "blkio", "network"`
	}
	tel, err := testpeer.StartTelegraf(o.telegrafBin, work, fmt.Sprintf(`[agent]
  interval = "%s"
  flush_interval = "%s"
  round_interval = true
  omit_hostname = true
  buffer_strategy = "disk"
  buffer_directory = "%s"
[[inputs.docker]]
  endpoint = "%s"
  container_name_include = ["%s*"]
  docker_label_exclude = ["*"]
  timeout = "%s"
  perdevice_include = [%s]
  total_include = ["cpu", "blkio", "network"]
[[outputs.influxdb]]
  urls = ["%s"]
  database = "telegraf"
`, o.tgInterval, o.tgInterval, tg.queueDir, testpeer.EngineHost(), prefix, o.tgTimeout, perDevice, ix.URL))
	if err != nil {
		return err
	}
	defer tel.Stop()
	onSignal(tel.Stop)
	tg.pid = tel.Pid()
	agents := []*agent{lk, tg}

	fmt.Fprintln(os.Stderr, "waiting until both agents report every container…")
	if err := waitReporting(q, agents, prefix, o.containers, 4*time.Minute); err != nil {
		return fmt.Errorf("%w (lookout log: %s; telegraf log: %s)", err, tail(filepath.Join(work, "lookout.log")), tel.Logs())
	}
	time.Sleep(2 * o.tgInterval) // past the first gathers and their start-up jitter

	loadStart := loadavg()
	s := &sampler{q: q, agents: agents, prefix: prefix, metricsURL: "http://" + metricsAddr + "/metrics"}
	stop := s.start()
	tb := time.Now()
	fmt.Fprintf(os.Stderr, "baseline %s (InfluxDB up)…\n", o.baseline)
	time.Sleep(o.baseline)

	ix.Stop()
	t0 := time.Now()
	fmt.Fprintf(os.Stderr, "%s InfluxDB stopped for %s…\n", t0.Format("15:04:05"), o.outage)
	time.Sleep(o.outage)
	if err := ix.Start(); err != nil {
		stop()
		return err
	}
	t1 := time.Now()
	s.setOutage(t0, t1)
	fmt.Fprintf(os.Stderr, "%s InfluxDB back; following the drain…\n", t1.Format("15:04:05"))

	deadline := t1.Add(o.drainTimeout)
	for time.Now().Before(deadline) {
		time.Sleep(5 * time.Second)
		if s.allSettled(t1, o.settle) {
			break
		}
	}
	td := time.Now()
	stop()
	loadEnd := loadavg()

	fmt.Fprintln(os.Stderr, "reading every series back…")
	for _, a := range agents {
		a.res.reported = reportedDrops(a, s, tel)
		if err := analyse(q, a, prefix, tb, t0, t1, td); err != nil {
			return err
		}
		summarise(a, tb, t0, t1)
	}
	gathers := gatherCheck(q, prefix, tb, t0, t1, td)
	report(o, agents, t0, t1, loadStart, loadEnd)
	fmt.Println(gathers)
	return nil
}

var cleanups struct {
	sync.Mutex
	fns  []func()
	once sync.Once
}

// onSignal adds fn to what SIGINT or SIGTERM runs (the last added first) before the
// program exits: the peers are stopped and the containers removed even when only this
// process gets the signal (testpeer.RemoveOnSignal would leave InfluxDB and Telegraf).
func onSignal(fn func()) {
	cleanups.once.Do(func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
		go func() {
			<-sig
			cleanups.Lock()
			for i := len(cleanups.fns) - 1; i >= 0; i-- {
				cleanups.fns[i]()
			}
			os.Exit(130)
		}()
	})
	cleanups.Lock()
	cleanups.fns = append(cleanups.fns, fn)
	cleanups.Unlock()
}

func startContainers(o options, image, prefix string) error {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var startErr error
	sem := make(chan struct{}, 4)
	for i := range o.containers {
		args := []string{"run", "-d", "--name", fmt.Sprintf("%s%03d", prefix, i), "--no-healthcheck",
			"--label", "lookout.enable=true", "--label", "lookout-test.run=" + prefix}
		for c := range o.checks {
			n := fmt.Sprintf("lookout.check.c%02d", c)
			target := "tcp://:9000"
			if o.checkType == "http" {
				target = "http://:8080/health"
			}
			args = append(args, "--label", n+"="+target, "--label", n+".interval="+o.interval.String(),
				"--label", n+".timeout="+(o.interval*9/10).String())
		}
		args = append(args, image)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
				mu.Lock()
				startErr = fmt.Errorf("docker run: %v: %s", err, out)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return startErr
}

// waitReporting waits until Lookout's database has docker_container_mem points of every
// container and Telegraf's of at least one: on a loaded machine Telegraf's stats calls
// time out (5 s) for many containers, a collection loss that the window before the outage
// shows, not a reason to wait.
func waitReporting(q *influx, agents []*agent, prefix string, n int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		ok := true
		for _, a := range agents {
			got := 0
			_ = q.stream(a.db, fmt.Sprintf(`SELECT count("usage") FROM "docker_container_mem" WHERE time > now() - %ds AND container_name =~ /^%s/ GROUP BY container_name`,
				int(3*a.interval.Seconds())+5, prefix), func(series) { got++ })
			if got < n && (a.name == "lookout" || got == 0) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("lookout did not report %d containers or telegraf none within %s", n, timeout)
}

// sampler records, every second, each agent's CPU, write_bytes, queue size, newest point
// and (once InfluxDB is back) the count of its outage points.
type sampler struct {
	q          *influx
	agents     []*agent
	prefix     string
	metricsURL string
	mu         sync.Mutex
	t0, t1     time.Time
}

func (s *sampler) setOutage(t0, t1 time.Time) {
	s.mu.Lock()
	s.t0, s.t1 = t0, t1
	s.mu.Unlock()
}

func (s *sampler) start() (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			s.sampleAll()
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-finished }
}

func (s *sampler) sampleAll() {
	s.mu.Lock()
	t0, t1 := s.t0, s.t1
	s.mu.Unlock()
	var wg sync.WaitGroup
	out := make([]sample, len(s.agents))
	for i, a := range s.agents {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sm := sample{at: time.Now(), outageCnt: -1}
			sm.ticks, _ = testpeer.CPUTicks(a.pid)
			sm.wbytes, _ = testpeer.WriteBytes(a.pid)
			sm.qbytes = testpeer.DirBytes(a.queueDir)
			if v, ok, err := s.q.scalar(a.db, `SELECT last("usage") FROM "docker_container_mem" WHERE time > now() - 2h`, "time"); err == nil && ok {
				sm.newest = v
			}
			if !t1.IsZero() {
				if v, ok, err := s.q.scalar(a.db, fmt.Sprintf(`SELECT count("usage") FROM "docker_container_mem" WHERE time >= %d AND time < %d AND container_name =~ /^%s/`,
					t0.UnixNano(), t1.UnixNano(), s.prefix), "count"); err == nil {
					sm.outageCnt = 0
					if ok {
						sm.outageCnt = v
					}
				}
			}
			if a.name == "lookout" {
				sm.metrics = scrape(s.metricsURL)
			}
			out[i] = sm
		}()
	}
	wg.Wait()
	s.mu.Lock()
	for i, a := range s.agents {
		a.samples = append(a.samples, out[i])
	}
	s.mu.Unlock()
}

// allSettled tells whether every agent has written since InfluxDB's return and its count
// of outage points has not moved for settle.
func (s *sampler) allSettled(t1 time.Time, settle time.Duration) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.agents {
		last := len(a.samples) - 1
		if last < 0 || a.samples[last].outageCnt <= 0 || a.samples[last].newest < t1.UnixNano() {
			return false
		}
		for i := last; i >= 0 && a.samples[i].at.After(a.samples[last].at.Add(-settle)); i-- {
			if a.samples[i].outageCnt != a.samples[last].outageCnt {
				return false
			}
		}
		if a.samples[last].at.Sub(t1) < settle {
			return false
		}
	}
	return true
}

// scrape reads the lookout_output_* samples of Lookout's /metrics, summed over outputs.
func scrape(u string) map[string]float64 {
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Get(u)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, "lookout_output_")
		if !ok {
			continue
		}
		name := rest
		if i := strings.IndexAny(rest, "{ "); i >= 0 {
			name = rest[:i]
		}
		f := strings.Fields(line)
		if v, err := strconv.ParseFloat(f[len(f)-1], 64); err == nil {
			m[name] += v
		}
	}
	return m
}

// nonPeriodic measurements are not written every interval: their points count as found,
// never as missing.
var nonPeriodic = map[string]bool{"lookout_container_event": true, "lookout_label_problem": true, "docker_container_health": true}

// analyse reads every series of a's database back and counts found and missing points
// in the windows before the outage [tb, t0), the outage [t0, t1) and the drain [t1, td).
func analyse(q *influx, a *agent, prefix string, tb, t0, t1, td time.Time) error {
	ms, err := q.measurements(a.db)
	if err != nil {
		return err
	}
	from, to := tb.Add(-3*a.interval), td
	for _, m := range ms {
		field, err := q.densestField(a.db, m, tb, t0)
		if err != nil {
			return err
		}
		if field == "" {
			continue
		}
		times := map[string][]int64{}
		for c := from; c.Before(to); c = c.Add(time.Minute) {
			end := c.Add(time.Minute)
			if end.After(to) {
				end = to
			}
			err := q.stream(a.db, fmt.Sprintf(`SELECT %q FROM %q WHERE time >= %d AND time < %d GROUP BY *`, field, m, c.UnixNano(), end.UnixNano()),
				func(s series) {
					if cn := s.Tags["container_name"]; cn != "" && !strings.HasPrefix(cn, prefix) {
						return // another user's container on the shared engine
					}
					k := seriesKey(s.Name, s.Tags)
					for _, v := range s.Values {
						times[k] = append(times[k], num(v[0]))
					}
				})
			if err != nil {
				return err
			}
		}
		iv := int64(a.interval)
		place := func(t int64, found bool) {
			var w *window
			switch {
			case t >= tb.UnixNano() && t < t0.UnixNano():
				w = &a.res.before
			case t >= t0.UnixNano() && t < t1.UnixNano():
				w = &a.res.outage
			case t >= t1.UnixNano() && t < td.UnixNano():
				w = &a.res.drain
			default:
				return
			}
			if found {
				w.found++
				return
			}
			w.lost++
			if a.res.lostBy == nil {
				a.res.lostBy = map[string]*[3]int64{}
			}
			if a.res.lostBy[m] == nil {
				a.res.lostBy[m] = &[3]int64{}
			}
			switch w {
			case &a.res.before:
				a.res.lostBy[m][0]++
			case &a.res.outage:
				a.res.lostBy[m][1]++
			default:
				a.res.lostBy[m][2]++
			}
		}
		for _, ts := range times {
			slices.Sort(ts)
			ts = slices.Compact(ts)
			for _, t := range ts {
				place(t, true)
			}
			if nonPeriodic[m] {
				continue
			}
			// behind[i]: ticks since the first point minus points since it. A late point
			// followed by an early one (a gather that waited for a busy daemon, then the
			// next tick at once) raises it for one point only; a missing point raises it
			// for good. So the holes are where its suffix minimum rises, placed evenly in
			// the gap before that point.
			behind := make([]int64, len(ts))
			for i, t := range ts {
				behind[i] = int64(math.Round(float64(t-ts[0])/float64(iv))) - int64(i)
			}
			for i := len(ts) - 2; i >= 0; i-- {
				behind[i] = min(behind[i], behind[i+1])
			}
			for i := 1; i < len(ts); i++ {
				n := behind[i] - behind[i-1]
				gap := ts[i] - ts[i-1]
				for k := int64(1); k <= n; k++ {
					place(ts[i-1]+k*gap/(n+1), false)
				}
			}
		}
	}
	return nil
}

// gatherCheck tells collection from delivery for Lookout's resource points: in each
// window, the resource gathers Lookout made (its lookout_resources gathers counter) and
// the docker_container_mem points each benchmark container has in InfluxDB. Equal (give
// or take the window's edge) means every gather made was delivered for every container,
// and the missing resource points are gathers that did not happen.
func gatherCheck(q *influx, prefix string, tb, t0, t1, td time.Time) string {
	var b strings.Builder
	b.WriteString("lookout resource gathers made (its counter) / docker_container_mem points per benchmark container (min-max):")
	for _, w := range []struct {
		name     string
		from, to time.Time
	}{{"before", tb, t0}, {"outage", t0, t1}, {"drain", t1, td}} {
		where := fmt.Sprintf("time >= %d AND time < %d", w.from.UnixNano(), w.to.UnixNano())
		var first, last int64 = -1, -1
		_ = q.stream("lookout", "SELECT gathers FROM lookout_resources WHERE "+where, func(s series) {
			for _, v := range s.Values {
				if first < 0 {
					first = num(v[1])
				}
				last = num(v[1])
			}
		})
		lo, hi := int64(-1), int64(-1)
		_ = q.stream("lookout", fmt.Sprintf(`SELECT count("usage") FROM "docker_container_mem" WHERE container_name =~ /^%s/ AND %s GROUP BY container_name`, prefix, where),
			func(s series) {
				for _, v := range s.Values {
					n := num(v[1])
					if lo < 0 || n < lo {
						lo = n
					}
					hi = max(hi, n)
				}
			})
		fmt.Fprintf(&b, " %s %d / %d-%d;", w.name, last-first, lo, hi)
	}
	return b.String()
}

// summarise turns a's samples into drain, lag, CPU and disk figures.
func summarise(a *agent, tb, t0, t1 time.Time) {
	r := &a.res
	ss := a.samples
	idx := func(t time.Time) int { // first sample at or after t
		for i, s := range ss {
			if !s.at.Before(t) {
				return i
			}
		}
		return len(ss) - 1
	}
	i0, i1 := idx(t0), idx(t1)
	last := len(ss) - 1
	final := ss[last].outageCnt
	r.reconnectAt, r.drainedAt, r.firstNewAt = -1, -1, -1
	for i := i1; i <= last; i++ {
		if r.reconnectAt < 0 && (ss[i].newest >= t1.UnixNano() || ss[i].outageCnt > 0) {
			r.reconnectAt = i
			r.reconnect = ss[i].at.Sub(t1)
		}
		if r.firstNewAt < 0 && ss[i].newest >= t1.UnixNano() {
			r.firstNewAt = i
			r.firstNew = ss[i].at.Sub(t1)
		}
		if r.drainedAt < 0 && ss[i].outageCnt == final && final > 0 {
			r.drainedAt = i
			r.drained = ss[i].at.Sub(t1)
		}
	}
	lagStats := func(from, to int) (med, p95, mx time.Duration) {
		var lags []time.Duration
		for i := from; i <= to && i >= 0; i++ {
			if ss[i].newest > 0 {
				lags = append(lags, ss[i].at.Sub(time.Unix(0, ss[i].newest)))
			}
		}
		if len(lags) == 0 {
			return -1, -1, -1
		}
		sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
		return lags[len(lags)/2], lags[(len(lags)*95+99)/100-1], lags[len(lags)-1]
	}
	r.lagBaseMed, _, r.lagBaseMx = lagStats(0, i0-1)
	end := r.drainedAt
	if end < 0 {
		end = last
	}
	if r.firstNewAt >= 0 {
		r.lagMed, r.lagP95, r.lagMax = lagStats(r.firstNewAt, max(r.firstNewAt, end))
	}
	cpu := func(from, to int) float64 {
		secs := ss[to].at.Sub(ss[from].at).Seconds()
		if secs <= 0 {
			return 0
		}
		return float64(ss[to].ticks-ss[from].ticks) / secs // ticks/s = % of one core
	}
	r.cpuBase, r.cpuOutage, r.cpuDrain, r.cpuAll = cpu(0, i0), cpu(i0, i1), cpu(i1, end), cpu(0, end)
	r.linesOutage, r.linesAll = -1, -1
	handled := func(i int) (float64, bool) {
		for ; i >= 0; i-- { // the nearest scrape at or before sample i
			if m := ss[i].metrics; m != nil {
				return m["written"] + m["rejected"] + m["dropped"] + m["buffered"], true
			}
		}
		return 0, false
	}
	if h0, ok0 := handled(i0); ok0 {
		if h1, ok1 := handled(i1); ok1 {
			r.linesOutage = int64(h1 - h0)
		}
		if h2, ok2 := handled(last); ok2 {
			r.linesAll = int64(h2 - h0)
		}
	}
	if r.linesAll > 0 {
		r.cpuPer1k = float64(ss[last].ticks-ss[i0].ticks) * 10 / (float64(r.linesAll) / 1000)
	} else if p := r.outage.found + r.outage.lost + r.drain.found + r.drain.lost; p > 0 {
		// ticks are 10 ms; the drain window counts points up to the end of sampling
		r.cpuPer1k = float64(ss[last].ticks-ss[i0].ticks) * 10 / (float64(p) / 1000)
	}
	r.wbOutage = ss[i1].wbytes - ss[i0].wbytes
	for i := i0; i <= min(i1+3, last); i++ {
		r.qPeak = max(r.qPeak, ss[i].qbytes)
	}
}

// reportedDrops is what the agent itself says it dropped.
func reportedDrops(a *agent, s *sampler, tel *testpeer.Telegraf) string {
	if a.name == "lookout" {
		var first, last map[string]float64
		for _, sm := range a.samples {
			if sm.metrics != nil {
				if first == nil {
					first = sm.metrics
				}
				last = sm.metrics
			}
		}
		if last == nil {
			return "no /metrics"
		}
		var parts []string
		for _, f := range []string{"dropped", "dropped_disk_full", "corrupt", "disk_errors", "rejected", "invalid"} {
			if _, ok := last[f]; ok {
				parts = append(parts, fmt.Sprintf("%s %.0f", f, last[f]-first[f]))
			}
		}
		return strings.Join(parts, ", ") + fmt.Sprintf("; buffered at the end %.0f", last["buffered"])
	}
	b, _ := os.ReadFile(tel.Log)
	n := 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(strings.ToLower(l), "dropped") {
			n++
		}
	}
	return fmt.Sprintf("%d log lines about dropped metrics", n)
}

func report(o options, agents []*agent, t0, t1 time.Time, loadStart, loadEnd string) {
	outSecs := t1.Sub(t0).Seconds()
	fmt.Printf("\nInfluxDB outage of %s: %d containers, Lookout at %s with %d %s checks per container (disk queue, limit %s), Telegraf inputs.docker at %s (disk buffer); per-device points %t\n",
		t1.Sub(t0).Round(time.Second), o.containers, o.interval, o.checks, o.checkType, cmp.Or(o.diskLimit, "default"), o.tgInterval, o.perDevice)
	fmt.Printf("load average before: %s; after: %s\n\n", loadStart, loadEnd)
	fmt.Printf("| agent | points/s produced | produced in outage | lines the agent queued in the outage (all its containers) | lost in outage | lost in drain | missing before outage (InfluxDB up) | agent-reported | reconnect | first new point | drain time | newest-point lag from the first new point to the drain's end, median / p95 / max | lag before outage, median / max | queue at return | queue bytes / line | disk written / line (outage) | CPU before / outage / drain | CPU ms / 1,000 lines |\n")
	fmt.Printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, a := range agents {
		r := a.res
		produced := r.outage.found + r.outage.lost
		drained := "not drained"
		if r.drainedAt >= 0 {
			drained = r.drained.Round(time.Second).String()
		}
		reconnect, firstNew := "never", "never"
		if r.reconnectAt >= 0 {
			reconnect = r.reconnect.Round(time.Second).String()
		}
		if r.firstNewAt >= 0 {
			firstNew = r.firstNew.Round(time.Second).String()
		}
		lines := produced
		agentLines := "same"
		if r.linesOutage > 0 {
			lines = r.linesOutage
			agentLines = comma(r.linesOutage)
		}
		perPoint := func(b int64) string {
			if lines == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%.0f B", float64(b)/float64(lines))
		}
		fmt.Printf("| %s | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s | %s / %s | %.1f MiB | %s | %s | %.1f%% / %.1f%% / %.1f%% | %.1f |\n",
			a.name, float64(produced)/outSecs, comma(produced), agentLines, comma(r.outage.lost), comma(r.drain.lost), comma(r.before.lost),
			r.reported, reconnect, firstNew, drained, dur(r.lagMed), dur(r.lagP95), dur(r.lagMax), dur(r.lagBaseMed), dur(r.lagBaseMx),
			float64(r.qPeak)/(1<<20), perPoint(r.qPeak), perPoint(r.wbOutage), r.cpuBase, r.cpuOutage, r.cpuDrain, r.cpuPer1k)
	}
	for _, a := range agents {
		for m, l := range a.res.lostBy {
			fmt.Printf("%s: %s missing before / in the outage / in the drain: %d / %d / %d\n", a.name, m, l[0], l[1], l[2])
		}
	}
	lk, tg := agents[0].res, agents[1].res
	rate := float64(lk.outage.found+lk.outage.lost) / outSecs
	fmt.Println()
	verdict := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "NOT MET"
	}
	fmt.Printf("target: 0 lost by Lookout at %.0f points/s (aim 5,000): %s (%d lost in the outage, %d in the drain)\n",
		rate, verdict(lk.outage.lost+lk.drain.lost == 0 && lk.drainedAt >= 0), lk.outage.lost, lk.drain.lost)
	fmt.Printf("target: Lookout's newest-point lag under 5 s during the drain: %s (max %s from its first new point, %s after InfluxDB's return, to the drain's end)\n",
		verdict(lk.firstNewAt >= 0 && lk.lagMax < 5*time.Second), dur(lk.lagMax), dur(lk.firstNew))
	fmt.Printf("target: Lookout's CPU at most Telegraf's, outage and drain: %s (%.1f%% and %.1f%% against %.1f%% and %.1f%% of a core; per 1,000 lines %.1f against %.1f ms)\n",
		verdict(lk.cpuOutage <= tg.cpuOutage && lk.cpuDrain <= tg.cpuDrain), lk.cpuOutage, lk.cpuDrain, tg.cpuOutage, tg.cpuDrain, lk.cpuPer1k, tg.cpuPer1k)
}

func dur(d time.Duration) string {
	if d < 0 {
		return "n/a"
	}
	return d.Round(100 * time.Millisecond).String()
}

func comma(n int64) string {
	s := strconv.FormatInt(n, 10)
	for i := len(s) - 3; i > 0 && s[i-1] != '-'; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	return string(b[max(0, len(b)-2048):])
}
