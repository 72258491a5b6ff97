// Command healthlatency measures health-transition latency: from Docker's health_status
// event to the docker_container_health point with the new status being queryable in
// InfluxDB. It runs Lookout and real Telegraf (inputs.docker at 10 s and at 1 s) side by
// side, writing to one InfluxDB, on the same flipping containers, and prints median, p99
// and the ratios. Run it with `make bench-latency`.
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/client"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

type target struct {
	name     string // shown in the report
	db       string
	interval time.Duration
}

type transition struct {
	container, status string
	at                time.Time // Docker's event time
	seen              map[string]time.Time
}

func main() {
	containers := flag.Int("containers", 20, "containers flipping health")
	flips := flag.Int("flips", 3, "health flips per container (transitions = containers x flips)")
	period := flag.Duration("period", 24*time.Second, "time between two flips of one container (must exceed Telegraf's 10 s interval)")
	lookoutBin := flag.String("lookout", "bin/lookout", "the lookout binary")
	telegrafBin := flag.String("telegraf", ".peers/bin/telegraf", "the telegraf binary")
	flag.Parse()
	testpeer.RemoveOnSignal("bench-latency")
	if err := run(*containers, *flips, *period, *lookoutBin, *telegrafBin); err != nil {
		fmt.Fprintln(os.Stderr, "healthlatency:", err)
		os.Exit(1)
	}
}

