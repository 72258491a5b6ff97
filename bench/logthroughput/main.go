// Command logthroughput measures log forwarding to Fluentd: a container writes numbered
// 100-byte lines as fast as it can for a fixed time, three times in one run: followed by
// Lookout reading the json-file log file (LOOKOUT_LOGS_SOURCE=file), by Lookout reading
// the Docker logs API (LOOKOUT_LOGS_SOURCE=api), and with Docker's own fluentd log driver
// (--log-driver fluentd), each to a fresh copy of the same forward-protocol receiver
// (peers/fluentd). It prints lines/s, MiB/s, lines lost and duplicated, and per 10,000
// lines/s the CPU of Lookout, of dockerd above its idle baseline and of the receiver, and
// the ratios. Then, with -idle, the CPU Lookout spends in that time on 20 idle containers
// through each source. Run it with `make bench-logs`.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/lookout-agent/lookout/internal/testpeer"
)

const image = "lookout-logsvc:bench"

// logMaxSize is the -log-max-size flag.
var logMaxSize string

func main() {
	dur := flag.Duration("duration", 20*time.Second, "how long the container floods")
	lookoutBin := flag.String("lookout", "bin/lookout", "the lookout binary")
	maxSize := flag.String("log-max-size", "", "json-file max-size of the flooding container on the Lookout paths (default: the daemon's)")
	idle := flag.Duration("idle", 60*time.Second, "how long 20 idle containers are followed through each source (0: not measured)")
	idleOnly := flag.Bool("idle-only", false, "measure only the idle containers")
	flag.Parse()
	logMaxSize = *maxSize
	if *idleOnly {
		*dur = 0
	}
	if err := run(*dur, *idle, *lookoutBin); err != nil {
		fmt.Fprintln(os.Stderr, "logthroughput:", err)
		os.Exit(1)
	}
}

type result struct {
	name              string
	written, received int
	lost, dups        int
	elapsed           time.Duration
	bytes             int64
	cpu               time.Duration // Lookout's CPU time (0 for the driver)
	dockerd           time.Duration // dockerd's CPU time above its idle baseline
	receiver          time.Duration // the receiver's CPU time
}

// per10k is a CPU time over the run as % of a core per 10,000 lines/s.
func (r result) per10k(cpu time.Duration) float64 {
	return 100 * cpu.Seconds() / r.elapsed.Seconds() / (r.linesPerSec() / 1e4)
}

func (r result) linesPerSec() float64 { return float64(r.received) / r.elapsed.Seconds() }
func (r result) mibPerSec() float64   { return float64(r.bytes) / r.elapsed.Seconds() / (1 << 20) }

