package e2e

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The disk queue (issue 9) against the real Docker Engine and a real InfluxDB: an outage
// of minutes with a kill -9 in the middle loses nothing; new points overtake the drain;
// a full disk and damaged queue files are survived and counted.

// startContainers starts n opted-in test services named prefix-NNN, four at a time;
// args go before the image.
func startContainers(t *testing.T, prefix string, n int, args ...string) []string {
	t.Helper()
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	t.Cleanup(func() {
		args := append([]string{"rm", "-f"}, names...)
		_, _ = exec.Command("docker", args...).CombinedOutput()
	})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	work := make(chan string)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				a := append([]string{"run", "-d", "--name", name, "--label", "lookout-test.run=" + runID,
					"--label", "lookout.enable=true"}, args...)
				out, err := exec.Command("docker", append(a, testImage)...).CombinedOutput()
				if err != nil {
					errs <- fmt.Errorf("docker run %s: %v: %s", name, err, out)
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return names
}

var (
	containerTagRe = regexp.MustCompile(`,container_name=((?:[^,\\ ]|\\.)*)`)
	outputLineRe   = regexp.MustCompile(`^lookout_output,[^ ]*output=influxdb[, ]`)
)

// stdoutPoints returns the points of the measurements in out (line protocol) stamped
// before `before`, as "measurement|container|time" keys, for containers named prefix*.
func stdoutPoints(out, prefix string, measurements []string, before time.Time) map[string]bool {
	keys := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		meas, _, ok := strings.Cut(l, ",")
		if !ok || !contains(measurements, meas) {
			continue
		}
		m := containerTagRe.FindStringSubmatch(l)
		if m == nil || !strings.HasPrefix(m[1], prefix) {
			continue
		}
		ts, err := strconv.ParseInt(l[strings.LastIndexByte(l, ' ')+1:], 10, 64)
		if err != nil || ts >= before.UnixNano() {
			continue
		}
		keys[meas+"|"+m[1]+"|"+strconv.FormatInt(ts, 10)] = true
	}
	return keys
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// influxPoints returns the same keys for what InfluxDB holds between from and to.
func influxPoints(t *testing.T, ix *influx, db, prefix string, measurements []string, from, to time.Time) map[string]bool {
	keys := map[string]bool{}
	for _, meas := range measurements {
		rows, err := ix.Query(db, fmt.Sprintf(`SELECT * FROM %q WHERE container_name =~ /^%s/ AND time >= %d AND time < %d`,
			meas, regexp.QuoteMeta(prefix), from.UnixNano(), to.UnixNano()))
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rows {
			keys[meas+"|"+r.Str("container_name")+"|"+strconv.FormatInt(r.Int("time"), 10)] = true
		}
	}
	return keys
}

func (a *agent) stdoutLen() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.stdout.Len()
}

// lastOutputField is the newest value of a numeric field of the agent's own
// lookout_output point for its InfluxDB output, as it printed it on stdout; -1 if none.
func lastOutputField(a *agent, field string) float64 {
	l := a.lastOutputLine()
	m := regexp.MustCompile(`[ ,]` + field + `=([0-9.e+-]+)i?(?:[ ,]|$)`).FindStringSubmatch(l)
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return n
}

// lastOutputLine is the newest lookout_output line of the InfluxDB output on the agent's
// stdout, found from the end without copying what it printed.
func (a *agent) lastOutputLine() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.stdout.Bytes()
	for end := len(b); end > 0; {
		i := bytes.LastIndex(b[:end], []byte("lookout_output,"))
		if i < 0 {
			return ""
		}
		line := b[i:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j]
		}
		if (i == 0 || b[i-1] == '\n') && outputLineRe.Match(line) {
			return string(line)
		}
		end = i
	}
	return ""
}

// printedSince reports whether the agent printed a line matching re on stdout at or
// after byte *from (less a line's overlap), and moves *from to the end: polling it costs
// only what was printed since the last look, not the tens of megabytes before.
func (a *agent) printedSince(re *regexp.Regexp, from *int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.stdout.Bytes()
	start := max(*from-64<<10, 0)
	*from = len(b)
	return re.Match(b[start:])
}