func run(n, flips int, period time.Duration, lookoutBin, telegrafBin string) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wb, err := testpeer.NewWorkbench("lookout-bench-", true)
	if err != nil {
		return err
	}
	defer wb.Close()
	work, image, ix := wb.Work, wb.Image, wb.Influx
	// The engine under test (DOCKER_HOST): the docker commands, the client and Lookout
	// follow it by themselves, Telegraf's endpoint is set to it.
	engine := fmt.Sprintf("Docker %s at %s", testpeer.EngineVersion(), testpeer.EngineHost())
	fmt.Fprintln(os.Stderr, "engine:", engine)

	targets := []target{{"lookout", "lookout", 0}, {"telegraf 10s", "telegraf10", 10 * time.Second}, {"telegraf 1s", "telegraf1", time.Second}}
	prefix := fmt.Sprintf("lkb%d-", time.Now().Unix()%100000)
	var procs []*exec.Cmd
	defer func() {
		for _, p := range procs {
			_ = p.Process.Signal(os.Interrupt)
			_ = p.Wait()
		}
		testpeer.RemoveContainers("bench-latency")
	}()
	logs := map[string]string{} // target name -> its program's log
	start := func(t target, name string, args []string, env []string) error {
		cmd := exec.Command(name, args...)
		cmd.Env = append(os.Environ(), env...)
		logs[t.name] = filepath.Join(work, filepath.Base(name)+fmt.Sprint(len(procs))+".log")
		logf, _ := os.Create(logs[t.name])
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			return err
		}
		procs = append(procs, cmd)
		return nil
	}
	if err := start(targets[0], lookoutBin, []string{"run"}, []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL,
		"LOOKOUT_INFLUXDB_DATABASE=lookout", "LOOKOUT_LOG_LEVEL=warn", "LOOKOUT_STATE_DIR=" + filepath.Join(work, "state")}); err != nil {
		return err
	}
	for _, t := range targets[1:] {
		conf := filepath.Join(work, t.db+".conf")
		_ = os.WriteFile(conf, []byte(fmt.Sprintf(`[agent]
  interval = "%s"
  flush_interval = "%s"
  round_interval = true
  omit_hostname = true
[[inputs.docker]]
  endpoint = "%s"
  container_name_include = ["%s*"]
  docker_label_exclude = ["*"]
  perdevice_include = []
  total_include = []
[[outputs.influxdb]]
  urls = ["%s"]
  database = "%s"
`, t.interval, t.interval, testpeer.EngineHost(), prefix, ix.URL, t.db)), 0o644)
		if err := start(t, telegrafBin, []string{"--config", conf}, nil); err != nil {
			return err
		}
	}

	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s%02d", prefix, i)
		out, err := exec.Command("docker", "run", "-d", "--name", names[i], "--label", "lookout.enable=true",
			"--label", "lookout-test.run=bench-latency",
			"--health-interval", "1s", "--health-retries", "1", image).CombinedOutput()
		if err != nil {
			return fmt.Errorf("docker run: %v: %s", err, out)
		}
	}

	// Record every health transition Docker reports, from now on.
	dc, err := client.New(client.FromEnv)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	var transitions []*transition
	measuring := false
	stream := dc.Events(ctx, client.EventsListOptions{Filters: make(client.Filters).Add("type", "container").
		Add("event", "health_status")})
	msgs, errs := stream.Messages, stream.Err
	go func() {
		for {
			select {
			case m := <-msgs:
				name := m.Actor.Attributes["name"]
				status := strings.TrimSpace(strings.TrimPrefix(string(m.Action), "health_status:"))
				mu.Lock()
				if measuring && strings.HasPrefix(name, prefix) {
					transitions = append(transitions, &transition{container: name, status: status,
						at: time.Unix(0, m.TimeNano), seen: map[string]time.Time{}})
				}
				mu.Unlock()
			case <-errs:
				return
			}
		}
	}()

	fmt.Fprintf(os.Stderr, "waiting for %d containers to be healthy everywhere…\n", n)
	if err := waitAllHealthy(ix, targets, names, 60*time.Second, logs); err != nil {
		return err
	}
	mu.Lock()
	measuring = true
	mu.Unlock()

	// Poll every target for the points of pending transitions.
	pollDone := make(chan struct{})
	go func() {
		defer close(pollDone)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			poll(ix, targets, &mu, transitions2(&mu, &transitions))
		}
	}()

	fmt.Fprintf(os.Stderr, "flipping %d containers %d times, %s apart…\n", n, flips, period)
	var wg sync.WaitGroup
	state := "unhealthy"
	for i, name := range names {
		wg.Add(1)
		go func(i int, name string) {
			defer wg.Done()
			time.Sleep(time.Duration(rand.Int64N(int64(period))))
			s := state
			for f := 0; f < flips; f++ {
				_ = exec.Command("docker", "exec", name, "/testsvc", "set", s).Run()
				if s == "unhealthy" {
					s = "healthy"
				} else {
					s = "unhealthy"
				}
				time.Sleep(period)
			}
		}(i, name)
	}
	wg.Wait()
	// Give the slowest target time to report the last flips.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if allSeen(&mu, transitions, targets) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	cancel()
	<-pollDone
	report(targets, transitions, n, engine)
	return nil
}

func transitions2(mu *sync.Mutex, ts *[]*transition) []*transition {
	mu.Lock()
	defer mu.Unlock()
	return append([]*transition(nil), (*ts)...)
}