func run(dur, idle time.Duration, lookoutBin string) error {
	testpeer.RemoveOnSignal("logbench") // an interrupted flood leaves no opted-in container
	if _, err := testpeer.EngineDockerd(); err != nil {
		return err // dockerd's CPU is part of the figures
	}
	root, _ := os.Getwd()
	work, err := os.MkdirTemp("", "lookout-logthroughput-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	bin, err := testpeer.FluentdBin(root)
	if err != nil {
		return err
	}
	if err := testpeer.BuildImage(root, "logsvc", image); err != nil {
		return err
	}
	if dur == 0 {
		return runIdle(work, lookoutBin, idle)
	}
	var results []result
	for _, path := range []string{"file", "api", "driver"} {
		r, err := measure(root, work, bin, path, dur, lookoutBin)
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	file, api, drv := results[0], results[1], results[2]
	fmt.Printf("flood of %s, 100-byte lines, one container (machine: 2 cores, shared with other jobs); json-file max-size on the Lookout paths: %s\n",
		dur, map[bool]string{true: "the daemon's", false: logMaxSize}[logMaxSize == ""])
	fmt.Printf("%-28s %10s %10s %8s %8s %6s %9s %6s %14s %14s %14s\n", "path", "written", "received", "lost", "dups", "s", "lines/s", "MiB/s",
		"Lookout CPU*", "dockerd CPU*", "receiver CPU*")
	for _, r := range results {
		fmt.Printf("%-28s %10d %10d %8d %8d %6.1f %9.0f %6.1f %14.2f %14.2f %14.2f\n", r.name, r.written, r.received, r.lost, r.dups,
			r.elapsed.Seconds(), r.linesPerSec(), r.mibPerSec(), r.per10k(r.cpu), r.per10k(r.dockerd), r.per10k(r.receiver))
	}
	fmt.Println("* % of a core per 10,000 lines/s; dockerd's above its idle baseline, measured before each path")
	fmt.Printf("lines/s: file/driver %.2fx, api/driver %.2fx, file/api %.2fx\n", file.linesPerSec()/drv.linesPerSec(),
		api.linesPerSec()/drv.linesPerSec(), file.linesPerSec()/api.linesPerSec())
	perLine := func(r result) float64 { return r.per10k(r.cpu) + r.per10k(r.dockerd) }
	fmt.Printf("Lookout + dockerd CPU per line: file %.2f, api %.2f (%% of a core per 10,000 lines/s): file/api %.2f\n",
		perLine(file), perLine(api), perLine(file)/perLine(api))
	if idle > 0 {
		return runIdle(work, lookoutBin, idle)
	}
	return nil
}

// runIdle prints Lookout's CPU time over idle with 20 idle containers: logs off (the
// agent's other work), through the file source and through the API source.
func runIdle(work, lookoutBin string, idle time.Duration) error {
	fmt.Printf("idle: 20 containers for %s, Lookout's CPU:", idle)
	for _, src := range []string{"off", "file", "api"} {
		cpu, err := measureIdle(work, lookoutBin, src, idle)
		if err != nil {
			return err
		}
		fmt.Printf(" %s %d ms", map[string]string{"off": "logs off", "file": "file source", "api": "API source"}[src], cpu.Milliseconds())
	}
	fmt.Println()
	return nil
}

// dockerdCPU is the CPU time so far of the engine under test's dockerd (DOCKER_HOST's:
// not every process named dockerd, as Docker nodes in containers have their own; run
// checks first that it is found).
func dockerdCPU() time.Duration {
	pid, err := testpeer.EngineDockerd()
	if err != nil {
		return 0
	}
	return cpuTime(pid)
}

// baseline measures dockerd's idle CPU rate (CPU seconds per second) over 3 s.
func baseline() float64 {
	c0, t0 := dockerdCPU(), time.Now()
	time.Sleep(3 * time.Second)
	return (dockerdCPU() - c0).Seconds() / time.Since(t0).Seconds()
}

// startLookout runs the agent with the log source src, forwarding to addr.
func startLookout(lookoutBin, dir, addr, src string) (*exec.Cmd, error) {
	agent := exec.Command(lookoutBin, "run")
	agent.Env = append(os.Environ(), "LOOKOUT_FLUENTD_ADDRESS="+addr, "LOOKOUT_STATE_DIR="+filepath.Join(dir, "state"),
		"LOOKOUT_HEARTBEAT_FILE="+filepath.Join(dir, "hb"), "LOOKOUT_LOG_LEVEL=warn")
	if addr != "" {
		agent.Env = append(agent.Env, "LOOKOUT_LOGS_SOURCE="+src)
	}
	agent.Stdout, agent.Stderr = nil, os.Stderr
	return agent, agent.Start()
}

// measureIdle follows 20 containers that log nothing through source src for d and returns
// Lookout's CPU time in that time.
func measureIdle(work, lookoutBin, src string, d time.Duration) (time.Duration, error) {
	dir := filepath.Join(work, "idle-"+src)
	bin, _ := testpeer.FluentdBin(".")
	f, err := testpeer.StartFluentd(bin, dir)
	if err != nil {
		return 0, err
	}
	defer f.Stop()
	addr := f.Addr
	if src == "off" {
		addr = "" // no log forwarding: what the agent spends on everything else
	}
	agent, err := startLookout(lookoutBin, dir, addr, src)
	if err != nil {
		return 0, err
	}
	defer func() { _ = agent.Process.Signal(os.Interrupt); _ = agent.Wait() }()
	var names []string
	defer func() {
		if len(names) > 0 {
			_ = exec.Command("docker", append([]string{"rm", "-f"}, names...)...).Run()
		}
	}()
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("lk-logbench-idle-%s-%d-%d", src, i, os.Getpid())
		if out, err := exec.Command("docker", "run", "-d", "--name", name, "--label", "lookout-test.run=logbench",
			"--label", "lookout.enable=true", image, "sleep").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("docker run: %v: %s", err, out)
		}
		names = append(names, name)
	}
	time.Sleep(5 * time.Second) // every container followed
	c0 := cpuTime(agent.Process.Pid)
	time.Sleep(d)
	return cpuTime(agent.Process.Pid) - c0, nil
}

