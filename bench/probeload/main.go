// Command probeload runs one HTTP check a second against each of N containers for a
// while, by Lookout (label-declared checks) and, in the same run, by real Telegraf's
// inputs.http_response polling the same URLs at the same interval, and prints each one's
// CPU, RSS and p99 scheduling delay with the ratios. With -baseline, a second Lookout
// binary (the build from before a change) runs in the same run with the same settings
// against the same containers, and the ratios new/baseline are printed too. Run it with
// `make bench-probes` (BASELINE=<git ref> picks the baseline build).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

func main() {
	n := flag.Int("containers", 200, "containers, one HTTP check each")
	dur := flag.Duration("duration", 5*time.Minute, "how long both probe")
	lookoutBin := flag.String("lookout", "bin/lookout", "the lookout binary")
	baselineBin := flag.String("baseline", "", "a second lookout binary (the build before a change) run alongside, the same way; empty: none")
	telegrafBin := flag.String("telegraf", ".peers/bin/telegraf", "the telegraf binary")
	profile := flag.String("perf", "", "record a CPU profile of Lookout over the measured window into this file with "+
		"Linux perf (perf record -g; needs an unstripped binary: -lookout; the profiling skews that run's CPU figures)")
	flag.Parse()
	testpeer.RemoveOnSignal("bench-probes")
	if err := run(*n, *dur, *lookoutBin, *baselineBin, *telegrafBin, *profile); err != nil {
		fmt.Fprintln(os.Stderr, "probeload:", err)
		os.Exit(1)
	}
}

type proc struct {
	name string
	cmd  *exec.Cmd
}

// agent is one program under test: the database it writes its check runs to and the query
// that reads them back (one row a run, series by container).
type agent struct {
	name, db, query string
}

const lookoutQuery = `SELECT success FROM lookout_check WHERE time >= %d AND time < %d GROUP BY container_name`

