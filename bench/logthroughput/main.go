// Command logthroughput measures log forwarding to Fluentd: a container writes numbered
// 100-byte lines as fast as it can for a fixed time, once followed by Lookout (logs API,
// Forward batches with acks) and once with Docker's own fluentd log driver
// (--log-driver fluentd), each to a fresh copy of the same forward-protocol receiver
// (peers/fluentd). It prints lines/s, MiB/s, lines lost and Lookout's CPU per 10,000
// lines/s, and the ratio. Run it with `make bench-logs`.
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
	maxSize := flag.String("log-max-size", "", "json-file max-size of the flooding container on the Lookout path (default: the daemon's)")
	flag.Parse()
	logMaxSize = *maxSize
	if err := run(*dur, *lookoutBin); err != nil {
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
}

func (r result) linesPerSec() float64 { return float64(r.received) / r.elapsed.Seconds() }
func (r result) mibPerSec() float64   { return float64(r.bytes) / r.elapsed.Seconds() / (1 << 20) }

func run(dur time.Duration, lookoutBin string) error {
	testpeer.RemoveOnSignal("logbench") // an interrupted flood leaves no opted-in container
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
	lk, err := measure(root, work, bin, "lookout", dur, lookoutBin)
	if err != nil {
		return err
	}
	drv, err := measure(root, work, bin, "driver", dur, "")
	if err != nil {
		return err
	}
	fmt.Printf("flood of %s, 100-byte lines, one container (machine: 2 cores, shared with other jobs); json-file max-size on the Lookout path: %s\n",
		dur, map[bool]string{true: "the daemon's", false: logMaxSize}[logMaxSize == ""])
	fmt.Printf("%-28s %10s %10s %8s %8s %6s %9s %s\n", "path", "written", "received", "lost", "dups", "s", "lines/s", "MiB/s")
	for _, r := range []result{lk, drv} {
		fmt.Printf("%-28s %10d %10d %8d %8d %6.1f %9.0f %.1f\n", r.name, r.written, r.received, r.lost, r.dups,
			r.elapsed.Seconds(), r.linesPerSec(), r.mibPerSec())
	}
	cpuShare := lk.cpu.Seconds() / lk.elapsed.Seconds()
	fmt.Printf("Lookout CPU: %.1f s over %.1f s = %.0f%% of a core; per 10,000 lines/s: %.1f%% of a core\n",
		lk.cpu.Seconds(), lk.elapsed.Seconds(), 100*cpuShare, 100*cpuShare/(lk.linesPerSec()/1e4))
	fmt.Printf("ratio lookout/driver: %.2fx lines/s; lost %d vs %d\n", lk.linesPerSec()/drv.linesPerSec(), lk.lost, drv.lost)
	return nil
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
	if path == "lookout" {
		res.name = "lookout (logs API, acks)"
		agent = exec.Command(lookoutBin, "run")
		agent.Env = append(os.Environ(), "LOOKOUT_FLUENTD_ADDRESS="+f.Addr, "LOOKOUT_STATE_DIR="+filepath.Join(dir, "state"),
			"LOOKOUT_HEARTBEAT_FILE="+filepath.Join(dir, "hb"), "LOOKOUT_LOG_LEVEL=warn")
		agent.Stdout, agent.Stderr = nil, os.Stderr
		if err := agent.Start(); err != nil {
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
	start := time.Now()
	var cpu0 time.Duration
	if agent != nil {
		cpu0 = cpuTime(agent.Process.Pid)
	}
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