// measure runs one flood through one path and waits until the receiver's file stops
// growing.
func measure(root, work, bin, path string, dur time.Duration, lookoutBin string) (result, error) {
	res := result{name: path}
	dir := filepath.Join(work, path)
	f, err := testpeer.StartFluentd(bin, dir)
	if err != nil {
		return res, err
	}
	defer f.Stop()
	name := fmt.Sprintf("lk-logbench-%s-%d", path, os.Getpid())
	args := []string{"run", "-d", "--name", name, "--label", "lookout-test.run=logbench"}
	var agent *exec.Cmd
	if path != "driver" {
		res.name = "lookout, file source"
		if path == "api" {
			res.name = "lookout, logs API source"
		}
		agent, err = startLookout(lookoutBin, dir, f.Addr, path)
		if err != nil {
			return res, err
		}
		defer func() { _ = agent.Process.Signal(os.Interrupt); _ = agent.Wait() }()
		args = append(args, "--label", "lookout.enable=true")
		if logMaxSize != "" {
			args = append(args, "--log-opt", "max-size="+logMaxSize)
		}
	} else {
		res.name = "docker --log-driver fluentd"
		args = append(args, "--log-driver", "fluentd", "--log-opt", "fluentd-address="+f.Addr,
			"--log-opt", "tag=docker.{{.Name}}")
	}
	args = append(args, image, "flood", dur.String())
	idleRate := baseline()
	start := time.Now()
	var cpu0 time.Duration
	if agent != nil {
		cpu0 = cpuTime(agent.Process.Pid)
	}
	d0, r0 := dockerdCPU(), cpuTime(f.Pid())
	if out, err := exec.Command("docker", args...).CombinedOutput(); err != nil {
		return res, fmt.Errorf("docker run: %v: %s", err, out)
	}
	defer func() { _ = exec.Command("docker", "rm", "-f", name).Run() }()
	// Wait for the flood's end line (sent last), then for the file to stop growing for 3 s.
	marker := []byte("flood end")
	var size int64 = -1
	var lastGrowth time.Time
	ended := false
	for deadline := time.Now().Add(dur + 5*time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		fi, err := os.Stat(f.Out)
		if err != nil {
			continue
		}
		if fi.Size() != size {
			size, lastGrowth = fi.Size(), fi.ModTime()
			ended = ended || bytes.Contains(tail(f.Out, 64<<10), marker)
			continue
		}
		if ended && time.Since(lastGrowth) > 3*time.Second {
			break
		}
	}
	res.elapsed = lastGrowth.Sub(start)
	if agent != nil {
		res.cpu = cpuTime(agent.Process.Pid) - cpu0
	}
	// dockerd's and the receiver's CPU up to now (3 s after the last record: the
	// baseline's share of them is taken off dockerd's).
	res.dockerd = dockerdCPU() - d0 - time.Duration(idleRate*float64(time.Since(start)))
	res.receiver = cpuTime(f.Pid()) - r0
	return res, count(f.Out, "/"+name, &res)
}

// count reads the receiver's file: which numbered lines of container arrived, and the
// "flood end N" line that says how many were written.
func count(file, container string, res *result) error {
	fh, err := os.Open(file)
	if err != nil {
		return err
	}
	defer fh.Close()
	seen := make([]bool, 0, 1<<20)
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	marker := []byte(`"container_name":"` + container + `"`)
	for sc.Scan() {
		l := sc.Bytes()
		if !bytes.Contains(l, marker) {
			continue
		}
		i := bytes.Index(l, []byte(`"log":"`))
		if i < 0 {
			continue
		}
		msg := l[i+7:]
		msg = msg[:bytes.IndexByte(msg, '"')]
		res.bytes += int64(len(msg)) + 1
		if n, ok := bytes.CutPrefix(msg, []byte("flood end ")); ok {
			res.written, _ = strconv.Atoi(string(n))
			continue
		}
		if len(msg) < 11 || msg[0] != 'f' {
			continue
		}
		n, err := strconv.Atoi(string(msg[2:11]))
		if err != nil {
			continue
		}
		for len(seen) <= n {
			seen = append(seen, false)
		}
		if seen[n] {
			res.dups++
		}
		seen[n] = true
	}
	if res.written == 0 {
		return errors.New(res.name + ": the flood's end line did not arrive")
	}
	for i := 1; i <= res.written && i < len(seen); i++ {
		if seen[i] {
			res.received++
		}
	}
	res.lost = res.written - res.received
	return sc.Err()
}

// cpuTime is the user+system CPU time of a process so far.
func cpuTime(pid int) time.Duration {
	t, _ := testpeer.CPUTicks(pid)
	return time.Duration(t) * time.Second / 100 // USER_HZ is 100 on Linux
}

// tail returns the last n bytes of a file.
func tail(path string, n int64) []byte {
	fh, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer fh.Close()
	fi, _ := fh.Stat()
	off := max(fi.Size()-n, 0)
	b := make([]byte, fi.Size()-off)
	_, _ = fh.ReadAt(b, off)
	return b
}
