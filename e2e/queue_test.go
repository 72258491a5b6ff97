package e2e

import (
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

// startContainers starts n opted-in test services named prefix-NNN, four at a time.
func startContainers(t *testing.T, prefix string, n int) []string {
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
				out, err := exec.Command("docker", "run", "-d", "--name", name, "--label", "lookout-test.run="+runID,
					"--label", "lookout.enable=true", "--health-interval", "200ms", "--health-retries", "1",
					"--health-timeout", "2s", testImage).CombinedOutput()
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
	outputLineRe   = regexp.MustCompile(`(?m)^lookout_output,[^ ]*output=influxdb[, ].*$`)
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

// lastOutputField is the newest value of a numeric field of the agent's own
// lookout_output point for its InfluxDB output, as it printed it on stdout; -1 if none.
func lastOutputField(out, field string) float64 {
	ls := outputLineRe.FindAllString(out, -1)
	if len(ls) == 0 {
		return -1
	}
	m := regexp.MustCompile(`[ ,]` + field + `=([0-9.e+-]+)i?(?:[ ,]|$)`).FindStringSubmatch(ls[len(ls)-1])
	if m == nil {
		return -1
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	return n
}

// logLastOutput shows, if the test fails, the agent's last report on its InfluxDB output.
func logLastOutput(t *testing.T, a *agent) {
	t.Cleanup(func() {
		if ls := outputLineRe.FindAllString(a.out(), -1); t.Failed() && len(ls) > 0 {
			t.Logf("the agent's last lookout_output: %s", ls[len(ls)-1])
		}
	})
}

// TestInfluxOutageWithKillLosesNothing: 100 containers reporting every second, InfluxDB
// stopped for minutes (LOOKOUT_E2E_OUTAGE, default 150s), the agent killed with SIGKILL
// half-way and started again on the same state directory. Every point either agent
// printed on its stdout output (the record of what was produced) is in InfluxDB once
// the queue has drained, but those of the killed agent's last sync interval; none is
// counted dropped. While the backlog drains, a health transition is queryable within
// seconds.
func TestInfluxOutageWithKillLosesNothing(t *testing.T) {
	outage := 150 * time.Second
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
	names := startContainers(t, prefix, 100)
	// Small batches make the drain long enough to measure the lag of new points behind it.
	env := []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL, "LOOKOUT_INFLUXDB_DATABASE=" + db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR=" + t.TempDir(), "LOOKOUT_STDOUT=true", "LOOKOUT_BATCH_SIZE=20", "LOOKOUT_LOG_LEVEL=info"}
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
	if d := lastOutputField(a1.out(), "dropped"); d != 0 {
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
	tFlip := time.Now()
	docker(t, "exec", names[0], "/testsvc", "set", "unhealthy")
	eventually(t, 30*time.Second, "the health transition during the drain", func() bool {
		rows, _ := ix.Query(db, fmt.Sprintf(`SELECT health_status FROM lookout_container_event WHERE action='health_status'`+
			` AND container_name='%s' AND health_status='unhealthy' AND time >= %d`, names[0], tFlip.UnixNano()))
		return len(rows) > 0
	})
	lag := time.Since(tFlip)
	backlog := lastOutputField(a2.out(), "buffered")
	t.Logf("health transition queryable %s after the change, with %v lines still queued", lag.Round(time.Millisecond), backlog)
	if backlog < 1000 {
		t.Fatalf("only %v lines were queued when the transition arrived: the drain was over, nothing was measured", backlog)
	}
	if lag > 8*time.Second {
		t.Fatalf("the health transition took %s to be queryable during the drain: the backlog held it back", lag)
	}

	eventually(t, 5*time.Minute, "the queue to drain", func() bool { return lastOutputField(a2.out(), "buffered") == 0 })
	end := time.Now().Add(-3 * time.Second) // a margin for the last batch in flight
	want := stdoutPoints(a1.out(), prefix, measurements, tKill.Add(-2*time.Second))
	for k := range stdoutPoints(a2.out(), prefix, measurements, end) {
		want[k] = true
	}
	got := influxPoints(t, ix, db, prefix, measurements, first.Add(-time.Minute), end)
	var missing []string
	during := 0
	for k := range want {
		ts, _ := strconv.ParseInt(k[strings.LastIndexByte(k, '|')+1:], 10, 64)
		if ts >= tStop.UnixNano() && ts < tUp.UnixNano() {
			during++
		}
		if !got[k] {
			missing = append(missing, k)
		}
	}
	t.Logf("%d points of %v produced, %d of them during the outage; %d missing from InfluxDB", len(want), measurements, during, len(missing))
	if during < len(names)*int(outage.Seconds())/2 {
		t.Fatalf("only %d points produced during the outage: the agents did not report every second", during)
	}
	if len(missing) > 0 {
		t.Fatalf("%d points produced are not in InfluxDB, e.g. %v", len(missing), missing[:min(5, len(missing))])
	}
	for _, f := range []string{"dropped", "dropped_disk_full", "corrupt"} {
		if n := lastOutputField(a2.out(), f); n != 0 {
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
	names := startContainers(t, prefix, 20)
	ix.Stop()
	a := startAgent(t, "LOOKOUT_INFLUXDB_URL="+ix.URL, "LOOKOUT_INFLUXDB_DATABASE="+db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR="+state, "LOOKOUT_STDOUT=true", "LOOKOUT_RESOURCES_PER_DEVICE=true")
	eventually(t, 4*time.Minute, "the full disk to be counted", func() bool {
		return lastOutputField(a.out(), "dropped_disk_full") > 0 || lastOutputField(a.out(), "disk_errors") > 0
	})
	t.Logf("full disk: dropped_disk_full=%v disk_errors=%v buffered=%v", lastOutputField(a.out(), "dropped_disk_full"),
		lastOutputField(a.out(), "disk_errors"), lastOutputField(a.out(), "buffered"))
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
	names := startContainers(t, prefix, 10)
	state := t.TempDir()
	ix.Stop()
	env := []string{"LOOKOUT_INFLUXDB_URL=" + ix.URL, "LOOKOUT_INFLUXDB_DATABASE=" + db, "LOOKOUT_INTERVAL=1s",
		"LOOKOUT_STATE_DIR=" + state, "LOOKOUT_STDOUT=true", "LOOKOUT_BUFFER_DISK_LIMIT=1MiB", "LOOKOUT_RESOURCES_PER_DEVICE=true"}
	a := startAgent(t, env...)
	qdir := filepath.Join(state, "queue", "influxdb")
	segs := func() []string { m, _ := filepath.Glob(filepath.Join(qdir, "*.seg")); return m }
	// 1 MiB makes segments of 64 KiB: wait for five.
	eventually(t, 4*time.Minute, "five queue segments", func() bool { return len(segs()) >= 5 })
	a.stop(t)
	s := segs()
	before := stdoutPoints(a.out(), prefix, []string{"docker_container_mem"}, time.Now())
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
	eventually(t, 2*time.Minute, "the damage counted and the backlog delivered", func() bool {
		return lastOutputField(a2.out(), "corrupt") >= 3 && lastOutputField(a2.out(), "oldest_seconds") < 5
	})
	if !strings.Contains(a2.logs(), "damaged records skipped") {
		t.Errorf("no log line about the damaged records:\n%s", a2.logs())
	}
	// What the undamaged segments held arrived: the points of the last seconds before the
	// stop are in InfluxDB.
	got := influxPoints(t, ix, db, prefix, []string{"docker_container_mem"}, time.Now().Add(-time.Hour), time.Now())
	n := 0
	for k := range before {
		if got[k] {
			n++
		}
	}
	t.Logf("%d of %d points queued before the stop delivered; corrupt=%v", n, len(before), lastOutputField(a2.out(), "corrupt"))
	if n < len(before)/3 {
		t.Fatalf("only %d of %d queued points delivered after the damage", n, len(before))
	}
	_ = names
}