// logLastOutput shows, if the test fails, the agent's last report on its InfluxDB output.
func logLastOutput(t *testing.T, a *agent) {
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the agent's last lookout_output: %s", a.lastOutputLine())
		}
	})
}

// TestInfluxOutageWithKillLosesNothing: 100 containers reporting every second, InfluxDB
// stopped for minutes (LOOKOUT_E2E_OUTAGE, default 2m), the agent killed with SIGKILL
// half-way and started again on the same state directory. Every point either agent
// printed on its stdout output (the record of what was produced) is in InfluxDB once
// the queue has drained, but those of the killed agent's last sync interval; none is
// counted dropped. While the backlog drains, a health transition is queryable within
// seconds.
func TestInfluxOutageWithKillLosesNothing(t *testing.T) {
	outage := 2 * time.Minute
	if v := os.Getenv("LOOKOUT_E2E_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("LOOKOUT_E2E_OUTAGE=%q: %v", v, err)
		}
		outage = d
	}
	ix, err := startInflux(filepath.Join(t.TempDir(), "influx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Stop()
	db := dbName(t)
	prefix := "lk-q-" + runID
	// One container flips its health; the other 99 run no HEALTHCHECK (100 health
	// execs every 200 ms would load the machine more than the agent does).
	names := append([]string{prefix + "-h"}, startContainers(t, prefix, 99, "--no-healthcheck")...)
	runContainer(t, names[0], "--label", "lookout.enable=true")
	// Batches of 250 lines (not 1000) make the drain last several times longer than the
	// health transition takes to reach the agent on a loaded machine, so that the
	// transition is measured while the backlog is still there.
	env := []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL, "LOOKOUT_INFLUXDB_DATABASE=" + db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR=" + t.TempDir(), "LOOKOUT_STDOUT=true", "LOOKOUT_LOG_LEVEL=info", "LOOKOUT_BATCH_SIZE=250"}
	a1 := startAgent(t, env...)
	measurements := []string{"docker_container_mem", "docker_container_cpu", "docker_container_status"}
	eventually(t, 2*time.Minute, "every container's memory in InfluxDB", func() bool {
		rows, _ := ix.Query(db, fmt.Sprintf(`SHOW TAG VALUES FROM docker_container_mem WITH KEY = container_name WHERE container_name =~ /^%s/`, prefix))
		return len(rows) == len(names)
	})
	first := time.Now()

	ix.Stop()
	tStop := time.Now()
	time.Sleep(outage / 2) // the outage itself, not a wait for something
	tKill := time.Now()
	if err := a1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-a1.done
	if d := lastOutputField(a1, "dropped"); d != 0 {
		t.Fatalf("the first agent reported %v points dropped during the outage", d)
	}
	a2 := startAgent(t, env...)
	logLastOutput(t, a2)
	time.Sleep(time.Until(tStop.Add(outage)))
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	tUp := time.Now()
	t.Logf("InfluxDB was away %s; the first agent was killed after %s", tUp.Sub(tStop).Round(time.Second), tKill.Sub(tStop).Round(time.Second))

	// The drain has begun once a point stamped after InfluxDB came back is there.
	eventually(t, time.Minute, "a first point written after InfluxDB came back", func() bool {
		rows, _ := ix.Query(db, fmt.Sprintf(`SELECT last(written) FROM lookout_output WHERE time > %d`, tUp.UnixNano()))
		return len(rows) > 0
	})
	// The queue's part of the lag: from the agent printing the transition on its stdout
	// output (memory, always up) to InfluxDB having it.
	tFlip := time.Now()
	docker(t, "exec", names[0], "/testsvc", "set", "unhealthy")
	printedRe := regexp.MustCompile(`(?m)^lookout_container_event,[^ ]*container_name=` + regexp.QuoteMeta(names[0]) + `[, ].*health_status="unhealthy"`)
	var produced, found, event time.Time
	seen := a2.stdoutLen()
	t.Cleanup(func() {
		if t.Failed() {
			from := 0
			t.Logf("the agent printed the transition: %v", a2.printedSince(printedRe, &from))
		}
	})
	eventually(t, 3*time.Minute, "the health transition during the drain", func() bool {
		if produced.IsZero() && a2.printedSince(printedRe, &seen) {
			produced = time.Now()
		}
		rows, _ := ix.Query(db, fmt.Sprintf(`SELECT health_status FROM lookout_container_event WHERE action='health_status'`+
			` AND container_name='%s' AND health_status='unhealthy' AND time >= %d`, names[0], tFlip.UnixNano()))
		if len(rows) == 0 {
			return false
		}
		found, event = time.Now(), time.Unix(0, rows[0].Int("time"))
		if produced.IsZero() {
			produced = found
		}
		return true
	})
	lag := found.Sub(produced)
	t.Logf("health transition: Docker's event to the agent's stdout %s, to InfluxDB %s", produced.Sub(event).Round(time.Millisecond),
		found.Sub(event).Round(time.Millisecond))
	backlog := lastOutputField(a2, "buffered")
	t.Logf("the transition was in InfluxDB %s after the agent produced it, with %v lines still queued", lag.Round(time.Millisecond), backlog)
	if backlog < 1000 {
		t.Fatalf("only %v lines were queued when the transition arrived: the drain was over, nothing was measured", backlog)
	}
	if lag > 8*time.Second {
		t.Fatalf("the health transition took %s from the agent to InfluxDB during the drain: the backlog held it back", lag)
	}

	// Drained: the oldest line queued is no longer one from the outage.
	drain := time.Now()
	eventually(t, 6*time.Minute, "the queue to drain", func() bool {
		age := lastOutputField(a2, "oldest_seconds")
		return age >= 0 && age < 10
	})
	t.Logf("drained %s after the transition", time.Since(drain).Round(time.Second))
	end := time.Now().Add(-10 * time.Second)
	want := stdoutPoints(a1.out(), prefix, measurements, tKill.Add(-2*time.Second))
	for k := range stdoutPoints(a2.out(), prefix, measurements, end) {
		want[k] = true
	}
	during := 0
	for k := range want {
		ts, _ := strconv.ParseInt(k[strings.LastIndexByte(k, '|')+1:], 10, 64)
		if ts >= tStop.UnixNano() && ts < tUp.UnixNano() {
			during++
		}
	}
	var missing []string
	for try := 0; try < 6; try++ { // the last batches may still be in flight: a few looks, 5 s apart
		got := influxPoints(t, ix, db, prefix, measurements, first.Add(-time.Minute), end)
		missing = missing[:0]
		for k := range want {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(5 * time.Second)
	}
	t.Logf("%d points of %v produced, %d of them during the outage; %d missing from InfluxDB", len(want), measurements, during, len(missing))
	if during < len(names)*int(outage.Seconds())/2 {
		t.Fatalf("only %d points produced during the outage: the agents did not report every second", during)
	}
	if len(missing) > 0 {
		t.Fatalf("%d points produced are not in InfluxDB, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for _, f := range []string{"dropped", "dropped_disk_full", "corrupt"} {
		if n := lastOutputField(a2, f); n != 0 {
			t.Errorf("the restarted agent reports %s=%v", f, n)
		}
	}
}

// TestDiskQueueOnTinyFilesystem: the state directory on a 256 KiB tmpfs while InfluxDB is
// away. The agent keeps running, counts what the full disk cost, and delivers again
// when InfluxDB is back.
func TestDiskQueueOnTinyFilesystem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("mounting a tmpfs needs root (CI and make test run as root)")
	}
	state := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", state).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", state).Run() })
	ix, err := startInflux(filepath.Join(t.TempDir(), "influx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Stop()
	db := dbName(t)
	prefix := "lk-tiny-" + runID
	names := startContainers(t, prefix, 20, "--no-healthcheck")
	ix.Stop()
	a := startAgent(t, "LOOKOUT_INFLUXDB_URL="+ix.URL, "LOOKOUT_INFLUXDB_DATABASE="+db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR="+state, "LOOKOUT_STDOUT=true", "LOOKOUT_RESOURCES_PER_DEVICE=true")
	eventually(t, 4*time.Minute, "the full disk to be counted", func() bool {
		return lastOutputField(a, "dropped_disk_full") > 0 || lastOutputField(a, "disk_errors") > 0
	})
	t.Logf("full disk: dropped_disk_full=%v disk_errors=%v buffered=%v", lastOutputField(a, "dropped_disk_full"),
		lastOutputField(a, "disk_errors"), lastOutputField(a, "buffered"))
	select {
	case <-a.done:
		t.Fatalf("the agent stopped on a full disk:\n%s", a.logs())
	default:
	}
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	since := time.Now()
	eventually(t, time.Minute, "points after the disk filled", func() bool {
		rows, _ := ix.Query(db, fmt.Sprintf(`SELECT * FROM docker_container_mem WHERE container_name='%s' AND time > %d`,
			names[0], since.UnixNano()))
		return len(rows) > 0
	})
}

// TestDiskQueueRecoversFromDamagedFiles: a queue filled while InfluxDB was away, the
// agent stopped, its segment files damaged (one cut short in mid-record, one with bits
// flipped in the middle, one replaced by random bytes). The agent starts, counts the
// damage, and delivers the rest.
func TestDiskQueueRecoversFromDamagedFiles(t *testing.T) {
	ix, err := startInflux(filepath.Join(t.TempDir(), "influx"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Stop()
	db := dbName(t)
	prefix := "lk-dmg-" + runID
	startContainers(t, prefix, 10, "--no-healthcheck")
	state := t.TempDir()
	ix.Stop()
	env := []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL, "LOOKOUT_INFLUXDB_DATABASE=" + db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR=" + state, "LOOKOUT_STDOUT=true", "LOOKOUT_BUFFER_DISK_LIMIT=1MiB", "LOOKOUT_RESOURCES_PER_DEVICE=true"}
	a := startAgent(t, env...)
	qdir := filepath.Join(state, "queue", "influxdb")
	segs := func() []string { m, _ := filepath.Glob(filepath.Join(qdir, "*.seg")); return m }
	// 1 MiB makes segments of 64 KiB: wait for eight, and for our containers' points.
	ours := regexp.MustCompile(`(?m)^docker_container_mem,[^ ]*container_name=` + regexp.QuoteMeta(prefix))
	from := 0
	eventually(t, 4*time.Minute, "eight queue segments", func() bool { return len(segs()) >= 8 && a.printedSince(ours, &from) })
	stopped := time.Now()
	a.stop(t)
	s := segs()
	// The newest points are in the newest segments, which stay whole.
	var newest []string
	for k := range stdoutPoints(a.out(), prefix, []string{"docker_container_mem"}, stopped) {
		if ts, _ := strconv.ParseInt(k[strings.LastIndexByte(k, '|')+1:], 10, 64); ts >= stopped.Add(-time.Second).UnixNano() {
			newest = append(newest, k)
		}
	}
	if len(newest) == 0 {
		t.Fatal("no point of the test's containers printed in the last second before the stop")
	}
	damage := func(p string, f func([]byte) []byte) {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f(b), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	damage(s[0], func(b []byte) []byte { return b[:len(b)*2/3] })
	damage(s[1], func(b []byte) []byte {
		for i := len(b) / 2; i < len(b)/2+16; i++ {
			b[i] ^= 0x5a
		}
		return b
	})
	damage(s[2], func(b []byte) []byte {
		r := rand.New(rand.NewPCG(1, 2))
		for i := range b {
			b[i] = byte(r.UintN(256))
		}
		return b
	})
	if err := ix.Start(); err != nil {
		t.Fatal(err)
	}
	a2 := startAgent(t, env...)
	logLastOutput(t, a2)
	eventually(t, time.Minute, "the damage counted", func() bool { return lastOutputField(a2, "corrupt") >= 3 })
	if !strings.Contains(a2.logs(), "damaged records skipped") {
		t.Errorf("no log line about the damaged records:\n%s", a2.logs())
	}
	// What the undamaged segments held arrives: the points of the last second before the
	// stop.
	var missing []string
	eventually(t, 2*time.Minute, "the points of the last second before the stop in InfluxDB", func() bool {
		got := influxPoints(t, ix, db, prefix, []string{"docker_container_mem"}, time.Now().Add(-time.Hour), time.Now())
		missing = missing[:0]
		for _, k := range newest {
			if !got[k] {
				missing = append(missing, k)
			}
		}
		return len(missing) == 0
	})
	t.Logf("%d points of the last second before the stop delivered; corrupt=%v", len(newest), lastOutputField(a2, "corrupt"))
}
