// Command resources measures what container resource metrics cost: N running containers,
// one interval, and in turn nothing (idle), Lookout with resources off, Lookout reading
// cgroup files, Lookout reading Docker's one-shot stats API, and real Telegraf's
// inputs.docker, each for the same duration on the same containers. For each phase it
// prints the collector's CPU and peak RSS and the CPU of dockerd, containerd and the
// containerd shims (from /proc/<pid>/stat), and the ratios. With -baseline, each Lookout
// phase is run a second time with that binary (the build from before a change), the same
// way, the two in alternating order, and the ratios new/baseline are printed too. Run it
// with `make bench-resources` (BASELINE=<git ref> picks the baseline build).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

type phase struct {
	name    string
	start   func() (*exec.Cmd, error) // nil: idle, no collector
	cpu     float64                   // collector CPU, % of one core
	rssMiB  float64
	daemons map[string]float64 // dockerd, containerd, shims: CPU % of one core
	out     string             // where the collector writes line protocol
	mem     int                // docker_container_mem lines written while measured
}

var daemonNames = []string{"dockerd", "containerd", "shims"}

// daemonPids are the processes of the engine under test (DOCKER_HOST), found by the
// sockets they serve rather than by name: the system's dockerd is not Docker 29's, and
// Docker nodes running as containers have a dockerd and a containerd of their own.
func daemonPids() (map[string][]int, error) {
	e, err := testpeer.FindEngineProcs()
	if err != nil {
		return nil, err
	}
	return map[string][]int{"dockerd": {e.Dockerd}, "containerd": {e.Containerd}, "shims": e.Shims}, nil
}

func ticks(pids []int) map[int]int64 {
	t := map[int]int64{}
	for _, p := range pids {
		if v, err := testpeer.CPUTicks(p); err == nil {
			t[p] = v
		}
	}
	return t
}

// used sums the ticks the processes used since before, counting only those alive at both ends.
func used(before, after map[int]int64) int64 {
	var s int64
	for p, a := range after {
		if b, ok := before[p]; ok {
			s += a - b
		}
	}
	return s
}

func main() {
	n := flag.Int("containers", 200, "running containers")
	interval := flag.Duration("interval", 10*time.Second, "collection interval of both agents")
	dur := flag.Duration("duration", 2*time.Minute, "measured time per phase (after one interval of warm-up)")
	lookoutBin := flag.String("lookout", "bin/lookout", "the lookout binary")
	baselineBin := flag.String("baseline", "", "a second lookout binary (the build before a change) measured in phases of its own, the same way; empty: none")
	telegrafBin := flag.String("telegraf", ".peers/bin/telegraf", "the telegraf binary")
	flag.Parse()
	if err := run(*n, *interval, *dur, *lookoutBin, *baselineBin, *telegrafBin); err != nil {
		fmt.Fprintln(os.Stderr, "bench-resources:", err)
		os.Exit(1)
	}
}