func run(n int, dur time.Duration, lookoutBin, baselineBin, telegrafBin, profile string) error {
	wb, err := testpeer.NewWorkbench("lookout-probeload-", true)
	if err != nil {
		return err
	}
	defer wb.Close()
	work, image, ix := wb.Work, wb.Image, wb.Influx
	prefix := fmt.Sprintf("lkp%d-", time.Now().Unix()%100000)
	defer testpeer.RemoveContainers("bench-probes")

	fmt.Fprintf(os.Stderr, "starting %d containers…\n", n)
	urls := make([]string, n)
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	var startErr error
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			name := fmt.Sprintf("%s%03d", prefix, i)
			out, err := exec.Command("docker", "run", "-d", "--name", name, "--no-healthcheck",
				"--label", "lookout-test.run=bench-probes",
				"--label", "lookout.enable=true", "--label", "lookout.check.web=http://:8080/health",
				"--label", "lookout.check.web.interval=1s", "--label", "lookout.check.web.timeout=900ms", image).CombinedOutput()
			if err != nil {
				mu.Lock()
				startErr = fmt.Errorf("docker run: %v: %s", err, out)
				mu.Unlock()
				return
			}
			ip, _ := exec.Command("docker", "inspect", "-f", "{{.NetworkSettings.IPAddress}}", name).Output()
			urls[i] = "http://" + strings.TrimSpace(string(ip)) + ":8080/health"
		}(i)
	}
	wg.Wait()
	if startErr != nil {
		return startErr
	}

	var procs []proc
	defer func() {
		for _, p := range procs {
			_ = p.cmd.Process.Signal(os.Interrupt)
			_ = p.cmd.Wait()
		}
	}()
	start := func(name, bin string, args, env []string) error {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), env...)
		logf, _ := os.Create(filepath.Join(work, name+".log"))
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, proc{name, cmd})
		return nil
	}
	// Every Lookout binary runs the same way; only its database and files are its own.
	var agents []agent
	startLookout := func(name, bin string) error {
		a := agent{name: name, db: strings.ReplaceAll(name, "-", "_"), query: lookoutQuery}
		if err := start(name, bin, []string{"run"}, []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL,
			"LOOKOUT_INFLUXDB_DATABASE=" + a.db, "LOOKOUT_LOG_LEVEL=warn", "LOOKOUT_STATE_DIR=" + filepath.Join(work, name+"-state"),
			"LOOKOUT_HEARTBEAT_FILE=" + filepath.Join(work, name+".heartbeat"), "LOOKOUT_FLUSH_INTERVAL=1s",
			// The same work as Telegraf's http_response: checks only, no resource readings.
			"LOOKOUT_RESOURCES=off"}); err != nil {
			return err
		}
		agents = append(agents, a)
		return nil
	}
	if err := startLookout("lookout", lookoutBin); err != nil {
		return err
	}
	if baselineBin != "" {
		if err := startLookout("baseline", baselineBin); err != nil {
			return err
		}
	}
	quoted := make([]string, n)
	for i, u := range urls {
		quoted[i] = strconv.Quote(u)
	}
	conf := filepath.Join(work, "telegraf.conf")
	_ = os.WriteFile(conf, []byte(fmt.Sprintf(`[agent]
  interval = "1s"
  flush_interval = "1s"
  round_interval = true
  omit_hostname = true
  metric_buffer_limit = 100000
[[inputs.http_response]]
  urls = [%s]
  response_timeout = "900ms"
  method = "GET"
  response_string_match = "^ok"
[[outputs.influxdb]]
  urls = ["%s"]
  database = "telegraf"
`, strings.Join(quoted, ", "), ix.URL)), 0o644)
	if err := start("telegraf", telegrafBin, []string{"--config", conf}, nil); err != nil {
		return err
	}
	agents = append(agents, agent{name: "telegraf", db: "telegraf",
		query: `SELECT response_time FROM http_response WHERE time >= %d AND time < %d GROUP BY server`})

	// Warm up, then measure CPU over the window and sample RSS every second.
	time.Sleep(20 * time.Second)
	t0 := time.Now()
	cpu0 := map[string]int64{}
	for _, p := range procs {
		cpu0[p.name], _ = testpeer.CPUTicks(p.cmd.Process.Pid)
	}
	if profile != "" {
		perf := exec.Command("perf", "record", "-F", "499", "-g", "-o", profile, "-p", strconv.Itoa(procs[0].cmd.Process.Pid),
			"--", "sleep", strconv.Itoa(int(dur.Seconds())))
		perf.Stdout, perf.Stderr = os.Stderr, os.Stderr
		if err := perf.Start(); err != nil {
			return fmt.Errorf("perf: %w", err)
		}
		defer func() { _ = perf.Wait() }()
	}
	rss := map[string][]int64{}
	fmt.Fprintf(os.Stderr, "measuring for %s…\n", dur)
	for time.Since(t0) < dur {
		time.Sleep(time.Second)
		for _, p := range procs {
			rss[p.name] = append(rss[p.name], testpeer.RSSKiB(p.cmd.Process.Pid))
		}
	}
	elapsed := time.Since(t0)
	t1 := time.Now()
	cpu := map[string]float64{}
	for _, p := range procs {
		c1, _ := testpeer.CPUTicks(p.cmd.Process.Pid)
		cpu[p.name] = float64(c1-cpu0[p.name]) / 100 / elapsed.Seconds() // ticks are 1/100 s
	}

	// Scheduling delay: how late each run started after the one before plus the interval.
	delays := map[string][]time.Duration{}
	runs := map[string]int{}
	for _, q := range agents {
		rows, err := ix.Query(q.db, fmt.Sprintf(q.query, t0.UnixNano(), t1.UnixNano()))
		if err != nil {
			return err
		}
		series := map[string][]int64{}
		for _, r := range rows {
			k := r.Str("container_name") + r.Str("server")
			series[k] = append(series[k], r.Int("time"))
		}
		for _, ts := range series {
			sort.Slice(ts, func(i, j int) bool { return ts[i] < ts[j] })
			for i := 1; i < len(ts); i++ {
				delays[q.name] = append(delays[q.name], max(0, time.Duration(ts[i]-ts[i-1])-time.Second))
			}
			runs[q.name] += len(ts)
		}
	}

	fmt.Printf("%d containers, one HTTP check a second each, measured for %s (after 20 s warm-up)\n", n, elapsed.Round(time.Second))
	fmt.Printf("lookout = %s\n", testpeer.AgentVersion(lookoutBin))
	if baselineBin != "" {
		fmt.Printf("baseline = %s, run alongside with the same settings\n", testpeer.AgentVersion(baselineBin))
	}
	fmt.Printf("%-9s %8s %10s %10s %12s %12s %12s\n", "agent", "runs", "CPU", "RSS max", "RSS median", "p99 delay", "CPU per run")
	res := map[string]result{}
	for _, a := range agents {
		r := summarize(rss[a.name], delays[a.name], runs[a.name], cpu[a.name], elapsed)
		res[a.name] = r
		fmt.Printf("%-9s %8d %9.1f%% %8.1fMiB %10.1fMiB %12s %9.3f ms\n", a.name, r.runs, r.cpu*100,
			r.rssMax, r.rssMedian, r.p99.Round(time.Millisecond), r.perRun)
	}
	fmt.Printf("expected runs per agent: %d\n", n*int(elapsed/time.Second))
	lk, tg := res["lookout"], res["telegraf"]
	if lk.cpu > 0 && lk.perRun > 0 {
		fmt.Printf("ratio telegraf / lookout: CPU %.2fx, CPU per run %.2fx, RSS (max) %.2fx\n", tg.cpu/lk.cpu,
			tg.perRun/lk.perRun, tg.rssMax/lk.rssMax)
	}
	if b, ok := res["baseline"]; ok && b.cpu > 0 && b.perRun > 0 {
		fmt.Printf("ratio lookout / baseline: CPU %.2fx, CPU per run %.2fx, RSS (max) %.2fx, RSS (median) %.2fx, p99 delay %s vs %s\n",
			lk.cpu/b.cpu, lk.perRun/b.perRun, lk.rssMax/b.rssMax, lk.rssMedian/b.rssMedian,
			lk.p99.Round(time.Millisecond), b.p99.Round(time.Millisecond))
	}
	fmt.Printf("target CPU <= Telegraf's: %s; RSS < 40 MiB: %s\n", verdict(lk.cpu <= tg.cpu), verdict(lk.rssMax < 40))
	return nil
}

// result is one agent's figures over the measured window.
type result struct {
	runs              int
	cpu               float64 // share of one core
	rssMax, rssMedian float64 // MiB
	p99               time.Duration
	perRun            float64 // CPU milliseconds per check run: an agent that falls behind does fewer runs for its CPU
}

func summarize(rss []int64, delays []time.Duration, runs int, cpu float64, elapsed time.Duration) result {
	r := result{runs: runs, cpu: cpu}
	sort.Slice(rss, func(i, j int) bool { return rss[i] < rss[j] })
	if len(rss) > 0 {
		r.rssMax, r.rssMedian = float64(rss[len(rss)-1])/1024, float64(rss[len(rss)/2])/1024
	}
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	if len(delays) > 0 {
		r.p99 = delays[min(len(delays)-1, (len(delays)*99+99)/100-1)]
	}
	if runs > 0 {
		r.perRun = cpu * elapsed.Seconds() * 1000 / float64(runs)
	}
	return r
}

func verdict(ok bool) string {
	if ok {
		return "MET"
	}
	return "NOT MET"
}