func waitAllHealthy(ix *testpeer.Influx, targets []target, names []string, timeout time.Duration, logs map[string]string) error {
	deadline := time.Now().Add(timeout)
	healthy := map[string]int{}
	for time.Now().Before(deadline) {
		ok := true
		for _, t := range targets {
			rows, _ := ix.Query(t.db, `SELECT last(health_status) FROM docker_container_health WHERE time > now() - 30s GROUP BY container_name`)
			healthy[t.name] = 0
			for _, r := range rows {
				if r.Str("last") == "healthy" {
					healthy[t.name]++
				}
			}
			if healthy[t.name] < len(names) {
				ok = false
			}
		}
		if ok {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	// Say who fell short, with the end of its log: a collector that cannot talk to the
	// engine under test (Telegraf against an engine whose minimum API it cannot reach) says why there.
	var b strings.Builder
	for _, t := range targets {
		if healthy[t.name] < len(names) {
			log, _ := os.ReadFile(logs[t.name])
			fmt.Fprintf(&b, "\n%s saw %d healthy; the end of its log:\n%s", t.name, healthy[t.name], log[max(0, len(log)-2048):])
		}
	}
	return fmt.Errorf("not every target saw %d healthy containers within %s:%s", len(names), timeout, b.String())
}

// poll finds, for each transition not yet seen by a target, the first point of that
// container with the new status at or after the event (100 ms of slack for a gather that
// read the state a moment before Docker stamped the event).
func poll(ix *testpeer.Influx, targets []target, mu *sync.Mutex, ts []*transition) {
	for _, t := range targets {
		var oldest time.Time
		var pending []*transition
		mu.Lock()
		for _, tr := range ts {
			if _, ok := tr.seen[t.name]; !ok {
				pending = append(pending, tr)
				if oldest.IsZero() || tr.at.Before(oldest) {
					oldest = tr.at
				}
			}
		}
		mu.Unlock()
		if len(pending) == 0 {
			continue
		}
		rows, err := ix.Query(t.db, fmt.Sprintf(`SELECT health_status FROM docker_container_health WHERE time >= %d GROUP BY container_name`,
			oldest.Add(-100*time.Millisecond).UnixNano()))
		now := time.Now()
		if err != nil {
			continue
		}
		mu.Lock()
		for _, tr := range pending {
			for _, r := range rows {
				if r.Str("container_name") == tr.container && r.Str("health_status") == tr.status &&
					r.Int("time") >= tr.at.Add(-100*time.Millisecond).UnixNano() {
					tr.seen[t.name] = now
					break
				}
			}
		}
		mu.Unlock()
	}
}

func allSeen(mu *sync.Mutex, ts []*transition, targets []target) bool {
	mu.Lock()
	defer mu.Unlock()
	for _, tr := range ts {
		if len(tr.seen) < len(targets) {
			return false
		}
	}
	return true
}

func report(targets []target, ts []*transition, n int, engine string) {
	fmt.Printf("health-transition latency, Docker event -> point queryable in InfluxDB (%d containers, %d transitions)\n", n, len(ts))
	fmt.Printf("engine: %s (Lookout and Telegraf both on it)\n", engine)
	fmt.Printf("%-14s %6s %6s %10s %10s %10s\n", "target", "seen", "missed", "median", "p99", "max")
	medians := map[string]time.Duration{}
	p99s := map[string]time.Duration{}
	for _, t := range targets {
		var lat []time.Duration
		for _, tr := range ts {
			if s, ok := tr.seen[t.name]; ok {
				lat = append(lat, s.Sub(tr.at))
			}
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		if len(lat) == 0 {
			fmt.Printf("%-14s %6d %6d\n", t.name, 0, len(ts))
			continue
		}
		med, p99 := pct(lat, 50), pct(lat, 99)
		medians[t.name], p99s[t.name] = med, p99
		fmt.Printf("%-14s %6d %6d %10s %10s %10s\n", t.name, len(lat), len(ts)-len(lat),
			med.Round(time.Millisecond), p99.Round(time.Millisecond), lat[len(lat)-1].Round(time.Millisecond))
	}
	for _, t := range targets[1:] {
		if medians["lookout"] > 0 && medians[t.name] > 0 {
			fmt.Printf("ratio %s / lookout: median %.1fx, p99 %.1fx\n", t.name,
				float64(medians[t.name])/float64(medians["lookout"]), float64(p99s[t.name])/float64(p99s["lookout"]))
		}
	}
	verdict := "MET"
	if p99s["lookout"] == 0 || p99s["lookout"] >= time.Second {
		verdict = "NOT MET"
	}
	fmt.Printf("target lookout p99 < 1s: %s\n", verdict)
}

// pct is the nearest-rank percentile of sorted durations.
func pct(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted)*p + 99) / 100
	return sorted[max(0, min(len(sorted)-1, i-1))]
}