func run(n int, interval, dur time.Duration, lookoutBin, baselineBin, telegrafBin string) error {
	wb, err := testpeer.NewWorkbench("lookout-bench-resources-", false)
	if err != nil {
		return err
	}
	defer wb.Close()
	work, image := wb.Work, wb.Image
	prefix := fmt.Sprintf("lkr%d-", time.Now().Unix()%100000)
	testpeer.RemoveOnSignal(prefix)
	defer testpeer.RemoveContainers(prefix)
	fmt.Fprintf(os.Stderr, "starting %d containers…\n", n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var startErr error
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out, err := exec.Command("docker", "run", "-d", "--name", fmt.Sprintf("%s%03d", prefix, i),
				"--label", "lookout.enable=true", "--label", "lookout-test.run="+prefix, "--no-healthcheck", image).CombinedOutput()
			if err != nil {
				mu.Lock()
				startErr = fmt.Errorf("docker run: %v: %s", err, out)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if startErr != nil {
		return startErr
	}

	tconf := filepath.Join(work, "telegraf.conf")
	_ = os.WriteFile(tconf, []byte(fmt.Sprintf(`[agent]
  interval = "%s"
  flush_interval = "%s"
  omit_hostname = true
[[inputs.docker]]
  endpoint = "%s"
  container_name_include = ["%s*"]
  docker_label_exclude = ["*"]
[[outputs.file]]
  files = ["%s"]
  data_format = "influx"
`, interval, interval, testpeer.EngineHost(), prefix, filepath.Join(work, "telegraf.out"))), 0o644)
	// lookout is the phase of one Lookout binary (agent: "lookout" or "baseline") with one
	// resources source; every binary runs the same way.
	lookout := func(agent, bin, source, what string) *phase {
		out := filepath.Join(work, agent+"-"+source+".out")
		return &phase{name: agent + ", " + what, out: out, start: func() (*exec.Cmd, error) {
			f, err := os.Create(out)
			if err != nil {
				return nil, err
			}
			cmd := exec.Command(bin, "run")
			cmd.Env = []string{"LOOKOUT_DOCKER_HOST=" + testpeer.EngineHost(), "LOOKOUT_INTERVAL=" + interval.String(),
				"LOOKOUT_RESOURCES=" + source, "LOOKOUT_LOG_LEVEL=warn",
				"LOOKOUT_HEARTBEAT_FILE=" + filepath.Join(work, "hb")}
			cmd.Stdout = f
			return cmd, cmd.Start()
		}}
	}
	sources := []struct{ source, what string }{{"off", "resources off"}, {"cgroup", "cgroup files"}, {"api", "one-shot stats API"}}
	phases := []*phase{{name: "idle (no collector)"}}
	lk := map[string]*phase{} // by source
	bl := map[string]*phase{}
	for i, src := range sources {
		lk[src.source] = lookout("lookout", lookoutBin, src.source, src.what)
		if baselineBin == "" {
			phases = append(phases, lk[src.source])
			continue
		}
		// Alternating order (new, baseline; baseline, new; …), so a drift in the machine's
		// load over the run does not favour one of them.
		bl[src.source] = lookout("baseline", baselineBin, src.source, src.what)
		pair := []*phase{lk[src.source], bl[src.source]}
		if i%2 == 1 {
			pair[0], pair[1] = pair[1], pair[0]
		}
		phases = append(phases, pair...)
	}
	tg := &phase{name: "telegraf inputs.docker", out: filepath.Join(work, "telegraf.out"), start: func() (*exec.Cmd, error) {
		cmd := exec.Command(telegrafBin, "--config", tconf)
		return cmd, cmd.Start()
	}}
	phases = append(phases, tg)
	for _, p := range phases {
		fmt.Fprintf(os.Stderr, "phase %s: %s warm-up, %s measured\n", p.name, interval+5*time.Second, dur)
		var cmd *exec.Cmd
		if p.start != nil {
			if cmd, err = p.start(); err != nil {
				return err
			}
		}
		time.Sleep(interval + 5*time.Second) // warm-up: the first gather is not measured
		pids, err := daemonPids()
		if err != nil {
			if cmd != nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
			return err
		}
		before := map[string]map[int]int64{}
		for _, d := range daemonNames {
			before[d] = ticks(pids[d])
		}
		mem0 := countMem(p.out)
		var own0 int64
		if cmd != nil {
			own0, _ = testpeer.CPUTicks(cmd.Process.Pid)
		}
		t0 := time.Now()
		var peak int64
		for time.Since(t0) < dur {
			time.Sleep(time.Second)
			if cmd != nil {
				peak = max(peak, testpeer.RSSKiB(cmd.Process.Pid))
			}
		}
		secs := time.Since(t0).Seconds()
		p.mem = countMem(p.out) - mem0
		p.daemons = map[string]float64{}
		for _, d := range daemonNames {
			p.daemons[d] = float64(used(before[d], ticks(pids[d]))) / secs // ticks/s = % of one core
		}
		if cmd != nil {
			own1, _ := testpeer.CPUTicks(cmd.Process.Pid)
			p.cpu = float64(own1-own0) / secs
			p.rssMiB = float64(peak) / 1024
			_ = cmd.Process.Signal(os.Interrupt)
			_ = cmd.Wait()
		}
	}

	fmt.Printf("\n%d containers, interval %s, %s per phase (CPU in %% of one core)\n", n, interval, dur)
	fmt.Printf("engine = Docker %s at %s (every collector on it; daemons: its dockerd, the containerd it uses, its containers' shims)\n",
		testpeer.EngineVersion(), testpeer.EngineHost())
	fmt.Printf("lookout = %s\n", testpeer.AgentVersion(lookoutBin))
	if baselineBin != "" {
		fmt.Printf("baseline = %s, the same settings, phases in alternating order\n", testpeer.AgentVersion(baselineBin))
	}
	fmt.Printf("\n| phase | collector CPU | collector RSS | dockerd CPU | containerd CPU | shims CPU | daemons above idle | container readings (docker_container_mem) |\n|---|---|---|---|---|---|---|---|\n")
	base := phases[0]
	above := func(p *phase) float64 {
		var s float64
		for _, d := range daemonNames {
			s += p.daemons[d] - base.daemons[d]
		}
		return s
	}
	for _, p := range phases {
		fmt.Printf("| %s | %.2f%% | %.1f MiB | %.2f%% | %.2f%% | %.2f%% | %.2f%% | %d |\n", p.name, p.cpu, p.rssMiB,
			p.daemons["dockerd"], p.daemons["containerd"], p.daemons["shims"], above(p), p.mem)
	}
	off, cg, api := lk["off"], lk["cgroup"], lk["api"]
	fmt.Printf("\nresource collection alone (lookout cgroup - lookout off): %.2f%% CPU; telegraf %.2f%% CPU + %.2f%% in the daemons\n",
		cg.cpu-off.cpu, tg.cpu, above(tg))
	ratio := func(a, b float64) string {
		if b <= 0 {
			return "n/a"
		}
		return fmt.Sprintf("%.2f", a/b)
	}
	fmt.Printf("\nlookout (cgroup) / telegraf: collector CPU %s, RSS %s, daemons above idle %s\n",
		ratio(cg.cpu, tg.cpu), ratio(cg.rssMiB, tg.rssMiB), ratio(above(cg), above(tg)))
	fmt.Printf("lookout (api) / telegraf:    collector CPU %s, RSS %s, daemons above idle %s\n",
		ratio(api.cpu, tg.cpu), ratio(api.rssMiB, tg.rssMiB), ratio(above(api), above(tg)))
	if baselineBin != "" {
		fmt.Println()
		for _, src := range sources {
			a, b := lk[src.source], bl[src.source]
			fmt.Printf("lookout / baseline (%s): collector CPU %s, RSS %s, daemons above idle %s, readings %d vs %d\n",
				src.source, ratio(a.cpu, b.cpu), ratio(a.rssMiB, b.rssMiB), ratio(above(a), above(b)), a.mem, b.mem)
		}
	}
	return nil
}

// countMem counts the docker_container_mem lines written to path so far.
func countMem(path string) int {
	if path == "" {
		return 0
	}
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), "\ndocker_container_mem,")
}
